//! CPUs: [`CpuSet`] (the kernel's list form `0-3,8,10-11`) and [`CpuTopology`] from
//! `/sys/devices/system/cpu` (packages, cores, SMT siblings, L3 groups), `/sys/devices/system/node`
//! (NUMA nodes) and `/proc/cpuinfo` (vendor, vmx/svm).
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use super::parse;
use super::root::{self, HostRoot};

/// Where the kernel describes CPUs.
pub(crate) const CPU_DIR: &str = "/sys/devices/system/cpu";
/// Where the kernel describes NUMA nodes.
pub(crate) const NODE_DIR: &str = "/sys/devices/system/node";
/// The largest CPU id accepted in a list (guards against `0-4294967295` from a corrupt file).
pub(crate) const MAX_CPU_ID: u32 = 65_535;

/// Errors reading the CPU topology.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error(transparent)]
    Read(#[from] root::Error),
    /// A CPU list file held something else.
    #[error("{path}: not a CPU list")]
    BadList {
        /// The full path.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: BadCpuSet,
    },
}

/// Result of reading the CPU topology.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// A string that is not a CPU list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a CPU list (expected the form 0-3,8,10-11)")]
pub struct BadCpuSet(pub String);

/// A set of CPU ids. `FromStr` and `Display` round-trip the kernel's list form (`0-3,8,10-11`); the empty
/// set is the empty string. Serialises as that string.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuSet(BTreeSet<u32>);

impl CpuSet {
    /// The empty set.
    pub(crate) fn new() -> Self {
        Self::default()
    }
    /// Adds a CPU.
    pub(crate) fn insert(&mut self, cpu: u32) -> bool {
        self.0.insert(cpu)
    }
    /// True when the CPU is in the set.
    pub(crate) fn contains(&self, cpu: u32) -> bool {
        self.0.contains(&cpu)
    }
    /// Number of CPUs.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
    /// True when no CPU is in the set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The CPUs in ascending order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }
    /// The lowest CPU.
    pub(crate) fn first(&self) -> Option<u32> {
        self.0.first().copied()
    }
    /// CPUs in either set.
    pub(crate) fn union(&self, other: &CpuSet) -> CpuSet {
        CpuSet(self.0.union(&other.0).copied().collect())
    }
    /// CPUs in both sets.
    pub(crate) fn intersection(&self, other: &CpuSet) -> CpuSet {
        CpuSet(self.0.intersection(&other.0).copied().collect())
    }
    /// CPUs in `self` but not in `other`.
    pub fn difference(&self, other: &CpuSet) -> CpuSet {
        CpuSet(self.0.difference(&other.0).copied().collect())
    }
    /// True when every CPU of `self` is in `other`.
    pub(crate) fn is_subset(&self, other: &CpuSet) -> bool {
        self.0.is_subset(&other.0)
    }
}

impl FromIterator<u32> for CpuSet {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        CpuSet(iter.into_iter().collect())
    }
}

impl FromStr for CpuSet {
    type Err = BadCpuSet;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let bad = || BadCpuSet(s.chars().take(64).collect());
        let number = |t: &str| -> std::result::Result<u32, BadCpuSet> {
            let t = t.trim();
            if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            t.parse::<u32>()
                .ok()
                .filter(|n| *n <= MAX_CPU_ID)
                .ok_or_else(bad)
        };
        let mut set = BTreeSet::new();
        let s_trim = s.trim();
        if s_trim.is_empty() {
            return Ok(CpuSet(set));
        }
        for part in s_trim.split(',') {
            match part.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (number(lo)?, number(hi)?);
                    if lo > hi {
                        return Err(bad());
                    }
                    set.extend(lo..=hi);
                }
                None => {
                    set.insert(number(part)?);
                }
            }
        }
        Ok(CpuSet(set))
    }
}

impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut iter = self.0.iter().copied().peekable();
        while let Some(start) = iter.next() {
            let mut end = start;
            while iter.peek() == Some(&(end + 1)) {
                end += 1;
                iter.next();
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if end == start {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

impl Serialize for CpuSet {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The CPU maker, from `/proc/cpuinfo` `vendor_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuVendor {
    /// `AuthenticAMD`.
    Amd,
    /// `GenuineIntel`.
    Intel,
    /// Anything else (or no `/proc/cpuinfo`).
    Other,
}

/// One online logical CPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cpu {
    /// Its id (`cpuN`).
    pub id: u32,
    /// `topology/physical_package_id` (socket).
    pub package: u32,
    /// `topology/core_id` (unique only within a package).
    pub core: u32,
    /// `topology/thread_siblings_list`: the SMT threads of its physical core, itself included.
    pub siblings: CpuSet,
    /// The CPUs sharing its L3 cache (`cache/indexN` with `level` 3), when the kernel reports one.
    pub l3: Option<CpuSet>,
    /// Its NUMA node, from `/sys/devices/system/node/node*/cpulist`.
    pub node: Option<u32>,
}

/// The host's CPUs as the kernel reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CpuTopology {
    /// `/sys/devices/system/cpu/online`.
    pub online: CpuSet,
    /// Every online CPU, by id.
    pub cpus: Vec<Cpu>,
    /// The maker.
    pub vendor: CpuVendor,
    /// `model name` from `/proc/cpuinfo`, when present.
    pub model: Option<String>,
    /// Intel VT-x flag (`vmx`) in `/proc/cpuinfo`.
    pub vmx: bool,
    /// AMD-V flag (`svm`) in `/proc/cpuinfo`.
    pub svm: bool,
    /// The `hypervisor` flag: this host is itself a VM.
    pub hypervisor: bool,
}

impl CpuTopology {
    /// Reads `/sys/devices/system/cpu`, `/sys/devices/system/node` and `/proc/cpuinfo` under `root`.
    /// `/proc/cpuinfo` may be missing (vendor `Other`, no flags); the `online` list may not.
    pub(crate) fn read(root: &HostRoot) -> Result<Self> {
        let online = read_cpu_list(root, &format!("{CPU_DIR}/online"))?;
        let nodes = read_nodes(root)?;
        let mut cpus = Vec::with_capacity(online.len());
        for id in online.iter() {
            cpus.push(read_cpu(root, id, &nodes)?);
        }
        let cpuinfo = root.read_optional("/proc/cpuinfo")?.unwrap_or_default();
        let vendor = match parse::cpuinfo_field(&cpuinfo, "vendor_id") {
            Some("AuthenticAMD") => CpuVendor::Amd,
            Some("GenuineIntel") => CpuVendor::Intel,
            _ => CpuVendor::Other,
        };
        let flags: BTreeSet<&str> = parse::cpuinfo_field(&cpuinfo, "flags")
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        Ok(Self {
            online,
            cpus,
            vendor,
            model: parse::cpuinfo_field(&cpuinfo, "model name").map(str::to_string),
            vmx: flags.contains("vmx"),
            svm: flags.contains("svm"),
            hypervisor: flags.contains("hypervisor"),
        })
    }

    /// The physical cores: each is the set of its SMT siblings, sorted by lowest CPU id.
    pub fn physical_cores(&self) -> Vec<CpuSet> {
        let set: BTreeSet<CpuSet> = self
            .cpus
            .iter()
            .map(|c| c.siblings.intersection(&self.online))
            .filter(|s| !s.is_empty())
            .collect();
        sorted_by_first(set)
    }

    /// The L3 cache groups (CCX/CCD on AMD; usually one per package on Intel), sorted by lowest CPU id.
    /// CPUs without L3 information form one group per package.
    pub fn l3_groups(&self) -> Vec<CpuSet> {
        let mut by_package: BTreeMap<u32, CpuSet> = BTreeMap::new();
        let mut set = BTreeSet::new();
        for cpu in &self.cpus {
            match &cpu.l3 {
                Some(l3) => {
                    set.insert(l3.intersection(&self.online));
                }
                None => {
                    by_package.entry(cpu.package).or_default().insert(cpu.id);
                }
            }
        }
        set.extend(by_package.into_values());
        set.retain(|s| !s.is_empty());
        sorted_by_first(set)
    }

    /// The CPUs of each NUMA node that has online CPUs.
    #[cfg(test)]
    pub(crate) fn numa_nodes(&self) -> BTreeMap<u32, CpuSet> {
        let mut out: BTreeMap<u32, CpuSet> = BTreeMap::new();
        for cpu in &self.cpus {
            if let Some(node) = cpu.node {
                out.entry(node).or_default().insert(cpu.id);
            }
        }
        out
    }
}

fn sorted_by_first(set: BTreeSet<CpuSet>) -> Vec<CpuSet> {
    let mut v: Vec<CpuSet> = set.into_iter().collect();
    v.sort_by_key(|s| s.first());
    v
}

/// Reads a file in the kernel's CPU list form.
pub(crate) fn read_cpu_list(root: &HostRoot, host_path: &str) -> Result<CpuSet> {
    let text = root.read_string(host_path)?;
    text.parse().map_err(|source| Error::BadList {
        path: root.path(host_path),
        source,
    })
}

fn read_optional_cpu_list(root: &HostRoot, host_path: &str) -> Result<Option<CpuSet>> {
    if root.exists(host_path) {
        read_cpu_list(root, host_path).map(Some)
    } else {
        Ok(None)
    }
}

fn read_nodes(root: &HostRoot) -> Result<BTreeMap<u32, u32>> {
    let mut cpu_to_node = BTreeMap::new();
    for name in root.list_dir(NODE_DIR)? {
        let Some(node) = name
            .strip_prefix("node")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(cpus) = read_optional_cpu_list(root, &format!("{NODE_DIR}/{name}/cpulist"))? {
            for cpu in cpus.iter() {
                cpu_to_node.insert(cpu, node);
            }
        }
    }
    Ok(cpu_to_node)
}

fn read_cpu(root: &HostRoot, id: u32, nodes: &BTreeMap<u32, u32>) -> Result<Cpu> {
    let dir = format!("{CPU_DIR}/cpu{id}");
    let number = |name: &str| -> Result<u32> {
        let path = format!("{dir}/topology/{name}");
        let value = root.read_u64(&path)?;
        u32::try_from(value).map_err(|_| {
            root::Error::Parse {
                path: root.path(&path),
                expected: "a 32-bit number",
                found: value.to_string(),
            }
            .into()
        })
    };
    let siblings = read_optional_cpu_list(root, &format!("{dir}/topology/thread_siblings_list"))?
        .unwrap_or_else(|| [id].into_iter().collect());
    Ok(Cpu {
        id,
        package: number("physical_package_id")?,
        core: number("core_id")?,
        siblings,
        l3: read_l3(root, &dir)?,
        node: nodes.get(&id).copied(),
    })
}

fn read_l3(root: &HostRoot, cpu_dir: &str) -> Result<Option<CpuSet>> {
    let cache_dir = format!("{cpu_dir}/cache");
    for index in root.list_dir(&cache_dir)? {
        if !index.starts_with("index") {
            continue;
        }
        let level = root.read_optional(format!("{cache_dir}/{index}/level"))?;
        if level.as_deref() == Some("3") {
            return read_optional_cpu_list(root, &format!("{cache_dir}/{index}/shared_cpu_list"));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> CpuSet {
        s.parse().unwrap()
    }

    #[test]
    fn test_cpuset_round_trips_kernel_list() {
        assert_eq!(set("0-3,8,10-11").to_string(), "0-3,8,10-11");
    }

    #[test]
    fn test_cpuset_merges_adjacent_and_unsorted() {
        assert_eq!(set("5,3,4,0-1,2\n").to_string(), "0-5");
    }

    #[test]
    fn test_cpuset_empty_is_empty_string() {
        assert!(set("").is_empty());
        assert_eq!(CpuSet::new().to_string(), "");
    }

    #[test]
    fn test_cpuset_rejects_garbage() {
        for bad in ["a", "3-1", "1,,2", "-1", "0-99999999", "1 2"] {
            assert!(bad.parse::<CpuSet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn test_cpuset_difference_and_union() {
        let all = set("0-7");
        assert_eq!(all.difference(&set("2-3,6-7")).to_string(), "0-1,4-5");
        assert_eq!(set("0").union(&set("2")).to_string(), "0,2");
    }

    use crate::host::test_tree::write;

    /// Two cores with two threads each, threads numbered like AMD/Intel (n, n+cores), one L3 per core.
    fn small_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "sys/devices/system/cpu/online", "0-3\n");
        for (cpu, core, sib, l3) in [
            (0, 0, "0,2", "0,2"),
            (1, 1, "1,3", "1,3"),
            (2, 0, "0,2", "0,2"),
            (3, 1, "1,3", "1,3"),
        ] {
            let c = format!("sys/devices/system/cpu/cpu{cpu}");
            write(d, &format!("{c}/topology/physical_package_id"), "0\n");
            write(d, &format!("{c}/topology/core_id"), &format!("{core}\n"));
            write(d, &format!("{c}/topology/thread_siblings_list"), sib);
            write(d, &format!("{c}/cache/index3/level"), "3\n");
            write(d, &format!("{c}/cache/index3/shared_cpu_list"), l3);
        }
        write(d, "sys/devices/system/node/node0/cpulist", "0-3\n");
        write(
            d,
            "proc/cpuinfo",
            "vendor_id\t: AuthenticAMD\nflags\t\t: fpu svm\n",
        );
        dir
    }

    #[test]
    fn test_topology_physical_cores_group_smt_siblings() {
        let dir = small_tree();
        let topo = CpuTopology::read(&HostRoot::new(dir.path())).unwrap();
        let cores: Vec<String> = topo
            .physical_cores()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(cores, ["0,2", "1,3"]);
    }

    #[test]
    fn test_topology_vendor_and_svm_from_cpuinfo() {
        let dir = small_tree();
        let topo = CpuTopology::read(&HostRoot::new(dir.path())).unwrap();
        assert_eq!(topo.vendor, CpuVendor::Amd);
        assert!(topo.svm && !topo.vmx);
    }

    #[test]
    fn test_topology_l3_groups_and_numa() {
        let dir = small_tree();
        let topo = CpuTopology::read(&HostRoot::new(dir.path())).unwrap();
        assert_eq!(topo.l3_groups().len(), 2);
        assert_eq!(topo.numa_nodes()[&0].to_string(), "0-3");
    }

    #[test]
    fn test_topology_garbage_online_is_error_with_path() {
        let dir = small_tree();
        write(dir.path(), "sys/devices/system/cpu/online", "zz\n");
        let err = CpuTopology::read(&HostRoot::new(dir.path())).unwrap_err();
        assert!(err.to_string().contains("cpu/online"), "{err}");
    }
}
