//! A region in our own heap with the same access rules as a mapping: for tests, fuzzing and benchmarks (and so
//! that the `lg` parsers can run under Miri).
use std::cell::UnsafeCell;

use super::{Region, ShmView};

/// A zero-filled, 64-byte aligned heap buffer accessed only through [`ShmView`].
pub struct HeapRegion {
    words: Box<[UnsafeCell<[u64; 8]>]>,
    len: usize,
}

// SAFETY: the buffer is only ever accessed through `ShmView`, i.e. through atomics and raw-pointer copies, the
// same way a shared mapping written by another process is; no `&`/`&mut` to its bytes is ever created.
unsafe impl Sync for HeapRegion {}
// SAFETY: as above; the box owns the allocation and moving it between threads moves no bytes.
unsafe impl Send for HeapRegion {}

impl HeapRegion {
    /// A zero-filled region of `len` bytes.
    pub fn new(len: usize) -> Self {
        let blocks = len.div_ceil(64);
        let words = (0..blocks).map(|_| UnsafeCell::new([0u64; 8])).collect();
        Self { words, len }
    }
}

impl Region for HeapRegion {
    fn view(&self) -> ShmView<'_> {
        let ptr = UnsafeCell::raw_get(self.words.as_ptr()).cast::<u8>();
        // SAFETY: `ptr` points to `len` (≤ 64·blocks) bytes owned by `self` that stay allocated for the view's
        // lifetime (tied to `&self`), and every user accesses them only through `ShmView`.
        unsafe { ShmView::from_raw(ptr, self.len) }
    }
}
