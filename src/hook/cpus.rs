//! Host CPU isolation: while the VM runs, host processes keep every online CPU except the ones pinned to
//! vCPUs (`<cputune><vcpupin>`; CPUs that `<emulatorpin>` names stay allowed), and except those of every
//! other running vmgpu VM (`shared_state`). With systemd as PID 1:
//! `systemctl set-property --runtime` `AllowedCPUs=` on `system.slice`, `user.slice` and `init.scope`.
//! Without systemd: cgroup v2 `cpuset.cpus` of the same three cgroups under `/sys/fs/cgroup`, enabling the
//! cpuset controller at the root and creating a missing cgroup (an empty one only restricts what is later
//! moved there). `machine.slice` (where libvirt puts QEMU) is never restricted.
use super::error::{Error, Result};
use super::shared_state::{CpuBaseline, UnitBaseline};
use super::step::Step;
use crate::domain::read::hook_view::HookView;
use crate::host::HostRoot;
use crate::host::cpu::{CpuSet, read_cpu_list};

/// The cgroups the host's own processes live in.
pub(crate) const HOST_UNITS: [&str; 3] = ["system.slice", "user.slice", "init.scope"];
/// Where cgroup v2 is mounted.
pub(crate) const CGROUP: &str = "/sys/fs/cgroup";

/// True when systemd is PID 1 (`sd_booted()`: `/run/systemd/system` exists).
pub(crate) fn systemd_booted(root: &HostRoot) -> bool {
    root.path("/run/systemd/system").is_dir()
}

/// The CPUs the host keeps: online − (vCPU pins − emulator pins).
pub(crate) fn host_cpus(online: &CpuSet, view: &HookView) -> Result<CpuSet> {
    if !view.vcpu_pins.is_subset(online) {
        return Err(Error::Cpus(format!(
            "<vcpupin> names CPUs {} but only {online} are online",
            view.vcpu_pins.difference(online)
        )));
    }
    let reserved = view.vcpu_pins.difference(&view.emulator_pins);
    let keep = online.difference(&reserved);
    if keep.is_empty() {
        return Err(Error::Cpus(format!(
            "the vCPUs are pinned to every online CPU ({online}): the host would have none left; pin fewer \
             vCPUs or let <emulatorpin> share some"
        )));
    }
    Ok(keep)
}

/// The step that isolates this VM's CPUs: what it reserves, and the host's cgroups as they are now (the
/// baseline; `shared_state::adopt` replaces it with the first running VM's when there is one).
pub(crate) fn plan(root: &HostRoot, view: &HookView) -> Result<Vec<Step>> {
    if view.vcpu_pins.is_empty() {
        tracing::warn!(
            "isolate-cpus is on but the domain has no <cputune><vcpupin>: nothing to isolate"
        );
        return Ok(Vec::new());
    }
    let online = read_cpu_list(root, "/sys/devices/system/cpu/online")
        .map_err(|e| Error::Cpus(format!("cannot read the online CPUs: {e}")))?;
    let keep = host_cpus(&online, view)?;
    let reserved = online.difference(&keep).to_string();
    let read_cpus = |unit: &str| -> Result<String> {
        Ok(root
            .read_optional(format!("{CGROUP}/{unit}/cpuset.cpus"))?
            .unwrap_or_default())
    };
    let mut baseline = CpuBaseline {
        systemd: systemd_booted(root),
        ..CpuBaseline::default()
    };
    if !baseline.systemd {
        let controllers = root
            .read_optional(format!("{CGROUP}/cgroup.controllers"))?
            .ok_or_else(|| {
                Error::Cpus(format!(
                    "no cgroup v2 at {CGROUP} (mount -t cgroup2 none {CGROUP}); cgroup v1 is not supported"
                ))
            })?;
        if !controllers.split_whitespace().any(|c| c == "cpuset") {
            return Err(Error::Cpus(format!(
                "the cgroup v2 cpuset controller is not available at {CGROUP}"
            )));
        }
        let enabled = root
            .read_optional(format!("{CGROUP}/cgroup.subtree_control"))?
            .unwrap_or_default();
        baseline.controller_enabled = enabled.split_whitespace().any(|c| c == "cpuset");
    }
    for unit in HOST_UNITS {
        baseline.units.push(UnitBaseline {
            unit: unit.to_string(),
            cpus: read_cpus(unit)?,
            existed: root.path(format!("{CGROUP}/{unit}")).is_dir(),
        });
    }
    Ok(vec![Step::IsolateCpus { reserved, baseline }])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(vcpus: &str, emulator: &str) -> HookView {
        HookView {
            vcpu_pins: vcpus.parse().unwrap(),
            emulator_pins: emulator.parse().unwrap(),
            ..HookView::default()
        }
    }

    #[test]
    fn test_host_cpus_removes_vcpu_pins_keeps_emulator() {
        let online: CpuSet = "0-7".parse().unwrap();
        let keep = host_cpus(&online, &view("2-7", "2")).unwrap();
        assert_eq!(keep.to_string(), "0-2");
    }

    #[test]
    fn test_host_cpus_all_pinned_is_error() {
        let online: CpuSet = "0-3".parse().unwrap();
        assert!(host_cpus(&online, &view("0-3", "")).is_err());
    }

    #[test]
    fn test_host_cpus_offline_pin_is_error() {
        let online: CpuSet = "0-3".parse().unwrap();
        assert!(host_cpus(&online, &view("6", "")).is_err());
    }
}
