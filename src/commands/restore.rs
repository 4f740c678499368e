//! `vmgpu restore`.
use std::path::Path;

use crate::cli::RestoreArgs;
use crate::report::Outcome;

/// Runs `vmgpu restore`.
pub fn run(_root: &Path, _args: &RestoreArgs) -> anyhow::Result<Outcome> {
    super::not_yet_available("restore")
}
