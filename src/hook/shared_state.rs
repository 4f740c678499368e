//! Host state that several running vmgpu VMs share: CPU isolation and hugepage pools (and the tuning steps,
//! `hook::governor` and `hook::irqs`, which follow the same rule with this module's [`holders`]).
//!
//! The rule (docs/hook.md): host processes get every online CPU except the **union** of the CPUs
//! every running vmgpu VM reserved, and a hugepage pool holds what it held before the first vmgpu VM plus
//! the **sum** of every running VM's pages (less what was already free then). A VM's undo takes away only its
//! own share; the host's original values come back when the last VM that shares a resource stops.
//!
//! There is no second file to keep in step: the journals are the registry. A VM's share is its
//! [`Step::IsolateCpus`] / [`Step::ReserveHugepages`] step, and a journal counts while it is `Preparing` or
//! `Prepared` (a `Releasing` journal is a VM on its way out, the one being undone included). Each share
//! carries the host's original values (the *baseline*): the first VM reads them from the host, every later
//! VM copies them from a VM already there ([`adopt`], under the journal lock), so whichever VM is last can
//! put them back. Every journaled value is checked before it is used ([`check_cpus`], [`check_pool`]):
//! units come from a fixed list and pool paths are built here, never read from a journal.
use serde::{Deserialize, Serialize};

use super::error::{Error, Result};
use super::step::Step;
use crate::host::cpu::{CpuSet, read_cpu_list};
use crate::journal::{Phase, Store};
use crate::ops::HostOps;

/// The host's CPU isolation before any vmgpu VM changed it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CpuBaseline {
    /// Restricted through systemd (`AllowedCPUs=`), else through the cgroup v2 files.
    pub systemd: bool,
    /// cgroup mode: `cpuset` was already in the root's `cgroup.subtree_control`.
    #[serde(default)]
    pub controller_enabled: bool,
    /// Each host cgroup as it was.
    pub units: Vec<UnitBaseline>,
}

/// One host cgroup before any vmgpu VM restricted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UnitBaseline {
    /// `system.slice`, `user.slice` or `init.scope`.
    pub unit: String,
    /// Its `cpuset.cpus` (empty: unrestricted).
    pub cpus: String,
    /// The cgroup directory existed (cgroup mode creates a missing one and removes it at the end).
    pub existed: bool,
}

/// A hugepage pool before any vmgpu VM grew it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PoolBaseline {
    /// `nr_hugepages`.
    pub pages: u64,
    /// `free_hugepages` (pages a VM may use without growing the pool).
    pub free: u64,
}

/// The `nr_hugepages` file of a pool: the global one, or a NUMA node's.
pub(crate) fn pool_path(size_kib: u64, node: Option<u32>) -> String {
    match node {
        Some(n) => {
            format!(
                "/sys/devices/system/node/node{n}/hugepages/hugepages-{size_kib}kB/nr_hugepages"
            )
        }
        None => format!(
            "{}/hugepages-{size_kib}kB/nr_hugepages",
            super::hugepages::POOLS
        ),
    }
}

/// What a pool holds for the VMs sharing it: the baseline plus their pages beyond what was free before.
pub(crate) fn pool_target(baseline: PoolBaseline, pages: u64) -> u64 {
    baseline
        .pages
        .saturating_add(pages.saturating_sub(baseline.free))
}

/// Refuses a journaled CPU share that vmgpu would not have written.
pub(crate) fn check_cpus(reserved: &str, baseline: &CpuBaseline) -> Result<CpuSet> {
    let bad = |what: String| Error::Cpus(format!("journaled CPU isolation is not vmgpu's: {what}"));
    let set: CpuSet = reserved
        .parse()
        .map_err(|_| bad(format!("{reserved:?} is not a CPU list")))?;
    for unit in &baseline.units {
        if !super::cpus::HOST_UNITS.contains(&unit.unit.as_str()) {
            return Err(bad(format!("{:?} is not a host cgroup", unit.unit)));
        }
        if !unit.cpus.is_empty() && unit.cpus.parse::<CpuSet>().is_err() {
            return Err(bad(format!("{:?} is not a CPU list", unit.cpus)));
        }
    }
    Ok(set)
}

/// Refuses a journaled pool that vmgpu would not have written.
pub(crate) fn check_pool(size_kib: u64, node: Option<u32>) -> Result<()> {
    let size_ok = size_kib >= 64 && size_kib.is_power_of_two() && size_kib <= 16 * 1024 * 1024;
    if !size_ok || node.is_some_and(|n| n >= 1024) {
        return Err(Error::Hugepages(format!(
            "journaled pool ({size_kib} KiB pages, node {node:?}) is not one vmgpu writes"
        )));
    }
    Ok(())
}

/// One VM's shares, from its journal.
pub(super) struct Holder {
    /// The VM.
    pub vm: String,
    /// Its journaled steps.
    pub steps: Vec<Step>,
}

/// Every VM whose journal still holds host state (`Preparing` or `Prepared`). A journal that cannot be read
/// is skipped with a warning (its owner's share is then unknown; `vmgpu status` shows it).
pub(super) fn holders(ops: &dyn HostOps) -> Result<Vec<Holder>> {
    let store = Store::new(ops.root());
    let mut out = Vec::new();
    for vm in store.list()? {
        match store.load::<Step>(&vm) {
            Ok(Some(journal)) if journal.phase != Phase::Releasing => out.push(Holder {
                vm,
                steps: journal.steps,
            }),
            Ok(_) => {}
            Err(e) => tracing::warn!("ignoring VM {vm:?}'s journal for the shared host state: {e}"),
        }
    }
    Ok(out)
}

/// The CPUs every holder reserved, and who they are.
fn reserved_cpus(holders: &[Holder]) -> (CpuSet, Vec<String>) {
    let mut union = CpuSet::new();
    let mut who = Vec::new();
    for holder in holders {
        for step in &holder.steps {
            if let Step::IsolateCpus { reserved, baseline } = step
                && let Ok(set) = check_cpus(reserved, baseline)
            {
                union = union.union(&set);
                who.push(format!("{} ({reserved})", holder.vm));
            }
        }
    }
    (union, who)
}

/// The pages every holder needs from one pool.
fn reserved_pages(holders: &[Holder], size: u64, on: Option<u32>) -> u64 {
    holders
        .iter()
        .flat_map(|h| &h.steps)
        .filter_map(|step| match step {
            Step::ReserveHugepages {
                size_kib,
                node,
                pages,
                ..
            } if *size_kib == size && *node == on => Some(*pages),
            _ => None,
        })
        .sum()
}

/// Under the journal lock, before `vm`'s steps are journaled: a VM that is not the first to share a resource
/// takes over the baseline of one that is, and is refused when the shares together do not fit the host
/// (no CPU left for host processes; a pool larger than the host can give).
pub(crate) fn adopt(ops: &dyn HostOps, vm: &str, steps: &mut [Step]) -> Result<()> {
    let others: Vec<Holder> = holders(ops)?.into_iter().filter(|h| h.vm != vm).collect();
    for step in steps.iter_mut() {
        match step {
            Step::IsolateCpus { reserved, baseline } => {
                let mine = check_cpus(reserved, baseline)?;
                let existing = others.iter().flat_map(|h| &h.steps).find_map(|s| match s {
                    Step::IsolateCpus { baseline, .. } => Some(baseline.clone()),
                    _ => None,
                });
                if let Some(existing) = existing {
                    *baseline = existing;
                }
                let (theirs, who) = reserved_cpus(&others);
                let online = read_cpu_list(ops.root(), "/sys/devices/system/cpu/online")
                    .map_err(|e| Error::Cpus(format!("cannot read the online CPUs: {e}")))?;
                if online.difference(&theirs.union(&mine)).is_empty() {
                    return Err(Error::Cpus(format!(
                        "this VM's vCPUs ({mine}) and those of the running VMs {} together take every online \
                         CPU ({online}): the host would have none left; pin this VM to other CPUs",
                        who.join(", ")
                    )));
                }
            }
            Step::ReserveHugepages {
                size_kib,
                node,
                pages,
                baseline,
            } => {
                check_pool(*size_kib, *node)?;
                let existing = others.iter().flat_map(|h| &h.steps).find_map(|s| match s {
                    Step::ReserveHugepages {
                        size_kib: size,
                        node: on,
                        baseline,
                        ..
                    } if size == size_kib && on == node => Some(*baseline),
                    _ => None,
                });
                if let Some(existing) = existing {
                    *baseline = existing;
                }
                let total = reserved_pages(&others, *size_kib, *node) + *pages;
                let target = pool_target(*baseline, total);
                super::hugepages::check_reachable(ops.root(), *size_kib, *node, target, *pages)?;
            }
            Step::PerformanceGovernor { cpus, originals } => {
                super::governor::check(cpus, originals)?;
                super::governor::adopt(ops, vm, originals)?;
            }
            Step::MoveIrqs {
                reserved,
                originals,
                ..
            } => {
                super::irqs::check(reserved, originals)?;
                super::irqs::adopt(ops, vm, originals)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Applies the CPU isolation every holder (this VM's journal included) asks for.
pub(crate) fn apply_cpus(ops: &dyn HostOps, baseline: &CpuBaseline) -> Result<()> {
    let (union, who) = reserved_cpus(&holders(ops)?);
    let online = read_cpu_list(ops.root(), "/sys/devices/system/cpu/online")
        .map_err(|e| Error::Cpus(format!("cannot read the online CPUs: {e}")))?;
    let keep = online.difference(&union);
    if keep.is_empty() {
        return Err(Error::Cpus(format!(
            "the running VMs {} take every online CPU ({online})",
            who.join(", ")
        )));
    }
    restrict(ops, baseline, &keep.to_string())
}

/// Takes one VM's CPUs back: the other holders' isolation stays; after the last one, the baseline.
pub(crate) fn undo_cpus(ops: &dyn HostOps, baseline: &CpuBaseline) -> Result<()> {
    let holders = holders(ops)?;
    let (union, _) = reserved_cpus(&holders);
    if !union.is_empty() {
        let online = read_cpu_list(ops.root(), "/sys/devices/system/cpu/online")
            .map_err(|e| Error::Cpus(format!("cannot read the online CPUs: {e}")))?;
        return restrict(ops, baseline, &online.difference(&union).to_string());
    }
    use super::cpus::CGROUP;
    for unit in &baseline.units {
        let dir = format!("{CGROUP}/{}", unit.unit);
        let step = if baseline.systemd {
            Step::RestrictUnitCpus {
                unit: unit.unit.clone(),
                cpus: String::new(),
                original: unit.cpus.clone(),
            }
        } else if unit.existed {
            Step::RestrictCgroupCpus {
                path: format!("{dir}/cpuset.cpus"),
                cpus: String::new(),
                original: unit.cpus.clone(),
            }
        } else {
            Step::CreateCgroup { path: dir }
        };
        step.undo(ops)?;
    }
    if !baseline.systemd && !baseline.controller_enabled {
        Step::EnableController {
            path: format!("{CGROUP}/cgroup.subtree_control"),
            controller: "cpuset".into(),
        }
        .undo(ops)?;
    }
    Ok(())
}

/// Restricts the host cgroups to `keep`.
fn restrict(ops: &dyn HostOps, baseline: &CpuBaseline, keep: &str) -> Result<()> {
    use super::cpus::CGROUP;
    let root = ops.root();
    if baseline.systemd {
        for unit in &baseline.units {
            ops.systemctl(&[
                "set-property",
                "--runtime",
                &unit.unit,
                &format!("AllowedCPUs={keep}"),
            ])?;
        }
        return Ok(());
    }
    let subtree = format!("{CGROUP}/cgroup.subtree_control");
    let enabled = root.read_optional(&subtree)?.unwrap_or_default();
    if !enabled.split_whitespace().any(|c| c == "cpuset") {
        ops.write(&subtree, "+cpuset")?;
    }
    for unit in &baseline.units {
        let dir = format!("{CGROUP}/{}", unit.unit);
        if !root.path(&dir).is_dir() {
            ops.create_dir(&dir)?;
        }
        ops.write(&format!("{dir}/cpuset.cpus"), keep)?;
    }
    Ok(())
}

/// Grows a pool to what every holder (this VM included) needs.
pub(crate) fn apply_pages(
    ops: &dyn HostOps,
    size_kib: u64,
    node: Option<u32>,
    pages: u64,
    baseline: PoolBaseline,
) -> Result<()> {
    check_pool(size_kib, node)?;
    let total = reserved_pages(&holders(ops)?, size_kib, node).max(pages);
    let target = pool_target(baseline, total);
    super::hugepages::allocate(ops, &pool_path(size_kib, node), size_kib, target, pages)
}

/// Shrinks a pool to what the other holders need; after the last one, to the baseline.
pub(crate) fn undo_pages(
    ops: &dyn HostOps,
    size_kib: u64,
    node: Option<u32>,
    baseline: PoolBaseline,
) -> Result<()> {
    check_pool(size_kib, node)?;
    let path = pool_path(size_kib, node);
    let total = reserved_pages(&holders(ops)?, size_kib, node);
    let target = if total == 0 {
        baseline.pages
    } else {
        pool_target(baseline, total)
    };
    if ops.root().read_u64(&path)? == target {
        return Ok(());
    }
    Ok(ops.write(&path, &target.to_string())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_pool_target_uses_free_baseline_pages_first() {
        let boot_pool = PoolBaseline {
            pages: 1024,
            free: 1024,
        };
        assert_eq!(pool_target(boot_pool, 512), 1024);
        assert_eq!(pool_target(boot_pool, 1536), 1536);
        assert_eq!(pool_target(PoolBaseline::default(), 192), 192);
    }

    #[test]
    fn test_check_cpus_refuses_foreign_unit() {
        let baseline = CpuBaseline {
            units: vec![UnitBaseline {
                unit: "../../etc".into(),
                cpus: String::new(),
                existed: true,
            }],
            ..CpuBaseline::default()
        };
        assert!(check_cpus("2", &baseline).is_err());
        assert!(check_cpus("x", &CpuBaseline::default()).is_err());
    }

    #[test]
    fn test_check_pool_refuses_odd_sizes() {
        assert!(check_pool(2048, Some(0)).is_ok());
        assert!(check_pool(3000, None).is_err());
        assert!(check_pool(2048, Some(5000)).is_err());
    }
}
