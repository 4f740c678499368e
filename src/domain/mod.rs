//! Domain XML in two halves. [`read`]: the one bounded XML reader and what the hook, `check` and `explain` read
//! from a domain (its devices, pinning, memory, the vmgpu metadata schema). [`write`]: what `define` writes —
//! templates, the spec derived from the command line and the host, CPU pinning, Looking Glass sizing, the
//! metadata it records and the byte-preserving rewrite that fills a template or updates an existing domain.
//! `write` uses `read`, never the other way round.
pub(crate) mod read;
pub mod write;

pub use read::element::Element;
pub use read::metadata::{ShmemConfig, ViewerConfig, VmgpuConfig};
