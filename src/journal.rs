//! The write-ahead journal of what the hook changed for a VM: `/run/vmgpu/<vm>.json` under the host root.
//!
//! Every step is written here (and synced: file, then directory) *before* the change it describes, so a
//! crash at any point leaves a journal that `release` or `vmgpu restore` can replay. Each save replaces the
//! whole file atomically (write a temporary file, fsync, rename, fsync the directory): a reader sees the
//! old or the new version, never a torn one. `/run` is a tmpfs, which is right: every change vmgpu makes is
//! runtime-only and gone after a reboot, and so is the journal. One lock file serializes hooks of
//! different VMs (libvirt serializes the hooks of one VM itself).
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use nix::fcntl::{Flock, FlockArg};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::host::HostRoot;

/// Where journals live (a host path, resolved under the root).
pub const DIR: &str = "/run/vmgpu";
/// The journal format this build writes.
pub const FORMAT: u32 = 1;

/// Why the journal could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed.
    #[error("cannot {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The full path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The journal exists but cannot be read.
    #[error("journal {path} is corrupt (move it away and check the host by hand)")]
    Corrupt {
        /// The full path.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The VM name cannot be a file name.
    #[error(
        "VM name {0:?} cannot name a journal file (empty, `/`, NUL, leading `.` or over 200 bytes)"
    )]
    BadName(String),
}

/// Result of journal operations.
pub type Result<T> = std::result::Result<T, Error>;

/// Where a VM's preparation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// `prepare` is running or crashed: the last step may be half done.
    Preparing,
    /// `prepare` finished: the VM holds what the journal lists.
    Prepared,
    /// `release` or `restore` is running or crashed.
    Releasing,
}

/// One VM's journal: what it holds and the steps to undo, in the order they were done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal<S> {
    /// [`FORMAT`].
    pub format: u32,
    /// The domain name.
    pub vm: String,
    /// Where it stands.
    pub phase: Phase,
    /// The process that wrote it last.
    pub pid: u32,
    /// Seconds since the epoch when `prepare` started.
    pub started_unix: u64,
    /// PCI addresses this VM holds (the per-GPU lock).
    pub holds: Vec<String>,
    /// The steps, each written before it was applied.
    pub steps: Vec<S>,
}

impl<S> Journal<S> {
    /// A new, empty journal in phase `Preparing`.
    pub fn new(vm: &str) -> Self {
        Self {
            format: FORMAT,
            vm: vm.to_string(),
            phase: Phase::Preparing,
            pid: std::process::id(),
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            holds: Vec::new(),
            steps: Vec::new(),
        }
    }
}

/// The journal directory of one host root.
#[derive(Debug, Clone)]
pub struct Store {
    root: HostRoot,
}

/// Holds the journal lock until dropped.
pub struct Lock {
    _lock: Flock<File>,
}

impl Store {
    /// The store under `root`.
    pub fn new(root: &HostRoot) -> Self {
        Self { root: root.clone() }
    }

    fn dir(&self) -> PathBuf {
        self.root.path(DIR)
    }

    /// The journal path of a VM.
    pub fn path(&self, vm: &str) -> Result<PathBuf> {
        let bad =
            vm.is_empty() || vm.len() > 200 || vm.starts_with('.') || vm.contains(['/', '\0']);
        if bad {
            return Err(Error::BadName(vm.chars().take(64).collect()));
        }
        Ok(self.dir().join(format!("{vm}.json")))
    }

    /// Creates the directory (0700) if needed and takes the exclusive lock (waits for another hook).
    pub fn lock(&self) -> Result<Lock> {
        let dir = self.dir();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| Error::Io {
                action: "create",
                path: dir.clone(),
                source,
            })?;
        let path = dir.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| Error::Io {
                action: "open",
                path: path.clone(),
                source,
            })?;
        let lock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| Error::Io {
            action: "lock",
            path,
            source: std::io::Error::from(errno),
        })?;
        Ok(Lock { _lock: lock })
    }

    /// Reads a VM's journal; `None` when there is none.
    pub fn load<S: DeserializeOwned>(&self, vm: &str) -> Result<Option<Journal<S>>> {
        let path = self.path(vm)?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| Error::Corrupt { path, source })
    }

    /// Replaces a VM's journal atomically and durably. Call with the lock held.
    pub fn save<S: Serialize>(&self, journal: &Journal<S>) -> Result<()> {
        let path = self.path(&journal.vm)?;
        let tmp = self.dir().join(format!(".{}.json.tmp", journal.vm));
        let io = |action: &'static str, path: &PathBuf| {
            let path = path.clone();
            move |source| Error::Io {
                action,
                path,
                source,
            }
        };
        let bytes = serde_json::to_vec_pretty(journal).map_err(|e| Error::Io {
            action: "encode",
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        file.write_all(&bytes).map_err(io("write", &tmp))?;
        file.sync_all().map_err(io("sync", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("rename", &path))?;
        self.sync_dir()
    }

    /// Removes a VM's journal (after a complete release). Call with the lock held.
    pub fn remove(&self, vm: &str) -> Result<()> {
        let path = self.path(vm)?;
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
                action: "remove",
                path,
                source: e,
            }),
            _ => self.sync_dir(),
        }
    }

    /// The VMs that have a journal, sorted.
    pub fn list(&self) -> Result<Vec<String>> {
        let names = self.root.list_dir(DIR).map_err(|e| Error::Io {
            action: "list",
            path: self.dir(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(names
            .into_iter()
            .filter(|n| !n.starts_with('.'))
            .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
            .collect())
    }

    fn sync_dir(&self) -> Result<()> {
        let dir = self.dir();
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| Error::Io {
                action: "sync",
                path: dir,
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(&HostRoot::new(dir.path()));
        (dir, store)
    }

    #[test]
    fn test_save_then_load_round_trips() {
        let (_dir, store) = store();
        let _lock = store.lock().unwrap();
        let mut journal: Journal<String> = Journal::new("win11");
        journal.steps.push("bind".into());
        store.save(&journal).unwrap();
        assert_eq!(store.load::<String>("win11").unwrap(), Some(journal));
        assert_eq!(store.list().unwrap(), vec!["win11".to_string()]);
    }

    #[test]
    fn test_load_missing_is_none() {
        let (_dir, store) = store();
        assert_eq!(store.load::<String>("nope").unwrap(), None);
    }

    #[test]
    fn test_load_corrupt_is_error() {
        let (dir, store) = store();
        std::fs::create_dir_all(dir.path().join("run/vmgpu")).unwrap();
        std::fs::write(dir.path().join("run/vmgpu/vm.json"), "{\"format\":1,").unwrap();
        assert!(matches!(
            store.load::<String>("vm"),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn test_path_with_slash_is_refused() {
        let (_dir, store) = store();
        assert!(matches!(store.path("../x"), Err(Error::BadName(_))));
    }

    #[test]
    fn test_remove_then_list_is_empty() {
        let (_dir, store) = store();
        let _lock = store.lock().unwrap();
        store.save(&Journal::<String>::new("a")).unwrap();
        store.remove("a").unwrap();
        assert!(store.list().unwrap().is_empty());
    }
}
