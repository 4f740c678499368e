//! Where libvirt looks for the hook, and where an installed hook finds the `vmgpu` that installed it.
//!
//! `<hooks>` is `/etc/libvirt/hooks`, or `/var/lib/libvirt/hooks` on NixOS. When `vmgpu install` copies the
//! hook-only `vmgpu-hook` there, it also writes `<hooks>/`[`CLI_PATH_FILE`] with its own path: the hook starts
//! the viewer with that binary (libvirt runs only the files named after its drivers and the `*.d` directories,
//! so this plain file is never run).
use std::path::PathBuf;

use crate::host::HostRoot;

/// The file in the hooks directory that names the full `vmgpu` binary (one absolute path, one line).
const CLI_PATH_FILE: &str = "vmgpu-cli-path";

/// The hooks directory for this distribution (a host path).
pub(crate) fn hooks_dir(root: &HostRoot) -> &'static str {
    let nixos = root.exists("/etc/NIXOS")
        || root
            .read_optional("/etc/os-release")
            .ok()
            .flatten()
            .is_some_and(|t| t.lines().any(|l| l.trim() == "ID=nixos"));
    if nixos {
        "/var/lib/libvirt/hooks"
    } else {
        "/etc/libvirt/hooks"
    }
}

/// The host path of the file naming the full `vmgpu`, in the hooks directory `dir`.
pub(crate) fn cli_pointer(dir: &str) -> String {
    format!("{dir}/{CLI_PATH_FILE}")
}

/// The `vmgpu` binary `install` recorded beside the hook, when it names an absolute path that exists.
pub(crate) fn recorded_cli(root: &HostRoot) -> Option<PathBuf> {
    let text = root
        .read_optional(cli_pointer(hooks_dir(root)))
        .ok()
        .flatten()?;
    let path = text.trim();
    (path.starts_with('/') && root.exists(path)).then(|| PathBuf::from(path))
}
