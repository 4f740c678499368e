//! [`SetupInputs`]: everything the plan depends on, as plain values. The plan is a pure function of these and
//! of the current text of the files it edits, so every distro can be tested without its machine.
use serde::Serialize;

pub(crate) use crate::host::{Bootloader, CpuVendor, Family, InitramfsTool, PackageManager};
use crate::host::{PciAddress, parse};

/// Mandatory access control in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Mac {
    /// None.
    None,
    /// AppArmor.
    AppArmor,
    /// SELinux.
    SeLinux,
}

/// Which libvirt daemon runs QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum LibvirtDaemon {
    /// Monolithic `libvirtd`.
    Libvirtd,
    /// Modular daemons (`virtqemud` and friends).
    Virtqemud,
}

/// The running (or, in a prepared root, installed) kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct KernelInfo {
    /// `uname -r`.
    pub release: String,
    /// Modules built into the kernel (from `modules.builtin`), names with `_` (e.g. `vfio_pci`).
    pub builtin: Vec<String>,
}

impl KernelInfo {
    /// Major and minor version parsed from the release (`6.1.0-13-amd64` → (6, 1)); `None` if unparsable.
    pub(crate) fn version(&self) -> Option<(u32, u32)> {
        parse::kernel_version(&self.release).map(|(major, minor, _)| (major, minor))
    }

    /// True when the kernel still has a separate `vfio_virqfd` module (merged into `vfio` in 6.2).
    /// An unparsable release counts as new: listing a missing module breaks dracut, omitting one does not.
    pub(crate) fn has_vfio_virqfd(&self) -> bool {
        self.version().is_some_and(|v| v < (6, 2))
    }

    /// True when `module` (with `-` or `_`) is built into the kernel.
    pub(crate) fn is_builtin(&self, module: &str) -> bool {
        let name = parse::module_name(module);
        self.builtin.contains(&name)
    }
}

/// One PCI function of the guest card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct GuestFunction {
    /// Its address.
    pub address: PciAddress,
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
    /// Bound driver, if any.
    pub driver: Option<String>,
}

impl GuestFunction {
    /// `vendor:device` in the form `vfio-pci ids=` takes.
    pub(crate) fn ids(&self) -> String {
        format!("{:04x}:{:04x}", self.vendor, self.device)
    }
}

/// What the user asked for beyond the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct SetupOptions {
    /// Run the package manager (otherwise its command is printed).
    pub install_packages: bool,
    /// Set up the kvmfr module (udev rule, modules-load, AppArmor) as well as `/dev/shm/looking-glass`.
    pub kvmfr: bool,
    /// Install vmgpu as libvirt's qemu hook.
    pub hook: bool,
}

/// Everything the plan is computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct SetupInputs {
    /// Human name of the distro (`PRETTY_NAME`).
    pub distro_name: String,
    /// Distro family.
    pub family: Family,
    /// Package manager.
    pub package_manager: PackageManager,
    /// Bootloader.
    pub bootloader: Bootloader,
    /// Initramfs tool.
    pub initramfs: InitramfsTool,
    /// CPU vendor.
    pub cpu_vendor: CpuVendor,
    /// Kernel.
    pub kernel: KernelInfo,
    /// Every function of the guest card, function 0 first.
    pub guest: Vec<GuestFunction>,
    /// The guest card is the firmware's boot display (`boot_vga`).
    pub guest_is_boot_gpu: bool,
    /// `vendor:device` of every function of the other display GPUs (the ones the host keeps).
    pub host_gpu_ids: Vec<String>,
    /// The desktop user (groups, shared-memory file owner).
    pub user: Option<String>,
    /// Groups the user is already in.
    pub user_groups: Vec<String>,
    /// Every group that exists (`/etc/group`).
    pub groups: Vec<String>,
    /// MAC in force.
    pub mac: Mac,
    /// SELinux `virt_hooks_unconfined` is already on.
    pub selinux_hooks_unconfined: bool,
    /// libvirt daemon layout.
    pub daemon: LibvirtDaemon,
    /// Units already enabled (e.g. `libvirtd.service`).
    pub enabled_units: Vec<String>,
    /// Units installed at all (their unit file exists).
    pub installed_units: Vec<String>,
    /// The vmgpu hook is installed already.
    pub hook_installed: bool,
    /// Options.
    pub options: SetupOptions,
}

impl SetupInputs {
    /// True for Debian, Ubuntu and Pop!_OS (Debian's paths: `/etc/default/…`, `update-grub`).
    pub(crate) fn is_debian_like(&self) -> bool {
        matches!(self.family, Family::Debian | Family::Ubuntu | Family::PopOs)
    }

    /// True when a host GPU has the same `vendor:device` as a guest function, so binding by id would also take
    /// the host's card (failure mode 6): bind by address instead.
    pub(crate) fn ids_shared_with_host(&self) -> bool {
        self.guest
            .iter()
            .any(|f| self.host_gpu_ids.iter().any(|h| *h == f.ids()))
    }

    /// The guest functions' ids, deduplicated, in function order: `10de:17c8,10de:0fb0`.
    pub(crate) fn guest_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for f in &self.guest {
            let id = f.ids();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }

    /// The guest card's function 0 (the GPU itself); `None` only for an empty card list.
    pub(crate) fn guest_address(&self) -> Option<PciAddress> {
        self.guest.first().map(|f| f.address)
    }

    /// True when vfio-pci is built into the kernel, so `modprobe.d` options do not apply.
    pub(crate) fn vfio_pci_builtin(&self) -> bool {
        self.kernel.is_builtin("vfio_pci")
    }
}

/// A seed-like input set (openSUSE, GRUB2, dracut, AMD, kernel 6.12, the GTX 980 Ti guest) for unit tests.
#[cfg(test)]
pub(crate) fn example() -> SetupInputs {
    let f = |addr: &str, device: u16| GuestFunction {
        address: addr.parse().expect("a valid test address"),
        vendor: 0x10de,
        device,
        driver: None,
    };
    SetupInputs {
        distro_name: "openSUSE Tumbleweed".to_string(),
        family: Family::OpenSuse,
        package_manager: PackageManager::Zypper,
        bootloader: Bootloader::Grub2,
        initramfs: InitramfsTool::Dracut,
        cpu_vendor: CpuVendor::Amd,
        kernel: KernelInfo {
            release: "6.12.8-1-default".to_string(),
            builtin: Vec::new(),
        },
        guest: vec![f("0000:04:00.0", 0x17c8), f("0000:04:00.1", 0x0fb0)],
        guest_is_boot_gpu: false,
        host_gpu_ids: vec!["10de:2484".to_string(), "10de:228b".to_string()],
        user: Some("alice".to_string()),
        user_groups: Vec::new(),
        groups: vec!["kvm".to_string(), "libvirt".to_string()],
        mac: Mac::None,
        selinux_hooks_unconfined: false,
        daemon: LibvirtDaemon::Libvirtd,
        enabled_units: Vec::new(),
        installed_units: Vec::new(),
        hook_installed: false,
        options: SetupOptions {
            hook: true,
            ..SetupOptions::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(release: &str) -> KernelInfo {
        KernelInfo {
            release: release.to_string(),
            builtin: vec!["vfio_pci".to_string()],
        }
    }

    #[test]
    fn test_kernel_version_parses_distro_release() {
        assert_eq!(kernel("6.1.0-13-amd64").version(), Some((6, 1)));
        assert_eq!(kernel("6.12.8-1-default").version(), Some((6, 12)));
    }

    #[test]
    fn test_has_vfio_virqfd_only_before_6_2() {
        assert!(kernel("6.1.0-13-amd64").has_vfio_virqfd());
        assert!(!kernel("6.2.0").has_vfio_virqfd());
        assert!(!kernel("garbage").has_vfio_virqfd());
    }

    #[test]
    fn test_is_builtin_accepts_dash_names() {
        assert!(kernel("6.8.0").is_builtin("vfio-pci"));
        assert!(!kernel("6.8.0").is_builtin("vfio"));
    }
}
