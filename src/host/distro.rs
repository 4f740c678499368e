//! The distribution: `/etc/os-release` → [`Family`], and from files under the root the package manager, the
//! [`Bootloader`] that owns the kernel command line and the [`InitramfsTool`]. Also the exact commands for
//! this distro (change the kernel command line, rebuild the initramfs, install packages) that `check` prints
//! and `setup` runs.
use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::parse;
use super::root::{self, HostRoot};

/// A distribution family: what decides commands and paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// openSUSE Tumbleweed, Slowroll, Leap (and SLE).
    OpenSuse,
    /// Fedora (and RHEL-likes).
    Fedora,
    /// Arch and derivatives (EndeavourOS, Manjaro, CachyOS).
    Arch,
    /// Debian.
    Debian,
    /// Ubuntu and derivatives other than Pop!_OS (Mint, Zorin).
    Ubuntu,
    /// Pop!_OS.
    PopOs,
    /// NixOS.
    NixOs,
    /// Anything else.
    Unknown,
}

/// Every place a distribution keeps the libvirt-guests settings (`ON_SHUTDOWN`), for reading.
pub(crate) const LIBVIRT_GUESTS_CONFIGS: [&str; 3] = [
    "/etc/sysconfig/libvirt-guests",
    "/etc/default/libvirt-guests",
    "/etc/conf.d/libvirt-guests",
];

impl Family {
    /// Where this distribution's libvirt-guests unit reads its settings from (its `EnvironmentFile`).
    pub(crate) fn libvirt_guests_config(self) -> &'static str {
        match self {
            Family::Debian | Family::Ubuntu | Family::PopOs => "/etc/default/libvirt-guests",
            Family::Arch => "/etc/conf.d/libvirt-guests",
            _ => "/etc/sysconfig/libvirt-guests",
        }
    }

    /// From `ID` and `ID_LIKE` of os-release.
    pub(crate) fn from_ids(id: &str, id_like: &str) -> Self {
        let by_id = |id: &str| match id {
            i if i.starts_with("opensuse") || i == "sles" || i == "sled" || i == "suse" => {
                Some(Family::OpenSuse)
            }
            "fedora" | "rhel" | "centos" | "almalinux" | "rocky" => Some(Family::Fedora),
            "arch" | "endeavouros" | "manjaro" | "cachyos" | "garuda" => Some(Family::Arch),
            "pop" => Some(Family::PopOs),
            "ubuntu" => Some(Family::Ubuntu),
            "debian" => Some(Family::Debian),
            "nixos" => Some(Family::NixOs),
            _ => None,
        };
        by_id(id)
            .or_else(|| id_like.split_whitespace().find_map(by_id))
            .unwrap_or(Family::Unknown)
    }
}

/// The package manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageManager {
    /// `zypper`.
    Zypper,
    /// `dnf`.
    Dnf,
    /// `pacman`.
    Pacman,
    /// `apt-get`.
    Apt,
    /// Declarative NixOS configuration.
    Nix,
    /// Not known.
    Unknown,
}

/// What owns the kernel command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bootloader {
    /// GRUB2 configured through `/etc/default/grub` and a generated `grub.cfg`.
    Grub2,
    /// GRUB2 with Boot Loader Specification entries managed by `grubby` (Fedora).
    BlsGrubby,
    /// systemd-boot with hand-written `loader/entries/*.conf`.
    SystemdBoot,
    /// systemd-boot or GRUB2-BLS managed by openSUSE's `sdbootutil` (`/etc/kernel/cmdline`).
    Sdbootutil,
    /// Pop!_OS `kernelstub`.
    Kernelstub,
    /// Unified kernel images built with the command line from `/etc/kernel/cmdline`.
    Uki,
    /// NixOS `boot.kernelParams`.
    NixOs,
    /// Not recognised.
    Unknown,
}

/// What builds the initramfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitramfsTool {
    /// dracut (`/etc/dracut.conf.d`).
    Dracut,
    /// mkinitcpio (`/etc/mkinitcpio.conf`).
    Mkinitcpio,
    /// initramfs-tools (`/etc/initramfs-tools`).
    InitramfsTools,
    /// NixOS `boot.initrd`.
    NixOs,
    /// Not recognised.
    Unknown,
}

impl fmt::Display for Bootloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bootloader::Grub2 => "GRUB2",
            Bootloader::BlsGrubby => "GRUB2 BLS (grubby)",
            Bootloader::SystemdBoot => "systemd-boot",
            Bootloader::Sdbootutil => "sdbootutil",
            Bootloader::Kernelstub => "kernelstub",
            Bootloader::Uki => "UKI",
            Bootloader::NixOs => "NixOS",
            Bootloader::Unknown => "unknown boot loader",
        })
    }
}

impl fmt::Display for InitramfsTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InitramfsTool::Dracut => "dracut",
            InitramfsTool::Mkinitcpio => "mkinitcpio",
            InitramfsTool::InitramfsTools => "initramfs-tools",
            InitramfsTool::NixOs => "NixOS initrd",
            InitramfsTool::Unknown => "unknown initramfs tool",
        })
    }
}

/// The distribution and its boot tooling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Distro {
    /// The family.
    pub family: Family,
    /// os-release `ID` (empty when there is no os-release).
    pub id: String,
    /// os-release `VERSION_ID`.
    pub version_id: Option<String>,
    /// os-release `PRETTY_NAME` (or `NAME`).
    pub pretty_name: String,
    /// The package manager.
    pub package_manager: PackageManager,
    /// What owns the kernel command line.
    pub bootloader: Bootloader,
    /// What builds the initramfs.
    pub initramfs: InitramfsTool,
    /// The host path of the generated GRUB config (`/boot/grub2/grub.cfg`), for GRUB2.
    pub grub_cfg: Option<String>,
    /// `/etc/default/grub` as key/values (empty when absent).
    pub grub_defaults: BTreeMap<String, String>,
    /// The EFI system partition mount (`/boot/efi`, `/efi` or `/boot`) that holds `loader/`, if any.
    pub esp: Option<String>,
    /// Host paths of the boot loader entries (`…/loader/entries/*.conf`).
    pub loader_entries: Vec<String>,
}

/// Where the ESP is commonly mounted, in the order systemd's tools look.
const ESP_CANDIDATES: &[&str] = &["/efi", "/boot", "/boot/efi"];

impl Distro {
    /// Reads `/etc/os-release` (or `/usr/lib/os-release`) and looks for the boot tools under `root`. Missing
    /// files give `Unknown`, never an error; only unreadable ones fail.
    pub fn read(root: &HostRoot) -> root::Result<Self> {
        let text = match root.read_optional("/etc/os-release")? {
            Some(t) => t,
            None => root
                .read_optional("/usr/lib/os-release")?
                .unwrap_or_default(),
        };
        let kv = parse::key_values(&text);
        let get = |k: &str| kv.get(k).cloned();
        let id = get("ID").unwrap_or_default();
        let family = Family::from_ids(&id, &get("ID_LIKE").unwrap_or_default());
        let esp = ESP_CANDIDATES
            .iter()
            .find(|p| {
                root.exists(format!("{p}/loader/loader.conf"))
                    || root.exists(format!("{p}/EFI/systemd"))
            })
            .map(|p| (*p).to_string());
        let mut loader_entries = Vec::new();
        for dir in ESP_CANDIDATES {
            let entries_dir = format!("{dir}/loader/entries");
            for name in root.list_dir(&entries_dir)? {
                if name.ends_with(".conf") {
                    loader_entries.push(format!("{entries_dir}/{name}"));
                }
            }
        }
        let grub_defaults = root
            .read_optional("/etc/default/grub")?
            .map(|t| parse::key_values(&t))
            .unwrap_or_default();
        let grub_cfg = ["/boot/grub2/grub.cfg", "/boot/grub/grub.cfg"]
            .iter()
            .find(|p| root.exists(p))
            .map(|p| (*p).to_string())
            .or_else(|| {
                root.exists("/etc/default/grub").then(|| {
                    match family {
                        Family::OpenSuse | Family::Fedora => "/boot/grub2/grub.cfg",
                        _ => "/boot/grub/grub.cfg",
                    }
                    .to_string()
                })
            });
        let bootloader = detect_bootloader(root, family, esp.is_some(), &loader_entries);
        Ok(Self {
            family,
            version_id: get("VERSION_ID"),
            pretty_name: get("PRETTY_NAME")
                .or_else(|| get("NAME"))
                .unwrap_or_else(|| "unknown distribution".to_string()),
            package_manager: detect_package_manager(root, family),
            bootloader,
            initramfs: detect_initramfs(root, family),
            grub_cfg: grub_cfg.filter(|_| bootloader == Bootloader::Grub2),
            grub_defaults,
            esp,
            loader_entries,
            id,
        })
    }
}

fn any_exists(root: &HostRoot, paths: &[&str]) -> bool {
    paths.iter().any(|p| root.exists(p))
}

fn detect_bootloader(
    root: &HostRoot,
    family: Family,
    has_sd_boot: bool,
    entries: &[String],
) -> Bootloader {
    if family == Family::NixOs || root.exists("/etc/NIXOS") {
        return Bootloader::NixOs;
    }
    if any_exists(
        root,
        &["/usr/bin/kernelstub", "/etc/kernelstub/configuration"],
    ) {
        return Bootloader::Kernelstub;
    }
    if any_exists(root, &["/usr/bin/sdbootutil", "/usr/sbin/sdbootutil"])
        && root.exists("/etc/kernel/cmdline")
    {
        return Bootloader::Sdbootutil;
    }
    if any_exists(root, &["/usr/sbin/grubby", "/usr/bin/grubby"])
        && root.exists("/etc/default/grub")
    {
        return Bootloader::BlsGrubby;
    }
    if has_sd_boot {
        return if entries.is_empty() && root.exists("/etc/kernel/cmdline") {
            Bootloader::Uki
        } else {
            Bootloader::SystemdBoot
        };
    }
    if root.exists("/etc/default/grub") {
        return Bootloader::Grub2;
    }
    if root.exists("/etc/kernel/cmdline") {
        return Bootloader::Uki;
    }
    Bootloader::Unknown
}

fn detect_initramfs(root: &HostRoot, family: Family) -> InitramfsTool {
    if family == Family::NixOs {
        return InitramfsTool::NixOs;
    }
    let dracut = any_exists(
        root,
        &["/etc/dracut.conf", "/etc/dracut.conf.d", "/usr/bin/dracut"],
    );
    let mkinitcpio = any_exists(root, &["/etc/mkinitcpio.conf", "/etc/mkinitcpio.conf.d"]);
    let itools = root.exists("/etc/initramfs-tools");
    // The family's own tool wins when several are installed (Debian may carry dracut's config too).
    let preferred = match family {
        Family::Arch if mkinitcpio => Some(InitramfsTool::Mkinitcpio),
        Family::Debian | Family::Ubuntu | Family::PopOs if itools => {
            Some(InitramfsTool::InitramfsTools)
        }
        Family::OpenSuse | Family::Fedora if dracut => Some(InitramfsTool::Dracut),
        _ => None,
    };
    preferred.unwrap_or(if mkinitcpio {
        InitramfsTool::Mkinitcpio
    } else if itools {
        InitramfsTool::InitramfsTools
    } else if dracut {
        InitramfsTool::Dracut
    } else {
        InitramfsTool::Unknown
    })
}

fn detect_package_manager(root: &HostRoot, family: Family) -> PackageManager {
    match family {
        Family::OpenSuse => PackageManager::Zypper,
        Family::Fedora => PackageManager::Dnf,
        Family::Arch => PackageManager::Pacman,
        Family::Debian | Family::Ubuntu | Family::PopOs => PackageManager::Apt,
        Family::NixOs => PackageManager::Nix,
        Family::Unknown => [
            ("/usr/bin/zypper", PackageManager::Zypper),
            ("/usr/bin/dnf", PackageManager::Dnf),
            ("/usr/bin/pacman", PackageManager::Pacman),
            ("/usr/bin/apt-get", PackageManager::Apt),
        ]
        .iter()
        .find(|(p, _)| root.exists(p))
        .map_or(PackageManager::Unknown, |(_, m)| *m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::host::test_tree::tree;

    #[test]
    fn test_family_from_id_like() {
        assert_eq!(
            Family::from_ids("linuxmint", "ubuntu debian"),
            Family::Ubuntu
        );
        assert_eq!(Family::from_ids("endeavouros", "arch"), Family::Arch);
        assert_eq!(
            Family::from_ids("opensuse-tumbleweed", "opensuse suse"),
            Family::OpenSuse
        );
        assert_eq!(Family::from_ids("gentoo", ""), Family::Unknown);
    }

    #[test]
    fn test_opensuse_grub2_dracut() {
        let dir = tree(&[
            (
                "etc/os-release",
                "ID=\"opensuse-tumbleweed\"\nPRETTY_NAME=\"openSUSE Tumbleweed\"\n",
            ),
            ("etc/default/grub", "GRUB_CMDLINE_LINUX=\"\"\n"),
            ("boot/grub2/grub.cfg", ""),
            ("etc/dracut.conf.d/10-x.conf", ""),
        ]);
        let d = Distro::read(&HostRoot::new(dir.path())).unwrap();
        assert_eq!(
            (d.family, d.bootloader, d.initramfs, d.package_manager),
            (
                Family::OpenSuse,
                Bootloader::Grub2,
                InitramfsTool::Dracut,
                PackageManager::Zypper
            )
        );
        assert_eq!(d.grub_cfg.as_deref(), Some("/boot/grub2/grub.cfg"));
    }

    #[test]
    fn test_fedora_grubby_is_bls() {
        let dir = tree(&[
            ("etc/os-release", "ID=fedora\nVERSION_ID=41\n"),
            ("etc/default/grub", ""),
            ("usr/bin/grubby", ""),
            ("boot/loader/entries/abc-6.11.conf", ""),
            ("etc/dracut.conf", ""),
        ]);
        let d = Distro::read(&HostRoot::new(dir.path())).unwrap();
        assert_eq!(d.bootloader, Bootloader::BlsGrubby);
    }

    #[test]
    fn test_arch_systemd_boot_mkinitcpio() {
        let dir = tree(&[
            ("etc/os-release", "ID=arch\n"),
            ("boot/loader/loader.conf", "default arch.conf\n"),
            ("boot/loader/entries/arch.conf", "options root=x rw\n"),
            ("etc/mkinitcpio.conf", "MODULES=()\n"),
        ]);
        let d = Distro::read(&HostRoot::new(dir.path())).unwrap();
        assert_eq!(d.bootloader, Bootloader::SystemdBoot);
        assert_eq!(d.initramfs, InitramfsTool::Mkinitcpio);
        assert_eq!(d.loader_entries, ["/boot/loader/entries/arch.conf"]);
    }

    #[test]
    fn test_arch_uki_without_entries() {
        let dir = tree(&[
            ("etc/os-release", "ID=arch\n"),
            ("efi/loader/loader.conf", ""),
            ("etc/kernel/cmdline", "root=x rw\n"),
            ("etc/mkinitcpio.conf", ""),
        ]);
        let d = Distro::read(&HostRoot::new(dir.path())).unwrap();
        assert_eq!(d.bootloader, Bootloader::Uki);
    }

    #[test]
    fn test_pop_kernelstub_and_tumbleweed_sdbootutil() {
        let pop = tree(&[
            ("etc/os-release", "ID=pop\nID_LIKE=\"ubuntu debian\"\n"),
            ("etc/kernelstub/configuration", "{}"),
            ("etc/initramfs-tools/modules", ""),
        ]);
        let tw = tree(&[
            ("etc/os-release", "ID=opensuse-tumbleweed\n"),
            ("usr/bin/sdbootutil", ""),
            ("etc/kernel/cmdline", "quiet\n"),
        ]);
        let pop = Distro::read(&HostRoot::new(pop.path())).unwrap();
        let tw = Distro::read(&HostRoot::new(tw.path())).unwrap();
        assert_eq!(pop.bootloader, Bootloader::Kernelstub);
        assert_eq!(pop.initramfs, InitramfsTool::InitramfsTools);
        assert_eq!(tw.bootloader, Bootloader::Sdbootutil);
    }

    #[test]
    fn test_missing_os_release_is_unknown() {
        let dir = tree(&[]);
        let d = Distro::read(&HostRoot::new(dir.path())).unwrap();
        assert_eq!(
            (d.family, d.bootloader, d.initramfs),
            (Family::Unknown, Bootloader::Unknown, InitramfsTool::Unknown)
        );
    }
}
