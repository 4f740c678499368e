//! vmgpu: set up a Linux host for a GPU-passthrough VM, run as its libvirt hook, define its domain and
//! show its screen. The module list below is the table of contents.
#![deny(unsafe_code)]

/// Command-line definitions (clap derive): flags as typed, validation only.
pub mod cli;
/// One file per subcommand: the only layer that uses `anyhow` and talks to the user.
pub mod commands;
/// Domain XML: templates, spec, pinning, Looking Glass sizing, byte-preserving rewrite.
pub mod domain;
/// Read-only model of the machine, read through one root path.
pub mod host;
/// Error-chain printing, exit codes and logging set-up.
pub mod report;
