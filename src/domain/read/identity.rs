//! What a GPU function *is*, recorded in the metadata at `define` time (`<vmgpu:function>` inside
//! `<vmgpu:gpu>`): vendor:device, subsystem ids and class, the facts Proxmox's PCI mappings keep too. At
//! `prepare` the hook compares them with what the address holds now, so a moved card, renumbered buses or
//! another device at the address (an NVMe controller where the GPU was) is refused before anything changes.
use std::fmt;

use serde::Serialize;

use crate::host::{PciAddress, PciDevice};

/// One function's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FunctionIdentity {
    /// The host address it had at define time.
    pub address: PciAddress,
    /// PCI vendor id.
    pub vendor: u16,
    /// PCI device id.
    pub device: u16,
    /// Subsystem vendor and device ids (`None`: the device has none).
    pub subsystem: Option<(u16, u16)>,
    /// The 24-bit class code.
    pub class: u32,
}

impl FunctionIdentity {
    /// The identity of a device as read from sysfs.
    pub(crate) fn of(device: &PciDevice) -> Self {
        Self {
            address: device.address,
            vendor: device.vendor,
            device: device.device,
            subsystem: device.subsystem_vendor.zip(device.subsystem_device),
            class: device.class.0,
        }
    }

    /// The `id` attribute: `vvvv:dddd`.
    pub(crate) fn id_text(&self) -> String {
        format!("{:04x}:{:04x}", self.vendor, self.device)
    }

    /// The `subsystem` attribute: `vvvv:dddd`, or `none`.
    pub(crate) fn subsystem_text(&self) -> String {
        self.subsystem
            .map_or_else(|| "none".into(), |(v, d)| format!("{v:04x}:{d:04x}"))
    }

    /// The `class` attribute: `0xcccccc`.
    pub(crate) fn class_text(&self) -> String {
        format!("0x{:06x}", self.class)
    }

    /// Reads the attributes of a `<vmgpu:function>` (`None` for a value that does not parse).
    pub(crate) fn parse(
        address: PciAddress,
        id: &str,
        subsystem: &str,
        class: &str,
    ) -> Option<Self> {
        let pair = |text: &str| -> Option<(u16, u16)> {
            let (v, d) = text.trim().split_once(':')?;
            Some((
                u16::from_str_radix(v, 16).ok()?,
                u16::from_str_radix(d, 16).ok()?,
            ))
        };
        let (vendor, device) = pair(id)?;
        let subsystem = match subsystem.trim() {
            "none" => None,
            text => Some(pair(text)?),
        };
        let class = u32::from_str_radix(class.trim().trim_start_matches("0x"), 16).ok()?;
        (class <= 0xff_ffff).then_some(Self {
            address,
            vendor,
            device,
            subsystem,
            class,
        })
    }

    /// `None` when `found` is this function; else what differs, for the error.
    pub(crate) fn mismatch(&self, found: &PciDevice) -> Option<String> {
        let now = Self::of(found);
        (now.vendor != self.vendor
            || now.device != self.device
            || now.subsystem != self.subsystem
            || now.class != self.class)
            .then(|| format!("{now}, not the {self} recorded at define time"))
    }
}

impl fmt::Display for FunctionIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}] subsystem {} ({})",
            crate::host::PciClass(self.class).name(),
            self.id_text(),
            self.subsystem_text(),
            self.class_text()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu() -> FunctionIdentity {
        FunctionIdentity {
            address: "0000:01:00.0".parse().unwrap(),
            vendor: 0x10de,
            device: 0x2484,
            subsystem: Some((0x1462, 0x3918)),
            class: 0x030000,
        }
    }

    #[test]
    fn test_parse_round_trips_the_attribute_texts() {
        let id = gpu();
        let back = FunctionIdentity::parse(
            id.address,
            &id.id_text(),
            &id.subsystem_text(),
            &id.class_text(),
        );
        assert_eq!(back, Some(id));
    }

    #[test]
    fn test_parse_refuses_garbage() {
        let a = gpu().address;
        assert_eq!(FunctionIdentity::parse(a, "10de", "none", "0x030000"), None);
        assert_eq!(
            FunctionIdentity::parse(a, "10de:2484", "x:y", "0x030000"),
            None
        );
        assert_eq!(
            FunctionIdentity::parse(a, "10de:2484", "none", "0x1000000"),
            None
        );
    }

    #[test]
    fn test_display_names_class_and_ids() {
        let text = gpu().to_string();
        assert!(
            text.contains("[10de:2484]") && text.contains("1462:3918"),
            "{text}"
        );
    }
}
