//! The `performance` CPU frequency policy on the pinned vCPU CPUs while the VM runs
//! (`<vmgpu:tuning governor="performance">`): cpufreq's `scaling_governor`, or, where the driver runs its own
//! governor (intel_pstate or amd-pstate-epp, i.e. active mode), the `energy_performance_preference`. The
//! original value of each CPU is journaled and put back at release.
//!
//! Shared like the CPU isolation (`shared_state`): two VMs may pin the same CPU, so a VM adopts the original
//! value a running VM recorded for it, and a CPU goes back only when no running VM's step still names it.
//! A CPU without cpufreq (a VM, cpufreq off) is skipped with one info line.
use serde::{Deserialize, Serialize};

use super::error::{Error, Result};
use super::shared_state;
use super::step::Step;
use crate::domain::read::hook_view::HookView;
use crate::host::HostRoot;
use crate::host::cpu::{CpuSet, read_cpu_list};
use crate::ops::HostOps;

/// Where the CPUs live in sysfs.
pub(crate) const CPU_DIR: &str = "/sys/devices/system/cpu";
/// The value vmgpu writes.
pub(crate) const PERFORMANCE: &str = "performance";
/// cpufreq drivers that run their own governor (active mode); their passive modes have other names
/// (`intel_cpufreq`, `amd-pstate`).
const ACTIVE_DRIVERS: [&str; 2] = ["intel_pstate", "amd-pstate-epp"];

/// Which cpufreq file of a CPU vmgpu sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Knob {
    /// `cpufreq/scaling_governor`.
    ScalingGovernor,
    /// `cpufreq/energy_performance_preference` (intel_pstate / amd-pstate-epp in active mode).
    EnergyPerformancePreference,
}

impl Knob {
    fn file(self) -> &'static str {
        match self {
            Knob::ScalingGovernor => "scaling_governor",
            Knob::EnergyPerformancePreference => "energy_performance_preference",
        }
    }
}

/// One CPU's policy before the first vmgpu VM changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CpuFreqOriginal {
    /// The CPU.
    pub cpu: u32,
    /// The file.
    pub knob: Knob,
    /// Its content before.
    pub value: String,
}

/// The cpufreq file of `cpu` (the only paths this step writes; built here, never read from a journal).
pub(crate) fn knob_path(cpu: u32, knob: Knob) -> String {
    format!("{CPU_DIR}/cpu{cpu}/cpufreq/{}", knob.file())
}

/// The step for the pinned vCPU CPUs, or nothing when none of them has cpufreq.
pub(crate) fn plan(root: &HostRoot, view: &HookView) -> Result<Vec<Step>> {
    if view.vcpu_pins.is_empty() {
        tracing::warn!("governor tuning is on but the domain has no <cputune><vcpupin>: skipped");
        return Ok(Vec::new());
    }
    let mut originals = Vec::new();
    let mut without = CpuSet::new();
    for cpu in view.vcpu_pins.iter() {
        let dir = format!("{CPU_DIR}/cpu{cpu}/cpufreq");
        let driver = root.read_optional(format!("{dir}/scaling_driver"))?;
        let epp = knob_path(cpu, Knob::EnergyPerformancePreference);
        let knob = match driver.as_deref() {
            None => {
                without.insert(cpu);
                continue;
            }
            Some(d) if ACTIVE_DRIVERS.contains(&d) && root.exists(&epp) => {
                Knob::EnergyPerformancePreference
            }
            Some(_) => Knob::ScalingGovernor,
        };
        if knob == Knob::ScalingGovernor {
            let available = root
                .read_optional(format!("{dir}/scaling_available_governors"))?
                .unwrap_or_default();
            if !available.split_whitespace().any(|g| g == PERFORMANCE) {
                tracing::info!(
                    "CPU {cpu}: no performance governor (available: {available}); left alone"
                );
                continue;
            }
        }
        let value = root.read_string(knob_path(cpu, knob))?;
        originals.push(CpuFreqOriginal { cpu, knob, value });
    }
    if !without.is_empty() {
        tracing::info!(
            "CPUs {without} have no cpufreq (a VM, or cpufreq off): governor left alone"
        );
    }
    if originals.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![Step::PerformanceGovernor {
        cpus: view.vcpu_pins.to_string(),
        originals,
    }])
}

/// A journaled value vmgpu could have read from a cpufreq file: a governor or EPP name (or an EPP number).
pub(crate) fn check_value(value: &str) -> std::result::Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a governor or energy-performance preference",
            value.chars().take(64).collect::<String>()
        ))
    }
}

/// Refuses journaled originals vmgpu would not have written.
pub(crate) fn check(cpus: &str, originals: &[CpuFreqOriginal]) -> Result<CpuSet> {
    let bad =
        |what: String| Error::Tuning(format!("journaled governor step is not vmgpu's: {what}"));
    let set: CpuSet = cpus
        .parse()
        .map_err(|_| bad(format!("{cpus:?} is not a CPU list")))?;
    for original in originals {
        if !set.contains(original.cpu) {
            return Err(bad(format!("CPU {} is not one of {set}", original.cpu)));
        }
        check_value(&original.value).map_err(bad)?;
    }
    Ok(set)
}

/// The CPUs whose policy another running VM's step holds, with that VM's originals.
fn held_by_others(ops: &dyn HostOps, vm: Option<&str>) -> Result<Vec<CpuFreqOriginal>> {
    let mut out = Vec::new();
    for holder in shared_state::holders(ops)? {
        if Some(holder.vm.as_str()) == vm {
            continue;
        }
        for step in &holder.steps {
            if let Step::PerformanceGovernor { cpus, originals } = step
                && check(cpus, originals).is_ok()
            {
                out.extend(originals.iter().cloned());
            }
        }
    }
    Ok(out)
}

/// Under the journal lock: a CPU another running VM already set keeps that VM's original.
pub(crate) fn adopt(ops: &dyn HostOps, vm: &str, originals: &mut [CpuFreqOriginal]) -> Result<()> {
    let theirs = held_by_others(ops, Some(vm))?;
    for mine in originals.iter_mut() {
        if let Some(first) = theirs
            .iter()
            .find(|o| o.cpu == mine.cpu && o.knob == mine.knob)
        {
            mine.value = first.value.clone();
        }
    }
    Ok(())
}

fn online(ops: &dyn HostOps) -> Result<CpuSet> {
    read_cpu_list(ops.root(), &format!("{CPU_DIR}/online"))
        .map_err(|e| Error::Tuning(format!("cannot read the online CPUs: {e}")))
}

/// Writes `value` unless the file already holds it. Only files of online CPUs are written.
fn set(ops: &dyn HostOps, online: &CpuSet, original: &CpuFreqOriginal, value: &str) -> Result<()> {
    if !online.contains(original.cpu) {
        tracing::info!(
            "CPU {} is offline: its cpufreq policy is left alone",
            original.cpu
        );
        return Ok(());
    }
    let path = knob_path(original.cpu, original.knob);
    match ops.root().read_optional(&path)? {
        None => Ok(()), // the policy went away (cpufreq driver unloaded)
        Some(current) if current == value => Ok(()),
        Some(_) => Ok(ops.write(&path, value)?),
    }
}

/// Sets `performance` on every CPU of the step. A CPU that refuses is logged, not a failure: the VM runs
/// anyway, only slower.
pub(crate) fn apply(ops: &dyn HostOps, cpus: &str, originals: &[CpuFreqOriginal]) -> Result<()> {
    check(cpus, originals)?;
    let online = online(ops)?;
    for original in originals {
        if let Err(e) = set(ops, &online, original, PERFORMANCE) {
            tracing::warn!("CPU {}: cannot set {PERFORMANCE}: {e}", original.cpu);
        }
    }
    Ok(())
}

/// Puts each CPU's original back, except the CPUs another running VM's step still holds.
pub(crate) fn undo(ops: &dyn HostOps, cpus: &str, originals: &[CpuFreqOriginal]) -> Result<()> {
    check(cpus, originals)?;
    let held = held_by_others(ops, None)?;
    let online = online(ops)?;
    for original in originals {
        if held.iter().any(|o| o.cpu == original.cpu) {
            continue;
        }
        set(ops, &online, original, &original.value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_check_refuses_foreign_values_and_cpus() {
        let one = |cpu, value: &str| CpuFreqOriginal {
            cpu,
            knob: Knob::ScalingGovernor,
            value: value.into(),
        };
        assert!(check("2-3", &[one(2, "schedutil"), one(3, "balance_power")]).is_ok());
        assert!(check("2-3", &[one(2, "../../etc")]).is_err());
        assert!(check("2-3", &[one(2, "")]).is_err());
        assert!(check("2-3", &[one(7, "powersave")]).is_err());
        assert!(check("x", &[]).is_err());
    }

    #[test]
    fn test_knob_path_is_the_cpufreq_file() {
        assert_eq!(
            knob_path(3, Knob::EnergyPerformancePreference),
            "/sys/devices/system/cpu/cpu3/cpufreq/energy_performance_preference"
        );
    }
}
