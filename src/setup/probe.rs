//! [`SetupInputs`] from the host model: the guest card and the host's other GPUs, kernel, CPU and distro from
//! [`Host`], plus the few facts setup alone needs (group members, enabled and installed units), read through the
//! same root.
use crate::host::gpu::{self, CandidateError};
use crate::host::virtstack::DaemonKind;
use crate::host::{Host, HostRoot, PciAddress};

use super::files::FileSource;
use super::inputs::{
    Family, GuestFunction, KernelInfo, LibvirtDaemon, Mac, SetupInputs, SetupOptions,
};

/// Why the inputs cannot be gathered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// No guest GPU could be chosen.
    #[error("choosing the guest GPU")]
    Candidate(#[source] CandidateError),
}

/// Result of gathering inputs.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// Where systemd keeps unit files and the `*.wants` links of enabled units.
const UNIT_DIRS: &[&str] = &[
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
    "/etc/systemd/system",
];
const WANTS_DIRS: &[&str] = &[
    "/etc/systemd/system/multi-user.target.wants",
    "/etc/systemd/system/sockets.target.wants",
];

/// Gathers the inputs for the guest GPU `gpu` (or the only candidate), with a verdict note when the card
/// cannot be passed as things stand (the IOMMU off is what setup fixes).
pub(crate) fn from_host(
    host: &Host,
    gpu: Option<PciAddress>,
    user: Option<String>,
    options: SetupOptions,
) -> Result<(SetupInputs, Option<String>)> {
    let cards = host.gpus();
    let card = gpu::guest_candidate(&cards, gpu).map_err(Error::Candidate)?;
    let verdict_note = (!card.is_passable()).then(|| {
        format!(
            "{} cannot be passed through yet: {}",
            card.address(),
            card.reason
        )
    });
    let guest = card
        .functions
        .iter()
        .map(|f| GuestFunction {
            address: f.address,
            vendor: f.vendor,
            device: f.device,
            driver: f.driver.clone(),
        })
        .collect();
    let host_gpu_ids = cards
        .iter()
        .filter(|c| c.address() != card.address())
        .flat_map(|c| c.functions.iter().map(|f| f.vendor_device()))
        .collect();
    let root = &host.root;
    let (user_groups, groups) = groups(root, user.as_deref());
    let enabled_units: Vec<String> = WANTS_DIRS.iter().flat_map(|d| root.list(d)).collect();
    let installed_units: Vec<String> = UNIT_DIRS.iter().flat_map(|d| root.list(d)).collect();
    let daemon = match host.virt.daemon.kind {
        Some(DaemonKind::Virtqemud) => LibvirtDaemon::Virtqemud,
        Some(DaemonKind::Libvirtd) => LibvirtDaemon::Libvirtd,
        None if host.distro.family == Family::Fedora => LibvirtDaemon::Virtqemud,
        None => LibvirtDaemon::Libvirtd,
    };
    let mac = &host.virt.mac;
    let inputs = SetupInputs {
        distro_name: host.distro.pretty_name.clone(),
        family: host.distro.family,
        package_manager: host.distro.package_manager,
        bootloader: host.distro.bootloader,
        initramfs: host.distro.initramfs,
        cpu_vendor: host.cpu.vendor,
        kernel: KernelInfo {
            release: host.kernel.release.clone(),
            builtin: host.kernel.modules_builtin.iter().cloned().collect(),
        },
        guest,
        guest_is_boot_gpu: card.is_boot_display,
        host_gpu_ids,
        user,
        user_groups,
        groups,
        mac: if mac.selinux.is_some() {
            Mac::SeLinux
        } else if mac.apparmor {
            Mac::AppArmor
        } else {
            Mac::None
        },
        selinux_hooks_unconfined: mac.virt_hooks_unconfined == Some(true),
        daemon,
        enabled_units,
        installed_units,
        hook_installed: host.virt.hook.is_vmgpu
            || host.virt.hook.qemu_d.iter().any(|n| n.contains("vmgpu")),
        options,
    };
    Ok((inputs, verdict_note))
}

/// The groups `user` is in (as a supplementary member) and every group name, from `/etc/group`.
fn groups(root: &HostRoot, user: Option<&str>) -> (Vec<String>, Vec<String>) {
    let groups = crate::host::accounts::groups(root).unwrap_or_default();
    let member = groups
        .iter()
        .filter(|g| user.is_some_and(|u| g.has_member(u)))
        .map(|g| g.name.clone())
        .collect();
    (member, groups.into_iter().map(|g| g.name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_groups_reads_members_and_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nkvm:x:36:alice,bob\nlibvirt:x:970:bob\nbroken\n",
        )
        .unwrap();
        let (member, all) = groups(&HostRoot::new(dir.path()), Some("alice"));
        assert_eq!(member, vec!["kvm"]);
        assert_eq!(all, vec!["root", "kvm", "libvirt"]);
    }
}
