//! IRQ affinity while the VM runs (`<vmgpu:tuning irq-affinity="yes">`): the host's device IRQs leave the
//! pinned vCPU CPUs, and the MSI vectors of the VM's VFIO devices go onto them, through
//! `/proc/irq/<N>/smp_affinity_list`.
//!
//! Shared like the CPU isolation (`shared_state`): the host's CPUs are the online CPUs minus the union of
//! every running VM's pins. The step records every IRQ's affinity from before the first vmgpu VM moved any
//! (a later VM adopts those values); a VM's undo re-applies the rule for the VMs still running, and the last
//! one puts the originals back. An IRQ keeps the host CPUs it had outside the pins (`original − pins`; all
//! host CPUs when that is empty). IRQs the kernel refuses to move (per-CPU, managed: EIO) are left and logged.
//!
//! The VFIO vectors are found when the step runs, from `/sys/bus/pci/devices/<addr>/msi_irqs/` of every
//! running VM's devices: the kernel creates them when the guest driver enables MSI, so a VM that starts
//! later puts the vectors of the VMs already running onto their pins. They vanish when QEMU closes the
//! device, so they are not restored.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{Error, Result};
use super::shared_state;
use super::step::Step;
use crate::domain::read::hook_view::HookView;
use crate::host::cpu::{CpuSet, read_cpu_list};
use crate::host::{HostRoot, PciAddress};
use crate::ops::HostOps;

/// Where the IRQs live.
pub(crate) const PROC_IRQ: &str = "/proc/irq";
/// The highest IRQ number accepted from a journal (the kernel's IRQ_BITMAP_BITS is far below).
pub(crate) const MAX_IRQ: u32 = 1 << 20;

/// One IRQ's affinity before the first vmgpu VM moved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IrqOriginal {
    /// The IRQ number.
    pub irq: u32,
    /// Its `smp_affinity_list`.
    pub cpus: String,
}

/// The affinity file of an IRQ (the only path this step writes; built here, never read from a journal).
pub(crate) fn affinity_path(irq: u32) -> String {
    format!("{PROC_IRQ}/{irq}/smp_affinity_list")
}

/// The step: this VM's pinned CPUs (vCPU pins minus emulator pins, as the isolation), its VFIO devices and
/// every IRQ's affinity now.
pub(crate) fn plan(root: &HostRoot, view: &HookView, devices: &[PciAddress]) -> Result<Vec<Step>> {
    if view.vcpu_pins.is_empty() {
        tracing::warn!(
            "IRQ affinity tuning is on but the domain has no <cputune><vcpupin>: skipped"
        );
        return Ok(Vec::new());
    }
    let online = read_cpu_list(root, "/sys/devices/system/cpu/online")
        .map_err(|e| Error::Tuning(format!("cannot read the online CPUs: {e}")))?;
    let keep = super::cpus::host_cpus(&online, view)?;
    let reserved = online.difference(&keep);
    let originals = read_all(root)?;
    if originals.is_empty() {
        tracing::info!("no {PROC_IRQ}/*/smp_affinity_list: IRQ affinity left alone");
        return Ok(Vec::new());
    }
    Ok(vec![Step::MoveIrqs {
        reserved: reserved.to_string(),
        devices: devices.to_vec(),
        originals,
    }])
}

/// Every IRQ with an affinity file, as it is now.
fn read_all(root: &HostRoot) -> Result<Vec<IrqOriginal>> {
    let mut out = Vec::new();
    for name in root.list_dir(PROC_IRQ)? {
        let Some(irq) = irq_number(&name) else {
            continue; // default_smp_affinity
        };
        if let Some(cpus) = root.read_optional(affinity_path(irq))? {
            out.push(IrqOriginal { irq, cpus });
        }
    }
    out.sort_by_key(|o| o.irq);
    Ok(out)
}

fn irq_number(name: &str) -> Option<u32> {
    if name.is_empty() || name.len() > 7 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok().filter(|n| *n <= MAX_IRQ)
}

/// Refuses a journaled step vmgpu would not have written.
pub(crate) fn check(reserved: &str, originals: &[IrqOriginal]) -> Result<CpuSet> {
    let bad = |what: String| Error::Tuning(format!("journaled IRQ step is not vmgpu's: {what}"));
    let set: CpuSet = reserved
        .parse()
        .map_err(|_| bad(format!("{reserved:?} is not a CPU list")))?;
    for original in originals {
        if original.irq > MAX_IRQ {
            return Err(bad(format!("IRQ {} is out of range", original.irq)));
        }
        if original.cpus.parse::<CpuSet>().is_err() {
            return Err(bad(format!("{:?} is not a CPU list", original.cpus)));
        }
    }
    Ok(set)
}

/// What the running VMs together ask for.
#[derive(Default)]
struct Shares {
    /// The union of their pinned CPUs.
    pinned: CpuSet,
    /// Each VFIO vector, with its VM's CPUs.
    vectors: BTreeMap<u32, CpuSet>,
    /// The originals they recorded (the first VM's value wins).
    originals: BTreeMap<u32, String>,
}

/// The shares of every running VM (`except`: one to leave out).
fn shares(ops: &dyn HostOps, except: Option<&str>) -> Result<Shares> {
    let root = ops.root();
    let mut out = Shares::default();
    for holder in shared_state::holders(ops)? {
        if Some(holder.vm.as_str()) == except {
            continue;
        }
        for step in &holder.steps {
            let Step::MoveIrqs {
                reserved,
                devices,
                originals,
            } = step
            else {
                continue;
            };
            let Ok(set) = check(reserved, originals) else {
                continue;
            };
            out.pinned = out.pinned.union(&set);
            for device in devices {
                for name in root.list_dir(format!("/sys/bus/pci/devices/{device}/msi_irqs"))? {
                    if let Some(irq) = irq_number(&name) {
                        out.vectors.insert(irq, set.clone());
                    }
                }
            }
            for original in originals {
                out.originals
                    .entry(original.irq)
                    .or_insert_with(|| original.cpus.clone());
            }
        }
    }
    Ok(out)
}

/// Under the journal lock: the IRQs a running VM already recorded keep that VM's originals.
pub(crate) fn adopt(ops: &dyn HostOps, vm: &str, originals: &mut [IrqOriginal]) -> Result<()> {
    let theirs = shares(ops, Some(vm))?;
    for mine in originals.iter_mut() {
        if let Some(first) = theirs.originals.get(&mine.irq) {
            mine.cpus = first.clone();
        }
    }
    Ok(())
}

/// Writes `cpus` to an IRQ's affinity unless it already holds them. The kernel refuses per-CPU and managed
/// IRQs (EIO): those stay where they are, with an info line.
fn set(ops: &dyn HostOps, irq: u32, cpus: &CpuSet) {
    let path = affinity_path(irq);
    let current = match ops.root().read_optional(&path) {
        Ok(Some(c)) => c,
        Ok(None) => return, // the IRQ was freed
        Err(e) => {
            tracing::info!("IRQ {irq}: cannot read its affinity: {e}");
            return;
        }
    };
    if current.parse::<CpuSet>().ok().as_ref() == Some(cpus) {
        return;
    }
    if let Err(e) = ops.write(&path, &cpus.to_string()) {
        tracing::info!("IRQ {irq} stays on CPUs {current} (the kernel refuses to move it: {e})");
    }
}

/// Applies the rule for `shares` to the IRQs in `originals` and to the VFIO vectors.
fn enforce(ops: &dyn HostOps, shares: &Shares, originals: &BTreeMap<u32, String>) -> Result<()> {
    let online = read_cpu_list(ops.root(), "/sys/devices/system/cpu/online")
        .map_err(|e| Error::Tuning(format!("cannot read the online CPUs: {e}")))?;
    let host = online.difference(&shares.pinned);
    if host.is_empty() {
        return Err(Error::Tuning(format!(
            "the running VMs' pins ({}) take every online CPU ({online})",
            shares.pinned
        )));
    }
    for (irq, cpus) in &shares.vectors {
        set(ops, *irq, cpus);
    }
    for (irq, original) in originals {
        if shares.vectors.contains_key(irq) {
            continue;
        }
        let original: CpuSet = original.parse().unwrap_or_default();
        let kept = original.difference(&shares.pinned);
        let target = if kept.is_empty() { &host } else { &kept };
        set(ops, *irq, target);
    }
    Ok(())
}

/// Moves the IRQs for every running VM, this one (already journaled) included.
pub(crate) fn apply(ops: &dyn HostOps, originals: &[IrqOriginal]) -> Result<()> {
    let shares = shares(ops, None)?;
    let mut all = shares.originals.clone();
    for o in originals {
        all.entry(o.irq).or_insert_with(|| o.cpus.clone());
    }
    enforce(ops, &shares, &all)
}

/// Takes this VM's share back: the rule for the VMs still running, or, after the last, every original.
pub(crate) fn undo(ops: &dyn HostOps, originals: &[IrqOriginal]) -> Result<()> {
    let shares = shares(ops, None)?;
    let mut all: BTreeMap<u32, String> =
        originals.iter().map(|o| (o.irq, o.cpus.clone())).collect();
    if !shares.pinned.is_empty() {
        all.extend(shares.originals.clone());
        return enforce(ops, &shares, &all);
    }
    for (irq, cpus) in &all {
        set(ops, *irq, &cpus.parse().unwrap_or_default());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_check_refuses_what_vmgpu_does_not_write() {
        let irq = |irq, cpus: &str| IrqOriginal {
            irq,
            cpus: cpus.into(),
        };
        // the devices are typed (`PciAddress`): a journal with another device name does not parse
        assert!(check("2-3", &[irq(9, "0-3")]).is_ok());
        assert!(check("2-3", &[irq(MAX_IRQ + 1, "0")]).is_err());
        assert!(check("2-3", &[irq(9, "0-3;x")]).is_err());
        assert!(check("all", &[]).is_err());
    }

    #[test]
    fn test_irq_numbers_are_plain_decimal() {
        assert_eq!(irq_number("33"), Some(33));
        assert_eq!(irq_number("default_smp_affinity"), None);
        assert_eq!(irq_number("+3"), None);
        assert_eq!(irq_number(""), None);
    }
}
