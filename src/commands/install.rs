//! `vmgpu install` and `vmgpu uninstall`.
use std::path::Path;

use crate::cli::InstallArgs;
use crate::report::Outcome;

/// Runs `vmgpu install`.
pub fn run_install(_root: &Path, _args: &InstallArgs) -> anyhow::Result<Outcome> {
    super::not_yet_available("install")
}

/// Runs `vmgpu uninstall`.
pub fn run_uninstall(_root: &Path, _args: &InstallArgs) -> anyhow::Result<Outcome> {
    super::not_yet_available("uninstall")
}
