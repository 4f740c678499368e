//! The single integration-test binary: one module per area.

/// The command line: every subcommand exists and has help.
mod cli;
/// `vmgpu setup`: plans, apply, no-op re-run, undo, bad input.
mod setup;
/// Host trees for the setup tests (with a busybox userland for chroot).
mod setup_tree;
