//! What the hook reads from the domain XML on its stdin: name, PCI hostdevs, CPU pinning, memory and
//! hugepages, NUMA tuning, IVSHMEM devices, kvmfr paths and the vmgpu metadata. A read-only view; unknown
//! parts of the domain are ignored.
use std::collections::BTreeSet;

use super::element::Element;
use super::metadata::{self, VmgpuConfig};
use super::xml;
use crate::host::PciAddress;
use crate::host::cpu::CpuSet;

/// The largest `<memory>` / `<shmem><size>` accepted (1 PiB): anything larger is a typo or an attack.
pub(crate) const MAX_BYTES: u64 = 1 << 50;

/// Why the domain XML could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not well-formed XML.
    #[error("cannot read the domain XML")]
    Xml(#[source] xml::Error),
    /// The root is not `<domain>`.
    #[error("the XML on stdin is not a libvirt domain (root element <{0}>)")]
    NotADomain(String),
    /// The metadata is wrong.
    #[error("cannot read the vmgpu metadata")]
    Metadata(#[source] metadata::Error),
    /// A value the hook needs is malformed.
    #[error("domain XML: {what}: {value:?} is not valid ({expected})")]
    BadValue {
        /// Where (e.g. `<vcpupin cpuset>`).
        what: &'static str,
        /// The value (cut to 64 characters).
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
}

/// Result of reading the domain.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// One `<memoryBacking><hugepages><page>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HugePage {
    /// Page size in KiB (2048, 1048576).
    pub size_kib: u64,
    /// Guest NUMA nodes this size backs (`nodeset`), when given.
    pub guest_nodes: Option<BTreeSet<u32>>,
}

/// One `<shmem>` device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shmem {
    /// `name` as written (validated later: it becomes a file name).
    pub name: String,
    /// `<model type>`; libvirt's default is `ivshmem-plain`.
    pub model: String,
    /// Size in bytes, when given.
    pub size: Option<u64>,
    /// True when it uses a `<server>` (ivshmem-doorbell: no file to create).
    pub has_server: bool,
}

/// The parts of a domain the hook acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HookView {
    /// `<name>`.
    pub name: String,
    /// Source addresses of `<hostdev mode='subsystem' type='pci'>`.
    pub pci_hostdevs: Vec<PciAddress>,
    /// Union of every `<cputune><vcpupin cpuset>`.
    pub vcpu_pins: CpuSet,
    /// `<cputune><emulatorpin cpuset>`.
    pub emulator_pins: CpuSet,
    /// `<memory>` in KiB.
    pub memory_kib: u64,
    /// Guest NUMA cells (`<cpu><numa><cell id memory>`), id → KiB.
    pub numa_cells: Vec<(u32, u64)>,
    /// `<memoryBacking><hugepages>` present.
    pub hugepages: bool,
    /// Its `<page>` elements (empty: the default size for all memory).
    pub hugepage_sizes: Vec<HugePage>,
    /// `<numatune><memory nodeset>` (host NUMA nodes).
    pub numatune_nodes: Option<BTreeSet<u32>>,
    /// `<devices><shmem>`.
    pub shmems: Vec<Shmem>,
    /// `/dev/kvmfrN` paths named anywhere in the domain (qemu:commandline).
    pub kvmfr_paths: Vec<String>,
    /// The vmgpu metadata.
    pub config: Option<VmgpuConfig>,
}

impl HookView {
    /// Parses the domain XML the hook got on stdin.
    pub(crate) fn parse(xml: &str) -> Result<HookView> {
        let root = Element::parse(xml).map_err(Error::Xml)?;
        if !root.is("domain") {
            return Err(Error::NotADomain(cut(&root.name)));
        }
        let mut view = HookView {
            name: root
                .child("name")
                .map(|n| n.trimmed_text().to_string())
                .unwrap_or_default(),
            config: VmgpuConfig::from_domain(&root).map_err(Error::Metadata)?,
            ..HookView::default()
        };
        if let Some(devices) = root.child("devices") {
            for hostdev in devices.children_named("hostdev") {
                if hostdev.attr("type") != Some("pci")
                    || hostdev.attr("mode") == Some("capabilities")
                {
                    continue;
                }
                if let Some(address) = hostdev.path(&["source", "address"]) {
                    view.pci_hostdevs.push(pci_address(address)?);
                }
            }
            for shmem in devices.children_named("shmem") {
                view.shmems.push(Shmem {
                    name: shmem.attr("name").unwrap_or_default().to_string(),
                    model: shmem
                        .child("model")
                        .and_then(|m| m.attr("type"))
                        .unwrap_or("ivshmem-plain")
                        .to_string(),
                    size: shmem
                        .child("size")
                        .map(|s| {
                            bytes(
                                s.trimmed_text(),
                                s.attr("unit").unwrap_or("M"),
                                "<shmem><size>",
                            )
                        })
                        .transpose()?,
                    has_server: shmem.child("server").is_some(),
                });
            }
        }
        if let Some(cputune) = root.child("cputune") {
            for pin in cputune.children_named("vcpupin") {
                let pins = cpu_list(pin.attr("cpuset").unwrap_or(""), "<vcpupin cpuset>")?;
                view.vcpu_pins = view.vcpu_pins.union(&pins.into_iter().collect());
            }
            if let Some(pin) = cputune.child("emulatorpin") {
                view.emulator_pins =
                    cpu_list(pin.attr("cpuset").unwrap_or(""), "<emulatorpin cpuset>")?
                        .into_iter()
                        .collect();
            }
        }
        if let Some(memory) = root.child("memory") {
            view.memory_kib = bytes(
                memory.trimmed_text(),
                memory.attr("unit").unwrap_or("KiB"),
                "<memory>",
            )? / 1024;
        }
        if let Some(numa) = root.path(&["cpu", "numa"]) {
            for cell in numa.children_named("cell") {
                let id = cell.attr("id").unwrap_or("0");
                let id = id
                    .parse()
                    .map_err(|_| bad("<numa><cell id>", id, "a number"))?;
                let kib = bytes(
                    cell.attr("memory").unwrap_or("0"),
                    cell.attr("unit").unwrap_or("KiB"),
                    "<numa><cell memory>",
                )? / 1024;
                view.numa_cells.push((id, kib));
            }
        }
        if let Some(hugepages) = root.path(&["memoryBacking", "hugepages"]) {
            view.hugepages = true;
            for page in hugepages.children_named("page") {
                let size = page.attr("size").unwrap_or("");
                let size_kib = bytes(
                    size,
                    page.attr("unit").unwrap_or("KiB"),
                    "<hugepages><page size>",
                )? / 1024;
                if size_kib == 0 {
                    return Err(bad(
                        "<hugepages><page size>",
                        size,
                        "a page size such as 2048 KiB",
                    ));
                }
                let guest_nodes = page
                    .attr("nodeset")
                    .map(|n| cpu_list(n, "<hugepages><page nodeset>"))
                    .transpose()?;
                view.hugepage_sizes.push(HugePage {
                    size_kib,
                    guest_nodes,
                });
            }
        }
        if let Some(memory) = root.path(&["numatune", "memory"])
            && let Some(nodeset) = memory.attr("nodeset")
        {
            view.numatune_nodes = Some(cpu_list(nodeset, "<numatune><memory nodeset>")?);
        }
        view.kvmfr_paths = kvmfr_paths(xml);
        Ok(view)
    }
}

fn pci_address(address: &Element) -> Result<PciAddress> {
    let field = |name: &'static str, max: u32| -> Result<u32> {
        let raw = address
            .attr(name)
            .unwrap_or(if name == "domain" { "0" } else { "" });
        let hex = raw.strip_prefix("0x").unwrap_or(raw);
        match u32::from_str_radix(hex, 16) {
            Ok(v) if v <= max && !hex.is_empty() => Ok(v),
            _ => Err(bad(
                "<hostdev><source><address>",
                raw,
                "a hex PCI address field",
            )),
        }
    };
    Ok(PciAddress {
        domain: field("domain", 0xffff)? as u16,
        bus: field("bus", 0xff)? as u8,
        device: field("slot", 0x1f)? as u8,
        function: field("function", 7)? as u8,
    })
}

/// Parses a libvirt/kernel CPU or node list such as `0-3,8,^2` (`^` excludes) into a set.
pub(crate) fn cpu_list(text: &str, what: &'static str) -> Result<BTreeSet<u32>> {
    const MAX_CPU: u32 = 8191;
    let mut set = BTreeSet::new();
    let mut excluded = BTreeSet::new();
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(bad(what, text, "a CPU list such as 2-7,10"));
    }
    for part in trimmed.split(',') {
        let part = part.trim();
        let (negate, part) = match part.strip_prefix('^') {
            Some(rest) => (true, rest),
            None => (false, part),
        };
        let parse = |t: &str| -> Result<u32> {
            match t.trim().parse::<u32>() {
                Ok(v) if v <= MAX_CPU => Ok(v),
                _ => Err(bad(what, text, "a CPU list such as 2-7,10")),
            }
        };
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => {
                let v = parse(part)?;
                (v, v)
            }
        };
        if lo > hi {
            return Err(bad(what, text, "a CPU list such as 2-7,10"));
        }
        let target = if negate { &mut excluded } else { &mut set };
        target.extend(lo..=hi);
    }
    Ok(set.difference(&excluded).copied().collect())
}

/// A libvirt scaled integer (`<memory unit='GiB'>16</memory>`) in bytes.
fn bytes(value: &str, unit: &str, what: &'static str) -> Result<u64> {
    let n: u64 = value
        .trim()
        .parse()
        .map_err(|_| bad(what, value, "a whole number"))?;
    let scale: u64 = match unit.trim() {
        "b" | "bytes" | "B" => 1,
        "KB" => 1000,
        "k" | "K" | "KiB" => 1 << 10,
        "MB" => 1000 * 1000,
        "M" | "MiB" => 1 << 20,
        "GB" => 1000 * 1000 * 1000,
        "G" | "GiB" => 1 << 30,
        "TB" => 1000u64.pow(4),
        "T" | "TiB" => 1 << 40,
        "PB" => 1000u64.pow(5),
        "P" | "PiB" => 1 << 50,
        "EB" => 1000u64.pow(6),
        "E" | "EiB" => 1 << 60,
        _ => return Err(bad(what, unit, "a libvirt unit such as KiB, M or GiB")),
    };
    match n.checked_mul(scale) {
        Some(b) if b <= MAX_BYTES => Ok(b),
        _ => Err(bad(what, value, "at most 1 PiB")),
    }
}

/// Every distinct `/dev/kvmfrN` mentioned in the document (kvmfr is configured through qemu:commandline).
fn kvmfr_paths(xml: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find("/dev/kvmfr") {
        let tail = &rest[i + "/dev/kvmfr".len()..];
        let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() && digits.len() <= 2 {
            let path = format!("/dev/kvmfr{digits}");
            if !out.contains(&path) {
                out.push(path);
            }
        }
        rest = tail;
    }
    out
}

fn bad(what: &'static str, value: &str, expected: &'static str) -> Error {
    Error::BadValue {
        what,
        value: cut(value),
        expected,
    }
}

fn cut(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &str = r#"<domain type='kvm' id='1'>
  <name>win11</name>
  <memory unit='KiB'>8388608</memory>
  <memoryBacking><hugepages><page size='2048' unit='KiB'/></hugepages></memoryBacking>
  <cputune>
    <vcpupin vcpu='0' cpuset='2'/><vcpupin vcpu='1' cpuset='3'/>
    <emulatorpin cpuset='0-1'/>
  </cputune>
  <numatune><memory mode='strict' nodeset='0'/></numatune>
  <devices>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0x01' slot='0x00' function='0x1'/></source>
    </hostdev>
    <hostdev mode='subsystem' type='usb'><source><vendor id='0x1'/></source></hostdev>
    <shmem name='looking-glass'><model type='ivshmem-plain'/><size unit='M'>32</size></shmem>
  </devices>
  <qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
    <qemu:arg value='memory-backend-file,id=lg,mem-path=/dev/kvmfr0,size=32M,share=on'/>
  </qemu:commandline>
</domain>"#;

    #[test]
    fn test_parse_reads_every_part_the_hook_needs() {
        let view = HookView::parse(DOMAIN).unwrap();
        assert_eq!(view.name, "win11");
        assert_eq!(view.pci_hostdevs, vec!["0000:01:00.1".parse().unwrap()]);
        assert_eq!(view.vcpu_pins.to_string(), "2-3");
        assert_eq!(view.emulator_pins.to_string(), "0-1");
        assert_eq!(view.memory_kib, 8 * 1024 * 1024);
        assert_eq!(view.hugepage_sizes[0].size_kib, 2048);
        assert_eq!(view.numatune_nodes, Some(BTreeSet::from([0])));
        assert_eq!(view.shmems[0].size, Some(32 << 20));
        assert_eq!(view.kvmfr_paths, vec!["/dev/kvmfr0".to_string()]);
        assert_eq!(view.config, None);
    }

    #[test]
    fn test_parse_not_a_domain_is_error() {
        assert!(matches!(
            HookView::parse("<network/>"),
            Err(Error::NotADomain(_))
        ));
    }

    #[test]
    fn test_parse_huge_shmem_size_is_error() {
        let xml =
            "<domain><devices><shmem name='a'><size unit='E'>9</size></shmem></devices></domain>";
        assert!(HookView::parse(xml).is_err());
    }

    #[test]
    fn test_cpu_list_handles_ranges_and_exclusions() {
        assert_eq!(
            cpu_list("0-3,^1,8", "x").unwrap(),
            BTreeSet::from([0, 2, 3, 8])
        );
        assert!(cpu_list("3-1", "x").is_err());
        assert!(cpu_list("", "x").is_err());
        assert!(cpu_list("99999999999", "x").is_err());
    }
}
