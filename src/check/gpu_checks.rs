//! The guest GPU: one found (and which), its IOMMU group clean, a second GPU left for the host, the drivers its
//! functions use now, ids shared with the host GPU (`vfio-pci.ids=` would take both) and its reset method.
use super::{Context, Finding};
use crate::host::gpu::CandidateError;
use crate::host::{GpuCard, Verdict};

/// Runs the GPU checks.
pub(crate) fn check(ctx: &Context) -> Vec<Finding> {
    let Some(card) = ctx.guest() else {
        return vec![candidate(ctx)];
    };
    vec![
        candidate(ctx),
        group(card),
        host_display(ctx, card),
        drivers(card),
        shared_ids(ctx, card),
        reset(ctx, card),
        outputs(card),
    ]
}

fn functions(card: &GpuCard) -> String {
    card.functions
        .iter()
        .map(|f| format!("{} {}", f.address, f.class.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn candidate(ctx: &Context) -> Finding {
    const ID: &str = "gpu.guest";
    match &ctx.guest {
        Ok(card) => Finding::pass(
            ID,
            format!(
                "guest GPU {} {} [{}] with {} function{}: {}",
                card.address(),
                card.primary.vendor_name().unwrap_or("unknown vendor"),
                card.primary.vendor_device(),
                card.functions.len(),
                if card.functions.len() == 1 { "" } else { "s" },
                functions(card)
            ),
        ),
        Err(e @ CandidateError::Ambiguous { .. }) => Finding::fail(
            ID,
            e.to_string(),
            "run `vmgpu check --gpu ADDR` (and `vmgpu setup --gpu ADDR`) with the card for the guest",
        ),
        Err(e @ CandidateError::NotAGpu { .. }) => Finding::fail(
            ID,
            e.to_string(),
            "pass one of the listed addresses to --gpu (see `vmgpu gpus`)",
        ),
        Err(e @ CandidateError::NonePassable { .. }) => Finding::fail(
            ID,
            e.to_string(),
            "fix the IOMMU first (see iommu.enabled), or move the card to a slot with its own IOMMU group",
        ),
        Err(e) => Finding::fail(
            ID,
            e.to_string(),
            "add a second GPU for the guest, or use single-GPU mode (`vmgpu define --single-gpu`)",
        ),
    }
}

fn group(card: &GpuCard) -> Finding {
    const ID: &str = "gpu.group";
    match card.verdict {
        Verdict::NotPassable if card.group.is_none() => {
            Finding::skip(ID, "no IOMMU group: the IOMMU is off (see iommu.enabled)")
        }
        Verdict::NotPassable => Finding::fail(
            ID,
            format!("the guest GPU's group is not clean: {}", card.reason),
            "move the card to a CPU-attached slot (or, on a kernel with the ACS override patch, add \
             pcie_acs_override=downstream,multifunction, which weakens isolation)",
        ),
        _ => Finding::pass(ID, format!("{}: {}", card.verdict, card.reason)),
    }
}

fn host_display(ctx: &Context, card: &GpuCard) -> Finding {
    const ID: &str = "gpu.host_display";
    if card.is_boot_display {
        return Finding::warn(
            ID,
            format!(
                "{} is the boot display (the host's screen): passing it leaves the host without a display",
                card.address()
            ),
            "choose the other GPU with --gpu, or use single-GPU mode (`vmgpu define --single-gpu`)",
        );
    }
    match ctx.cards.iter().find(|c| c.address() != card.address()) {
        Some(host) if host.primary.driver.as_deref() == Some("vfio-pci") => Finding::fail(
            ID,
            format!(
                "the host's GPU {} is on vfio-pci: the host has no display driver (black screen at boot)",
                host.address()
            ),
            "stop binding it at boot: see gpu.ids, then reboot",
        ),
        Some(host) => Finding::pass(
            ID,
            format!(
                "the host keeps {} {} [{}]{}",
                host.address(),
                host.primary.vendor_name().unwrap_or("unknown vendor"),
                host.primary.vendor_device(),
                if host.is_boot_display {
                    " (boot display)"
                } else {
                    ""
                }
            ),
        ),
        None => Finding::warn(
            ID,
            "the guest GPU is the only GPU: the host has no display while the VM runs",
            "use single-GPU mode (`vmgpu define --single-gpu`) or add a GPU for the host",
        ),
    }
}

fn drivers(card: &GpuCard) -> Finding {
    const ID: &str = "gpu.driver";
    // Only the endpoints not yet on vfio-pci are named: vfio-pci is where they should be, not a "host driver".
    let pending: Vec<String> = card
        .functions
        .iter()
        .chain(&card.foreign)
        .filter(|f| f.driver.as_deref() != Some("vfio-pci"))
        .map(|f| {
            format!(
                "{} {}",
                f.address,
                f.driver.as_deref().unwrap_or("(no driver)")
            )
        })
        .collect();
    if card
        .functions
        .iter()
        .all(|f| f.driver.as_deref() == Some("vfio-pci"))
    {
        return Finding::pass(ID, "every function of the guest GPU is on vfio-pci");
    }
    Finding::warn(
        ID,
        format!(
            "not on vfio-pci yet: {}; the vmgpu hook moves them to vfio-pci at VM start, or bind them at boot",
            pending.join(", ")
        ),
        format!(
            "vmgpu setup --gpu {} (early vfio-pci binding), or `vmgpu install` and let the hook bind at VM start",
            card.address()
        ),
    )
}

fn shared_ids(ctx: &Context, card: &GpuCard) -> Finding {
    const ID: &str = "gpu.ids";
    let guest_ids = card.ids();
    let host_cards: Vec<&GpuCard> = ctx
        .cards
        .iter()
        .filter(|c| c.address() != card.address())
        .filter(|c| c.ids().iter().any(|id| guest_ids.contains(id)))
        .collect();
    let Some(host) = host_cards.first() else {
        return Finding::pass(
            ID,
            format!(
                "no other device shares the guest GPU's ids ({})",
                guest_ids.join(", ")
            ),
        );
    };
    let cmdline_ids = ctx.host.kernel.cmdline.list("vfio-pci.ids");
    let caught: Vec<&String> = guest_ids
        .iter()
        .filter(|id| cmdline_ids.contains(id))
        .collect();
    let what = format!(
        "{} has the same ids as the guest GPU ({}): vfio-pci.ids= would take the host's GPU too",
        host.address(),
        guest_ids.join(", ")
    );
    let fix = format!(
        "bind by address instead of by id: `vmgpu setup --gpu {}` (driver_override for this address only)",
        card.address()
    );
    if caught.is_empty() {
        Finding::warn(ID, what, fix)
    } else {
        Finding::fail(
            ID,
            format!(
                "{what}, and the kernel command line has vfio-pci.ids={}",
                cmdline_ids.join(",")
            ),
            format!(
                "{}; {fix}",
                super::fix::kernel_args(
                    &ctx.host.distro,
                    &[],
                    &[&format!("vfio-pci.ids={}", cmdline_ids.join(","))]
                )
            ),
        )
    }
}

/// AMD GPUs that do not come back from a guest reboot or a second VM start without vendor-reset:
/// Polaris 10/11/12, Vega 10/20, Navi 10/14 (docs/host-anchors.md §4, failure mode 2).
const AMD_RESET_BUG: &[u16] = &[
    0x67df, 0x67ef, 0x67ff, 0x6981, 0x6987, 0x699f, 0x687f, 0x6863, 0x66a0, 0x66a1, 0x66af, 0x7310,
    0x7312, 0x731f, 0x7340, 0x7341, 0x7347,
];

fn reset(ctx: &Context, card: &GpuCard) -> Finding {
    const ID: &str = "gpu.reset";
    let p = &card.primary;
    if p.vendor == 0x1002 && AMD_RESET_BUG.contains(&p.device) {
        let kernel = &ctx.host.kernel;
        if kernel.is_present("vendor_reset") {
            return Finding::pass(
                ID,
                format!(
                    "{} [{}] has the AMD reset bug and vendor-reset is loaded (set its reset_method to \
                     device_specific)",
                    card.address(),
                    p.vendor_device()
                ),
            );
        }
        return Finding::warn(
            ID,
            format!(
                "{} [{}] has the AMD reset bug: a guest reboot or second start can hang the card",
                card.address(),
                p.vendor_device()
            ),
            format!(
                "install vendor-reset (DKMS), load it before vfio-pci, and `echo device_specific > \
                 /sys/bus/pci/devices/{}/reset_method` at boot",
                card.address()
            ),
        );
    }
    match &card.primary.reset_method {
        None => Finding::skip(
            ID,
            "the kernel does not report reset_method (older than 5.15)",
        ),
        Some(methods) if methods.is_empty() => Finding::warn(
            ID,
            format!(
                "{} has no reset method: a second VM start may fail or hang the GPU",
                card.address()
            ),
            "shut the guest down fully between starts; for AMD cards install vendor-reset",
        ),
        Some(methods) => Finding::pass(
            ID,
            format!("{} resets with {}", card.address(), methods.join(", ")),
        ),
    }
}

fn outputs(card: &GpuCard) -> Finding {
    const ID: &str = "gpu.outputs";
    if card.primary.class.is_3d() {
        Finding::warn(
            ID,
            format!(
                "{} is a 3D controller (no display outputs, often a laptop dGPU): the guest driver may refuse \
                 it (Code 43) and Looking Glass needs a display the GPU can drive",
                card.address()
            ),
            "prefer a desktop card with display outputs; for a laptop dGPU check its muxing in the firmware setup",
        )
    } else {
        Finding::pass(
            ID,
            format!(
                "{} is a VGA controller with display outputs",
                card.address()
            ),
        )
    }
}
