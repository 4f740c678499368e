//! Fix texts that depend on the distro (built on `check::fix`, so `check`, `setup` and `explain` give the same
//! commands). The signature table refers to these by function pointer.
use super::FixContext;
use crate::check::fix;
use crate::host::Family;

/// The IOMMU kernel parameters for this CPU vendor.
pub(crate) fn iommu_on(c: &FixContext<'_>) -> String {
    let args: &[&str] = match c.cpu_vendor {
        Some("AuthenticAMD") => &["amd_iommu=on", "iommu=pt"],
        Some("GenuineIntel") => &["intel_iommu=on", "iommu=pt"],
        _ => &["intel_iommu=on", "iommu=pt"],
    };
    format!(
        "enable VT-d / AMD-Vi (often called \"IOMMU\") in the firmware setup, then {} (on AMD use \
         amd_iommu=on); `vmgpu check` confirms it after the reboot",
        fix::kernel_args(c.distro, args, &[])
    )
}

/// Turn off the boot framebuffer that holds the GPU's BAR.
pub(crate) fn framebuffer_off(c: &FixContext<'_>) -> String {
    format!(
        "stop the firmware framebuffer from claiming the card: {}. A second GPU for the host console avoids it \
         altogether",
        fix::kernel_args(
            c.distro,
            &["video=efifb:off", "initcall_blacklist=sysfb_init"],
            &[]
        )
    )
}

/// Allow VFIO without interrupt remapping (a security trade-off).
pub(crate) fn unsafe_interrupts(c: &FixContext<'_>) -> String {
    format!(
        "the platform has no interrupt remapping (check that it is enabled in the firmware first). As a \
         trade-off (a guest could inject interrupts), write `options vfio_iommu_type1 allow_unsafe_interrupts=1` \
         to /etc/modprobe.d/vfio.conf, run `{}` and reboot",
        fix::initramfs_rebuild(c.distro)
    )
}

/// Drop the module that no longer exists from the initramfs configuration.
pub(crate) fn drop_vfio_virqfd(c: &FixContext<'_>) -> String {
    let config = match c.distro.family {
        Family::Arch => "the MODULES=() line of /etc/mkinitcpio.conf",
        Family::Debian | Family::Ubuntu | Family::PopOs => {
            "/etc/initramfs-tools/modules and /etc/modules"
        }
        _ => "/etc/dracut.conf.d/*.conf (force_drivers / add_drivers)",
    };
    format!(
        "vfio_virqfd was merged into vfio in Linux 6.2: remove it from {config} and from /etc/modules-load.d, then \
         run `{}`",
        fix::initramfs_rebuild(c.distro)
    )
}

/// The OVMF package for this distro.
pub(crate) fn install_ovmf(c: &FixContext<'_>) -> String {
    let package = match c.distro.family {
        Family::OpenSuse => "qemu-ovmf-x86_64",
        Family::Fedora | Family::Arch => "edk2-ovmf",
        _ => "ovmf",
    };
    format!(
        "install the UEFI firmware (`{}`), or let libvirt pick it: `<os firmware='efi'>` instead of a fixed \
         `<loader>` path (`vmgpu define --update` writes paths that exist on this host)",
        fix::install(c.distro, &[package])
    )
}

/// The swtpm packages for this distro.
pub(crate) fn install_swtpm(c: &FixContext<'_>) -> String {
    let packages: &[&str] = match c.distro.family {
        Family::Fedora | Family::Debian | Family::Ubuntu | Family::PopOs => {
            &["swtpm", "swtpm-tools"]
        }
        _ => &["swtpm"],
    };
    format!(
        "install the TPM emulator: `{}`, then start the VM again",
        fix::install(c.distro, packages)
    )
}

/// vendor-reset for AMD cards.
pub(crate) fn vendor_reset(c: &FixContext<'_>) -> String {
    format!(
        "the card does not come back from a reset (the AMD reset bug, Polaris/Vega/Navi 1x): build and load the \
         vendor-reset module (github.com/gnif/vendor-reset, DKMS), load it early (add it to \
         /etc/modules-load.d/vendor-reset.conf and run `{}`), and on kernels ≥ 5.15 select it with \
         `echo device_specific > /sys/bus/pci/devices/<gpu>/reset_method`. Until then, shut the guest down \
         instead of rebooting it, and reboot the host after a stuck reset",
        fix::initramfs_rebuild(c.distro)
    )
}

/// Reserve hugepages at boot.
pub(crate) fn hugepages(c: &FixContext<'_>) -> String {
    format!(
        "memory is too fragmented (or too small) for the hugepages at start time: free some memory, or try \
         `sync; echo 3 > /proc/sys/vm/drop_caches; echo 1 > /proc/sys/vm/compact_memory` and start again; to \
         reserve them at boot, {} (1 GiB pages can only be reserved at boot: `default_hugepagesz=1G \
         hugepagesz=1G hugepages=N`); or `vmgpu define {} --update --hugepages off`",
        fix::kernel_args(c.distro, &["hugepages=<pages>"], &[]),
        c.vm
    )
}

/// Enable KVM.
pub(crate) fn kvm(c: &FixContext<'_>) -> String {
    let module = match c.cpu_vendor {
        Some("AuthenticAMD") => "kvm_amd",
        _ => "kvm_intel",
    };
    format!(
        "enable virtualization (VT-x / AMD-V, \"SVM\") in the firmware setup, then `modprobe {module}`; check \
         that /dev/kvm exists and is group kvm. Without KVM only emulation works: `vmgpu define {} --update \
         --virt-type qemu`",
        c.vm
    )
}

/// AppArmor: where local rules go on this distro.
pub(crate) fn apparmor(c: &FixContext<'_>) -> String {
    let _ = c;
    format!(
        "AppArmor refused QEMU a path: add it to /etc/apparmor.d/local/abstractions/libvirt-qemu (e.g. \
         `{} rw,` or `/dev/kvmfr0 rw,`), then `systemctl reload apparmor` and start the VM again; \
         `journalctl -k -g apparmor` shows every denial",
        crate::domain::write::looking_glass::DEFAULT_SHM_FILE
    )
}

/// SELinux: labels and booleans.
pub(crate) fn selinux(c: &FixContext<'_>) -> String {
    let _ = c;
    "SELinux refused the access: `ausearch -m avc -ts recent` shows the rule; files QEMU opens need the \
     svirt label (`restorecon -Rv <path>`), a hook needs `setsebool -P virt_hooks_unconfined 1` and \
     `restorecon -R /etc/libvirt/hooks`"
        .to_string()
}

/// Restore a held host after a crash.
pub(crate) fn restore(c: &FixContext<'_>) -> String {
    format!(
        "if the VM is not running, put the host back with `vmgpu restore {}` (what release would have done); \
         `vmgpu status` shows what is held",
        c.vm
    )
}
