//! Hugepages for `<memoryBacking><hugepages>`: the pages each size (and host NUMA node, when
//! `<numatune>` names exactly one) needs, allocated in prepare (plain allocation first; when short, drop caches and compact memory,
//! read the count back, retry once more, "got N of M pages" when short) and the pool put back to its old count in
//! release. 1 GiB pages rarely allocate at runtime: the error points at the boot parameter. Several running
//! VMs share a pool (`shared_state`): it holds the sum of their pages. A request larger than the memory the
//! pool can reach is refused at plan time (`check_reachable`).
use std::collections::BTreeMap;

use super::error::{Error, Result};
use super::shared_state::{self, PoolBaseline};
use super::step::Step;
use crate::domain::read::hook_view::HookView;
use crate::host::HostRoot;
use crate::ops::HostOps;

/// The global pools.
pub(crate) const POOLS: &str = "/sys/kernel/mm/hugepages";
const ONE_GIB_KIB: u64 = 1024 * 1024;

/// The default hugepage size in KiB (`Hugepagesize:` in /proc/meminfo; 2048 when absent).
pub(crate) fn default_size_kib(root: &HostRoot) -> u64 {
    root.read_optional("/proc/meminfo")
        .ok()
        .flatten()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("Hugepagesize:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(2048)
}

/// Pages needed per page size for the guest memory.
pub(crate) fn pages_needed(view: &HookView, default_kib: u64) -> Result<BTreeMap<u64, u64>> {
    let mut kib_per_size: BTreeMap<u64, u64> = BTreeMap::new();
    if view.hugepage_sizes.is_empty() {
        kib_per_size.insert(default_kib, view.memory_kib);
    } else {
        let mut covered = 0u64;
        let mut rest_size = None;
        for page in &view.hugepage_sizes {
            match &page.guest_nodes {
                Some(nodes) if !view.numa_cells.is_empty() => {
                    let kib: u64 = view
                        .numa_cells
                        .iter()
                        .filter(|(id, _)| nodes.contains(id))
                        .map(|(_, kib)| kib)
                        .sum();
                    covered += kib;
                    *kib_per_size.entry(page.size_kib).or_default() += kib;
                }
                _ => rest_size = Some(page.size_kib),
            }
        }
        if let Some(size) = rest_size {
            *kib_per_size.entry(size).or_default() += view.memory_kib.saturating_sub(covered);
        }
    }
    Ok(kib_per_size
        .into_iter()
        .filter(|(_, kib)| *kib > 0)
        .map(|(size, kib)| (size, kib.div_ceil(size)))
        .collect())
}

/// The steps that reserve this VM's pages, one per pool. Refuses a request the pool cannot reach.
pub(crate) fn plan(root: &HostRoot, view: &HookView) -> Result<Vec<Step>> {
    if !view.hugepages {
        tracing::warn!(
            "hugepages is on but the domain has no <memoryBacking><hugepages>: nothing to allocate"
        );
        return Ok(Vec::new());
    }
    let node = view
        .numatune_nodes
        .as_ref()
        .filter(|n| n.len() == 1)
        .and_then(|n| n.iter().next().copied());
    let mut steps = Vec::new();
    for (size_kib, needed) in pages_needed(view, default_size_kib(root))? {
        let global = format!("{POOLS}/hugepages-{size_kib}kB");
        if !root.path(&global).is_dir() {
            return Err(Error::Hugepages(format!(
                "this host has no {size_kib} KiB pages ({global} is missing)"
            )));
        }
        let node = node.filter(|_| {
            let path = shared_state::pool_path(size_kib, node);
            root.exists(path.trim_end_matches("/nr_hugepages"))
        });
        let path = shared_state::pool_path(size_kib, node);
        let dir = path.trim_end_matches("/nr_hugepages");
        let baseline = PoolBaseline {
            pages: root.read_u64(&path)?,
            free: root
                .read_optional(format!("{dir}/free_hugepages"))?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        };
        check_reachable(
            root,
            size_kib,
            node,
            shared_state::pool_target(baseline, needed),
            needed,
        )?;
        steps.push(Step::ReserveHugepages {
            size_kib,
            node,
            pages: needed,
            baseline,
        });
    }
    Ok(steps)
}

/// What the host keeps out of hugepages: 1/16 of its memory, at least 512 MiB.
pub(crate) fn host_floor_kib(total_kib: u64) -> u64 {
    (total_kib / 16).max(512 * 1024)
}

/// Refuses a pool of `target` pages (for a VM that needs `pages` of them) that is larger than the memory
/// hugepages can reach: MemTotal (of the NUMA node when pinned to one) minus the host's floor minus what the
/// other page sizes' pools hold. Writing such a count would make the kernel take every free page first.
pub(crate) fn check_reachable(
    root: &HostRoot,
    size_kib: u64,
    node: Option<u32>,
    target: u64,
    pages: u64,
) -> Result<()> {
    let (meminfo, prefix, pools, place) = match node {
        Some(n) => (
            format!("/sys/devices/system/node/node{n}/meminfo"),
            format!("Node {n} MemTotal:"),
            format!("/sys/devices/system/node/node{n}/hugepages"),
            format!("NUMA node {n}"),
        ),
        None => (
            "/proc/meminfo".to_string(),
            "MemTotal:".to_string(),
            POOLS.to_string(),
            "this host".to_string(),
        ),
    };
    let Some(total_kib) = root.read_optional(&meminfo)?.and_then(|text| {
        text.lines()
            .find_map(|l| l.trim_start().strip_prefix(prefix.as_str()))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    }) else {
        tracing::warn!(
            "cannot read MemTotal from {meminfo}: not checking the hugepage request against it"
        );
        return Ok(());
    };
    let floor = host_floor_kib(total_kib);
    let mut others_kib = 0u64;
    for name in root.list_dir(&pools).unwrap_or_default() {
        let Some(size) = name
            .strip_prefix("hugepages-")
            .and_then(|n| n.strip_suffix("kB"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if size != size_kib {
            let nr = root
                .read_optional(format!("{pools}/{name}/nr_hugepages"))?
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            others_kib = others_kib.saturating_add(nr.saturating_mul(size));
        }
    }
    let reachable_kib = total_kib.saturating_sub(floor).saturating_sub(others_kib);
    let wanted_kib = target.saturating_mul(size_kib);
    if wanted_kib <= reachable_kib {
        return Ok(());
    }
    let mib = |kib: u64| kib / 1024;
    let pool = if target > pages {
        format!(
            " (with the other running VMs' pages the pool would hold {target} pages, {} MiB)",
            mib(wanted_kib)
        )
    } else {
        String::new()
    };
    let others = if others_kib > 0 {
        format!(", minus {} MiB in other hugepage pools", mib(others_kib))
    } else {
        String::new()
    };
    Err(Error::Hugepages(format!(
        "the domain needs {pages} pages of {size_kib} KiB ({} MiB){pool}, but {place} can give at most {} MiB to \
         hugepages ({} MiB in total minus {} MiB kept for the host{others}); lower <memory>",
        mib(pages.saturating_mul(size_kib)),
        mib(reachable_kib),
        mib(total_kib),
        mib(floor)
    )))
}

/// Old journals' [`Step::Hugepages`]: makes `needed` pages free in the pool.
pub(crate) fn allocate_free(
    ops: &dyn HostOps,
    path: &str,
    size_kib: u64,
    needed: u64,
) -> Result<()> {
    let root = ops.root();
    let dir = path.trim_end_matches("/nr_hugepages");
    let free = root.read_u64(format!("{dir}/free_hugepages"))?;
    if free >= needed {
        return Ok(());
    }
    let target = root.read_u64(path)? + (needed - free);
    allocate(ops, path, size_kib, target, needed)
}

/// Grows the pool whose `nr_hugepages` is `path` to at least `target` pages (never shrinks it); `needed` is
/// this VM's part, for the error.
pub(crate) fn allocate(
    ops: &dyn HostOps,
    path: &str,
    size_kib: u64,
    target: u64,
    needed: u64,
) -> Result<()> {
    let root = ops.root();
    let start = root.read_u64(path)?;
    if start >= target {
        return Ok(());
    }
    // First try the plain allocation: on a host with enough unfragmented memory it succeeds at once, while
    // dropping caches and compacting can take many seconds with libvirtd waiting. Only when it comes up short
    // free and defragment memory, then try again (twice).
    for attempt in 0..3 {
        if attempt > 0 {
            for (knob, value) in [
                ("/proc/sys/vm/drop_caches", "3"),
                ("/proc/sys/vm/compact_memory", "1"),
            ] {
                if let Err(e) = ops.write(knob, value) {
                    tracing::info!("cannot {knob}: {e}");
                }
            }
        }
        // The kernel may allocate fewer pages than asked without an error: the count read back decides.
        if let Err(e) = ops.write(path, &target.to_string()) {
            tracing::info!("hugepage allocation attempt {} failed: {e}", attempt + 1);
        }
        if root.read_u64(path)? >= target {
            return Ok(());
        }
    }
    let short = target.saturating_sub(root.read_u64(path)?);
    let got = needed.saturating_sub(short);
    let hint = if size_kib >= ONE_GIB_KIB {
        format!(
            "; 1 GiB pages can rarely be allocated on a running host: reserve them at boot with \
             `hugepagesz=1G hugepages={needed}` on the kernel command line"
        )
    } else {
        "; close programs to free memory, or reserve the pages at boot with `hugepages=N` on the kernel \
         command line"
            .to_string()
    };
    Err(Error::HugepagesShort {
        got,
        wanted: needed,
        size_kib,
        hint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::read::hook_view::HugePage;

    #[test]
    fn test_pages_needed_default_size_rounds_up() {
        let view = HookView {
            memory_kib: 4097,
            hugepages: true,
            ..HookView::default()
        };
        assert_eq!(
            pages_needed(&view, 2048).unwrap(),
            BTreeMap::from([(2048, 3)])
        );
    }

    #[test]
    fn test_pages_needed_one_gib_pages() {
        let view = HookView {
            memory_kib: 8 * 1024 * 1024,
            hugepages: true,
            hugepage_sizes: vec![HugePage {
                size_kib: ONE_GIB_KIB,
                guest_nodes: None,
            }],
            ..HookView::default()
        };
        assert_eq!(
            pages_needed(&view, 2048).unwrap(),
            BTreeMap::from([(ONE_GIB_KIB, 8)])
        );
    }
}
