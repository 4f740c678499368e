//! Hugepages for `<memoryBacking><hugepages>`: the pages each size (and host NUMA node, when
//! `<numatune>` names exactly one) needs, allocated in prepare (plain allocation first; when short, drop caches and compact memory,
//! read the count back, retry once more, "got N of M pages" when short) and the pool put back to its old count in
//! release. 1 GiB pages rarely allocate at runtime: the error points at the boot parameter.
use std::collections::BTreeMap;

use super::error::{Error, Result};
use super::step::Step;
use crate::domain::hookview::HookView;
use crate::host::HostRoot;
use crate::ops::HostOps;

/// The global pools.
pub const POOLS: &str = "/sys/kernel/mm/hugepages";
const ONE_GIB_KIB: u64 = 1024 * 1024;

/// The default hugepage size in KiB (`Hugepagesize:` in /proc/meminfo; 2048 when absent).
pub fn default_size_kib(root: &HostRoot) -> u64 {
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
pub fn pages_needed(view: &HookView, default_kib: u64) -> Result<BTreeMap<u64, u64>> {
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

/// The steps that grow the pools.
pub fn plan(root: &HostRoot, view: &HookView) -> Result<Vec<Step>> {
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
        let per_node = node
            .map(|n| format!("/sys/devices/system/node/node{n}/hugepages/hugepages-{size_kib}kB"));
        let dir = per_node.filter(|d| root.path(d).is_dir()).unwrap_or(global);
        let path = format!("{dir}/nr_hugepages");
        steps.push(Step::Hugepages {
            original: root.read_u64(&path)?,
            path,
            size_kib,
            needed,
        });
    }
    Ok(steps)
}

/// Makes `needed` pages free in the pool whose `nr_hugepages` is `path`.
pub fn allocate(ops: &dyn HostOps, path: &str, size_kib: u64, needed: u64) -> Result<()> {
    let root = ops.root();
    let dir = path.trim_end_matches("/nr_hugepages");
    let free_path = format!("{dir}/free_hugepages");
    let free = root.read_u64(&free_path)?;
    if free >= needed {
        return Ok(());
    }
    let target = root.read_u64(path)? + (needed - free);
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
    let got = root.read_u64(&free_path)?;
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
    use crate::domain::hookview::HugePage;

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
