//! `check`: every step of a passthrough host as a [`Finding`] (PASS/WARN/FAIL/SKIP, one line, the exact fix
//! for this distro). One file per area, each an [`Area`] `fn(&Context) -> Vec<Finding>` that only reads the
//! [`Host`] snapshot; add an area by adding a file and a line in [`AREAS`].
use std::fmt;

use serde::Serialize;

use crate::host::gpu::{self, CandidateError};
use crate::host::{GpuCard, Host, PciAddress};

pub(crate) mod fix;
pub(crate) mod gpu_checks;
pub(crate) mod iommu;
pub(crate) mod libvirt;
pub(crate) mod looking_glass;
pub(crate) mod memory;
pub(crate) mod packages;
pub(crate) mod setup;
pub(crate) mod spice;
pub(crate) mod style;
pub(crate) mod vfio;
pub(crate) mod virt;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    /// Fine.
    Pass,
    /// Not blocking, but worth fixing.
    Warn,
    /// Passthrough will not work until this is fixed.
    Fail,
    /// Could not be checked (something it depends on is missing).
    Skip,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Pass => "PASS",
            Severity::Warn => "WARN",
            Severity::Fail => "FAIL",
            Severity::Skip => "SKIP",
        })
    }
}

/// One check's result: a value, not an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable id, `area.step` (e.g. `iommu.enabled`).
    pub id: &'static str,
    /// The outcome.
    pub severity: Severity,
    /// One line: what was found.
    pub what: String,
    /// The exact command or edit that fixes it, for this distro (none for PASS/SKIP).
    pub fix: Option<String>,
}

impl Finding {
    /// A PASS.
    pub(crate) fn pass(id: &'static str, what: impl Into<String>) -> Self {
        Self {
            id,
            severity: Severity::Pass,
            what: what.into(),
            fix: None,
        }
    }
    /// A WARN with its fix.
    pub(crate) fn warn(id: &'static str, what: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            id,
            severity: Severity::Warn,
            what: what.into(),
            fix: Some(fix.into()),
        }
    }
    /// A FAIL with its fix.
    pub(crate) fn fail(id: &'static str, what: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            id,
            severity: Severity::Fail,
            what: what.into(),
            fix: Some(fix.into()),
        }
    }
    /// A SKIP saying why.
    pub(crate) fn skip(id: &'static str, why: impl Into<String>) -> Self {
        Self {
            id,
            severity: Severity::Skip,
            what: why.into(),
            fix: None,
        }
    }
}

/// What every area gets: the host snapshot, its GPUs and the chosen guest GPU.
#[derive(Debug)]
pub struct Context<'a> {
    /// The snapshot.
    pub host: &'a Host,
    /// Every GPU as a unit.
    pub cards: Vec<GpuCard>,
    /// The guest GPU: `--gpu` if given, else the one candidate ([`gpu::guest_candidate`]).
    pub guest: Result<GpuCard, CandidateError>,
    /// True when the user chose the GPU with `--gpu`.
    pub chosen: bool,
}

impl<'a> Context<'a> {
    /// Builds the context; `wanted` is `--gpu`.
    pub fn new(host: &'a Host, wanted: Option<PciAddress>) -> Self {
        let cards = gpu::cards(host);
        let guest = gpu::guest_candidate(&cards, wanted).cloned();
        Self {
            host,
            cards,
            guest,
            chosen: wanted.is_some(),
        }
    }

    /// The guest GPU when one was found.
    pub(crate) fn guest(&self) -> Option<&GpuCard> {
        self.guest.as_ref().ok()
    }
}

/// Where libvirt keeps the persistent domains' XML.
const DOMAIN_DIR: &str = "/etc/libvirt/qemu";

/// The vmgpu domains (those with vmgpu metadata) as `(name, XML)`, sorted: read from the persistent domain
/// files (never from libvirt); without read access there are none.
pub(crate) fn vmgpu_domains(root: &crate::host::HostRoot) -> Vec<(String, String)> {
    let Ok(mut names) = root.list_dir(DOMAIN_DIR) else {
        return Vec::new();
    };
    names.sort();
    names
        .iter()
        .filter_map(|n| {
            let vm = n.strip_suffix(".xml")?;
            let xml = root.read_string(format!("{DOMAIN_DIR}/{n}")).ok()?;
            xml.contains(crate::domain::read::metadata::NAMESPACE)
                .then(|| (vm.to_string(), xml))
        })
        .collect()
}

/// One area of checks.
pub(crate) type Area = fn(&Context) -> Vec<Finding>;

/// Every area in the order a user walks the seed guide: CPU and KVM, IOMMU, GPU, vfio, packages, libvirt,
/// memory, Looking Glass; then what the last `vmgpu setup` promised.
pub(crate) const AREAS: &[Area] = &[
    virt::check,
    iommu::check,
    gpu_checks::check,
    vfio::check,
    packages::check,
    libvirt::check,
    memory::check,
    looking_glass::check,
    setup::check,
    spice::check,
];

/// Runs every area.
pub(crate) fn run(ctx: &Context) -> Vec<Finding> {
    AREAS.iter().flat_map(|area| area(ctx)).collect()
}

/// The guest GPU as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct GuestGpu {
    /// Its primary function.
    pub address: PciAddress,
    /// `vendor:device`.
    pub id: String,
    /// Every function that goes to the guest.
    pub functions: Vec<PciAddress>,
    /// The IOMMU group.
    pub group: Option<u32>,
    /// Verdict text.
    pub verdict: String,
    /// Why.
    pub reason: String,
}

/// The whole report (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// One-line description of the host.
    pub host: String,
    /// The chosen guest GPU, if any.
    pub guest_gpu: Option<GuestGpu>,
    /// Why there is none, if none.
    pub guest_gpu_error: Option<String>,
    /// Every finding in order.
    pub findings: Vec<Finding>,
    /// Counts per severity.
    pub summary: Summary,
}

/// Counts per severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// PASS count.
    pub pass: usize,
    /// WARN count.
    pub warn: usize,
    /// FAIL count.
    pub fail: usize,
    /// SKIP count.
    pub skip: usize,
}

impl Report {
    /// Runs every check and builds the report.
    pub fn build(ctx: &Context) -> Self {
        let findings = run(ctx);
        let mut summary = Summary::default();
        for f in &findings {
            match f.severity {
                Severity::Pass => summary.pass += 1,
                Severity::Warn => summary.warn += 1,
                Severity::Fail => summary.fail += 1,
                Severity::Skip => summary.skip += 1,
            }
        }
        Self {
            host: describe_host(ctx.host),
            guest_gpu: ctx.guest().map(|c| GuestGpu {
                address: c.address(),
                id: c.primary.vendor_device(),
                functions: c.functions.iter().map(|f| f.address).collect(),
                group: c.group,
                verdict: c.verdict.to_string(),
                reason: c.reason.clone(),
            }),
            guest_gpu_error: ctx.guest.as_ref().err().map(ToString::to_string),
            findings,
            summary,
        }
    }

    /// True when something FAILed.
    pub(crate) fn failed(&self) -> bool {
        self.summary.fail > 0
    }
}

/// `openSUSE Tumbleweed, kernel 6.13.7-1-default, GRUB2 + dracut, AMD Ryzen 9 5900X (24 CPUs)`.
pub(crate) fn describe_host(host: &Host) -> String {
    let d = &host.distro;
    format!(
        "{}, kernel {}, {} + {}, {} ({} CPUs)",
        d.pretty_name,
        host.kernel.release,
        d.bootloader,
        d.initramfs,
        host.cpu.model.as_deref().unwrap_or("unknown CPU"),
        host.cpu.online.len()
    )
}
