//! The single integration-test binary: one module per area.

/// The command line: every subcommand exists and has help.
mod cli;

/// Looking Glass protocol: producer and client end to end, slow clients, restarts, bad regions.
mod lg;

/// Property tests of the client against arbitrary and concurrently changing regions.
mod lg_fuzz;

/// The real viewer window on Xvfb: pixel-exact screenshots (ignored; run by tests/harness/40-viewer-x11.sh).
mod viewer_x11;

/// The real viewer as a Wayland client of weston nested in Xvfb (ignored; run by the viewer harness).
mod viewer_wayland;
