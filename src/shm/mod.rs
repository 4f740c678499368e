//! Guest-shared memory: the only place in the crate that may use `unsafe`.
//!
//! # Threat model
//! The bytes of an IVSHMEM region are written by the guest (the Looking Glass host application inside the VM)
//! while we read them. The guest is **not trusted**: any byte may hold any value and may change between two
//! reads. This module therefore never hands out `&[u8]` or `&T` over the mapping (that would let the compiler
//! assume the bytes are stable). It hands out only:
//! - bounds- and alignment-checked `&AtomicU32` / `&AtomicU64` / `&AtomicU8` for the fields the protocol marks
//!   atomic (and that we also write),
//! - copies into our own memory (`read_bytes`, `read_array`, `copy_to_u32s`), bounded by the region size.
//!
//! A copy may tear (a visual glitch), never read outside the mapping. Every offset is checked with checked
//! arithmetic against the length recorded at map time. A host process truncating the file makes accesses past
//! its new end raise SIGBUS; `fault.rs` turns that into zeros plus a "faulted" mark so the owner maps the file
//! anew (its SAFETY argument is written down there).
//! What is trusted: the path the user gave and the size `fstat`/`GETSIZE` reports at open.
#[cfg(not(target_endian = "little"))]
compile_error!(
    "the Looking Glass protocol is little-endian; vmgpu's shm module assumes a little-endian host"
);

mod fault;
mod heap;
mod map;
mod view;

use std::path::PathBuf;

pub use heap::HeapRegion;
pub use map::{Change, ShmMap};
pub use view::ShmView;

/// Something that owns a region of shared memory and can lend a checked view of it.
pub trait Region: Send + Sync {
    /// A checked view of the whole region, valid while `self` lives.
    fn view(&self) -> ShmView<'_>;
}

/// Errors of opening, mapping and accessing shared memory.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened.
    #[error("cannot open shared memory {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The size could not be read or set.
    #[error("cannot get or set the size of shared memory {path}")]
    Size {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is smaller than the protocol needs.
    #[error("shared memory {path} is too small: {size} bytes, at least {min} needed")]
    TooSmall {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The minimum.
        min: u64,
    },
    /// mmap failed.
    #[error("cannot map shared memory {path}")]
    Map {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An access reached outside the region.
    #[error(
        "shared-memory access out of bounds: offset {offset} + {len} bytes, region is {size} bytes"
    )]
    OutOfBounds {
        /// Start of the access.
        offset: usize,
        /// Its length.
        len: usize,
        /// Region size.
        size: usize,
    },
    /// An atomic access at an offset that is not naturally aligned.
    #[error("misaligned shared-memory atomic at offset {offset} (needs {align}-byte alignment)")]
    Misaligned {
        /// The offset.
        offset: usize,
        /// The alignment needed.
        align: usize,
    },
}

/// Result of this module.
pub(crate) type Result<T> = std::result::Result<T, Error>;
