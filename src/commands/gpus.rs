//! `vmgpu gpus`.
use std::path::Path;

use crate::cli::GpusArgs;
use crate::report::Outcome;

/// Runs `vmgpu gpus`.
pub fn run(_root: &Path, _args: &GpusArgs) -> anyhow::Result<Outcome> {
    super::not_yet_available("gpus")
}
