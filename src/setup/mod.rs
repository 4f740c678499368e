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
pub(crate) mod apply;
pub(crate) mod boot;
pub(crate) mod cmdline;
pub(crate) mod diff;
pub(crate) mod files;
pub(crate) mod grub;
pub(crate) mod guide;
pub(crate) mod inputs;
pub(crate) mod plan;
pub(crate) mod plan_text;
pub(crate) mod probe;
pub(crate) mod record;
pub(crate) mod runner;
pub(crate) mod vfio;
pub(crate) mod write;

pub(crate) use plan::Promise;
