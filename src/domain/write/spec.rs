//! [`DomainSpec`]: everything vmgpu decides about a domain (from the command line and the host), before it is
//! written into a template. The value types here parse the command-line forms (`16G`, `2M`, `kvm`).
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::looking_glass::LookingGlass;
use super::pinning::PinPlan;
use crate::host::PciAddress;

/// A value on the command line that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not a size such as `16G`.
    #[error("{0:?} is not a size (expected a number with K, M, G or T, such as 16G)")]
    Size(String),
    /// Not `2M`, `1G` or `off`.
    #[error("{0:?} is not a hugepage size (expected 2M, 1G or off)")]
    Hugepages(String),
    /// Memory that is not a whole number of hugepages.
    #[error("memory {memory_mib} MiB is not a multiple of the {page} hugepage size")]
    NotPageMultiple {
        /// Memory in MiB.
        memory_mib: u64,
        /// The page size.
        page: Hugepages,
    },
    /// A domain name libvirt or the shm file would not accept.
    #[error(
        "{0:?} is not a usable domain name (letters, digits, '-', '_', '.', at most 64, not starting with '.' or '-')"
    )]
    Name(String),
    /// `--network` that is not understood.
    #[error("{0:?} is not a network (expected default, none, network:NAME or bridge:NAME)")]
    Network(String),
    /// `--virt-type` other than kvm or qemu.
    #[error("{0:?} is not a domain type (expected kvm, or qemu for emulation without KVM)")]
    VirtType(String),
    /// `--display` other than install, looking-glass or both.
    #[error("{0:?} is not a display mode (expected install, looking-glass or both)")]
    Display(String),
}

/// Result of parsing.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// Parses a size such as `16G`, `8192M`, `16GiB`, `512m` into KiB (a bare number is MiB).
pub(crate) fn parse_size_kib(s: &str) -> Result<u64> {
    let bad = || Error::Size(s.chars().take(64).collect());
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits_end);
    if number.is_empty() || number.len() > 12 {
        return Err(bad());
    }
    let n: u64 = number.parse().map_err(|_| bad())?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.trim_end_matches("ib").trim_end_matches('b');
    let factor: u64 = match unit {
        "k" => 1,
        "" | "m" => 1024,
        "g" => 1024 * 1024,
        "t" => 1024 * 1024 * 1024,
        _ => return Err(bad()),
    };
    n.checked_mul(factor).filter(|kib| *kib > 0).ok_or_else(bad)
}

/// A size as the command line gives it (`16G`, `8192M`; a bare number is MiB), in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size {
    /// The size in KiB (never 0).
    pub kib: u64,
}

impl FromStr for Size {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        parse_size_kib(s).map(|kib| Self { kib })
    }
}

/// The largest unit that shows the size exactly: `16G`, `1536M`.
impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (mut value, mut unit) = (self.kib, 'K');
        for bigger in ['M', 'G', 'T'] {
            if value == 0 || !value.is_multiple_of(1024) {
                break;
            }
            (value, unit) = (value / 1024, bigger);
        }
        write!(f, "{value}{unit}")
    }
}

/// Hugepages backing guest RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hugepages {
    /// Normal pages.
    Off,
    /// 2 MiB pages.
    TwoMiB,
    /// 1 GiB pages.
    OneGiB,
}

impl Hugepages {
    /// Parses `2M`, `1G` or `off`.
    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "no" | "none" => Ok(Self::Off),
            "2m" | "2mib" | "2048k" => Ok(Self::TwoMiB),
            "1g" | "1gib" => Ok(Self::OneGiB),
            _ => Err(Error::Hugepages(s.chars().take(64).collect())),
        }
    }

    /// The page size in KiB (0 when off).
    pub(crate) fn page_kib(self) -> u64 {
        match self {
            Self::Off => 0,
            Self::TwoMiB => 2048,
            Self::OneGiB => 1024 * 1024,
        }
    }

    /// Checks that `memory_kib` is a whole number of pages.
    pub(crate) fn check(self, memory_kib: u64) -> Result<()> {
        let page = self.page_kib();
        if page != 0 && !memory_kib.is_multiple_of(page) {
            return Err(Error::NotPageMultiple {
                memory_mib: memory_kib / 1024,
                page: self,
            });
        }
        Ok(())
    }
}

impl FromStr for Hugepages {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for Hugepages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Off => "off",
            Self::TwoMiB => "2M",
            Self::OneGiB => "1G",
        })
    }
}

/// `kvm` (hardware virtualization) or `qemu` (TCG emulation, for machines without usable KVM such as CI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirtType {
    /// `<domain type='kvm'>`.
    Kvm,
    /// `<domain type='qemu'>`.
    Qemu,
}

impl VirtType {
    /// Parses `kvm` or `qemu`/`tcg`.
    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "kvm" => Ok(Self::Kvm),
            "qemu" | "tcg" => Ok(Self::Qemu),
            _ => Err(Error::VirtType(s.chars().take(64).collect())),
        }
    }

    /// The value of `<domain type=…>`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Qemu => "qemu",
        }
    }
}

impl FromStr for VirtType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// The guest's network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// Whatever the template has.
    Template,
    /// No network interface.
    None,
    /// A libvirt network by name.
    Network(String),
    /// A host bridge by name.
    Bridge(String),
}

impl Network {
    /// Parses `default`, `none`, `network:NAME` or `bridge:NAME`.
    pub(crate) fn parse(s: &str) -> Result<Self> {
        let bad = || Error::Network(s.chars().take(64).collect());
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 64
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        match s.trim() {
            "default" => Ok(Self::Template),
            "none" | "off" => Ok(Self::None),
            other => match other.split_once(':') {
                Some(("network", n)) if name_ok(n) => Ok(Self::Network(n.to_string())),
                Some(("bridge", n)) if name_ok(n) => Ok(Self::Bridge(n.to_string())),
                _ => Err(bad()),
            },
        }
    }
}

impl FromStr for Network {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// Checks a domain name: it becomes part of file names (`/run/vmgpu/<vm>.json`, nvram, logs).
pub(crate) fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::Name(name.chars().take(64).collect()))
    }
}

/// The passed-through GPU: every function of its IOMMU group, in one multifunction guest slot.
/// What the guest's screens are. `Install`: a virtual display (std VGA) the SPICE client shows, for the
/// firmware, the installer and the driver setup; `LookingGlass`: no virtual display, the passed GPU's output
/// arrives through Looking Glass (Windows would otherwise spread its desktop over both); `Both`: the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisplayMode {
    Install,
    LookingGlass,
    Both,
}

impl DisplayMode {
    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "install" => Ok(Self::Install),
            "looking-glass" => Ok(Self::LookingGlass),
            "both" => Ok(Self::Both),
            _ => Err(Error::Display(s.chars().take(64).collect())),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Install => "install",
            Self::LookingGlass => "looking-glass",
            Self::Both => "both",
        }
    }

    /// True when the domain has a virtual display.
    pub(crate) fn virtual_display(self) -> bool {
        self != Self::LookingGlass
    }
}

impl FromStr for DisplayMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for DisplayMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuPassthrough {
    /// Host functions, the GPU's own function first.
    pub functions: Vec<PciAddress>,
    /// Guest PCI bus (the index of the `pcie-root-port` the card sits behind).
    pub guest_bus: u8,
    /// What each function is (recorded in the metadata; the hook refuses another device at the address).
    pub identities: Vec<crate::domain::read::identity::FunctionIdentity>,
}

impl GpuPassthrough {
    /// The GPU's own function (the one named on the command line).
    pub(crate) fn primary(&self) -> Option<PciAddress> {
        self.functions.first().copied()
    }
}

/// The guest's virtual disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// The image file.
    pub path: PathBuf,
    /// `qcow2` or `raw`.
    pub format: &'static str,
}

/// Evdev passthrough of the host's keyboard and mouse (switch with the grab toggle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evdev {
    /// Keyboard (`/dev/input/by-id/…-event-kbd`).
    pub keyboard: Option<PathBuf>,
    /// Mouse (`/dev/input/by-id/…-event-mouse`).
    pub mouse: Option<PathBuf>,
    /// libvirt's `grabToggle` (`ctrl-ctrl`, `alt-alt`, `scrolllock`, …).
    pub grab_toggle: String,
}

/// Everything vmgpu writes into a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSpec {
    /// Domain name.
    pub name: String,
    /// kvm or qemu.
    pub virt_type: VirtType,
    /// Guest RAM in KiB.
    pub memory_kib: u64,
    /// vCPU placement and guest topology.
    pub pins: PinPlan,
    /// AMD host (`topoext`).
    pub amd: bool,
    /// Hugepages for guest RAM.
    pub hugepages: Hugepages,
    /// The GPU, if one is passed.
    pub gpu: Option<GpuPassthrough>,
    /// Looking Glass.
    pub looking_glass: LookingGlass,
    /// The shm file name under `/dev/shm` (Looking Glass `Shmem` only).
    pub shm_name: String,
    /// The disk.
    pub disk: Option<Disk>,
    /// An installer ISO.
    pub iso: Option<PathBuf>,
    /// The driver ISO (virtio, SPICE guest tools) attached as a second CD-ROM.
    pub drivers: Option<PathBuf>,
    /// The display mode to apply; `None` leaves the video device and the CD-ROMs as they are (`--update`
    /// without `--display`).
    pub display: Option<DisplayMode>,
    /// The phase the metadata records when `display` is `None` (the existing domain's).
    pub recorded_display: Option<DisplayMode>,
    /// The viewer's copy and paste with the guest (`<vmgpu:viewer clipboard>`; `--update` keeps the existing
    /// domain's).
    pub clipboard: bool,
    /// The guest's sound card, `<sound model='ich9'>` on the SPICE audio (`--no-sound` leaves it out, recorded
    /// as `<vmgpu:sound enabled="no"/>`, which `--update` keeps).
    pub sound: bool,
    /// Host tuning while the VM runs (`<vmgpu:tuning>`; `--update` keeps what the existing domain has on).
    pub tuning: crate::domain::read::metadata::TuningConfig,
    /// The ISOs vmgpu attached and owns after this run (recorded in the metadata).
    pub media: Vec<PathBuf>,
    /// The ISOs the existing domain's metadata recorded (`--update` replaces or removes exactly those).
    pub old_media: Vec<PathBuf>,
    /// Evdev input.
    pub evdev: Evdev,
    /// `<kvm><hidden/>` and a Hyper-V vendor id for pre-R465 NVIDIA drivers.
    pub hide_hypervisor: bool,
    /// Single-GPU mode (the host's display GPU goes to the guest).
    pub single_gpu: bool,
    /// Desktop user: owner of the shm file, runs the viewer.
    pub user: Option<String>,
    /// The network interface (defined domains only; `--update` leaves it alone).
    pub network: Network,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_size_shows_its_largest_exact_unit() {
        for (given, shown) in [
            ("16G", "16G"),
            ("8192M", "8G"),
            ("1536", "1536M"),
            ("3k", "3K"),
            ("2T", "2T"),
        ] {
            assert_eq!(given.parse::<Size>().unwrap().to_string(), shown, "{given}");
        }
    }

    #[test]
    fn test_parse_size_units() {
        assert_eq!(parse_size_kib("16G").unwrap(), 16 * 1024 * 1024);
        assert_eq!(parse_size_kib("8192M").unwrap(), 8192 * 1024);
        assert_eq!(parse_size_kib("16GiB").unwrap(), 16 * 1024 * 1024);
        assert_eq!(parse_size_kib("512").unwrap(), 512 * 1024);
    }

    #[test]
    fn test_parse_size_rejects_garbage() {
        for bad in ["", "G", "16X", "-1G", "0", "99999999999999G", "1.5G"] {
            assert!(parse_size_kib(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn test_hugepages_1g_needs_whole_gib() {
        assert!(Hugepages::OneGiB.check(8 * 1024 * 1024).is_ok());
        assert!(Hugepages::OneGiB.check(8 * 1024 * 1024 + 2048).is_err());
    }

    #[test]
    fn test_check_name_rejects_paths() {
        assert!(check_name("win11-gaming").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "-x", "a b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
