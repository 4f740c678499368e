//! The single integration-test binary: one module per area.

/// The command line: every subcommand exists and has help.
mod cli;
