//! The state machine: `prepare` plans every change read-only (refusing before anything changes), then
//! journals and applies one step at a time, rolling back on the first failure; `release` (and
//! `vmgpu restore`) undo a journal in reverse. Both are safe to repeat and cope with a complete, partial or
//! missing journal.
use super::error::{Error, Result};
use super::step::Step;
use super::{cpus, governor, gpu, holders, hugepages, irqs, shared_state, shm, single_gpu};
use crate::domain::VmgpuConfig;
use crate::domain::read::hook_view::HookView;
use crate::host::{PciAddress, PciDevice, display};
use crate::journal::{Journal, Phase, Store};
use crate::ops::HostOps;
use crate::report;

/// Crash injection for tests: `VMGPU_CRASH_AFTER_STEP=N` kills vmgpu with SIGKILL right after step N
/// (1-based) of `prepare` was journaled and applied.
pub(crate) const ENV_CRASH_AFTER_STEP: &str = "VMGPU_CRASH_AFTER_STEP";

/// A VM's journal as stored.
pub(crate) type VmJournal = Journal<Step>;

/// What `prepare` will do, worked out before anything changes.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// The endpoints that go to vfio-pci, with their IOMMU group.
    pub endpoints: Vec<(PciDevice, u32)>,
    /// The steps in order.
    pub steps: Vec<Step>,
}

/// Works out the plan (reads only). Every refusal that does not depend on a change happens here.
pub(crate) fn plan(ops: &dyn HostOps, view: &HookView, config: &VmgpuConfig) -> Result<Plan> {
    let root = ops.root();
    gpu::check_identity(root, &view.name, config)?;
    for &address in &view.pci_hostdevs {
        let device = gpu::read_device(root, address)?;
        if device.class.is_bridge() {
            return Err(Error::Bridge {
                address,
                class: device.class.name(),
            });
        }
    }
    for gpu in &config.gpus {
        if !view.pci_hostdevs.contains(gpu) {
            tracing::warn!("GPU {gpu} from the vmgpu metadata is not a <hostdev> of the domain");
        }
    }
    let endpoints = gpu::group_endpoints(root, &config.gpus)?;
    let mut steps = Vec::new();
    if config.single_gpu {
        steps.extend(single_gpu::plan_before(root)?);
    } else {
        // the same rule as `define`: a GPU the host displays on needs single-GPU mode; a boot VGA it does
        // not display on (headless, desktop on another card) only has its firmware framebuffer released
        for (device, _) in &endpoints {
            if let Some(output) = display::host_display_output(root, device)? {
                return Err(Error::HostDisplay {
                    vm: view.name.clone(),
                    address: device.address,
                    output,
                });
            }
        }
        let boot_vga = endpoints.iter().any(|(d, _)| d.boot_vga == Some(true));
        if boot_vga {
            steps.extend(single_gpu::release_firmware_framebuffer(root)?);
        }
    }
    for (device, _) in &endpoints {
        if device.driver.as_deref() != Some(gpu::VFIO) {
            steps.push(Step::BindVfio {
                address: device.address,
                original_driver: device.driver.clone(),
                original_override: device.driver_override.clone(),
            });
        }
    }
    if config.single_gpu {
        let devices: Vec<PciDevice> = endpoints.iter().map(|(d, _)| d.clone()).collect();
        steps.extend(single_gpu::plan_after(root, &devices));
    }
    if config.isolate_cpus {
        steps.extend(cpus::plan(root, view)?);
    }
    if config.hugepages {
        steps.extend(hugepages::plan(root, view)?);
    }
    shm::check_kvmfr(root, view, config.shmem.as_ref())?;
    if let Some(shmem) = &config.shmem {
        steps.extend(shm::plan(root, view, shmem)?);
    }
    // last: tuning is best effort and never the reason a start fails after the real work
    if config.tuning.governor {
        steps.extend(governor::plan(root, view)?);
    }
    if config.tuning.irq_affinity {
        let devices: Vec<PciAddress> = endpoints.iter().map(|(d, _)| d.address).collect();
        steps.extend(irqs::plan(root, view, &devices)?);
    }
    Ok(Plan { endpoints, steps })
}

/// Refuses when a process holds a device node of an endpoint about to be unbound. One walk of `/proc` for
/// all endpoints together: the walk is the costly part of a prepare (every fd of every process).
pub(crate) fn check_holders(ops: &dyn HostOps, endpoints: &[(PciDevice, u32)]) -> Result<()> {
    let root = ops.root();
    let mut watched = Vec::new();
    for (device, _) in endpoints {
        let current = root.read_link_name(format!(
            "{}/{}/driver",
            crate::host::pci::PCI_DEVICES,
            device.address
        ))?;
        if current.as_deref() == Some(gpu::VFIO) {
            continue;
        }
        let nodes = holders::device_nodes(root, device);
        watched.push((device, current, nodes));
    }
    let nvidia = |current: &Option<String>| current.as_deref() == Some("nvidia");
    let all_nodes: Vec<String> = watched.iter().flat_map(|(_, _, n)| n.clone()).collect();
    let prefixes: &[&str] = if watched.iter().any(|(_, c, _)| nvidia(c)) {
        &["/dev/nvidia"]
    } else {
        &[]
    };
    let found = holders::find(root, &all_nodes, prefixes);
    for (device, current, nodes) in &watched {
        let mine: Vec<holders::Holder> = found
            .iter()
            .filter(|h| {
                nodes.contains(&h.node) || (nvidia(current) && h.node.starts_with("/dev/nvidia"))
            })
            .cloned()
            .collect();
        if !mine.is_empty() {
            return Err(Error::Busy {
                address: device.address,
                what: format!(
                    "{}, driver {}",
                    device.class.name(),
                    current.as_deref().unwrap_or("none")
                ),
                holders: holders::describe(&mine),
            });
        }
    }
    for (_, current, _) in &watched {
        if nvidia(current)
            && let Some(refs) = root.read_optional("/sys/module/nvidia/refcnt")?
            && refs != "0"
        {
            tracing::warn!(
                "the nvidia module has {refs} users (nvidia-persistenced? CUDA?); unbinding may wait"
            );
            break;
        }
    }
    Ok(())
}

/// `prepare begin`: lock, put back what an earlier run of this VM left (a crash, a double start), plan on
/// the restored host, journal and apply.
pub(crate) fn prepare(
    ops: &dyn HostOps,
    vm: &str,
    view: &HookView,
    config: &VmgpuConfig,
) -> Result<()> {
    let store = Store::new(ops.root());
    let _lock = store.lock()?;
    restore_stale(ops, &store, vm)?;
    let mut plan = plan(ops, view, config)?;
    tracing::debug!("{vm}: planned {} steps", plan.steps.len());
    if !config.single_gpu {
        check_holders(ops, &plan.endpoints)?;
        tracing::debug!("{vm}: no holders");
    }
    if plan.steps.is_empty() && plan.endpoints.is_empty() {
        tracing::info!("{vm}: nothing to prepare");
        return Ok(());
    }
    shared_state::adopt(ops, vm, &mut plan.steps)?;
    let holds: Vec<PciAddress> = plan.endpoints.iter().map(|(d, _)| d.address).collect();
    check_gpu_lock(&store, vm, &holds)?;

    let crash_after: Option<usize> = std::env::var(ENV_CRASH_AFTER_STEP)
        .ok()
        .and_then(|v| v.parse().ok());
    let mut journal = VmJournal::new(vm);
    journal.holds = holds.clone();
    if !plan.endpoints.is_empty() && !ops.root().exists("/sys/bus/pci/drivers/vfio-pci") {
        // Without the module, drivers_probe leaves the device with no driver at all.
        ops.load_module("vfio-pci")?;
    }
    let last_bind = plan.steps.iter().rposition(|s| s.bound_address().is_some());
    let mut holders_checked = !config.single_gpu;
    for (index, step) in plan.steps.iter().enumerate() {
        if !holders_checked && step.bound_address().is_some() {
            holders_checked = true;
            if let Err(e) = check_holders(ops, &plan.endpoints) {
                return Err(roll_back(ops, &store, journal, e));
            }
        }
        journal.steps.push(step.clone());
        store.save(&journal)?;
        tracing::info!("{vm}: step {}: {}", index + 1, step.describe());
        tracing::debug!("{vm}: journaled step {}", index + 1);
        let mut result = step.apply(ops);
        if result.is_ok() && Some(index) == last_bind {
            result = gpu::verify_groups_viable(ops.root(), &plan.endpoints);
        }
        if let Err(e) = result {
            return Err(roll_back(ops, &store, journal, e));
        }
        if crash_after == Some(index + 1) {
            crash();
        }
    }
    journal.phase = Phase::Prepared;
    store.save(&journal)?;
    tracing::debug!("{vm}: prepared");
    Ok(())
}

/// A journal of this VM from an earlier run (vmgpu or libvirtd crashed, or libvirt never ran `release`):
/// undo it first, so the plan sees the host as it was before that run. When that fails, refuse: the fix is
/// `vmgpu restore <vm>` once the cause is dealt with.
fn restore_stale(ops: &dyn HostOps, store: &Store, vm: &str) -> Result<()> {
    let old = match store.load::<Step>(vm) {
        Ok(Some(old)) => old,
        Ok(None) => return Ok(()),
        Err(e) => {
            return Err(Error::StaleJournal {
                vm: vm.to_string(),
                source: Box::new(e.into()),
            });
        }
    };
    tracing::warn!(
        "{vm}: a journal from an earlier run exists ({:?}, {} steps); restoring it before planning",
        old.phase,
        old.steps.len()
    );
    undo_all(ops, store, old).map_err(|e| Error::StaleJournal {
        vm: vm.to_string(),
        source: Box::new(e),
    })
}

/// Refuses when another VM's journal holds one of `holds`.
fn check_gpu_lock(store: &Store, vm: &str, holds: &[PciAddress]) -> Result<()> {
    for other in store.list()? {
        if other == vm {
            continue;
        }
        let Some(journal) = store.load::<Step>(&other)? else {
            continue;
        };
        for held in &journal.holds {
            if let Some(address) = holds.iter().find(|a| *a == held) {
                return Err(Error::GpuHeld {
                    address: *address,
                    holder: other,
                    vm: vm.to_string(),
                });
            }
        }
    }
    Ok(())
}

fn roll_back(ops: &dyn HostOps, store: &Store, journal: VmJournal, cause: Error) -> Error {
    tracing::warn!(
        "{}: {cause}; undoing {} step(s)",
        journal.vm,
        journal.steps.len()
    );
    let timed_out = matches!(cause, Error::Ops(crate::ops::Error::Timeout { .. }));
    let kept = journal.clone();
    match undo_all(ops, store, journal) {
        Ok(()) if timed_out => {
            // The kernel may still finish the timed-out write once the device's user lets go (an unbind then
            // leaves the device without a driver): keep the journal so `vmgpu restore` can finish the job.
            let mut kept = kept;
            kept.phase = Phase::Releasing;
            if let Err(e) = store.save(&kept) {
                tracing::warn!("cannot keep the journal after a timeout: {e}");
            }
            Error::TimedOut {
                cause: Box::new(cause),
                vm: kept.vm,
            }
        }
        Ok(()) => Error::RolledBack(Box::new(cause)),
        Err(undo) => {
            tracing::error!("{}: undoing failed: {}", kept.vm, report::one_line(&undo));
            let left = match undo {
                Error::Restore { left, .. } => left,
                other => vec![report::one_line(&other)],
            };
            Error::RollbackFailed {
                vm: kept.vm,
                left,
                cause: Box::new(cause),
            }
        }
    }
}

/// `release end` and `vmgpu restore`: undo the VM's journal if it has one. Returns the number of steps
/// undone, or `None` when there is no journal (a journal with 0 steps is `Some(0)`).
pub(crate) fn release(ops: &dyn HostOps, vm: &str) -> Result<Option<usize>> {
    let store = Store::new(ops.root());
    if !store.path(vm)?.exists() {
        return Ok(None);
    }
    let _lock = store.lock()?;
    let Some(journal) = store.load::<Step>(vm)? else {
        return Ok(None);
    };
    let count = journal.steps.len();
    undo_all(ops, &store, journal)?;
    Ok(Some(count))
}

/// Undoes every step in reverse; removes the journal when all went well, keeps it (phase `Releasing`)
/// otherwise so a later `vmgpu restore` can finish.
fn undo_all(ops: &dyn HostOps, store: &Store, mut journal: VmJournal) -> Result<()> {
    journal.phase = Phase::Releasing;
    store.save(&journal)?;
    let mut left = Vec::new();
    let mut first = None;
    for step in journal.steps.iter().rev() {
        tracing::info!("{}: undo: {}", journal.vm, step.describe());
        if let Err(e) = step.undo(ops) {
            tracing::error!(
                "{}: cannot undo {}: {}",
                journal.vm,
                step.describe(),
                report::one_line(&e)
            );
            left.push(step.describe());
            first.get_or_insert(e);
        }
    }
    match first {
        None => {
            store.remove(&journal.vm)?;
            Ok(())
        }
        Some(first) => Err(Error::Restore {
            vm: journal.vm.clone(),
            left,
            first: Box::new(first),
        }),
    }
}

fn crash() -> ! {
    let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
    std::process::abort()
}
