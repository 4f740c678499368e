//! The hook's errors: every refusal names what is wrong and, where there is one, the fix.
use std::path::PathBuf;

use crate::host::PciAddress;

/// Why the hook refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is not what libvirt passes.
    #[error("{0}")]
    Usage(String),
    /// stdin could not be read.
    #[error("cannot read the domain XML from stdin")]
    Stdin(#[source] std::io::Error),
    /// stdin is too large.
    #[error("the domain XML on stdin is over {0} bytes")]
    StdinTooLarge(usize),
    /// The domain XML is unusable.
    #[error(transparent)]
    Domain(#[from] crate::domain::read::hook_view::Error),
    /// argv and stdin disagree.
    #[error("the hook was called for VM {argv:?} but the XML on stdin is domain {xml:?}")]
    NameMismatch {
        /// The name in argv.
        argv: String,
        /// The `<name>` in the XML.
        xml: String,
    },
    /// A host file could not be read.
    #[error(transparent)]
    Host(#[from] crate::host::root::Error),
    /// A host change failed.
    #[error(transparent)]
    Ops(#[from] crate::ops::Error),
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] crate::journal::Error),
    /// A configured PCI device does not exist.
    #[error(
        "PCI device {0} does not exist on this host (no /sys/bus/pci/devices/{0}); check the address in the domain"
    )]
    NoSuchDevice(PciAddress),
    /// A bridge cannot be passed through.
    #[error("PCI device {address} is a {class}, not an endpoint: bridges cannot be passed through")]
    Bridge {
        /// The device.
        address: PciAddress,
        /// Its class name.
        class: &'static str,
    },
    /// No IOMMU group: the IOMMU is off.
    #[error(
        "{0} has no IOMMU group: the IOMMU is off (enable VT-d/AMD-Vi in the firmware and add intel_iommu=on or amd_iommu=on to the kernel command line; `vmgpu check` shows how)"
    )]
    NoIommu(PciAddress),
    /// A GPU is held by another VM.
    #[error(
        "GPU {address} is held by VM {holder:?}, so VM {vm:?} cannot have it (if {holder:?} is not running, run `vmgpu restore {holder}`)"
    )]
    GpuHeld {
        /// The contested device.
        address: PciAddress,
        /// The VM that holds it.
        holder: String,
        /// The VM asking.
        vm: String,
    },
    /// Processes hold a device that is about to be unbound.
    #[error(
        "{address} ({what}) is in use by {holders}; stop them (e.g. the desktop session or sound server) and start the VM again"
    )]
    Busy {
        /// The device.
        address: PciAddress,
        /// What kind of device.
        what: String,
        /// `pid 123 (pipewire), …`.
        holders: String,
    },
    /// A device did not end up on the expected driver.
    #[error("{address} is on {found} after binding, not {expected}")]
    BindFailed {
        /// The device.
        address: PciAddress,
        /// The driver wanted.
        expected: String,
        /// The driver found (or `no driver`).
        found: String,
    },
    /// The IOMMU group is not viable.
    #[error(
        "IOMMU group {group} is not viable: {address} is on {driver}, every endpoint must be on vfio-pci"
    )]
    GroupNotViable {
        /// Group number.
        group: u32,
        /// The offending endpoint.
        address: PciAddress,
        /// Its driver.
        driver: String,
    },
    /// CPU isolation cannot be done.
    #[error("host CPU isolation: {0}")]
    Cpus(String),
    /// Host tuning (governor, IRQ affinity) cannot be done.
    #[error("host tuning: {0}")]
    Tuning(String),
    /// Hugepages could not be allocated.
    #[error("hugepages: got {got} of {wanted} pages of {size_kib} KiB{hint}")]
    HugepagesShort {
        /// Pages there.
        got: u64,
        /// Pages wanted.
        wanted: u64,
        /// Page size.
        size_kib: u64,
        /// Extra advice (1 GiB pages need the boot parameter).
        hint: String,
    },
    /// Hugepage configuration problem.
    #[error("hugepages: {0}")]
    Hugepages(String),
    /// An IVSHMEM name that cannot be a file name.
    #[error(
        "<shmem name={0:?}> cannot be a file in /dev/shm (empty, `/`, `..`, NUL or over 255 bytes)"
    )]
    BadShmName(String),
    /// IVSHMEM problem.
    #[error("IVSHMEM {path}: {problem}")]
    Shm {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A user or group that does not exist.
    #[error("{kind} {name:?} does not exist on this host (looked in {path})")]
    NoAccount {
        /// `user` or `group`.
        kind: &'static str,
        /// The name.
        name: String,
        /// The file searched.
        path: PathBuf,
    },
    /// Single-GPU mode problem.
    #[error("single-GPU mode: {0}")]
    SingleGpu(String),
    /// The address of a GPU function now holds another device than at define time.
    #[error(
        "{address} now holds {found}; nothing was changed. If the card moved or the buses were renumbered, find it with `vmgpu gpus` and run `vmgpu define {vm} --update --gpu ADDR`"
    )]
    DeviceChanged {
        /// The VM.
        vm: String,
        /// The address recorded in the metadata.
        address: PciAddress,
        /// What is there now, against what was recorded.
        found: String,
    },
    /// A GPU the host displays on, named without single-GPU mode.
    #[error(
        "{address} is the host's display GPU (its output {output} is lit); nothing was changed. Give the guest another GPU (`vmgpu define {vm} --update --gpu ADDR`) or use single-GPU mode (`--single-gpu`)"
    )]
    HostDisplay {
        /// The VM.
        vm: String,
        /// The GPU.
        address: PciAddress,
        /// The lit DRM output.
        output: String,
    },
    /// This VM's journal from an earlier run could not be undone before a new prepare.
    #[error(
        "VM {vm:?} still has a journal from an earlier run that could not be undone; fix the cause, then run `vmgpu restore {vm}` and start it again"
    )]
    StaleJournal {
        /// The VM.
        vm: String,
        /// Why the undo failed.
        #[source]
        source: Box<Error>,
    },
    /// Undo left steps not done; the journal is kept. The cause is the first failure (the others are logged).
    #[error(
        "undoing VM {vm:?}'s journal left {} step(s) not undone: {} (the journal is kept: once the cause is fixed, run `vmgpu restore {vm}`)",
        .left.len(),
        .left.join("; ")
    )]
    Restore {
        /// The VM whose journal is kept.
        vm: String,
        /// Each step left, described.
        left: Vec<String>,
        /// Why the first of them failed.
        #[source]
        first: Box<Error>,
    },
    /// A preparation failed and undoing it failed too; the journal is kept. The cause is the prepare failure.
    #[error(
        "preparing the host failed, and undoing it left {} step(s) not undone: {} (the journal is kept: once the cause is fixed, run `vmgpu restore {vm}`)",
        .left.len(),
        .left.join("; ")
    )]
    RollbackFailed {
        /// The VM whose journal is kept.
        vm: String,
        /// Each step left, described.
        left: Vec<String>,
        /// Why preparing failed.
        #[source]
        cause: Box<Error>,
    },
    /// A write timed out; everything was undone, but the kernel may still finish that write.
    #[error(
        "preparing the host timed out and every change made so far was undone (once the device is free, run `vmgpu restore {vm}` in case the kernel finished the write later)"
    )]
    TimedOut {
        /// The timeout.
        #[source]
        cause: Box<Error>,
        /// The VM whose journal is kept.
        vm: String,
    },
    /// A half-done preparation was rolled back after this error.
    #[error("preparing the host failed and every change made so far was undone")]
    RolledBack(#[source] Box<Error>),
}

/// Result of hook operations.
pub type Result<T> = std::result::Result<T, Error>;
