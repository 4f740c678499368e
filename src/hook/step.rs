//! [`Step`]: one journaled host change, with what it needs to be undone. Each step records the original
//! state it found *before* it is journaled, so undo is "put the original back" and safe to repeat: it works
//! after the change, after half of it, and when the change never happened (a crash right after the journal
//! write).
use serde::{Deserialize, Serialize};

use super::error::Result;
use super::governor::CpuFreqOriginal;
use super::irqs::IrqOriginal;
use super::shared_state::{self, CpuBaseline, PoolBaseline};
use super::{governor, gpu, irqs};
use crate::host::PciAddress;
use crate::ops::{HostOps, NewFile};

/// One host change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub(crate) enum Step {
    /// A PCI endpoint moved to vfio-pci.
    BindVfio {
        /// The device.
        address: PciAddress,
        /// The driver it had (`None`: none).
        original_driver: Option<String>,
        /// Its `driver_override` before (`None`: none).
        original_override: Option<String>,
    },
    /// A systemd unit stopped (the display manager in single-GPU mode).
    StopUnit {
        /// The unit.
        unit: String,
    },
    /// A virtual console unbound from its framebuffer console (`/sys/class/vtconsole/vtconN/bind`).
    UnbindVtconsole {
        /// The `bind` attribute.
        path: String,
    },
    /// A platform framebuffer device unbound (efi-framebuffer.0, simple-framebuffer.0).
    UnbindPlatform {
        /// Its driver.
        driver: String,
        /// The device.
        device: String,
    },
    /// A kernel module unloaded.
    UnloadModule {
        /// The module.
        module: String,
    },
    /// A cgroup v2 controller enabled in a `cgroup.subtree_control`.
    EnableController {
        /// The `cgroup.subtree_control` file.
        path: String,
        /// The controller (`cpuset`).
        controller: String,
    },
    /// A cgroup directory created.
    CreateCgroup {
        /// The directory.
        path: String,
    },
    /// A systemd unit's `AllowedCPUs` restricted (runtime only).
    RestrictUnitCpus {
        /// The unit (system.slice, user.slice, init.scope).
        unit: String,
        /// The CPUs the host keeps.
        cpus: String,
        /// The unit's cpuset before (empty: unrestricted).
        original: String,
    },
    /// A cgroup's `cpuset.cpus` restricted.
    RestrictCgroupCpus {
        /// The `cpuset.cpus` file.
        path: String,
        /// The CPUs the host keeps.
        cpus: String,
        /// Its content before (empty: inherit).
        original: String,
    },
    /// A hugepage pool grown.
    Hugepages {
        /// The `nr_hugepages` file.
        path: String,
        /// Page size.
        size_kib: u64,
        /// Pages the VM needs free.
        needed: u64,
        /// The count before.
        original: u64,
    },
    /// This VM's share of the host's CPU isolation (shared with the other running vmgpu VMs; see
    /// `hook::shared_state`). Replaces the per-VM cgroup steps, which only old journals still hold.
    IsolateCpus {
        /// The CPUs this VM's vCPUs take from host processes.
        reserved: String,
        /// The host's isolation before the first vmgpu VM changed it.
        baseline: CpuBaseline,
    },
    /// This VM's share of a hugepage pool (shared like [`Step::IsolateCpus`]). Replaces
    /// [`Step::Hugepages`], which only old journals still hold.
    ReserveHugepages {
        /// Page size.
        size_kib: u64,
        /// The host NUMA node whose pool it is (`None`: the global pool).
        node: Option<u32>,
        /// The pages this VM needs.
        pages: u64,
        /// The pool before the first vmgpu VM grew it.
        baseline: PoolBaseline,
    },
    /// The `performance` cpufreq policy on the pinned vCPU CPUs (`hook::governor`; shared like
    /// [`Step::IsolateCpus`]).
    PerformanceGovernor {
        /// The pinned vCPU CPUs.
        cpus: String,
        /// Each CPU's policy before the first vmgpu VM changed it (only CPUs with cpufreq).
        originals: Vec<CpuFreqOriginal>,
    },
    /// Host IRQs off the pinned CPUs, the VFIO devices' MSI vectors onto them (`hook::irqs`; shared like
    /// [`Step::IsolateCpus`]).
    MoveIrqs {
        /// The CPUs this VM's vCPUs take (vCPU pins minus emulator pins).
        reserved: String,
        /// This VM's VFIO devices (their `msi_irqs` are read when the step runs).
        devices: Vec<PciAddress>,
        /// Every IRQ's affinity before the first vmgpu VM moved any.
        originals: Vec<IrqOriginal>,
    },
    /// An IVSHMEM backing file created.
    ShmFile {
        /// The file (`/dev/shm/<name>`).
        path: String,
        /// Size in bytes.
        size: u64,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// Remove it on release.
        remove_on_stop: bool,
    },
}

impl Step {
    /// One line for logs and `vmgpu status`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Step::BindVfio {
                address,
                original_driver,
                ..
            } => format!(
                "{address} on vfio-pci (was {})",
                original_driver.as_deref().unwrap_or("no driver")
            ),
            Step::StopUnit { unit } => format!("{unit} stopped"),
            Step::UnbindVtconsole { path } => format!("{path} unbound"),
            Step::UnbindPlatform { device, .. } => format!("{device} unbound"),
            Step::UnloadModule { module } => format!("module {module} unloaded"),
            Step::EnableController { path, controller } => format!("+{controller} in {path}"),
            Step::CreateCgroup { path } => format!("cgroup {path} created"),
            Step::RestrictUnitCpus { unit, cpus, .. } => format!("{unit} AllowedCPUs={cpus}"),
            Step::RestrictCgroupCpus { path, cpus, .. } => format!("{path} = {cpus}"),
            Step::Hugepages {
                path,
                needed,
                original,
                ..
            } => format!("{path}: {needed} pages needed (was {original})"),
            Step::IsolateCpus { reserved, .. } => {
                format!("CPUs {reserved} kept from host processes")
            }
            Step::ReserveHugepages {
                size_kib,
                node,
                pages,
                ..
            } => format!(
                "{pages} pages of {size_kib} KiB in {}",
                shared_state::pool_path(*size_kib, *node)
            ),
            Step::ShmFile { path, size, .. } => format!("{path} ({size} bytes)"),
            Step::PerformanceGovernor { cpus, originals } => format!(
                "{} on CPUs {cpus} ({} with cpufreq)",
                governor::PERFORMANCE,
                originals.len()
            ),
            Step::MoveIrqs {
                reserved,
                originals,
                ..
            } => format!(
                "IRQs off CPUs {reserved}, VFIO vectors onto them ({} IRQs recorded)",
                originals.len()
            ),
        }
    }

    /// Makes the change.
    pub(crate) fn apply(&self, ops: &dyn HostOps) -> Result<()> {
        match self {
            Step::BindVfio { address, .. } => gpu::bind_vfio(ops, address),
            Step::StopUnit { unit } => Ok(ops.systemctl(&["stop", unit])?),
            Step::UnbindVtconsole { path } => Ok(ops.write(path, "0")?),
            Step::UnbindPlatform { driver, device } => Ok(ops.write(
                &format!("/sys/bus/platform/drivers/{driver}/unbind"),
                device,
            )?),
            Step::UnloadModule { module } => Ok(ops.unload_module(module)?),
            Step::EnableController { path, controller } => {
                Ok(ops.write(path, &format!("+{controller}"))?)
            }
            Step::CreateCgroup { path } => Ok(ops.create_dir(path)?),
            Step::RestrictUnitCpus { unit, cpus, .. } => Ok(ops.systemctl(&[
                "set-property",
                "--runtime",
                unit,
                &format!("AllowedCPUs={cpus}"),
            ])?),
            Step::RestrictCgroupCpus { path, cpus, .. } => Ok(ops.write(path, cpus)?),
            Step::Hugepages {
                path,
                size_kib,
                needed,
                ..
            } => super::hugepages::allocate_free(ops, path, *size_kib, *needed),
            Step::IsolateCpus { reserved, baseline } => {
                shared_state::check_cpus(reserved, baseline)?;
                shared_state::apply_cpus(ops, baseline)
            }
            Step::ReserveHugepages {
                size_kib,
                node,
                pages,
                baseline,
            } => shared_state::apply_pages(ops, *size_kib, *node, *pages, *baseline),
            Step::PerformanceGovernor { cpus, originals } => governor::apply(ops, cpus, originals),
            Step::MoveIrqs {
                reserved,
                originals,
                ..
            } => {
                irqs::check(reserved, originals)?;
                irqs::apply(ops, originals)
            }
            Step::ShmFile {
                path,
                size,
                uid,
                gid,
                ..
            } => {
                // A stale file (wrong owner, size or mode) blocks QEMU: start from a fresh one.
                ops.remove_file(path)?;
                Ok(ops.create_file(&NewFile {
                    path: path.clone(),
                    size: *size,
                    uid: *uid,
                    gid: *gid,
                    mode: 0o660,
                })?)
            }
        }
    }

    /// Puts the original state back (idempotent).
    pub(crate) fn undo(&self, ops: &dyn HostOps) -> Result<()> {
        let root = ops.root();
        match self {
            Step::BindVfio {
                address,
                original_driver,
                original_override,
            } => gpu::restore_driver(
                ops,
                address,
                original_driver.as_deref(),
                original_override.as_deref(),
            ),
            Step::StopUnit { unit } => Ok(ops.systemctl(&["start", unit])?),
            Step::UnbindVtconsole { path } => {
                if root.read_optional(path)?.as_deref() == Some("1") {
                    return Ok(());
                }
                Ok(ops.write(path, "1")?)
            }
            Step::UnbindPlatform { driver, device } => {
                let link = format!("/sys/bus/platform/devices/{device}/driver");
                if root.read_link_name(&link)?.is_some() {
                    return Ok(());
                }
                Ok(ops.write(&format!("/sys/bus/platform/drivers/{driver}/bind"), device)?)
            }
            Step::UnloadModule { module } => Ok(ops.load_module(module)?),
            Step::EnableController { path, controller } => {
                // Best effort: the kernel refuses while a child cgroup still uses it, which is harmless.
                if let Err(e) = ops.write(path, &format!("-{controller}")) {
                    tracing::info!("leaving {controller} enabled in {path}: {e}");
                }
                Ok(())
            }
            Step::CreateCgroup { path } => {
                if let Err(e) = ops.remove_dir(path) {
                    tracing::warn!("cannot remove cgroup {path} (processes still in it?): {e}");
                }
                Ok(())
            }
            Step::RestrictUnitCpus { unit, original, .. } => {
                let set = |cpus: &str| {
                    ops.systemctl(&[
                        "set-property",
                        "--runtime",
                        unit,
                        &format!("AllowedCPUs={cpus}"),
                    ])
                };
                if original.is_empty() {
                    // The kernel refuses to empty a populated cgroup's cpuset.cpus (ENOSPC) and systemd
                    // ignores that failure: widen to every online CPU first, then drop the property.
                    set(&online_cpus(ops)?)?;
                }
                Ok(set(original)?)
            }
            Step::RestrictCgroupCpus { path, original, .. } => {
                if !root.exists(path) {
                    return Ok(()); // the cgroup is gone (created by us and already removed)
                }
                if root.read_string(path)? == *original {
                    return Ok(());
                }
                if !original.is_empty() {
                    return Ok(ops.write(path, original)?);
                }
                // Empty means "inherit the parent's CPUs". The kernel accepts an empty write only while the
                // cgroup has no processes (ENOSPC otherwise); then the parent's effective CPUs, which is
                // the same set, is written explicitly.
                if ops.write(path, "\n").is_ok() {
                    return Ok(());
                }
                reset_populated_cpuset(ops, path)
            }
            Step::Hugepages { path, original, .. } => {
                if root.read_u64(path)? == *original {
                    return Ok(());
                }
                Ok(ops.write(path, &original.to_string())?)
            }
            Step::IsolateCpus { reserved, baseline } => {
                shared_state::check_cpus(reserved, baseline)?;
                shared_state::undo_cpus(ops, baseline)
            }
            Step::ReserveHugepages {
                size_kib,
                node,
                baseline,
                ..
            } => shared_state::undo_pages(ops, *size_kib, *node, *baseline),
            Step::PerformanceGovernor { cpus, originals } => governor::undo(ops, cpus, originals),
            Step::MoveIrqs {
                reserved,
                originals,
                ..
            } => {
                irqs::check(reserved, originals)?;
                irqs::undo(ops, originals)
            }
            Step::ShmFile {
                path,
                remove_on_stop,
                ..
            } => {
                if *remove_on_stop {
                    ops.remove_file(path)?;
                }
                Ok(())
            }
        }
    }

    /// The PCI address for a `BindVfio` step.
    pub(crate) fn bound_address(&self) -> Option<PciAddress> {
        match self {
            Step::BindVfio { address, .. } => Some(*address),
            _ => None,
        }
    }

    /// Every kind of step this build writes: the `step` tags of the journal.
    pub(crate) const KINDS: &[&str] = &[
        "bind-vfio",
        "stop-unit",
        "unbind-vtconsole",
        "unbind-platform",
        "unload-module",
        "enable-controller",
        "create-cgroup",
        "restrict-unit-cpus",
        "restrict-cgroup-cpus",
        "hugepages",
        "isolate-cpus",
        "reserve-hugepages",
        "performance-governor",
        "move-irqs",
        "shm-file",
    ];

    /// The step's kind: its `step` tag in the journal.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Step::BindVfio { .. } => "bind-vfio",
            Step::StopUnit { .. } => "stop-unit",
            Step::UnbindVtconsole { .. } => "unbind-vtconsole",
            Step::UnbindPlatform { .. } => "unbind-platform",
            Step::UnloadModule { .. } => "unload-module",
            Step::EnableController { .. } => "enable-controller",
            Step::CreateCgroup { .. } => "create-cgroup",
            Step::RestrictUnitCpus { .. } => "restrict-unit-cpus",
            Step::RestrictCgroupCpus { .. } => "restrict-cgroup-cpus",
            Step::Hugepages { .. } => "hugepages",
            Step::IsolateCpus { .. } => "isolate-cpus",
            Step::ReserveHugepages { .. } => "reserve-hugepages",
            Step::PerformanceGovernor { .. } => "performance-governor",
            Step::MoveIrqs { .. } => "move-irqs",
            Step::ShmFile { .. } => "shm-file",
        }
    }
}

/// Every online CPU, in the kernel's list form.
fn online_cpus(ops: &dyn HostOps) -> Result<String> {
    Ok(ops.root().read_string("/sys/devices/system/cpu/online")?)
}

/// Puts a populated cgroup's `cpuset.cpus` back to empty ("inherit"). The kernel refuses to empty it while
/// the cgroup has processes (ENOSPC), so: first widen it to the parent's CPUs (the host is unrestricted
/// from here on, whatever follows), then move its processes to the parent, empty it, and move them back.
/// If the empty write still fails, the explicit parent set stays, which allows the same CPUs.
fn reset_populated_cpuset(ops: &dyn HostOps, path: &str) -> Result<()> {
    let root = ops.root();
    let cgroup = path.trim_end_matches("/cpuset.cpus");
    let parent = cgroup.rsplit_once('/').map_or("/sys/fs/cgroup", |(p, _)| p);
    let inherited = match root.read_optional(format!("{parent}/cpuset.cpus.effective"))? {
        Some(cpus) if !cpus.is_empty() => cpus,
        _ => online_cpus(ops)?,
    };
    ops.write(path, &inherited)?;
    let procs: Vec<String> = root
        .read_optional(format!("{cgroup}/cgroup.procs"))?
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let move_all = |to: &str| {
        for pid in &procs {
            // A process that exited meanwhile is fine (ESRCH).
            let _ = ops.write(&format!("{to}/cgroup.procs"), pid);
        }
    };
    move_all(parent);
    let emptied = ops.write(path, "\n");
    move_all(cgroup);
    if let Err(e) = emptied {
        tracing::info!("{path}: left at its parent's CPUs {inherited} (cannot empty it: {e})");
    }
    Ok(())
}
