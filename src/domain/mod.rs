//! Domain XML: vmgpu's metadata model and read-side views of what libvirt hands the hook; templates, the spec
//! vmgpu derives from the command line and the host, CPU pinning, Looking Glass sizing, and the byte-preserving
//! rewrite that fills a template or updates an existing domain.
pub mod element;
pub mod hookview;
pub mod identity;
pub mod looking_glass;
pub mod metadata;
pub mod metadata_view;
pub mod pinning;
pub mod render;
pub mod rewrite;
pub mod sound;
pub mod spec;
pub mod spice_graphics;
pub mod template;
pub mod xml_index;

pub use element::Element;
pub use metadata::{ShmemConfig, ViewerConfig, VmgpuConfig};
