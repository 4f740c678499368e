//! The single integration-test binary: one module per area.

/// The command line: every subcommand exists and has help.
mod cli;

/// Looking Glass protocol: producer and client end to end, slow clients, restarts, bad regions.
mod lg;

/// Property tests of the client against arbitrary and concurrently changing regions.
mod lg_fuzz;

/// `vmgpu define`: rendered domains, schema validation, refused input, `--update` rewrite.
mod define;
