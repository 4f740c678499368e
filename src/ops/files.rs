//! The filesystem primitives every vmgpu writer goes through: atomic replace (temporary file created
//! exclusively, fsync'd, renamed, directory fsync'd), exclusive create, lock files, removal, directories and
//! modes. Everything outside `ops/` that writes a file calls these; `clippy.toml` rejects the std writers
//! elsewhere, so this file holds the one `#[allow(clippy::disallowed_methods)]` per primitive.
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Error, Result};

/// `O_NOFOLLOW`: opening a symlink fails (ELOOP) instead of following it.
const NOFOLLOW: i32 = nix::fcntl::OFlag::O_NOFOLLOW.bits();

/// How a replacement file is written: where its temporary goes, its mode and owner.
#[derive(Debug, Clone)]
pub(crate) struct Replace {
    /// The temporary file, in the target's directory (so the rename is atomic).
    pub temp: PathBuf,
    /// Permission bits (set with `fchmod`, so the umask does not take any away).
    pub mode: u32,
    /// Owner and group; `None` keeps the creating user's.
    pub owner: Option<(u32, u32)>,
}

/// New content written to a temporary file next to its target and flushed to disk, not yet renamed over
/// it. Dropping it without [`Staged::commit`] removes the temporary.
#[derive(Debug)]
pub(crate) struct Staged {
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Staged {
    /// Writes `bytes` to `how.temp`: a leftover there (from a crash, or planted) is unlinked, never followed;
    /// the temporary is created exclusively (`O_EXCL|O_NOFOLLOW`), gets its mode and owner, and is fsync'd.
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn write(target: &Path, bytes: &[u8], how: &Replace) -> Result<Self> {
        let temp = how.temp.clone();
        let fail = |action: &'static str| {
            let path = temp.clone();
            move |source| Error::File {
                action,
                path,
                source,
            }
        };
        remove_file(&temp).map_err(fail("remove"))?;
        let mut file = create_new(&temp, how.mode).map_err(fail("create"))?;
        let staged = Self {
            temp: temp.clone(),
            target: target.to_path_buf(),
            committed: false,
        };
        file.write_all(bytes).map_err(fail("write"))?;
        file.set_permissions(std::fs::Permissions::from_mode(how.mode))
            .map_err(fail("chmod"))?;
        if let Some((uid, gid)) = how.owner {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(fail("chown"))?;
        }
        file.sync_all().map_err(fail("sync"))?;
        Ok(staged)
    }

    /// The temporary file (to label it before the rename).
    pub(crate) fn temp(&self) -> &Path {
        &self.temp
    }

    /// Renames the temporary over the target, then fsyncs the directory so the rename is durable.
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.temp, &self.target).map_err(|source| Error::File {
            action: "rename",
            path: self.target.clone(),
            source,
        })?;
        self.committed = true;
        let dir = self.target.parent().unwrap_or(Path::new("/"));
        sync_dir(dir).map_err(|source| Error::File {
            action: "sync",
            path: dir.to_path_buf(),
            source,
        })
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = remove_file(&self.temp);
        }
    }
}

/// Replaces `target` atomically and durably with `bytes` (see [`Staged`]).
pub(crate) fn replace(target: &Path, bytes: &[u8], how: &Replace) -> Result<()> {
    Staged::write(target, bytes, how)?.commit()
}

/// Creates a new file for writing: never an existing one, never through a symlink (`O_EXCL|O_NOFOLLOW`).
#[allow(clippy::disallowed_methods)]
pub(crate) fn create_new(path: &Path, mode: u32) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(NOFOLLOW)
        .open(path)
}

/// Creates or truncates a file for reading and writing with `mode` (applied with `fchmod`, so the umask
/// does not take bits away): the Looking Glass producer's shared-memory file.
#[allow(clippy::disallowed_methods)]
pub(crate) fn create_truncate(path: &Path, mode: u32) -> std::io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    Ok(file)
}

/// Opens an existing file for reading and writing (a shared-memory file or kvmfr device to map).
#[allow(clippy::disallowed_methods)]
pub(crate) fn open_existing_rw(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
}

/// How [`open_read`] opens.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReadFlags {
    /// Refuse a symlink (ELOOP) instead of following it.
    pub no_follow: bool,
    /// `O_NONBLOCK` (a FIFO planted in place of a file does not hang the open; `/dev/kmsg` stops at the end).
    pub non_block: bool,
}

/// Opens a file read-only with the given flags (reading changes nothing; this lives here because
/// `OpenOptions::open` can also write, so it is allowed only in `ops/`).
#[allow(clippy::disallowed_methods)]
pub(crate) fn open_read(path: &Path, flags: ReadFlags) -> std::io::Result<File> {
    let mut custom = 0;
    if flags.no_follow {
        custom |= NOFOLLOW;
    }
    if flags.non_block {
        custom |= nix::fcntl::OFlag::O_NONBLOCK.bits();
    }
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(custom)
        .open(path)
}

/// Opens (creating with `mode` if needed, never truncating, never through a symlink) a file to hold an
/// `flock` on.
#[allow(clippy::disallowed_methods)]
pub(crate) fn open_lock_file(path: &Path, mode: u32) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(mode)
        .custom_flags(NOFOLLOW)
        .open(path)
}

/// One `write(2)` of the whole value to an existing attribute (no create, no truncate), as `echo` does.
#[allow(clippy::disallowed_methods)]
pub(crate) fn write_attribute(path: &Path, value: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.write_all(value.as_bytes())
}

/// Removes a file (a symlink itself, never its target); a missing one is fine.
#[allow(clippy::disallowed_methods)]
pub(crate) fn remove_file(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes an empty directory; a missing one is fine.
#[allow(clippy::disallowed_methods)]
pub(crate) fn remove_dir(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Creates one directory level with `mode` (less the umask); an existing one is an error.
#[allow(clippy::disallowed_methods)]
pub(crate) fn create_dir(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::DirBuilder::new().mode(mode).create(path)
}

/// Creates a directory and its missing parents with `mode` (less the umask); existing ones are fine.
#[allow(clippy::disallowed_methods)]
pub(crate) fn create_dir_all(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
}

/// Sets a path's permission bits.
#[allow(clippy::disallowed_methods)]
pub(crate) fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Creates a Unix socket file at `path` and listens on it (the viewer's single-instance socket).
#[cfg(feature = "viewer")]
#[allow(clippy::disallowed_methods)]
pub(crate) fn bind_socket(path: &Path) -> std::io::Result<std::os::unix::net::UnixListener> {
    std::os::unix::net::UnixListener::bind(path)
}

/// Flushes a directory's entries (a rename or unlink in it) to disk.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn how(dir: &Path, mode: u32) -> Replace {
        Replace {
            temp: dir.join(".t.tmp"),
            mode,
            owner: None,
        }
    }

    #[test]
    fn test_replace_writes_mode_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t");
        std::fs::write(&target, "old").unwrap();
        replace(&target, b"new", &how(dir.path(), 0o640)).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o7777, 0o640);
        assert!(!dir.path().join(".t.tmp").exists());
    }

    #[test]
    fn test_replace_unlinks_a_planted_temporary_link_without_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(".t.tmp")).unwrap();
        replace(&dir.path().join("t"), b"x", &how(dir.path(), 0o600)).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }

    #[test]
    fn test_dropped_stage_removes_its_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let staged = Staged::write(&dir.path().join("t"), b"x", &how(dir.path(), 0o600)).unwrap();
        assert!(staged.temp().exists());
        drop(staged);
        assert!(!dir.path().join(".t.tmp").exists());
        assert!(!dir.path().join("t").exists());
    }

    #[test]
    fn test_create_new_refuses_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        create_new(&path, 0o600).unwrap();
        assert!(create_new(&path, 0o600).is_err());
        remove_file(&path).unwrap();
        remove_file(&path).unwrap();
    }
}
