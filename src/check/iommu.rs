//! The IOMMU: enabled with groups present (the reason when not, and the command-line fix for this boot
//! loader), and `iommu=pt`.
use super::{Context, Finding, fix};
use crate::host::{CpuVendor, IommuStatus};

/// Runs the IOMMU checks.
pub(crate) fn check(ctx: &Context) -> Vec<Finding> {
    let mut out = vec![enabled(ctx)];
    out.push(passthrough_mode(ctx));
    out
}

fn enable_params(vendor: CpuVendor) -> Vec<&'static str> {
    match vendor {
        CpuVendor::Intel => vec!["intel_iommu=on", "iommu=pt"],
        _ => vec!["amd_iommu=on", "iommu=pt"],
    }
}

fn enabled(ctx: &Context) -> Finding {
    const ID: &str = "iommu.enabled";
    let host = ctx.host;
    let distro = &host.distro;
    let firmware = match host.cpu.vendor {
        CpuVendor::Intel => "VT-d",
        _ => "IOMMU / AMD-Vi",
    };
    match host.iommu_status() {
        IommuStatus::On { groups } => Finding::pass(
            ID,
            format!(
                "IOMMU is on: {groups} groups{}",
                match (host.iommu.dmar_table, host.iommu.ivrs_table) {
                    (true, _) => " (Intel VT-d, ACPI DMAR)",
                    (_, true) => " (AMD-Vi, ACPI IVRS)",
                    _ => "",
                }
            ),
        ),
        IommuStatus::OffOnCmdline { param } => {
            let cmdline = &host.kernel.cmdline;
            let mut add = enable_params(host.cpu.vendor);
            add.retain(|a| {
                let (key, value) = a.split_once('=').unwrap_or((a, ""));
                cmdline.get(key) != Some(value)
            });
            Finding::fail(
                ID,
                format!("IOMMU is off: the kernel command line has {param}"),
                fix::kernel_args(distro, &add, &[param.as_str()]),
            )
        }
        IommuStatus::IntelNotEnabled => Finding::fail(
            ID,
            "IOMMU is off: the firmware has VT-d (ACPI DMAR) but intel_iommu=on is not on the kernel command line",
            fix::kernel_args(distro, &["intel_iommu=on", "iommu=pt"], &[]),
        ),
        IommuStatus::NoFirmwareTable {
            virtual_machine: true,
        } => Finding::fail(
            ID,
            "no IOMMU: no ACPI DMAR/IVRS table and no IOMMU groups; this host is a VM without a virtual IOMMU",
            "GPU passthrough needs a physical host with an IOMMU (or a VM with a vIOMMU such as QEMU \
             -device intel-iommu)",
        ),
        IommuStatus::NoFirmwareTable {
            virtual_machine: false,
        } => Finding::fail(
            ID,
            format!("no IOMMU: no ACPI DMAR/IVRS table; {firmware} is off in the firmware setup"),
            format!(
                "enable {firmware} in the firmware setup, then {}",
                fix::kernel_args(distro, &enable_params(host.cpu.vendor), &[])
            ),
        ),
        IommuStatus::NoGroups => Finding::fail(
            ID,
            "the firmware announces an IOMMU but the kernel made no IOMMU groups",
            fix::kernel_args(distro, &enable_params(host.cpu.vendor), &[]),
        ),
    }
}

fn passthrough_mode(ctx: &Context) -> Finding {
    const ID: &str = "iommu.pt";
    if !ctx.host.iommu.enabled() {
        return Finding::skip(ID, "the IOMMU is off");
    }
    match ctx.host.kernel.cmdline.get("iommu") {
        Some("pt") => Finding::pass(ID, "iommu=pt: host devices skip IOMMU translation"),
        _ => Finding::warn(
            ID,
            "iommu=pt is not set: host DMA goes through IOMMU translation (slower host I/O)",
            fix::kernel_args(&ctx.host.distro, &["iommu=pt"], &[]),
        ),
    }
}
