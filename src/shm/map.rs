//! `ShmMap`: a shared-memory file (`/dev/shm/<name>`) or a kvmfr device (`/dev/kvmfrN`) mapped read-write and
//! shared, sized once at open. It never derefs to a slice: access goes through [`ShmView`].
use std::fs::File;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use memmap2::{MmapOptions, MmapRaw};

use super::fault::Guard;
use super::{Error, Region, Result, ShmView};
use crate::ops::files;

/// `KVMFR_DMABUF_GETSIZE` = `_IO('u', 0x44)`: the device size is the ioctl's return value.
const KVMFR_DMABUF_GETSIZE: u64 = 0x7544;

/// A mapped shared-memory region.
pub struct ShmMap {
    // Declared before `map` so it unregisters the range before the range is unmapped (see `fault`).
    guard: Guard,
    map: MmapRaw,
    len: usize,
    path: PathBuf,
    file: File,
    identity: Identity,
}

/// What names the file we mapped: a new file at the same path (a restarted VM) or a new device node (a
/// reloaded kvmfr module) differs in one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    rdev: u64,
}

impl Identity {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            rdev: meta.rdev(),
        }
    }
}

/// Why a mapping no longer shows what its path names: the owner should map the path anew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The path no longer exists (the VM stopped and its file was removed).
    Gone,
    /// Another file or device node is at the path now (the VM or the kvmfr module restarted).
    Replaced,
    /// The same file has another size now.
    Resized {
        /// Bytes mapped.
        mapped: u64,
        /// The file's size now.
        now: u64,
    },
    /// The file shrank under the mapping and an access past its new end faulted (now zeros).
    Shrunk,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Gone => write!(f, "was removed (the VM stopped?)"),
            Change::Replaced => write!(f, "was replaced by a new one (the VM restarted?)"),
            Change::Resized { mapped, now } => {
                write!(f, "changed size from {mapped} to {now} bytes")
            }
            Change::Shrunk => write!(f, "shrank under the viewer (truncated by a host process)"),
        }
    }
}

impl ShmMap {
    /// Opens and maps an existing file or kvmfr device; refuses one smaller than `min` bytes.
    pub fn open(path: &Path, min: u64) -> Result<Self> {
        let file = files::open_existing_rw(path).map_err(|source| Error::Open {
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
        Self::map(file, path, size)
    }

    /// Creates (or truncates) a file of `size` bytes, mode 0660 with the caller's group (like the hook's file, so
    /// a Looking Glass client run by another member of the group can read it), and maps it: the producer's side.
    pub fn create(path: &Path, size: u64) -> Result<Self> {
        // Mode set with fchmod: the umask may have taken the group bits away.
        let file = files::create_truncate(path, 0o660).map_err(|source| Error::Open {
            path: path.to_owned(),
            source,
        })?;
        file.set_len(size).map_err(|source| Error::Size {
            path: path.to_owned(),
            source,
        })?;
        Self::map(file, path, size)
    }

    fn map(file: File, path: &Path, size: u64) -> Result<Self> {
        let len = usize::try_from(size).map_err(|_| Error::Size {
            path: path.to_owned(),
            source: std::io::Error::other("size does not fit in memory"),
        })?;
        let identity = file
            .metadata()
            .map(|m| Identity::of(&m))
            .map_err(|source| Error::Size {
                path: path.to_owned(),
                source,
            })?;
        let map = MmapOptions::new()
            .len(len)
            .map_raw(&file)
            .map_err(|source| Error::Map {
                path: path.to_owned(),
                source,
            })?;
        let guard = Guard::register(map.as_mut_ptr(), len);
        Ok(Self {
            guard,
            map,
            len,
            path: path.to_owned(),
            file,
            identity,
        })
    }

    /// Whether an access past the end of a file that shrank faulted (the mapping shows zeros from there on).
    pub(crate) fn faulted(&self) -> bool {
        self.guard.faulted()
    }

    /// Whether the path still names the file we mapped, at the size we mapped: `None` when it does (or when
    /// the path cannot be checked right now), else what changed. Two `stat` calls; cheap enough to poll.
    pub(crate) fn change(&self) -> Option<Change> {
        if self.faulted() {
            return Some(Change::Shrunk);
        }
        let now = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(Change::Gone),
            Err(_) => return None,
        };
        if Identity::of(&now) != self.identity {
            return Some(Change::Replaced);
        }
        let ours = self.file.metadata().ok()?;
        if ours.file_type().is_file() && ours.len() != self.len as u64 {
            return Some(Change::Resized {
                mapped: self.len as u64,
                now: ours.len(),
            });
        }
        None
    }

    /// The mapped file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
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
