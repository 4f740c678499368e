//! `vmgpu view`.
use std::path::Path;

use crate::cli::ViewArgs;
use crate::report::Outcome;

/// Runs `vmgpu view`.
pub fn run(_root: &Path, _args: &ViewArgs) -> anyhow::Result<Outcome> {
    super::not_yet_available("view")
}
