//! Read-only model of the machine. Everything is read through one [`HostRoot`] (default `/`), so tests can
//! point it at a recorded sysfs/proc/etc tree. Nothing in here writes to the host.
//!
//! [`Host::read`] takes one snapshot of everything `check`, `gpus`, `setup` and `define` look at; the
//! modules mirror the kernel paths they read.
use std::path::PathBuf;

use serde::Serialize;

pub(crate) mod accounts;
pub(crate) mod cpu;
pub(crate) mod display;
pub(crate) mod distro;
pub(crate) mod gpu;
pub(crate) mod iommu;
pub(crate) mod kernel;
pub(crate) mod memory;
pub(crate) mod modconf;
pub(crate) mod parse;
pub(crate) mod pci;
pub(crate) mod root;
#[cfg(test)]
pub(crate) mod test_tree;
pub(crate) mod virtstack;

pub use cpu::{CpuSet, CpuTopology, CpuVendor};
pub use distro::{Bootloader, Distro, Family, InitramfsTool, PackageManager};
pub use gpu::{GpuCard, Verdict};
pub use iommu::{Iommu, IommuStatus};
pub use kernel::{Cmdline, Kernel};
pub use memory::Memory;
pub use modconf::ModuleConfig;
pub use pci::{PciAddress, PciClass, PciDevice};
pub use root::HostRoot;
pub use virtstack::VirtStack;

/// Errors taking a snapshot of the host. Each names the part that failed; the source has the path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The root directory itself is missing.
    #[error("host root {0} does not exist or is not a directory")]
    MissingRoot(PathBuf),
    /// The root lacks a file every Linux host has: not a host tree (or a half-recorded one).
    #[error("{root} is not a host tree: {missing} is missing")]
    NotAHostTree {
        /// The root.
        root: PathBuf,
        /// The host path that should exist.
        missing: &'static str,
    },
    /// Reading PCI devices failed.
    #[error("reading PCI devices")]
    Pci(#[source] root::Error),
    /// Reading the IOMMU failed.
    #[error("reading the IOMMU groups")]
    Iommu(#[source] root::Error),
    /// Reading the CPU topology failed.
    #[error("reading the CPU topology")]
    Cpu(#[source] cpu::Error),
    /// Reading memory failed.
    #[error("reading memory and hugepages")]
    Memory(#[source] root::Error),
    /// Reading kernel facts failed.
    #[error("reading the kernel release, command line and modules")]
    Kernel(#[source] root::Error),
    /// Reading the distribution failed.
    #[error("reading the distribution")]
    Distro(#[source] root::Error),
    /// Reading the module configuration failed.
    #[error("reading the module configuration under /etc")]
    ModuleConfig(#[source] root::Error),
    /// Reading the virtualization stack failed.
    #[error("reading the virtualization stack (qemu, firmware, libvirt)")]
    Virt(#[source] root::Error),
}

/// Result of taking a snapshot.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// Files every Linux host has; a root without one of them is refused up front with a clear message.
const REQUIRED: &[&str] = &[
    "/proc/cmdline",
    "/proc/meminfo",
    "/proc/sys/kernel/osrelease",
    "/sys/devices/system/cpu/online",
    "/sys/bus/pci/devices",
];

/// One snapshot of the machine.
#[derive(Debug, Clone, Serialize)]
pub struct Host {
    /// Where it was read from.
    #[serde(skip)]
    pub root: HostRoot,
    /// Every PCI function, by address.
    pub pci: Vec<PciDevice>,
    /// IOMMU groups and tables.
    pub iommu: Iommu,
    /// CPUs.
    pub cpu: CpuTopology,
    /// Memory and hugepages.
    pub memory: Memory,
    /// The running kernel.
    pub kernel: Kernel,
    /// The distribution and its boot tools.
    pub distro: Distro,
    /// modprobe.d, modules-load.d and the initramfs tools' module lists.
    pub modconf: ModuleConfig,
    /// QEMU, firmware, libvirt, /dev/kvm, the hook, MAC.
    pub virt: VirtStack,
}

impl Host {
    /// Reads everything under `root`.
    pub fn read(root: &HostRoot) -> Result<Self> {
        if !root.base().is_dir() {
            return Err(Error::MissingRoot(root.base().to_path_buf()));
        }
        if let Some(missing) = REQUIRED.iter().find(|p| !root.exists(p)) {
            return Err(Error::NotAHostTree {
                root: root.base().to_path_buf(),
                missing,
            });
        }
        let distro = Distro::read(root).map_err(Error::Distro)?;
        let virt = VirtStack::read(root, distro.family).map_err(Error::Virt)?;
        Ok(Self {
            root: root.clone(),
            pci: pci::read_all(root).map_err(Error::Pci)?,
            iommu: Iommu::read(root).map_err(Error::Iommu)?,
            cpu: CpuTopology::read(root).map_err(Error::Cpu)?,
            memory: Memory::read(root).map_err(Error::Memory)?,
            kernel: Kernel::read(root).map_err(Error::Kernel)?,
            distro,
            modconf: ModuleConfig::read(root).map_err(Error::ModuleConfig)?,
            virt,
        })
    }

    /// One PCI function by address.
    pub(crate) fn device(&self, address: PciAddress) -> Option<&PciDevice> {
        self.pci.iter().find(|d| d.address == address)
    }

    /// Every GPU as a passthrough unit (see [`gpu::cards`]).
    pub fn gpus(&self) -> Vec<GpuCard> {
        gpu::cards(self)
    }

    /// Why the IOMMU is on or off.
    pub(crate) fn iommu_status(&self) -> IommuStatus {
        self.iommu
            .status(&self.kernel, self.cpu.vendor, self.cpu.hypervisor)
    }
}
