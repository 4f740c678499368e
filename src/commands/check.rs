//! `vmgpu check`.
use std::path::Path;

use crate::cli::CheckArgs;
use crate::report::Outcome;

/// Runs `vmgpu check`.
pub fn run(_root: &Path, _args: &CheckArgs) -> anyhow::Result<Outcome> {
    super::not_yet_available("check")
}
