//! `vmgpu status`.
use std::path::Path;

use crate::cli::StatusArgs;
use crate::report::Outcome;

/// Runs `vmgpu status`.
pub fn run(_root: &Path, _args: &StatusArgs) -> anyhow::Result<Outcome> {
    super::not_yet_available("status")
}
