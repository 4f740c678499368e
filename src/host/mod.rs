//! Read-only model of the machine. Everything is read through one [`HostRoot`] (default `/`), so tests can
//! point it at a recorded sysfs/proc/etc tree. Nothing in here writes to the host.
pub mod pci;
pub mod root;

pub use pci::{PciAddress, PciClass, PciDevice};
pub use root::HostRoot;
