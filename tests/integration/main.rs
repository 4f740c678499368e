//! The single integration-test binary: one module per area.

/// The command line: every subcommand exists and has help.
mod cli;

/// Looking Glass protocol: producer and client end to end, slow clients, restarts, bad regions.
mod lg;

/// Property tests of the client against arbitrary and concurrently changing regions.
mod lg_fuzz;

/// Helpers for the recorded and derived host trees.
mod fixtures;

/// The host model on recorded and derived trees, and bad input.
mod host;

/// `vmgpu gpus`: GPUs as units, snapshots per machine.
mod gpus;

/// `vmgpu check`: findings, fixes and exit codes per machine, and on this machine.
mod check;
