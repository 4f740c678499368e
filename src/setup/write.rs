//! Atomic file writes that keep the original's owner and mode: the new text goes to a temporary file in the
//! same directory, is flushed to disk, gets the owner, mode (and SELinux label, via `chcon --reference`) of the
//! file it replaces, and only then is renamed over it.
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ops::{self, files, process::Program};

/// A failed write step, with the path.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Creating or writing the temporary file failed (a read-only or full file system).
    #[error("cannot write {path}")]
    Stage {
        /// The temporary file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Renaming the temporary file over the target failed.
    #[error("cannot replace {path}")]
    Replace {
        /// The target.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Removing a file failed.
    #[error("cannot remove {path}")]
    Remove {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Result of a write step.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// A temporary file written next to its target, not yet renamed over it. Dropping it removes the temporary.
#[derive(Debug)]
pub(crate) struct Staged {
    inner: files::Staged,
    target: PathBuf,
}

impl Staged {
    /// Writes `bytes` next to `target`, with the owner and mode of `like` (the target itself, or a backup of
    /// it) when that exists, else root and `mode`. Creates missing parent directories.
    pub(crate) fn new(target: &Path, bytes: &[u8], like: Option<&Path>, mode: u32) -> Result<Self> {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = target.parent().unwrap_or(Path::new("/"));
        let temp = parent.join(format!(".{name}.vmgpu-new"));
        let stage = |source| Error::Stage {
            path: temp.clone(),
            source,
        };
        files::create_dir_all(parent, 0o777).map_err(stage)?;
        let like_meta = like.and_then(|p| fs::metadata(p).ok());
        let (mode, uid, gid) = match &like_meta {
            Some(m) => (m.mode() & 0o7777, m.uid(), m.gid()),
            None => (mode, 0, 0),
        };
        let how = files::Replace {
            temp: temp.clone(),
            mode,
            owner: Some((uid, gid)),
        };
        let inner = files::Staged::write(target, bytes, &how).map_err(|e| stage(into_io(e)))?;
        if let Some(like) = like.filter(|_| like_meta.is_some()) {
            copy_selinux_label(like, inner.temp());
        }
        Ok(Self {
            inner,
            target: target.to_path_buf(),
        })
    }

    /// Renames the temporary file over the target and syncs the directory.
    pub(crate) fn commit(self) -> Result<()> {
        let target = self.target;
        self.inner.commit().map_err(|e| Error::Replace {
            path: target,
            source: into_io(e),
        })
    }
}

/// The I/O error inside a failed file primitive.
fn into_io(e: ops::Error) -> io::Error {
    match e {
        ops::Error::File { source, .. } => source,
        other => io::Error::other(other.to_string()),
    }
}

/// Writes `bytes` to `target` atomically (see [`Staged`]).
pub(crate) fn atomic(target: &Path, bytes: &[u8], like: Option<&Path>, mode: u32) -> Result<()> {
    Staged::new(target, bytes, like, mode)?.commit()
}

/// Removes a file; a missing one is fine.
pub(crate) fn remove(path: &Path) -> Result<()> {
    files::remove_file(path).map_err(|source| Error::Remove {
        path: path.to_path_buf(),
        source,
    })
}

/// How long `chcon` may take.
const CHCON_DEADLINE: Duration = Duration::from_secs(30);

/// Gives `target` the SELinux label of `like` where SELinux is active; nothing elsewhere.
fn copy_selinux_label(like: &Path, target: &Path) {
    if !Path::new("/sys/fs/selinux/enforce").exists() {
        return;
    }
    let done = Program::new("chcon")
        .arg(format!("--reference={}", like.display()))
        .arg(target)
        .run(CHCON_DEADLINE);
    if !done.is_ok_and(|d| d.status.success()) {
        tracing::warn!(
            "could not copy the SELinux label of {} to {}",
            like.display(),
            target.display()
        );
    }
}

/// A sortable UTC timestamp for backup directory names: `20261124T061502Z`.
pub(crate) fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn test_atomic_keeps_mode_of_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grub");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        atomic(&path, b"new", Some(&path), 0o644).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn test_dropped_stage_leaves_target_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.conf");
        drop(Staged::new(&path, b"new", None, 0o644).unwrap());
        assert!(!path.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn test_timestamp_has_fixed_shape() {
        let t = timestamp();
        assert_eq!(t.len(), 16);
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
