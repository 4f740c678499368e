//! `vmgpu define`.
use std::path::Path;

use crate::cli::DefineArgs;
use crate::report::Outcome;

/// Runs `vmgpu define`.
pub fn run(_root: &Path, _args: &DefineArgs) -> anyhow::Result<Outcome> {
    super::not_yet_available("define")
}
