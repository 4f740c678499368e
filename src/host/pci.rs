//! PCI devices from `/sys/bus/pci/devices` (the source of truth; never `lspci` text).
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::root::{self, HostRoot};

/// Where PCI devices live in sysfs.
pub(crate) const PCI_DEVICES: &str = "/sys/bus/pci/devices";

/// A PCI address (domain:bus:device.function), e.g. `0000:04:00.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    /// PCI domain (segment).
    pub domain: u16,
    /// Bus number.
    pub bus: u8,
    /// Device (slot) number, 0..=31.
    pub device: u8,
    /// Function number, 0..=7.
    pub function: u8,
}

/// A string that is not a PCI address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a PCI address (expected the form 0000:04:00.0 or 04:00.0)")]
pub struct BadPciAddress(pub String);

impl PciAddress {
    /// The same slot with another function number.
    #[cfg(test)]
    pub(crate) fn with_function(self, function: u8) -> Self {
        Self { function, ..self }
    }

    /// True when `other` is another function of the same slot.
    pub(crate) fn same_slot(&self, other: &PciAddress) -> bool {
        self.domain == other.domain && self.bus == other.bus && self.device == other.device
    }
}

impl FromStr for PciAddress {
    type Err = BadPciAddress;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadPciAddress(s.chars().take(64).collect());
        let parts: Vec<&str> = s.trim().split(':').collect();
        let (domain, bus, devfn) = match parts.as_slice() {
            [d, b, df] => (*d, *b, *df),
            [b, df] => ("0000", *b, *df),
            _ => return Err(bad()),
        };
        let (dev, func) = devfn.split_once('.').ok_or_else(bad)?;
        let hex = |t: &str, max_len: usize| -> Result<u32, BadPciAddress> {
            if t.is_empty() || t.len() > max_len || !t.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad());
            }
            u32::from_str_radix(t, 16).map_err(|_| bad())
        };
        let domain = hex(domain, 4)? as u16;
        let bus = hex(bus, 2)? as u8;
        let device = hex(dev, 2)?;
        let function = hex(func, 1)?;
        if device > 0x1f || function > 7 {
            return Err(bad());
        }
        Ok(Self {
            domain,
            bus,
            device: device as u8,
            function: function as u8,
        })
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl Serialize for PciAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Only the form [`Serialize`] writes (`0000:04:00.0`): what vmgpu stores (the journal) it reads back as it
/// wrote it, and anything else there was not written by vmgpu.
impl<'de> Deserialize<'de> for PciAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        PciAddress::parse_canonical(&text).map_err(|BadPciAddress(shown)| {
            serde::de::Error::custom(format_args!(
                "{shown:?} is not a PCI address (DDDD:BB:SS.F)"
            ))
        })
    }
}

impl PciAddress {
    /// Parses only the canonical form `DDDD:BB:SS.F` (lower-case hex, every field at full width).
    pub(crate) fn parse_canonical(text: &str) -> Result<Self, BadPciAddress> {
        match text.parse::<PciAddress>() {
            Ok(address) if address.to_string() == text => Ok(address),
            _ => Err(BadPciAddress(text.chars().take(64).collect())),
        }
    }
}

/// A 24-bit PCI class code (class, subclass, prog-if), as in sysfs `class` (`0x030000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PciClass(pub u32);

impl PciClass {
    /// Class and subclass, e.g. `0x0300`.
    pub(crate) fn class_subclass(self) -> u16 {
        (self.0 >> 8) as u16
    }
    /// Base class, e.g. `0x03` (display).
    pub(crate) fn base(self) -> u8 {
        (self.0 >> 16) as u8
    }
    /// Any display controller (VGA, XGA, 3D, other).
    pub(crate) fn is_display(self) -> bool {
        self.base() == 0x03
    }
    /// VGA-compatible controller (0x0300).
    pub(crate) fn is_vga(self) -> bool {
        self.class_subclass() == 0x0300
    }
    /// 3D controller (0x0302): datacenter and laptop GPUs without a display path.
    pub(crate) fn is_3d(self) -> bool {
        self.class_subclass() == 0x0302
    }
    /// Audio device (0x0403, HD Audio), e.g. a GPU's HDMI audio.
    #[cfg(test)]
    pub(crate) fn is_audio(self) -> bool {
        self.class_subclass() == 0x0403
    }
    /// A bridge (0x06xx): host, ISA, PCI-to-PCI (root ports) and others. Bridges are not passed through.
    pub(crate) fn is_bridge(self) -> bool {
        self.base() == 0x06
    }
    /// A short human name for the class.
    pub(crate) fn name(self) -> &'static str {
        match self.class_subclass() {
            0x0300 => "VGA controller",
            0x0302 => "3D controller",
            0x0380 => "display controller",
            0x0403 => "audio device",
            0x0c03 => "USB controller",
            0x0c80 => "serial bus controller",
            0x0604 => "PCI bridge",
            0x0600 => "host bridge",
            0x0601 => "ISA bridge",
            _ if self.is_bridge() => "bridge",
            _ => "device",
        }
    }
}

impl Serialize for PciClass {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("0x{:06x}", self.0))
    }
}

/// One PCI function as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PciDevice {
    /// Its address.
    pub address: PciAddress,
    /// Class code.
    pub class: PciClass,
    /// Vendor id, e.g. 0x10de (NVIDIA).
    pub vendor: u16,
    /// Device id.
    pub device: u16,
    /// Subsystem vendor id, when sysfs has it.
    pub subsystem_vendor: Option<u16>,
    /// Subsystem device id, when sysfs has it.
    pub subsystem_device: Option<u16>,
    /// The bound driver (`driver` link), if any.
    pub driver: Option<String>,
    /// `driver_override`, if set.
    pub driver_override: Option<String>,
    /// `boot_vga` (only VGA devices have it): the firmware's console GPU.
    pub boot_vga: Option<bool>,
    /// `reset_method` (kernel ≥ 5.15), e.g. `["flr", "bus"]`.
    pub reset_method: Option<Vec<String>>,
    /// IOMMU group number, when the IOMMU is on.
    pub iommu_group: Option<u32>,
}

impl PciDevice {
    /// `vendor:device` as lowercase hex, the form `vfio-pci.ids=` takes.
    pub(crate) fn vendor_device(&self) -> String {
        format!("{:04x}:{:04x}", self.vendor, self.device)
    }

    /// The vendor's short name, when it is one vmgpu knows.
    pub(crate) fn vendor_name(&self) -> Option<&'static str> {
        vendor_name(self.vendor)
    }

    /// True for a GPU: a VGA or 3D controller (or another display controller).
    pub(crate) fn is_gpu(&self) -> bool {
        self.class.is_display()
    }

    /// Reads one device directory, `/sys/bus/pci/devices/<addr>`.
    pub(crate) fn read(root: &HostRoot, address: PciAddress) -> root::Result<Self> {
        let dir = format!("{PCI_DEVICES}/{address}");
        let id16 = |name: &str| -> root::Result<u16> {
            let path = format!("{dir}/{name}");
            let value = root.read_hex(&path)?;
            u16::try_from(value).map_err(|_| root::Error::Parse {
                path: root.path(&path),
                expected: "a 16-bit id",
                found: format!("0x{value:x}"),
            })
        };
        let optional_id16 = |name: &str| -> root::Result<Option<u16>> {
            if root.exists(format!("{dir}/{name}")) {
                id16(name).map(Some)
            } else {
                Ok(None)
            }
        };
        let class_path = format!("{dir}/class");
        let class = root.read_hex(&class_path)?;
        if class > 0xff_ffff {
            return Err(root::Error::Parse {
                path: root.path(&class_path),
                expected: "a 24-bit class code",
                found: format!("0x{class:x}"),
            });
        }
        let boot_vga = root
            .read_optional(format!("{dir}/boot_vga"))?
            .map(|v| v == "1");
        let reset_method = root
            .read_optional(format!("{dir}/reset_method"))?
            .map(|v| v.split_whitespace().map(str::to_string).collect());
        let iommu_group = match root.read_link_name(format!("{dir}/iommu_group"))? {
            None => None,
            Some(name) => Some(name.parse().map_err(|_| root::Error::Parse {
                path: root.path(format!("{dir}/iommu_group")),
                expected: "a link to an IOMMU group number",
                found: name,
            })?),
        };
        let driver_override = root
            .read_optional(format!("{dir}/driver_override"))?
            .filter(|v| !v.is_empty() && v != "(null)");
        Ok(Self {
            address,
            class: PciClass(class),
            vendor: id16("vendor")?,
            device: id16("device")?,
            subsystem_vendor: optional_id16("subsystem_vendor")?,
            subsystem_device: optional_id16("subsystem_device")?,
            driver: root.read_link_name(format!("{dir}/driver"))?,
            driver_override,
            boot_vga,
            reset_method,
            iommu_group,
        })
    }
}

/// The short name of a PCI vendor id vmgpu meets on GPUs and their functions.
pub(crate) fn vendor_name(vendor: u16) -> Option<&'static str> {
    Some(match vendor {
        0x10de => "NVIDIA",
        0x1002 => "AMD",
        0x1022 => "AMD",
        0x8086 => "Intel",
        0x1234 => "QEMU",
        0x1af4 | 0x1b36 => "Red Hat (QEMU)",
        0x1414 => "Microsoft",
        0x15ad => "VMware",
        _ => return None,
    })
}

/// Every PCI device under `/sys/bus/pci/devices`, sorted by address. Entries whose names are not
/// PCI addresses are skipped.
pub(crate) fn read_all(root: &HostRoot) -> root::Result<Vec<PciDevice>> {
    let mut devices = Vec::new();
    for name in root.list_dir(PCI_DEVICES)? {
        let Ok(address) = name.parse::<PciAddress>() else {
            tracing::debug!("skipping {PCI_DEVICES}/{name}: not a PCI address");
            continue;
        };
        devices.push(PciDevice::read(root, address)?);
    }
    devices.sort_by_key(|d| d.address);
    Ok(devices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_pci_address_round_trips() {
        let a: PciAddress = "0000:04:00.1".parse().unwrap();
        assert_eq!(a.to_string(), "0000:04:00.1");
        let short: PciAddress = "04:00.0".parse().unwrap();
        assert_eq!(short.to_string(), "0000:04:00.0");
    }

    #[test]
    fn test_pci_address_deserializes_only_the_form_it_serializes() {
        let a: PciAddress = serde_json::from_str("\"0000:04:00.1\"").unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"0000:04:00.1\"");
        for bad in [
            "04:00.1",
            "0000:04:00.1/..",
            "0000:04:0.1",
            "0000:4A:00.1",
            " 0000:04:00.1",
            "7",
        ] {
            let err = serde_json::from_str::<PciAddress>(&format!("{bad:?}")).unwrap_err();
            assert!(
                err.to_string().contains("is not a PCI address"),
                "{bad}: {err}"
            );
        }
        assert!(serde_json::from_str::<PciAddress>("4").is_err());
    }

    #[test]
    fn test_pci_address_rejects_garbage() {
        for bad in [
            "",
            "04:00",
            "zz:00.0",
            "0000:04:20.0",
            "0000:04:00.8",
            "0000:04:00.0.0",
            "../04:00.0",
        ] {
            assert!(bad.parse::<PciAddress>().is_err(), "{bad}");
        }
    }

    #[test]
    fn test_class_vga_and_3d_are_gpus() {
        assert!(PciClass(0x030000).is_vga());
        assert!(PciClass(0x030200).is_3d());
        assert!(PciClass(0x030200).is_display());
        assert!(PciClass(0x060400).is_bridge());
        assert!(PciClass(0x040300).is_audio());
    }
}
