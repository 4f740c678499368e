//! The few facts of a domain XML that `explain` needs: passed-through PCI addresses, the firmware, the TPM, evdev
//! inputs, shared memory and the NVIDIA-hiding features. Read with the bounded [`Element`] parser.
use serde::Serialize;

use crate::domain::read::element::Element;

/// What the domain XML says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DomainFacts {
    /// True when an XML was read.
    pub present: bool,
    /// `<hostdev type='pci'>` source addresses as `0000:01:00.0`.
    pub hostdevs: Vec<String>,
    /// `<features><kvm><hidden state='on'/>`.
    pub kvm_hidden: bool,
    /// `<features><hyperv><vendor_id state='on'/>`.
    pub hyperv_vendor_id: bool,
    /// `<os><loader>` path.
    pub loader: Option<String>,
    /// `<os><nvram template=…>`.
    pub nvram_template: Option<String>,
    /// `<os firmware='efi'>`.
    pub firmware_efi: bool,
    /// A `<tpm>` with the emulator backend.
    pub tpm_emulator: bool,
    /// `<input type='evdev'><source dev=…>` paths.
    pub evdev: Vec<String>,
    /// `<shmem name=…>` names.
    pub shmems: Vec<String>,
    /// `<memoryBacking><hugepages/>`.
    pub hugepages: bool,
}

impl DomainFacts {
    /// Reads the facts; a document that does not parse gives an error line for the notes.
    pub(crate) fn parse(xml: &str) -> Result<Self, String> {
        let root = Element::parse(xml).map_err(|e| format!("domain XML: {e}"))?;
        let mut facts = DomainFacts {
            present: true,
            ..Default::default()
        };
        if let Some(os) = root.child("os") {
            facts.firmware_efi = os.attr("firmware") == Some("efi");
            facts.loader = os
                .child("loader")
                .map(|l| l.trimmed_text().to_string())
                .filter(|t| !t.is_empty());
            facts.nvram_template = os
                .child("nvram")
                .and_then(|n| n.attr("template"))
                .map(str::to_string);
        }
        if let Some(features) = root.child("features") {
            facts.kvm_hidden = features
                .path(&["kvm", "hidden"])
                .is_some_and(|h| h.attr("state") == Some("on"));
            facts.hyperv_vendor_id = features
                .path(&["hyperv", "vendor_id"])
                .is_some_and(|v| v.attr("state") == Some("on"));
        }
        facts.hugepages = root.path(&["memoryBacking", "hugepages"]).is_some();
        if let Some(devices) = root.child("devices") {
            for hostdev in devices.children_named("hostdev") {
                if hostdev.attr("type") != Some("pci") {
                    continue;
                }
                if let Some(a) = hostdev.path(&["source", "address"]) {
                    facts.hostdevs.push(pci_address(a));
                }
            }
            facts.tpm_emulator = devices
                .children_named("tpm")
                .any(|t| t.child("backend").and_then(|b| b.attr("type")) == Some("emulator"));
            facts.evdev = devices
                .children_named("input")
                .filter(|i| i.attr("type") == Some("evdev"))
                .filter_map(|i| i.child("source").and_then(|s| s.attr("dev")))
                .map(str::to_string)
                .collect();
            facts.shmems = devices
                .children_named("shmem")
                .filter_map(|s| s.attr("name"))
                .map(str::to_string)
                .collect();
        }
        Ok(facts)
    }
}

/// `domain='0x0000' bus='0x01' slot='0x00' function='0x0'` as `0000:01:00.0`.
fn pci_address(a: &Element) -> String {
    let num = |name: &str| {
        a.attr(name)
            .and_then(|v| u32::from_str_radix(v.trim_start_matches("0x"), 16).ok())
            .unwrap_or(0)
    };
    format!(
        "{:04x}:{:02x}:{:02x}.{:x}",
        num("domain"),
        num("bus"),
        num("slot"),
        num("function")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_reads_hostdevs_firmware_and_features() {
        let xml = "<domain type='kvm'><name>w</name>\
            <os><type>hvm</type><loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>\
            <nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'/></os>\
            <features><kvm><hidden state='on'/></kvm></features>\
            <devices><hostdev mode='subsystem' type='pci' managed='yes'><source>\
            <address domain='0x0000' bus='0x0b' slot='0x00' function='0x1'/></source></hostdev>\
            <input type='evdev'><source dev='/dev/input/by-id/kbd'/></input>\
            <tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>\
            <shmem name='looking-glass'/></devices></domain>";
        let f = DomainFacts::parse(xml).unwrap();
        assert_eq!(f.hostdevs, ["0000:0b:00.1"]);
        assert!(f.kvm_hidden && !f.hyperv_vendor_id && f.tpm_emulator);
        assert_eq!(f.loader.as_deref(), Some("/usr/share/OVMF/OVMF_CODE_4M.fd"));
        assert_eq!(f.evdev, ["/dev/input/by-id/kbd"]);
        assert_eq!(f.shmems, ["looking-glass"]);
    }

    #[test]
    fn test_bad_xml_is_a_note() {
        assert!(DomainFacts::parse("<domain>").is_err());
    }
}
