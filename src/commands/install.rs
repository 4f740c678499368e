//! `vmgpu install` and `vmgpu uninstall`: vmgpu as libvirt's qemu hook, never touching a foreign hook.
//!
//! The hook goes to `<hooks>/qemu` when that path is free or already vmgpu's, else to
//! `<hooks>/qemu.d/vmgpu` (libvirt ≥ 6.5 runs every executable there after `qemu`). `<hooks>` is
//! `/etc/libvirt/hooks`, or `/var/lib/libvirt/hooks` on NixOS. The installed file is a real copy of the
//! binary (AppArmor checks the resolved path and lets libvirtd exec only /usr/bin and /usr/sbin, so a
//! symlink into /usr/local would fail silently). A file is vmgpu's when it contains [`HOOK_MARKER`] (every
//! vmgpu binary does) or is a symlink to a file named `vmgpu`. libvirt looks for hooks when the daemon
//! starts: `--restart` restarts it (virtqemud or libvirtd, whichever runs), otherwise the command is printed.
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::cli::InstallArgs;
use crate::hook::location::{cli_pointer, hooks_dir};
use crate::host::HostRoot;
use crate::report::Outcome;

/// The marker as a literal, for [`HOOK_STAMP`].
macro_rules! hook_marker {
    () => {
        "vmgpu-hook-marker:3f9c1e7a-libvirt-qemu-hook"
    };
}

/// A string every vmgpu binary contains; it identifies an installed hook as ours.
pub(crate) static HOOK_MARKER: &str = hook_marker!();

/// The marker with this build's version (`0.1.0 (84863e1)`): `vmgpu` and `vmgpu-hook` of one build both contain
/// it, so `install` takes the `vmgpu-hook` beside it only when it is of the same build.
pub static HOOK_STAMP: &str = concat!(hook_marker!(), " ", env!("VMGPU_VERSION"));

/// The file name of the hook-only binary (`src/bin/vmgpu-hook.rs`).
const HOOK_BINARY: &str = "vmgpu-hook";

/// What is at a hook path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Nothing.
    Free,
    /// vmgpu's own hook.
    Ours,
    /// Somebody else's.
    Foreign,
}

/// Looks at a path (full path).
pub(crate) fn slot(path: &Path) -> Slot {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Slot::Free;
    };
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path).unwrap_or_default();
        return if target.file_name().is_some_and(|n| n == "vmgpu") {
            Slot::Ours
        } else {
            Slot::Foreign
        };
    }
    if !meta.is_file() {
        return Slot::Foreign;
    }
    match std::fs::read(path) {
        Ok(bytes) if contains(&bytes, HOOK_MARKER) => Slot::Ours,
        _ => Slot::Foreign,
    }
}

/// Whether a binary's bytes hold `text` (the hook marker or stamp: both are plain strings in the binary).
fn contains(bytes: &[u8], text: &str) -> bool {
    bytes.windows(text.len()).any(|w| w == text.as_bytes())
}

/// The daemon that runs QEMU hooks here: `virtqemud` (modular) or `libvirtd`.
pub(crate) fn daemon(root: &HostRoot) -> &'static str {
    let cgroup = |unit: &str| root.exists(format!("/sys/fs/cgroup/system.slice/{unit}"));
    if cgroup("virtqemud.service") || cgroup("virtqemud.socket") {
        return "virtqemud";
    }
    if cgroup("libvirtd.service") {
        return "libvirtd";
    }
    for pid in root.list_dir("/proc").unwrap_or_default() {
        if let Ok(Some(comm)) = root.read_optional(format!("/proc/{pid}/comm"))
            && comm == "virtqemud"
        {
            return "virtqemud";
        }
    }
    "libvirtd"
}

/// Runs `vmgpu install`. Every change goes through the root's operations (`ops::for_root`): under a
/// `--root` tree the simulated kernel's, so nothing outside the tree changes.
pub(crate) fn run_install(root: &Path, args: &InstallArgs) -> anyhow::Result<Outcome> {
    let root = HostRoot::new(root);
    let ops = crate::ops::for_root(&root);
    let dir = hooks_dir(&root);
    let main = format!("{dir}/qemu");
    let dropin = format!("{dir}/qemu.d/vmgpu");
    let target = match (slot(&root.path(&main)), slot(&root.path(&dropin))) {
        (Slot::Free | Slot::Ours, _) => main,
        (Slot::Foreign, Slot::Foreign) => bail!(
            "both {} and {} belong to another program; vmgpu leaves them alone (move one away and run \
             `vmgpu install` again)",
            root.path(&main).display(),
            root.path(&dropin).display()
        ),
        (Slot::Foreign, _) => {
            eprintln!(
                "vmgpu: {} is another program's hook; installing as {} (libvirt runs it after qemu)",
                root.path(&main).display(),
                root.path(&dropin).display()
            );
            dropin
        }
    };
    let exe = std::env::current_exe().context("cannot find the vmgpu binary to install")?;
    let (source, bytes) = hook_source(&exe)?;
    let shown = root.path(&target);
    if std::fs::read(&shown).is_ok_and(|old| old == bytes) {
        println!("the vmgpu hook {} is up to date", shown.display());
    } else {
        // Temporary file + rename, so libvirt never runs half of it.
        ops.replace_file(&target, &bytes, 0o755)
            .with_context(|| format!("cannot install {}", shown.display()))?;
        println!(
            "installed the vmgpu hook as {} (from {})",
            shown.display(),
            source.display()
        );
    }
    // The hook-only binary starts the viewer with this vmgpu (it has no `view` of its own); the full one needs
    // no pointer, and a stale one must not send the viewer to another build.
    let pointer = cli_pointer(dir);
    if source != exe {
        ops.replace_file(&pointer, format!("{}\n", exe.display()).as_bytes(), 0o644)
            .with_context(|| format!("cannot write {}", root.path(&pointer).display()))?;
    } else {
        remove_cli_pointer(&root, ops.as_ref(), dir)?;
    }
    let daemon = daemon(&root);
    if args.restart {
        if !crate::hook::cpus::systemd_booted(&root) {
            bail!("systemd is not running: restart {daemon} by hand so it sees the hook");
        }
        ops.systemctl(&["restart", &format!("{daemon}.service")])
            .with_context(|| format!("cannot restart {daemon}"))?;
        println!("restarted {daemon}: the hook is active");
    } else {
        println!(
            "libvirt looks for hooks when it starts: run `systemctl restart {daemon}` (or pass --restart)"
        );
    }
    if root.exists("/sys/fs/selinux/enforce") {
        println!(
            "SELinux: run `restorecon -R {dir}` and `setsebool -P virt_hooks_unconfined on` so {daemon} may run it"
        );
    }
    Ok(Outcome::Ok)
}

/// The binary to install and its bytes: `vmgpu-hook` beside the running binary when it is of the same build
/// (the hook alone: each hook call starts without loading libvirt and libpulse), else the running binary
/// itself, which runs as the hook too.
fn hook_source(exe: &Path) -> anyhow::Result<(PathBuf, Vec<u8>)> {
    let sibling = exe.with_file_name(HOOK_BINARY);
    if let Ok(bytes) = std::fs::read(&sibling) {
        if contains(&bytes, HOOK_STAMP) {
            return Ok((sibling, bytes));
        }
        eprintln!(
            "vmgpu: {} is of another build than this vmgpu; installing vmgpu itself as the hook (install both \
             binaries of one build to get the faster hook-only one)",
            sibling.display()
        );
    }
    let bytes = std::fs::read(exe).with_context(|| format!("cannot read {}", exe.display()))?;
    Ok((exe.to_path_buf(), bytes))
}

/// Removes `<hooks>/vmgpu-cli-path` where there is one (the full binary as the hook, or no hook at all).
fn remove_cli_pointer(
    root: &HostRoot,
    ops: &dyn crate::ops::HostOps,
    dir: &str,
) -> anyhow::Result<()> {
    let pointer = cli_pointer(dir);
    if root.exists(&pointer) {
        ops.remove_file(&pointer)
            .with_context(|| format!("cannot remove {}", root.path(&pointer).display()))?;
    }
    Ok(())
}

/// Runs `vmgpu uninstall`.
pub(crate) fn run_uninstall(root: &Path, _args: &InstallArgs) -> anyhow::Result<Outcome> {
    let root = HostRoot::new(root);
    let ops = crate::ops::for_root(&root);
    let dir = hooks_dir(&root);
    let mut removed = 0;
    for path in [format!("{dir}/qemu"), format!("{dir}/qemu.d/vmgpu")] {
        let shown = root.path(&path);
        match slot(&shown) {
            Slot::Free => {}
            Slot::Ours => {
                ops.remove_file(&path)
                    .with_context(|| format!("cannot remove {}", shown.display()))?;
                println!("removed {}", shown.display());
                removed += 1;
            }
            Slot::Foreign => println!("left {} alone: it is not vmgpu's", shown.display()),
        }
    }
    remove_cli_pointer(&root, ops.as_ref(), dir)?;
    if removed == 0 {
        println!("no vmgpu hook installed under {}", root.path(dir).display());
    }
    Ok(Outcome::Ok)
}
