//! Looking Glass shared memory: `/dev/shm/looking-glass` (absent is fine: the hook creates it at VM start;
//! present must be readable and writable by the viewer user's group) or the kvmfr device `/dev/kvmfr0`.
use super::{Context, Finding};

/// Runs the Looking Glass checks.
pub fn check(ctx: &Context) -> Vec<Finding> {
    vec![shm(ctx)]
}

fn shm(ctx: &Context) -> Finding {
    const ID: &str = "looking_glass.shm";
    let virt = &ctx.host.virt;
    let kvmfr_loaded = ctx.host.kernel.is_loaded("kvmfr");
    if let Some(dev) = &virt.kvmfr {
        let desc = format!(
            "/dev/kvmfr0 is {}:{} {:04o}",
            dev.owner.as_deref().unwrap_or("?"),
            dev.group.as_deref().unwrap_or("?"),
            dev.stat.mode
        );
        return if dev.stat.mode & 0o060 == 0o060 || dev.stat.mode & 0o006 == 0o006 {
            Finding::pass(ID, desc)
        } else {
            Finding::warn(
                ID,
                format!("{desc}: only its owner can map it"),
                "add a udev rule: SUBSYSTEM==\"kvmfr\", OWNER=\"<you>\", GROUP=\"kvm\", MODE=\"0660\" in \
                 /etc/udev/rules.d/99-kvmfr.rules, then `udevadm trigger`",
            )
        };
    }
    if kvmfr_loaded {
        return Finding::warn(
            ID,
            "kvmfr is loaded but /dev/kvmfr0 does not exist",
            "modprobe -r kvmfr && modprobe kvmfr static_size_mb=32",
        );
    }
    let Some(file) = &virt.shm_file else {
        return Finding::pass(
            ID,
            "/dev/shm/looking-glass does not exist yet; the vmgpu hook creates it (0660, your user, group \
             kvm) at VM start",
        );
    };
    let owner = file.owner.as_deref().unwrap_or("?");
    let group = file.group.as_deref().unwrap_or("?");
    let desc = format!(
        "/dev/shm/looking-glass is {owner}:{group} {:04o}",
        file.stat.mode
    );
    if file.stat.mode & 0o060 == 0o060 {
        Finding::pass(ID, desc)
    } else {
        Finding::warn(
            ID,
            format!("{desc}: the viewer (your user) cannot write it"),
            "rm /dev/shm/looking-glass (the vmgpu hook recreates it 0660 at the next VM start), or `chmod 0660 \
             /dev/shm/looking-glass && chgrp kvm /dev/shm/looking-glass`",
        )
    }
}
