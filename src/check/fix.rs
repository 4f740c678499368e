//! The exact fix commands for the detected distro and bootloader (docs/host-anchors.md §5): change the kernel
//! command line, rebuild the initramfs, install packages, restart the libvirt daemon. Pure functions of the
//! [`Distro`], so `setup` can show the same commands it runs.
use crate::host::{Bootloader, Distro, Family, InitramfsTool, PackageManager};

/// How to add and remove kernel command-line parameters, then reboot.
pub(crate) fn kernel_args(distro: &Distro, add: &[&str], remove: &[&str]) -> String {
    let add_s = add.join(" ");
    let remove_s = remove.join(" ");
    let edit = |target: &str| -> String {
        match (add.is_empty(), remove.is_empty()) {
            (false, true) => format!("add `{add_s}` to {target}"),
            (true, false) => format!("remove `{remove_s}` from {target}"),
            _ => format!("in {target} add `{add_s}` and remove `{remove_s}`"),
        }
    };
    let body = match distro.bootloader {
        Bootloader::Grub2 => {
            let var = grub_variable(distro, remove);
            let regen = match distro.family {
                Family::Debian | Family::Ubuntu | Family::PopOs => "update-grub".to_string(),
                _ => {
                    let cfg = distro.grub_cfg.as_deref().unwrap_or(match distro.family {
                        Family::OpenSuse | Family::Fedora => "/boot/grub2/grub.cfg",
                        _ => "/boot/grub/grub.cfg",
                    });
                    let tool = if cfg.contains("grub2") {
                        "grub2-mkconfig"
                    } else {
                        "grub-mkconfig"
                    };
                    format!("{tool} -o {cfg}")
                }
            };
            format!(
                "{}, then run `{regen}`",
                edit(&format!("{var} in /etc/default/grub"))
            )
        }
        Bootloader::BlsGrubby => {
            let mut parts = Vec::new();
            if !add.is_empty() {
                parts.push(format!("--args=\"{add_s}\""));
            }
            if !remove.is_empty() {
                parts.push(format!("--remove-args=\"{remove_s}\""));
            }
            format!("run `grubby --update-kernel=ALL {}`", parts.join(" "))
        }
        Bootloader::SystemdBoot => {
            let entries = if distro.loader_entries.is_empty() {
                format!(
                    "{}/loader/entries/*.conf",
                    distro.esp.as_deref().unwrap_or("/boot")
                )
            } else {
                distro.loader_entries.join(", ")
            };
            edit(&format!("the `options` line of {entries}"))
        }
        Bootloader::Sdbootutil => format!(
            "{}, then run `sdbootutil update-all-entries`",
            edit("/etc/kernel/cmdline")
        ),
        Bootloader::Kernelstub => {
            let mut cmds = Vec::new();
            if !add.is_empty() {
                cmds.push(format!("kernelstub -a \"{add_s}\""));
            }
            if !remove.is_empty() {
                cmds.push(format!("kernelstub -d \"{remove_s}\""));
            }
            format!("run `{}`", cmds.join(" && "))
        }
        Bootloader::Uki => format!(
            "{}, then rebuild the image: `{}`",
            edit("/etc/kernel/cmdline"),
            initramfs_rebuild(distro)
        ),
        Bootloader::NixOs => format!(
            "{} in /etc/nixos/configuration.nix, then run `nixos-rebuild switch`",
            edit("boot.kernelParams")
        ),
        Bootloader::Unknown => edit("your boot loader's kernel command line"),
    };
    format!("{body}; reboot")
}

/// The GRUB variable to edit: the one that holds a parameter to remove, else `GRUB_CMDLINE_LINUX`.
fn grub_variable(distro: &Distro, remove: &[&str]) -> &'static str {
    let holds = |var: &str| {
        distro.grub_defaults.get(var).is_some_and(|v| {
            v.split_whitespace().any(|w| {
                remove
                    .iter()
                    .any(|r| w == *r || w.starts_with(&format!("{r}=")))
            })
        })
    };
    if !remove.is_empty() && holds("GRUB_CMDLINE_LINUX_DEFAULT") && !holds("GRUB_CMDLINE_LINUX") {
        "GRUB_CMDLINE_LINUX_DEFAULT"
    } else {
        "GRUB_CMDLINE_LINUX"
    }
}

/// The command that rebuilds the initramfs for every installed kernel.
pub(crate) fn initramfs_rebuild(distro: &Distro) -> String {
    match distro.initramfs {
        InitramfsTool::Dracut => "dracut -f --regenerate-all",
        InitramfsTool::Mkinitcpio => "mkinitcpio -P",
        InitramfsTool::InitramfsTools => "update-initramfs -u -k all",
        InitramfsTool::NixOs => "nixos-rebuild switch",
        InitramfsTool::Unknown => "rebuild your initramfs",
    }
    .to_string()
}

/// The packages that give QEMU, libvirt, OVMF and swtpm on this distro.
pub(crate) fn virt_packages(distro: &Distro) -> &'static [&'static str] {
    match distro.family {
        Family::OpenSuse => &["libvirt", "qemu-x86", "qemu-ovmf-x86_64", "swtpm"],
        Family::Fedora => &["@virtualization", "edk2-ovmf", "swtpm", "swtpm-tools"],
        Family::Arch => &["qemu-desktop", "libvirt", "edk2-ovmf", "dnsmasq", "swtpm"],
        Family::Debian | Family::Ubuntu | Family::PopOs => &[
            "qemu-system-x86",
            "libvirt-daemon-system",
            "libvirt-clients",
            "ovmf",
            "swtpm",
            "swtpm-tools",
        ],
        Family::NixOs | Family::Unknown => &[],
    }
}

/// The command that installs `packages`.
pub(crate) fn install(distro: &Distro, packages: &[&str]) -> String {
    let list = packages.join(" ");
    match distro.package_manager {
        PackageManager::Zypper => format!("zypper install {list}"),
        PackageManager::Dnf => format!("dnf install {list}"),
        PackageManager::Pacman => format!("pacman -S --needed {list}"),
        PackageManager::Apt => format!("apt-get install {list}"),
        PackageManager::Nix => {
            "set virtualisation.libvirtd.enable = true; (with qemu.swtpm.enable and \
                                 qemu.ovmf.enable) in /etc/nixos/configuration.nix, then run \
                                 `nixos-rebuild switch`"
                .to_string()
        }
        PackageManager::Unknown => format!("install QEMU, libvirt, OVMF and swtpm ({list})"),
    }
}

/// The command that installs this distro's virtualization packages.
pub(crate) fn install_virt(distro: &Distro) -> String {
    let packages = virt_packages(distro);
    if packages.is_empty() && distro.package_manager != PackageManager::Nix {
        return "install QEMU, libvirt, OVMF (edk2) and swtpm with your package manager"
            .to_string();
    }
    install(distro, packages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostRoot;

    fn distro(files: &[(&str, &str)]) -> Distro {
        let dir = crate::host::test_tree::tree(files);
        Distro::read(&HostRoot::new(dir.path())).unwrap()
    }

    #[test]
    fn test_kernel_args_opensuse_grub2_mkconfig() {
        let d = distro(&[
            ("etc/os-release", "ID=opensuse-tumbleweed\n"),
            ("etc/default/grub", "GRUB_CMDLINE_LINUX=\"\"\n"),
            ("boot/grub2/grub.cfg", ""),
        ]);
        assert_eq!(
            kernel_args(&d, &["amd_iommu=on", "iommu=pt"], &[]),
            "add `amd_iommu=on iommu=pt` to GRUB_CMDLINE_LINUX in /etc/default/grub, then run \
             `grub2-mkconfig -o /boot/grub2/grub.cfg`; reboot"
        );
    }

    #[test]
    fn test_kernel_args_fedora_grubby() {
        let d = distro(&[
            ("etc/os-release", "ID=fedora\n"),
            ("etc/default/grub", ""),
            ("usr/sbin/grubby", ""),
        ]);
        assert_eq!(
            kernel_args(&d, &["intel_iommu=on"], &[]),
            "run `grubby --update-kernel=ALL --args=\"intel_iommu=on\"`; reboot"
        );
    }

    #[test]
    fn test_kernel_args_ubuntu_remove_from_default_variable() {
        let d = distro(&[
            ("etc/os-release", "ID=ubuntu\n"),
            (
                "etc/default/grub",
                "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet splash intel_iommu=off\"\n",
            ),
        ]);
        assert_eq!(
            kernel_args(&d, &[], &["intel_iommu=off"]),
            "remove `intel_iommu=off` from GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub, then run \
             `update-grub`; reboot"
        );
    }

    #[test]
    fn test_install_arch_pacman() {
        let d = distro(&[("etc/os-release", "ID=arch\n")]);
        assert_eq!(
            install_virt(&d),
            "pacman -S --needed qemu-desktop libvirt edk2-ovmf dnsmasq swtpm"
        );
    }
}
