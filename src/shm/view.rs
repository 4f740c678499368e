//! `ShmView`: a pointer, a length and a lifetime, like vm-memory's `VolatileSlice`. Every access is checked
//! against the length; the only references it hands out are to atomics.
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64};

use super::{Error, Result};

/// A checked view of a shared-memory region. `Copy`, so it is passed by value to each protocol step; it holds no
/// borrow of the bytes themselves.
#[derive(Clone, Copy)]
pub struct ShmView<'a> {
    ptr: *mut u8,
    len: usize,
    _life: PhantomData<&'a ()>,
}

// SAFETY: a view only reads and writes through atomics and raw-pointer copies, which is how every other user of
// the region (another process, or another thread) accesses it too.
unsafe impl Send for ShmView<'_> {}
// SAFETY: as for `Send`; no method gives out a plain reference into the region.
unsafe impl Sync for ShmView<'_> {}

impl<'a> ShmView<'a> {
    /// A view of `len` bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr..ptr+len` must stay valid for reads and writes for `'a`, and every other user of those bytes must
    /// access them only through atomics or raw-pointer copies (never through Rust references).
    pub(super) unsafe fn from_raw(ptr: *mut u8, len: usize) -> Self {
        Self {
            ptr,
            len,
            _life: PhantomData,
        }
    }

    /// Region size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty (public with `len`, as clippy's `len_without_is_empty` asks).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks that `offset..offset+len` lies inside the region.
    pub(crate) fn check(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Error::OutOfBounds {
                offset,
                len,
                size: self.len,
            }),
        }
    }

    fn checked_ptr(&self, offset: usize, len: usize, align: usize) -> Result<*mut u8> {
        self.check(offset, len)?;
        // SAFETY: offset + len ≤ self.len, so the result stays inside the region.
        let p = unsafe { self.ptr.add(offset) };
        if !(p as usize).is_multiple_of(align) {
            return Err(Error::Misaligned { offset, align });
        }
        Ok(p)
    }

    /// The `u32` at `offset` as an atomic (bounds and 4-byte alignment checked).
    pub(crate) fn atomic_u32(&self, offset: usize) -> Result<&'a AtomicU32> {
        let p = self.checked_ptr(offset, 4, 4)?;
        // SAFETY: in bounds and aligned (checked above); valid for 'a (constructor contract); every user accesses
        // these bytes atomically or by raw copy.
        Ok(unsafe { AtomicU32::from_ptr(p.cast()) })
    }

    /// The `u64` at `offset` as an atomic (bounds and 8-byte alignment checked).
    pub fn atomic_u64(&self, offset: usize) -> Result<&'a AtomicU64> {
        let p = self.checked_ptr(offset, 8, 8)?;
        // SAFETY: as in `atomic_u32`, with 8-byte bounds and alignment checked.
        Ok(unsafe { AtomicU64::from_ptr(p.cast()) })
    }

    /// The byte at `offset` as an atomic (LGMP v5 one-byte locks).
    pub(crate) fn atomic_u8(&self, offset: usize) -> Result<&'a AtomicU8> {
        let p = self.checked_ptr(offset, 1, 1)?;
        // SAFETY: in bounds; a byte needs no alignment; valid for 'a.
        Ok(unsafe { AtomicU8::from_ptr(p) })
    }

    /// Copies `dst.len()` bytes at `offset` into `dst` (one pass; may tear, never overruns).
    pub fn read_bytes(&self, offset: usize, dst: &mut [u8]) -> Result<()> {
        let p = self.checked_ptr(offset, dst.len(), 1)?;
        // SAFETY: the source range is inside the region (checked); `dst` is our own memory and cannot overlap
        // the region (no reference into the region exists).
        unsafe { std::ptr::copy_nonoverlapping(p, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    /// Copies `N` bytes at `offset` into an array: one copy of a whole record, decoded afterwards.
    pub(crate) fn read_array<const N: usize>(&self, offset: usize) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        self.read_bytes(offset, &mut out)?;
        Ok(out)
    }

    /// Copies `4 * dst.len()` bytes at `offset` into `dst` as little-endian words (the BGRA fast path).
    pub(crate) fn copy_to_u32s(&self, offset: usize, dst: &mut [u32]) -> Result<()> {
        let bytes = dst.len().checked_mul(4).ok_or(Error::OutOfBounds {
            offset,
            len: usize::MAX,
            size: self.len,
        })?;
        let p = self.checked_ptr(offset, bytes, 1)?;
        // SAFETY: the source range is inside the region (checked); `dst` is our own memory of exactly `bytes`
        // bytes; u32 has no invalid bit patterns and the host is little-endian (compile-time check in mod.rs).
        unsafe { std::ptr::copy_nonoverlapping(p, dst.as_mut_ptr().cast::<u8>(), bytes) };
        Ok(())
    }

    /// Writes `src` at `offset` (the producer's side, and our own client fields).
    pub fn write_bytes(&self, offset: usize, src: &[u8]) -> Result<()> {
        let p = self.checked_ptr(offset, src.len(), 1)?;
        // SAFETY: the destination range is inside the region (checked) and `src` is our own memory.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), p, src.len()) };
        Ok(())
    }

    /// Sets `len` bytes at `offset` to `byte`.
    pub(crate) fn fill(&self, offset: usize, len: usize, byte: u8) -> Result<()> {
        let p = self.checked_ptr(offset, len, 1)?;
        // SAFETY: the destination range is inside the region (checked).
        unsafe { std::ptr::write_bytes(p, byte, len) };
        Ok(())
    }

    /// Reads a little-endian `u32` at any offset (a plain, non-atomic field).
    pub fn read_u32(&self, offset: usize) -> Result<u32> {
        Ok(u32::from_le_bytes(self.read_array(offset)?))
    }

    /// Writes a little-endian `u32` at any offset.
    pub fn write_u32(&self, offset: usize, value: u32) -> Result<()> {
        self.write_bytes(offset, &value.to_le_bytes())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use crate::shm::{HeapRegion, Region};

    #[test]
    fn test_read_bytes_past_end_is_out_of_bounds() {
        let region = HeapRegion::new(64);
        let mut buf = [0u8; 8];
        assert!(region.view().read_bytes(60, &mut buf).is_err());
    }

    #[test]
    fn test_read_bytes_overflowing_offset_is_out_of_bounds() {
        let region = HeapRegion::new(64);
        let mut buf = [0u8; 8];
        assert!(region.view().read_bytes(usize::MAX - 2, &mut buf).is_err());
    }

    #[test]
    fn test_atomic_u64_misaligned_is_refused() {
        let region = HeapRegion::new(64);
        assert!(region.view().atomic_u64(4).is_err());
    }

    #[test]
    fn test_write_then_atomic_load_roundtrips() {
        let region = HeapRegion::new(64);
        region.view().write_u32(8, 0xDEAD_BEEF).unwrap();
        let v = region.view().atomic_u32(8).unwrap().load(Ordering::Acquire);
        assert_eq!(v, 0xDEAD_BEEF);
    }

    #[test]
    fn test_copy_to_u32s_reads_little_endian_words() {
        let region = HeapRegion::new(64);
        region.view().write_bytes(0, &[1, 2, 3, 4]).unwrap();
        let mut out = [0u32; 1];
        region.view().copy_to_u32s(0, &mut out).unwrap();
        assert_eq!(out[0], 0x0403_0201);
    }
}
