//! `vmgpu setup`: configure the host the way the guides do, for every major distro.
//!
//! The [`plan`] is computed purely from [`SetupInputs`] (read from the host model by [`probe`]) and the
//! current text of the files it edits ([`FileSource`]): file edits plus commands, each with why, and the
//! [`Promise`]s `vmgpu check` verifies after a reboot. [`render`] shows it as unified diffs; [`apply`] writes it
//! atomically with backups and a [`record`], and undoes it.
//!
//! Areas: [`cmdline`] (which kernel parameters, merged without duplicates), [`grub`] (`/etc/default/grub`),
//! [`boot`] (per bootloader), [`vfio`] (early binding and the initramfs), [`guide`] (kvm, packages, daemon,
//! groups, Looking Glass shared memory, MAC, libvirt-guests, the hook, NixOS).
pub mod apply;
pub mod boot;
pub mod cmdline;
pub mod diff;
pub mod files;
pub mod grub;
pub mod guide;
pub mod inputs;
pub mod plan;
pub mod plan_text;
pub mod probe;
pub mod record;
pub mod runner;
pub mod vfio;
pub mod write;

pub use files::{FileSource, MemoryFiles};
pub use inputs::SetupInputs;
pub use plan::{Plan, Promise};
