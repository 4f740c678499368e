//! Domain XML: vmgpu's metadata model and read-side views of what libvirt hands the hook.
pub mod element;
pub mod hookview;
pub mod metadata;

pub use element::Element;
pub use metadata::{ShmemConfig, ViewerConfig, VmgpuConfig};
