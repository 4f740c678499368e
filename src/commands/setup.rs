//! `vmgpu setup`.
use std::path::Path;

use crate::cli::SetupArgs;
use crate::report::Outcome;

/// Runs `vmgpu setup`.
pub fn run(_root: &Path, _args: &SetupArgs) -> anyhow::Result<Outcome> {
    super::not_yet_available("setup")
}
