//! CPU pinning for a domain: which host CPU each vCPU runs on, where the emulator threads go, and the guest
//! topology that matches.
//!
//! `auto` takes whole physical cores (SMT siblings together) from one L3 group (an AMD CCX/CCD, an Intel die)
//! when they fit, never the host's first core, and pins the emulator on the CPUs the host keeps. The guest sees
//! `cores × threads` so that its scheduler pairs the siblings the way the host does.
use std::collections::BTreeSet;
use std::fmt;

use crate::host::cpu::{CpuTopology, CpuVendor};

/// Pinning that cannot be done on this host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// More vCPUs than the host can give while keeping its first core.
    #[error(
        "{wanted} vCPUs do not fit: the host has {available} CPUs to give after keeping its first core"
    )]
    TooMany {
        /// vCPUs asked for.
        wanted: u32,
        /// CPUs available to guests.
        available: u32,
    },
    /// An odd vCPU count on an SMT host where `auto` pins whole cores.
    #[error(
        "{wanted} vCPUs is not a whole number of cores ({threads} threads each): ask for a multiple of {threads}"
    )]
    PartialCore {
        /// vCPUs asked for.
        wanted: u32,
        /// Threads per core.
        threads: u32,
    },
    /// A CPU in `--pin` that the host does not have.
    #[error("CPU {cpu} in the pin list is not one of the host's CPUs")]
    UnknownCpu {
        /// The CPU number.
        cpu: u32,
    },
    /// `--pin` is not a CPU list.
    #[error("{0:?} is not a CPU list (expected `auto`, `off` or a list such as 2-7,14-19)")]
    Syntax(String),
    /// `--pin` leaves the host nothing.
    #[error("the pin list takes every host CPU: leave at least one to the host")]
    NoHostCpu,
    /// `--vcpus` disagrees with the length of an explicit pin list.
    #[error("--vcpus {vcpus} does not match the {pinned} CPUs in the pin list")]
    CountMismatch {
        /// `--vcpus`.
        vcpus: u32,
        /// CPUs in the list.
        pinned: u32,
    },
    /// Zero vCPUs.
    #[error("a domain needs at least one vCPU")]
    Zero,
}

/// Result of planning pins.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// One physical core as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Core {
    /// Logical CPUs of this core (SMT siblings), ascending.
    pub cpus: Vec<u32>,
    /// The L3 cache group (CCX) it belongs to; cores with the same value share an L3.
    pub l3_group: u32,
}

/// What the pinning code needs to know about the host's CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpus {
    /// Every physical core, in the order of their first CPU.
    pub cores: Vec<Core>,
    /// AMD (topoext wanted) rather than Intel.
    pub amd: bool,
}

/// The `--pin` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinRequest {
    /// Pick whole cores from one L3 group.
    Auto,
    /// No pinning.
    Off,
    /// These host CPUs, in vCPU order.
    List(Vec<u32>),
}

impl PinRequest {
    /// Parses `auto`, `off` or a CPU list (`2-7,14-19`).
    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "auto" => Ok(Self::Auto),
            "off" | "none" => Ok(Self::Off),
            list => parse_cpu_list(list).map(Self::List),
        }
    }
}

impl std::str::FromStr for PinRequest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// Parses a kernel-style CPU list such as `0-3,8,10-11`, keeping the order given.
pub(crate) fn parse_cpu_list(s: &str) -> Result<Vec<u32>> {
    let syntax = || Error::Syntax(s.chars().take(64).collect());
    let number = |t: &str| -> Result<u32> {
        if t.is_empty() || t.len() > 5 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        t.parse().map_err(|_| syntax())
    };
    let mut cpus = Vec::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (number(a)?, number(b)?);
                if a > b || b - a > 4096 {
                    return Err(syntax());
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(number(part)?),
        }
    }
    let unique: BTreeSet<u32> = cpus.iter().copied().collect();
    if unique.len() != cpus.len() {
        return Err(syntax());
    }
    Ok(cpus)
}

/// Formats CPUs as a compact list (`0-5,12-17`).
pub(crate) fn format_cpu_list(cpus: &[u32]) -> String {
    let sorted: BTreeSet<u32> = cpus.iter().copied().collect();
    let mut parts = Vec::new();
    let mut run: Option<(u32, u32)> = None;
    for cpu in sorted {
        run = match run {
            Some((start, end)) if cpu == end + 1 => Some((start, cpu)),
            Some((start, end)) => {
                parts.push(range_text(start, end));
                Some((cpu, cpu))
            }
            None => Some((cpu, cpu)),
        };
    }
    if let Some((start, end)) = run {
        parts.push(range_text(start, end));
    }
    parts.join(",")
}

fn range_text(start: u32, end: u32) -> String {
    if start == end {
        start.to_string()
    } else {
        format!("{start}-{end}")
    }
}

/// The guest CPU topology (`<topology sockets='1' dies='1' cores threads/>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topology {
    /// Cores.
    pub cores: u32,
    /// Threads per core.
    pub threads: u32,
}

impl Topology {
    /// vCPUs in total.
    pub(crate) fn vcpus(&self) -> u32 {
        self.cores * self.threads
    }
}

/// The result: vCPU placement and guest topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinPlan {
    /// Host CPU of vCPU i; empty when unpinned.
    pub vcpu_pins: Vec<u32>,
    /// Host CPUs for the emulator threads; empty when unpinned.
    pub emulator: Vec<u32>,
    /// What the guest sees.
    pub topology: Topology,
}

impl PinPlan {
    /// True when vCPUs are pinned.
    pub(crate) fn is_pinned(&self) -> bool {
        !self.vcpu_pins.is_empty()
    }
}

impl fmt::Display for PinPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_pinned() {
            write!(
                f,
                "vCPUs on {} ({} cores x {} threads), emulator on {}",
                format_cpu_list(&self.vcpu_pins),
                self.topology.cores,
                self.topology.threads,
                format_cpu_list(&self.emulator)
            )
        } else {
            write!(f, "{} vCPUs, not pinned", self.topology.vcpus())
        }
    }
}

impl Cpus {
    /// The pinning view of the host's CPU topology: physical cores with their L3 group.
    pub fn from_topology(topology: &CpuTopology) -> Self {
        let groups = topology.l3_groups();
        let cores = topology
            .physical_cores()
            .into_iter()
            .filter_map(|core| {
                let first = core.first()?;
                let l3_group = groups.iter().position(|g| g.contains(first)).unwrap_or(0) as u32;
                Some(Core {
                    cpus: core.iter().collect(),
                    l3_group,
                })
            })
            .collect();
        Self {
            cores,
            amd: topology.vendor == CpuVendor::Amd,
        }
    }

    fn all(&self) -> Vec<u32> {
        self.cores
            .iter()
            .flat_map(|c| c.cpus.iter().copied())
            .collect()
    }

    /// Threads per core (the smallest core decides, so a hybrid CPU still pins whole cores).
    fn threads_per_core(&self) -> u32 {
        self.cores
            .iter()
            .map(|c| c.cpus.len() as u32)
            .min()
            .unwrap_or(1)
            .max(1)
    }

    /// Plans the pins for `request` and an optional `--vcpus`.
    pub fn plan(&self, request: &PinRequest, vcpus: Option<u32>) -> Result<PinPlan> {
        if vcpus == Some(0) {
            return Err(Error::Zero);
        }
        match request {
            PinRequest::Off => {
                let n = vcpus.unwrap_or(4);
                Ok(PinPlan {
                    vcpu_pins: Vec::new(),
                    emulator: Vec::new(),
                    topology: Topology {
                        cores: n,
                        threads: 1,
                    },
                })
            }
            PinRequest::List(list) => self.plan_list(list, vcpus),
            PinRequest::Auto => self.plan_auto(vcpus),
        }
    }

    fn plan_list(&self, list: &[u32], vcpus: Option<u32>) -> Result<PinPlan> {
        let all = self.all();
        if let Some(&cpu) = list.iter().find(|c| !all.contains(c)) {
            return Err(Error::UnknownCpu { cpu });
        }
        let pinned = list.len() as u32;
        if pinned == 0 {
            return Err(Error::Zero);
        }
        if let Some(n) = vcpus.filter(|n| *n != pinned) {
            return Err(Error::CountMismatch { vcpus: n, pinned });
        }
        let emulator: Vec<u32> = all.into_iter().filter(|c| !list.contains(c)).collect();
        if emulator.is_empty() {
            return Err(Error::NoHostCpu);
        }
        // Whole cores given in sibling order keep the SMT shape; anything else is shown as plain cores.
        let threads = self.threads_per_core();
        let whole_cores = pinned.is_multiple_of(threads)
            && list.chunks(threads as usize).all(|chunk| {
                self.cores.iter().any(|core| {
                    core.cpus.len() == chunk.len() && chunk.iter().all(|c| core.cpus.contains(c))
                })
            });
        let topology = if whole_cores {
            Topology {
                cores: pinned / threads,
                threads,
            }
        } else {
            Topology {
                cores: pinned,
                threads: 1,
            }
        };
        Ok(PinPlan {
            vcpu_pins: list.to_vec(),
            emulator,
            topology,
        })
    }

    fn plan_auto(&self, vcpus: Option<u32>) -> Result<PinPlan> {
        let threads = self.threads_per_core();
        // The first core stays with the host.
        let candidates: Vec<&Core> = self.cores.iter().skip(1).collect();
        let available = candidates.len() as u32 * threads;
        let wanted = match vcpus {
            Some(n) => n,
            None => self.default_vcpus(threads),
        };
        if !wanted.is_multiple_of(threads) {
            return Err(Error::PartialCore { wanted, threads });
        }
        if wanted > available || wanted == 0 {
            return Err(Error::TooMany { wanted, available });
        }
        let cores_wanted = (wanted / threads) as usize;
        let chosen = self.choose_cores(&candidates, cores_wanted);
        let vcpu_pins: Vec<u32> = chosen
            .iter()
            .flat_map(|core| core.cpus.iter().take(threads as usize).copied())
            .collect();
        let emulator: Vec<u32> = self
            .all()
            .into_iter()
            .filter(|c| !vcpu_pins.contains(c))
            .collect();
        Ok(PinPlan {
            vcpu_pins,
            emulator,
            topology: Topology {
                cores: cores_wanted as u32,
                threads,
            },
        })
    }

    /// Without `--vcpus`: the largest L3 group that does not hold the host's first core, or every core but the
    /// first on a single-group CPU.
    fn default_vcpus(&self, threads: u32) -> u32 {
        let first_group = self.cores.first().map(|c| c.l3_group);
        let mut best = 0;
        for group in self.groups() {
            let size = self
                .cores
                .iter()
                .skip(1)
                .filter(|c| c.l3_group == group)
                .count() as u32;
            let size = if Some(group) == first_group && self.groups().len() > 1 {
                0
            } else {
                size
            };
            best = best.max(size);
        }
        best.max(1) * threads
    }

    fn groups(&self) -> Vec<u32> {
        let set: BTreeSet<u32> = self.cores.iter().map(|c| c.l3_group).collect();
        set.into_iter().collect()
    }

    /// Picks `n` cores: one L3 group when they fit (preferring groups away from the host's first core, then the
    /// fullest), otherwise the groups in order.
    fn choose_cores<'a>(&self, candidates: &[&'a Core], n: usize) -> Vec<&'a Core> {
        let first_group = self.cores.first().map(|c| c.l3_group);
        let mut fitting: Vec<(bool, usize, u32)> = self
            .groups()
            .into_iter()
            .map(|g| {
                let free = candidates.iter().filter(|c| c.l3_group == g).count();
                (Some(g) == first_group, usize::MAX - free, g)
            })
            .filter(|(_, inv_free, _)| usize::MAX - inv_free >= n)
            .collect();
        fitting.sort();
        match fitting.first() {
            Some(&(_, _, group)) => candidates
                .iter()
                .filter(|c| c.l3_group == group)
                .take(n)
                .copied()
                .collect(),
            None => {
                // Spill over groups, away from the host's first core first.
                let mut order: Vec<&Core> = candidates.to_vec();
                order.sort_by_key(|c| (Some(c.l3_group) == first_group, c.l3_group));
                order.into_iter().take(n).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ryzen 9 5900X: 12 cores, SMT siblings n and n+12, two CCX of six cores.
    fn ryzen_5900x() -> Cpus {
        Cpus {
            cores: (0..12)
                .map(|i| Core {
                    cpus: vec![i, i + 12],
                    l3_group: i / 6,
                })
                .collect(),
            amd: true,
        }
    }

    fn one_group(cores: u32, smt: bool) -> Cpus {
        Cpus {
            cores: (0..cores)
                .map(|i| Core {
                    cpus: if smt { vec![i, i + cores] } else { vec![i] },
                    l3_group: 0,
                })
                .collect(),
            amd: false,
        }
    }

    #[test]
    fn test_auto_on_5900x_takes_second_ccx_with_smt_pairs() {
        let plan = ryzen_5900x().plan(&PinRequest::Auto, None).unwrap();
        assert_eq!(
            plan.vcpu_pins,
            vec![6, 18, 7, 19, 8, 20, 9, 21, 10, 22, 11, 23]
        );
        assert_eq!(
            plan.topology,
            Topology {
                cores: 6,
                threads: 2
            }
        );
        assert_eq!(format_cpu_list(&plan.emulator), "0-5,12-17");
    }

    #[test]
    fn test_auto_with_eight_vcpus_stays_in_one_ccx() {
        let plan = ryzen_5900x().plan(&PinRequest::Auto, Some(8)).unwrap();
        assert_eq!(format_cpu_list(&plan.vcpu_pins), "6-9,18-21");
    }

    #[test]
    fn test_auto_spills_over_groups_when_too_big_for_one() {
        let plan = ryzen_5900x().plan(&PinRequest::Auto, Some(16)).unwrap();
        assert_eq!(format_cpu_list(&plan.vcpu_pins), "1-2,6-11,13-14,18-23");
        assert!(!plan.vcpu_pins.contains(&0));
    }

    #[test]
    fn test_auto_single_group_leaves_first_core() {
        let plan = one_group(6, true).plan(&PinRequest::Auto, None).unwrap();
        assert_eq!(format_cpu_list(&plan.vcpu_pins), "1-5,7-11");
        assert_eq!(plan.emulator, vec![0, 6]);
    }

    #[test]
    fn test_auto_odd_vcpus_on_smt_is_refused() {
        let err = ryzen_5900x().plan(&PinRequest::Auto, Some(5)).unwrap_err();
        assert_eq!(
            err,
            Error::PartialCore {
                wanted: 5,
                threads: 2
            }
        );
    }

    #[test]
    fn test_auto_too_many_vcpus_is_refused() {
        let err = one_group(2, false)
            .plan(&PinRequest::Auto, Some(2))
            .unwrap_err();
        assert_eq!(
            err,
            Error::TooMany {
                wanted: 2,
                available: 1
            }
        );
    }

    #[test]
    fn test_list_of_sibling_pairs_keeps_smt_topology() {
        let plan = ryzen_5900x()
            .plan(&PinRequest::parse("6,18,7,19").unwrap(), None)
            .unwrap();
        assert_eq!(
            plan.topology,
            Topology {
                cores: 2,
                threads: 2
            }
        );
    }

    #[test]
    fn test_list_with_unknown_cpu_is_refused() {
        let err = ryzen_5900x()
            .plan(&PinRequest::parse("2-30").unwrap(), None)
            .unwrap_err();
        assert_eq!(err, Error::UnknownCpu { cpu: 24 });
    }

    #[test]
    fn test_off_uses_vcpus_without_pins() {
        let plan = ryzen_5900x().plan(&PinRequest::Off, Some(2)).unwrap();
        assert!(!plan.is_pinned());
        assert_eq!(plan.topology.vcpus(), 2);
    }

    #[test]
    fn test_parse_cpu_list_rejects_garbage() {
        for bad in ["", "a", "3-1", "1,1", "0-99999", "-"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad}");
        }
    }
}
