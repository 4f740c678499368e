//! libvirt: the daemon running (libvirtd or virtqemud, from `/proc`, never by calling libvirt), the qemu hook
//! installed and seen by the daemon (installed before it started), SELinux `virt_hooks_unconfined`, and
//! libvirt-guests `ON_SHUTDOWN` (suspend cannot save a VM with a VFIO device).
use super::{Context, Finding};
use crate::host::Family;
use crate::host::virtstack::DaemonKind;

/// Runs the libvirt checks.
pub(crate) fn check(ctx: &Context) -> Vec<Finding> {
    vec![
        daemon(ctx),
        hook(ctx),
        hook_seen(ctx),
        mac(ctx),
        guests(ctx),
    ]
}

fn unit(kind: DaemonKind) -> &'static str {
    match kind {
        DaemonKind::Virtqemud => "virtqemud.socket",
        DaemonKind::Libvirtd => "libvirtd.service",
    }
}

fn daemon(ctx: &Context) -> Finding {
    const ID: &str = "libvirt.daemon";
    let d = &ctx.host.virt.daemon;
    if let Some((kind, pid, _)) = d.running {
        return Finding::pass(ID, format!("{} is running (pid {pid})", kind.name()));
    }
    let Some(kind) = d.kind else {
        return Finding::skip(ID, "libvirt is not installed (see packages.libvirt)");
    };
    if ctx.host.distro.family == Family::NixOs {
        return Finding::fail(
            ID,
            format!("{} is not running", kind.name()),
            "set virtualisation.libvirtd.enable = true; in /etc/nixos/configuration.nix, then run \
             `nixos-rebuild switch`",
        );
    }
    if d.socket {
        return Finding::pass(
            ID,
            format!(
                "{} is socket-activated: it starts on first use",
                kind.name()
            ),
        );
    }
    Finding::fail(
        ID,
        format!("{} is not running", kind.name()),
        format!("systemctl enable --now {}", unit(kind)),
    )
}

fn hook(ctx: &Context) -> Finding {
    const ID: &str = "libvirt.hook";
    let hook = &ctx.host.virt.hook;
    match (&hook.vmgpu, &hook.file) {
        (None, None) => Finding::warn(
            ID,
            format!(
                "no qemu hook at {}: nothing binds the GPU at VM start",
                hook.path
            ),
            "vmgpu install --restart",
        ),
        (None, Some(_)) => Finding::warn(
            ID,
            format!(
                "{} is another program's hook and vmgpu is not in qemu.d/",
                hook.path
            ),
            "vmgpu install --restart (installs into qemu.d/, next to the other hook)",
        ),
        (Some(node), _) if node.stat.mode & 0o111 == 0 => Finding::fail(
            ID,
            format!(
                "{} is vmgpu but not executable, so libvirt skips it",
                node.path
            ),
            format!("chmod 0755 {}", node.path),
        ),
        (Some(node), _) => Finding::pass(ID, format!("vmgpu is the qemu hook ({})", node.path)),
    }
}

fn hook_seen(ctx: &Context) -> Finding {
    const ID: &str = "libvirt.hook_seen";
    let virt = &ctx.host.virt;
    let Some(file) = &virt.hook.vmgpu else {
        return Finding::skip(ID, "vmgpu is not installed as a hook");
    };
    let Some((kind, _, started)) = virt.daemon.running else {
        return Finding::skip(ID, "the libvirt daemon is not running");
    };
    let Some(started) = started else {
        return Finding::skip(ID, "the daemon's start time is unknown");
    };
    if file.stat.mtime <= started {
        Finding::pass(
            ID,
            format!(
                "{} started after the hook was installed, so it runs it",
                kind.name()
            ),
        )
    } else {
        Finding::fail(
            ID,
            format!(
                "{} started before {} was installed: libvirt only looks for hooks at start, so it ignores it",
                kind.name(),
                file.path
            ),
            format!("systemctl restart {}", kind.name()),
        )
    }
}

/// Where AppArmor's libvirtd/virtqemud profiles let the daemon exec a hook from.
const APPARMOR_EXEC_DIRS: &[&str] = &[
    "/bin/",
    "/sbin/",
    "/usr/bin/",
    "/usr/sbin/",
    "/etc/libvirt/hooks/",
];

fn mac(ctx: &Context) -> Finding {
    const ID: &str = "libvirt.mac";
    let mac = &ctx.host.virt.mac;
    let hook = &ctx.host.virt.hook;
    if mac.apparmor
        && let Some(target) = &hook.link_target
        && target.starts_with('/')
        && !APPARMOR_EXEC_DIRS.iter().any(|d| target.starts_with(d))
    {
        return Finding::fail(
            ID,
            format!(
                "{} links to {target}: AppArmor's libvirt profile execs hooks only from /usr/bin, /usr/sbin, \
                 /bin and /sbin, so the hook fails with \"Permission denied\"",
                hook.path
            ),
            format!(
                "install vmgpu as /usr/bin/vmgpu (cp {target} /usr/bin/vmgpu), then `vmgpu install --restart`"
            ),
        );
    }
    match mac.selinux.as_deref() {
        Some("enforcing") if mac.virt_hooks_unconfined != Some(true) => Finding::fail(
            ID,
            "SELinux is enforcing and virt_hooks_unconfined is off: the daemon cannot run the hook",
            format!(
                "setsebool -P virt_hooks_unconfined on && restorecon -R {}",
                ctx.host.virt.hook.path.trim_end_matches("/qemu")
            ),
        ),
        Some(mode) => Finding::pass(
            ID,
            format!("SELinux is {mode} and hooks may run (virt_hooks_unconfined)"),
        ),
        None if mac.apparmor => Finding::pass(
            ID,
            "AppArmor is on: the hook runs in the daemon's profile (keep it under /usr/bin or /etc, not \
             /usr/local)",
        ),
        None => Finding::pass(ID, "no SELinux or AppArmor confinement"),
    }
}

fn guests(ctx: &Context) -> Finding {
    const ID: &str = "libvirt.guests_shutdown";
    let virt = &ctx.host.virt;
    let file = virt
        .guests_config
        .as_deref()
        .unwrap_or(ctx.host.distro.family.libvirt_guests_config());
    match virt.guests_on_shutdown.as_deref() {
        Some("shutdown") => Finding::pass(ID, format!("{file}: ON_SHUTDOWN=shutdown")),
        other => Finding::warn(
            ID,
            format!(
                "libvirt-guests ON_SHUTDOWN is {}: a VM with a VFIO GPU cannot be suspended at host shutdown",
                other.unwrap_or("unset (default suspend)")
            ),
            format!(
                "set ON_SHUTDOWN=shutdown and SHUTDOWN_TIMEOUT=120 in {file}, then `systemctl enable \
                 libvirt-guests`"
            ),
        ),
    }
}
