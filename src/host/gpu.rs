//! GPUs as units: a [`GpuCard`] is a VGA (0x0300) or 3D (0x0302) controller together with every function of
//! its slot and every endpoint of the IOMMU groups those functions are in. Passthrough works per group, so
//! the verdict is about the whole unit: an endpoint of another device in the group makes it unclean.
use std::fmt;

use serde::Serialize;

use super::Host;
use super::pci::{PciAddress, PciDevice};

/// Whether a card can go to a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The GPU function is alone in its group.
    Passable,
    /// Passable when all functions of the card (audio, USB, UCSI) go to the guest together.
    PassableWithAllFunctions,
    /// Cannot be passed: the IOMMU is off, or the group holds devices that are not part of the card.
    NotPassable,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Passable => "passable",
            Verdict::PassableWithAllFunctions => "passable with all functions",
            Verdict::NotPassable => "not passable",
        })
    }
}

/// One graphics card as a passthrough unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuCard {
    /// The VGA or 3D controller function.
    pub primary: PciDevice,
    /// Every function of the slot (the primary included), by address.
    pub functions: Vec<PciDevice>,
    /// The primary's IOMMU group (`None` when the IOMMU is off).
    pub group: Option<u32>,
    /// Every non-bridge member of every IOMMU group the functions are in, by address.
    pub group_endpoints: Vec<PciDevice>,
    /// Group endpoints outside the slot: each one makes the group unclean.
    pub foreign: Vec<PciDevice>,
    /// The firmware's boot/console GPU (`boot_vga` = 1): the host's screen.
    pub is_boot_display: bool,
    /// The verdict.
    pub verdict: Verdict,
    /// One line saying why.
    pub reason: String,
}

impl GpuCard {
    /// The card's address (its primary function's).
    pub fn address(&self) -> PciAddress {
        self.primary.address
    }

    /// True when the card can go to a guest (with all its functions where needed).
    pub(crate) fn is_passable(&self) -> bool {
        self.verdict != Verdict::NotPassable
    }

    /// The `vendor:device` ids of every function (the `vfio-pci.ids=` list), in address order, deduplicated.
    pub(crate) fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for f in &self.functions {
            let id = f.vendor_device();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }

    /// Every device the guest must get: the slot's functions plus the other group endpoints (for a
    /// passable card they are the same set), sorted and without duplicates.
    pub(crate) fn passthrough_set(&self) -> Vec<PciAddress> {
        let mut all: Vec<PciAddress> = self
            .functions
            .iter()
            .chain(&self.group_endpoints)
            .map(|d| d.address)
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

/// Why no guest GPU could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CandidateError {
    /// No VGA or 3D controller at all.
    #[error("no GPU found (no PCI VGA or 3D controller)")]
    NoGpu,
    /// The address given is not a function of any GPU.
    #[error("{address} is not a GPU; GPUs: {choices}")]
    NotAGpu {
        /// What was asked for.
        address: PciAddress,
        /// The GPUs there are.
        choices: String,
    },
    /// Only the boot (host display) GPU exists.
    #[error(
        "the only GPU, {address}, is the host's boot display; pass it with single-GPU mode or add a second GPU"
    )]
    OnlyBootDisplay {
        /// The boot GPU.
        address: PciAddress,
    },
    /// No non-boot GPU is passable.
    #[error("no passable GPU besides the boot display: {reasons}")]
    NonePassable {
        /// Each card with its reason.
        reasons: String,
    },
    /// More than one GPU qualifies.
    #[error("more than one GPU could go to the guest ({choices}); choose one with --gpu ADDR")]
    Ambiguous {
        /// The qualifying cards.
        choices: String,
    },
}

fn describe(card: &GpuCard) -> String {
    format!(
        "{} {} [{}]",
        card.address(),
        card.primary.class.name(),
        card.primary.vendor_device()
    )
}

fn list(cards: &[&GpuCard]) -> String {
    cards
        .iter()
        .map(|c| describe(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every GPU of the host as a unit, by address. Two display functions in one slot make one card (the lower
/// function is the primary).
pub(crate) fn cards(host: &Host) -> Vec<GpuCard> {
    let mut cards: Vec<GpuCard> = Vec::new();
    for dev in &host.pci {
        if !(dev.class.is_vga() || dev.class.is_3d()) {
            continue;
        }
        if cards.iter().any(|c| c.address().same_slot(&dev.address)) {
            continue;
        }
        cards.push(card(host, dev));
    }
    cards
}

fn card(host: &Host, primary: &PciDevice) -> GpuCard {
    let functions: Vec<PciDevice> = host
        .pci
        .iter()
        .filter(|d| d.address.same_slot(&primary.address))
        .cloned()
        .collect();
    let mut groups: Vec<u32> = functions.iter().filter_map(|f| f.iommu_group).collect();
    groups.sort_unstable();
    groups.dedup();
    let group_endpoints: Vec<PciDevice> = host
        .pci
        .iter()
        .filter(|d| !d.class.is_bridge())
        .filter(|d| d.iommu_group.is_some_and(|g| groups.contains(&g)))
        .cloned()
        .collect();
    let foreign: Vec<PciDevice> = group_endpoints
        .iter()
        .filter(|d| !d.address.same_slot(&primary.address))
        .cloned()
        .collect();
    let is_boot_display = primary.boot_vga == Some(true);
    let group = primary.iommu_group;
    let (verdict, mut reason) = verdict(group, &groups, &functions, &foreign);
    if is_boot_display {
        reason.push_str(
            "; it is the boot display (the host's screen), so only single-GPU mode can pass it",
        );
    }
    GpuCard {
        primary: primary.clone(),
        functions,
        group,
        group_endpoints,
        foreign,
        is_boot_display,
        verdict,
        reason,
    }
}

fn verdict(
    group: Option<u32>,
    groups: &[u32],
    functions: &[PciDevice],
    foreign: &[PciDevice],
) -> (Verdict, String) {
    let Some(group) = group else {
        return (
            Verdict::NotPassable,
            "no IOMMU group: the IOMMU is off".to_string(),
        );
    };
    let group_text = match groups {
        [_] => format!("IOMMU group {group}"),
        _ => format!(
            "IOMMU groups {}",
            groups
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    if !foreign.is_empty() {
        let others = foreign
            .iter()
            .map(|d| {
                format!(
                    "{} ({}, {})",
                    d.address,
                    d.class.name(),
                    d.driver.as_deref().unwrap_or("no driver")
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        return (
            Verdict::NotPassable,
            format!(
                "{group_text} also holds {others}, not part of this card; move the card to a CPU-attached slot"
            ),
        );
    }
    if functions.len() <= 1 {
        return (
            Verdict::Passable,
            format!("{group_text} holds only this GPU"),
        );
    }
    let names = functions
        .iter()
        .map(|f| f.class.name())
        .collect::<Vec<_>>()
        .join(", ");
    (
        Verdict::PassableWithAllFunctions,
        format!(
            "pass all {} functions together ({names}): they share {group_text}",
            functions.len()
        ),
    )
}

/// Picks the guest GPU. With `wanted`, the card having that function, whatever its verdict (the caller
/// reports it). Without, the one passable card that is not the boot display; an error naming the choices
/// when there is none or more than one.
pub(crate) fn guest_candidate(
    cards: &[GpuCard],
    wanted: Option<PciAddress>,
) -> Result<&GpuCard, CandidateError> {
    if let Some(address) = wanted {
        return cards
            .iter()
            .find(|c| c.functions.iter().any(|f| f.address == address))
            .ok_or_else(|| {
                if cards.is_empty() {
                    CandidateError::NoGpu
                } else {
                    CandidateError::NotAGpu {
                        address,
                        choices: list(&cards.iter().collect::<Vec<_>>()),
                    }
                }
            });
    }
    let others: Vec<&GpuCard> = cards.iter().filter(|c| !c.is_boot_display).collect();
    let passable: Vec<&GpuCard> = others.iter().copied().filter(|c| c.is_passable()).collect();
    match (passable.as_slice(), others.as_slice(), cards) {
        ([one], _, _) => Ok(one),
        ([], [], []) => Err(CandidateError::NoGpu),
        ([], [], [boot, ..]) => Err(CandidateError::OnlyBootDisplay {
            address: boot.address(),
        }),
        ([], others, _) => Err(CandidateError::NonePassable {
            reasons: others
                .iter()
                .map(|c| format!("{}: {}", c.address(), c.reason))
                .collect::<Vec<_>>()
                .join("; "),
        }),
        (many, _, _) => Err(CandidateError::Ambiguous {
            choices: list(many),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostRoot;

    /// Writes a minimal host with PCI devices `(addr, class, vendor:device, group, boot_vga)`.
    fn host(devices: &[(&str, u32, &str, Option<u32>, bool)]) -> (tempfile::TempDir, Host) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let write = |rel: &str, text: &str| crate::host::test_tree::write(d, rel, text);
        write("proc/cmdline", "quiet\n");
        write("proc/meminfo", "MemTotal: 1000 kB\n");
        write("proc/sys/kernel/osrelease", "6.8.0\n");
        write("sys/devices/system/cpu/online", "0\n");
        write(
            "sys/devices/system/cpu/cpu0/topology/physical_package_id",
            "0\n",
        );
        write("sys/devices/system/cpu/cpu0/topology/core_id", "0\n");
        for (addr, class, ids, group, boot) in devices {
            // As the kernel lays it out: the device under devices/pci0000:00, a link in bus/pci/devices.
            let dev = format!("sys/devices/pci0000:00/{addr}");
            std::fs::create_dir_all(d.join("sys/bus/pci/devices")).unwrap();
            std::fs::create_dir_all(d.join(&dev)).unwrap();
            std::os::unix::fs::symlink(
                format!("../../../devices/pci0000:00/{addr}"),
                d.join(format!("sys/bus/pci/devices/{addr}")),
            )
            .unwrap();
            let (v, dv) = ids.split_once(':').unwrap();
            write(&format!("{dev}/class"), &format!("0x{class:06x}\n"));
            write(&format!("{dev}/vendor"), &format!("0x{v}\n"));
            write(&format!("{dev}/device"), &format!("0x{dv}\n"));
            if *class >> 8 == 0x0300 {
                write(
                    &format!("{dev}/boot_vga"),
                    if *boot { "1\n" } else { "0\n" },
                );
            }
            if let Some(g) = group {
                let gdir = d.join(format!("sys/kernel/iommu_groups/{g}/devices"));
                std::fs::create_dir_all(&gdir).unwrap();
                std::os::unix::fs::symlink(
                    format!("../../../kernel/iommu_groups/{g}"),
                    d.join(format!("{dev}/iommu_group")),
                )
                .unwrap();
            }
        }
        let host = Host::read(&HostRoot::new(d)).unwrap();
        (dir, host)
    }

    fn addr(s: &str) -> PciAddress {
        s.parse().unwrap()
    }

    #[test]
    fn test_cards_turing_four_functions_one_unit() {
        let (_dir, host) = host(&[
            ("0000:01:00.0", 0x030000, "10de:1e87", Some(16), false),
            ("0000:01:00.1", 0x040300, "10de:10f8", Some(16), false),
            ("0000:01:00.2", 0x0c0330, "10de:1ad8", Some(16), false),
            ("0000:01:00.3", 0x0c8000, "10de:1ad9", Some(16), false),
        ]);
        let cards = cards(&host);
        assert_eq!(cards.len(), 1);
        assert_eq!(cards[0].functions.len(), 4);
        assert_eq!(cards[0].verdict, Verdict::PassableWithAllFunctions);
    }

    #[test]
    fn test_cards_3d_controller_is_a_gpu() {
        let (_dir, host) = host(&[("0000:01:00.0", 0x030200, "10de:25a2", Some(3), false)]);
        assert_eq!(cards(&host)[0].verdict, Verdict::Passable);
    }

    #[test]
    fn test_cards_foreign_endpoint_makes_group_unclean() {
        let (_dir, host) = host(&[
            ("0000:00:1c.0", 0x060400, "8086:a110", Some(7), false),
            ("0000:00:1f.3", 0x040300, "8086:a170", Some(7), false),
            ("0000:03:00.0", 0x030000, "1002:67df", Some(7), false),
        ]);
        let card = &cards(&host)[0];
        assert_eq!(card.verdict, Verdict::NotPassable);
        assert_eq!(card.foreign.len(), 1);
        assert!(card.reason.contains("0000:00:1f.3"), "{}", card.reason);
    }

    #[test]
    fn test_guest_candidate_skips_boot_display() {
        let (_dir, host) = host(&[
            ("0000:01:00.0", 0x030000, "10de:2484", Some(1), true),
            ("0000:04:00.0", 0x030000, "10de:17c8", Some(2), false),
        ]);
        let cards = cards(&host);
        assert_eq!(
            guest_candidate(&cards, None).unwrap().address(),
            addr("0000:04:00.0")
        );
    }

    #[test]
    fn test_guest_candidate_ambiguous_names_choices() {
        let (_dir, host) = host(&[
            ("0000:01:00.0", 0x030000, "10de:2484", Some(1), false),
            ("0000:04:00.0", 0x030000, "10de:17c8", Some(2), false),
        ]);
        let err = guest_candidate(&cards(&host), None).unwrap_err();
        assert!(err.to_string().contains("0000:04:00.0"), "{err}");
    }

    #[test]
    fn test_guest_candidate_by_audio_function_address() {
        let (_dir, host) = host(&[
            ("0000:04:00.0", 0x030000, "10de:17c8", Some(2), false),
            ("0000:04:00.1", 0x040300, "10de:0fb0", Some(2), false),
        ]);
        let cards = cards(&host);
        let card = guest_candidate(&cards, Some(addr("0000:04:00.1"))).unwrap();
        assert_eq!(card.ids(), ["10de:17c8", "10de:0fb0"]);
    }

    #[test]
    fn test_guest_candidate_iommu_off_none_passable() {
        let (_dir, host) = host(&[
            ("0000:00:02.0", 0x030000, "8086:4680", None, true),
            ("0000:03:00.0", 0x030000, "1002:73df", None, false),
        ]);
        let err = guest_candidate(&cards(&host), None).unwrap_err();
        assert!(matches!(err, CandidateError::NonePassable { .. }), "{err}");
    }
}
