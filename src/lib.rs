//! vmgpu: set up a Linux host for a GPU-passthrough VM, run as its libvirt hook, define its domain and
//! show its screen. The module list below is the table of contents.
// Unit tests may write freely (fixtures, temporary trees); the product code may not (clippy.toml).
#![cfg_attr(test, allow(clippy::disallowed_methods))]
#![deny(unsafe_code)]
// The public surface is what src/main.rs, src/bin/vmgpu-hook.rs, tests/ and benches/ use; everything else is
// pub(crate), and what only one feature uses is gated by it (docs/architecture.md).
#![warn(unreachable_pub)]

/// Host checks: one area per file, each a list of findings with a fix for this distro.
pub mod check;
/// Command-line definitions (clap derive): flags as typed, validation only.
pub mod cli;
/// One file per subcommand: the only layer that uses `anyhow` and talks to the user.
pub mod commands;
/// Domain XML: the vmgpu metadata (schema v1), read-side views, templates, pinning, Looking Glass sizing and
/// the byte-preserving rewrite behind `define`.
pub mod domain;
/// `vmgpu explain`: why a VM did not start, from its logs, matched against a table of known failures.
pub mod explain;
/// The libvirt hook: prepare and release a GPU VM's host, crash-safe.
pub mod hook;
/// Read-only model of the machine, read through one root path.
pub mod host;
/// The write-ahead journal of host changes under `/run/vmgpu`.
pub(crate) mod journal;
/// Looking Glass (LGMP + KVMFR) over shared memory: client, parsers and the producer. Safe code, no window.
pub mod lg;
/// The only user of the `virt` crate: connect, read and define domains.
#[cfg(feature = "libvirt")]
pub(crate) mod libvirt;
/// The only code that changes the host: `HostOps`, real and simulated (`ops::fork` holds the unsafe `fork`
/// of the sysfs-writer helper).
pub mod ops;
/// Error-chain printing, exit codes and logging set-up.
pub mod report;
/// `vmgpu setup`: plan, diff, apply with backups, undo.
pub(crate) mod setup;
/// Guest-shared memory: the mapping and its checked view (the crate's unsafe code lives here).
#[allow(unsafe_code)]
pub mod shm;
/// A SPICE client (link, ticket auth, main, inputs, display, cursor, playback and record channels) that drives
/// the VM's keyboard and mouse and carries its screen, clipboard and sound.
pub mod spice;
/// The frame viewer: pixel conversion, scaling, cursor and the winit + softbuffer window.
pub mod viewer;
