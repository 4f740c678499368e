//! Memory: `MemTotal`/`MemAvailable` from `/proc/meminfo` and the hugepage pools per page size, overall
//! (`/sys/kernel/mm/hugepages/hugepages-<N>kB`) and per NUMA node
//! (`/sys/devices/system/node/node<M>/hugepages/hugepages-<N>kB`).
use std::collections::BTreeMap;

use serde::Serialize;

use super::parse;
use super::root::{self, HostRoot};

/// One hugepage pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HugepagePool {
    /// `nr_hugepages`: pages allocated.
    pub total: u64,
    /// `free_hugepages`: pages not in use.
    pub free: u64,
}

/// The host's memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Memory {
    /// `MemTotal` in KiB.
    pub total_kib: u64,
    /// `MemAvailable` in KiB.
    pub available_kib: u64,
    /// Page size in KiB → pool (all nodes). Sizes the kernel supports, even with zero pages.
    pub hugepages: BTreeMap<u64, HugepagePool>,
    /// NUMA node → page size in KiB → pool.
    pub node_hugepages: BTreeMap<u32, BTreeMap<u64, HugepagePool>>,
    /// `Hugepagesize` (the default size, KiB) from `/proc/meminfo`, when hugetlb is built in.
    pub default_hugepage_kib: Option<u64>,
}

impl Memory {
    /// Reads `/proc/meminfo` and the hugepage directories. `/proc/meminfo` must exist.
    pub(crate) fn read(root: &HostRoot) -> root::Result<Self> {
        let info = parse::meminfo(&root.read_raw("/proc/meminfo")?);
        let mut node_hugepages = BTreeMap::new();
        for name in root.list_dir("/sys/devices/system/node")? {
            let Some(node) = name
                .strip_prefix("node")
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let pools = read_pools(root, &format!("/sys/devices/system/node/{name}/hugepages"))?;
            if !pools.is_empty() {
                node_hugepages.insert(node, pools);
            }
        }
        Ok(Self {
            total_kib: info.get("MemTotal").copied().unwrap_or(0),
            available_kib: info.get("MemAvailable").copied().unwrap_or(0),
            hugepages: read_pools(root, "/sys/kernel/mm/hugepages")?,
            node_hugepages,
            default_hugepage_kib: info.get("Hugepagesize").copied(),
        })
    }

    /// True when the kernel supports hugepages of this size (KiB).
    pub(crate) fn supports(&self, size_kib: u64) -> bool {
        self.hugepages.contains_key(&size_kib)
    }
}

fn read_pools(root: &HostRoot, dir: &str) -> root::Result<BTreeMap<u64, HugepagePool>> {
    let mut pools = BTreeMap::new();
    for name in root.list_dir(dir)? {
        let Some(size) = name
            .strip_prefix("hugepages-")
            .and_then(|n| n.strip_suffix("kB"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let count = |file: &str| -> root::Result<u64> {
            let path = format!("{dir}/{name}/{file}");
            if root.exists(&path) {
                root.read_u64(path)
            } else {
                Ok(0)
            }
        };
        pools.insert(
            size,
            HugepagePool {
                total: count("nr_hugepages")?,
                free: count("free_hugepages")?,
            },
        );
    }
    Ok(pools)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::host::test_tree::write;

    #[test]
    fn test_memory_reads_pools_and_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "proc/meminfo",
            "MemTotal: 32768000 kB\nMemAvailable: 30000000 kB\nHugepagesize: 2048 kB\n",
        );
        write(
            d,
            "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
            "8\n",
        );
        write(
            d,
            "sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
            "6\n",
        );
        write(
            d,
            "sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages",
            "0\n",
        );
        write(
            d,
            "sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages",
            "8\n",
        );
        let m = Memory::read(&HostRoot::new(d)).unwrap();
        assert_eq!(m.total_kib, 32768000);
        assert_eq!(m.hugepages[&2048], HugepagePool { total: 8, free: 6 });
        assert!(m.supports(1048576));
        assert_eq!(m.node_hugepages[&0][&2048].total, 8);
    }
}
