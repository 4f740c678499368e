//! Looking Glass shared memory: the kvmfr device `/dev/kvmfr0`, and the `/dev/shm/<name>` file of each vmgpu
//! domain's `ivshmem-plain` `<shmem>` (read from the persistent domains under /etc/libvirt/qemu), or the
//! default `/dev/shm/looking-glass` when no domain names one. A file may be absent (the hook creates it at VM
//! start); present, it must be readable and writable by its group (the viewer user's).
use super::{Context, Finding};
use crate::domain::read::hook_view::HookView;
use crate::domain::write::looking_glass::{DEFAULT_SHM_FILE, DEFAULT_SHM_NAME};
use crate::host::virtstack::Node;

const ID: &str = "looking_glass.shm";

/// Runs the Looking Glass checks.
pub(crate) fn check(ctx: &Context) -> Vec<Finding> {
    let mut findings: Vec<Finding> = kvmfr(ctx).into_iter().collect();
    let configured = configured(ctx);
    if configured.is_empty() {
        // No domain names a file: the default one, unless the kvmfr device is the Looking Glass memory.
        if findings.is_empty() {
            findings.push(shm_file(ctx, None, DEFAULT_SHM_FILE));
        }
    } else {
        findings.extend(configured.iter().map(|(vm, name)| shm_name(ctx, vm, name)));
    }
    findings
}

fn kvmfr(ctx: &Context) -> Option<Finding> {
    if let Some(dev) = &ctx.host.virt.kvmfr {
        let desc = format!(
            "/dev/kvmfr0 is {}:{} {:04o}",
            dev.owner.as_deref().unwrap_or("?"),
            dev.group.as_deref().unwrap_or("?"),
            dev.stat.mode
        );
        return Some(
            if dev.stat.mode & 0o060 == 0o060 || dev.stat.mode & 0o006 == 0o006 {
                Finding::pass(ID, desc)
            } else {
                Finding::warn(
                    ID,
                    format!("{desc}: only its owner can map it"),
                    "add a udev rule: SUBSYSTEM==\"kvmfr\", OWNER=\"<you>\", GROUP=\"kvm\", MODE=\"0660\" in \
                     /etc/udev/rules.d/99-kvmfr.rules, then `udevadm trigger`",
                )
            },
        );
    }
    ctx.host.kernel.is_loaded("kvmfr").then(|| {
        Finding::warn(
            ID,
            "kvmfr is loaded but /dev/kvmfr0 does not exist",
            "modprobe -r kvmfr && modprobe kvmfr static_size_mb=32",
        )
    })
}

/// `(vm, shm name)` of every file-backed `<shmem>` (the ones the hook creates) in the vmgpu domains.
fn configured(ctx: &Context) -> Vec<(String, String)> {
    super::vmgpu_domains(&ctx.host.root)
        .into_iter()
        .filter_map(|(vm, xml)| Some((vm, HookView::parse(&xml).ok()?)))
        .flat_map(|(vm, view)| {
            view.shmems
                .into_iter()
                .filter(|s| s.model == "ivshmem-plain" && !s.has_server)
                .map(move |s| (vm.clone(), s.name))
        })
        .collect()
}

fn shm_name(ctx: &Context, vm: &str, name: &str) -> Finding {
    if !crate::hook::shm::valid_name(name) {
        return Finding::fail(
            ID,
            format!(
                "VM {vm}: its <shmem> name {:?} is not a file name in /dev/shm (the hook refuses to start it)",
                name.chars().take(64).collect::<String>()
            ),
            format!(
                "`virsh edit {vm}`: give its <shmem> a plain name such as {DEFAULT_SHM_NAME} (no `/`)"
            ),
        );
    }
    shm_file(
        ctx,
        Some(vm),
        &format!("{}/{name}", crate::hook::shm::SHM_DIR),
    )
}

fn shm_file(ctx: &Context, vm: Option<&str>, path: &str) -> Finding {
    let whose = vm.map(|vm| format!("VM {vm}: ")).unwrap_or_default();
    let node = match Node::read(&ctx.host.root, path) {
        Ok(node) => node,
        Err(e) => return Finding::skip(ID, format!("{whose}cannot read {path}: {e}")),
    };
    let Some(file) = node else {
        return Finding::pass(
            ID,
            format!(
                "{whose}{path} does not exist yet; the vmgpu hook creates it (0660, your user, group kvm) at VM \
                 start"
            ),
        );
    };
    let owner = file.owner.as_deref().unwrap_or("?");
    let group = file.group.as_deref().unwrap_or("?");
    let desc = format!("{whose}{path} is {owner}:{group} {:04o}", file.stat.mode);
    if file.stat.mode & 0o060 == 0o060 {
        Finding::pass(ID, desc)
    } else {
        Finding::warn(
            ID,
            format!("{desc}: the viewer (your user) cannot write it"),
            format!(
                "rm {path} (the vmgpu hook recreates it 0660 at the next VM start), or `chmod 0660 {path} && \
                 chgrp kvm {path}`"
            ),
        )
    }
}
