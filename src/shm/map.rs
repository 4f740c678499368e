//! `ShmMap`: a shared-memory file (`/dev/shm/<name>`) or a kvmfr device (`/dev/kvmfrN`) mapped read-write and
//! shared, sized once at open. It never derefs to a slice: access goes through [`ShmView`].
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use memmap2::{MmapOptions, MmapRaw};

use super::{Error, Region, Result, ShmView};

/// `KVMFR_DMABUF_GETSIZE` = `_IO('u', 0x44)`: the device size is the ioctl's return value.
const KVMFR_DMABUF_GETSIZE: u64 = 0x7544;

/// A mapped shared-memory region.
pub struct ShmMap {
    map: MmapRaw,
    len: usize,
    path: PathBuf,
}

impl ShmMap {
    /// Opens and maps an existing file or kvmfr device; refuses one smaller than `min` bytes.
    pub fn open(path: &Path, min: u64) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| Error::Open {
                path: path.to_owned(),
                source,
            })?;
        let size = size_of_file(&file, path)?;
        if size < min {
            return Err(Error::TooSmall {
                path: path.to_owned(),
                size,
                min,
            });
        }
        Self::map(&file, path, size)
    }

    /// Creates (or truncates) a file of `size` bytes, mode 0600, and maps it: the producer's side.
    pub fn create(path: &Path, size: u64) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| Error::Open {
                path: path.to_owned(),
                source,
            })?;
        file.set_len(size).map_err(|source| Error::Size {
            path: path.to_owned(),
            source,
        })?;
        Self::map(&file, path, size)
    }

    fn map(file: &File, path: &Path, size: u64) -> Result<Self> {
        let len = usize::try_from(size).map_err(|_| Error::Size {
            path: path.to_owned(),
            source: std::io::Error::other("size does not fit in memory"),
        })?;
        let map = MmapOptions::new()
            .len(len)
            .map_raw(file)
            .map_err(|source| Error::Map {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            map,
            len,
            path: path.to_owned(),
        })
    }

    /// The mapped file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is mapped (never true for a successful open).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Region for ShmMap {
    fn view(&self) -> ShmView<'_> {
        // SAFETY: the mapping covers `len` bytes and stays mapped while `self` (and so the view's lifetime)
        // lives; all access goes through `ShmView` (atomics and raw copies), never references to the bytes.
        unsafe { ShmView::from_raw(self.map.as_mut_ptr(), self.len) }
    }
}

/// The size of a regular file (fstat) or of a kvmfr character device (its GETSIZE ioctl).
fn size_of_file(file: &File, path: &Path) -> Result<u64> {
    let meta = file.metadata().map_err(|source| Error::Size {
        path: path.to_owned(),
        source,
    })?;
    if !meta.file_type().is_char_device() {
        return Ok(meta.len());
    }
    use std::os::fd::AsRawFd;
    // SAFETY: KVMFR_DMABUF_GETSIZE takes no argument and only returns a value; a device that does not know the
    // request fails with ENOTTY, which we report. The fd is valid for the call.
    let ret = unsafe { nix::libc::ioctl(file.as_raw_fd(), KVMFR_DMABUF_GETSIZE as _) };
    if ret < 0 {
        return Err(Error::Size {
            path: path.to_owned(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(ret as u64)
}
