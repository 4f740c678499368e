//! The journal directory: the lock, and loading, saving, removing and listing journals.
use super::trust::{Header, own_dir, read_journal, typed};
use super::*;

/// The journal directory of one host root.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    root: HostRoot,
}

/// Holds the journal lock until dropped.
pub(crate) struct Lock {
    _lock: Flock<File>,
}

impl Store {
    /// The store under `root`.
    pub(crate) fn new(root: &HostRoot) -> Self {
        Self { root: root.clone() }
    }

    fn dir(&self) -> PathBuf {
        self.root.path(DIR)
    }

    /// The journal path of a VM.
    pub(crate) fn path(&self, vm: &str) -> Result<PathBuf> {
        let bad =
            vm.is_empty() || vm.len() > 200 || vm.starts_with('.') || vm.contains(['/', '\0']);
        if bad {
            return Err(Error::BadName(vm.chars().take(64).collect()));
        }
        Ok(self.dir().join(format!("{vm}.json")))
    }

    /// Creates the directory (0700) if needed, makes sure it is vmgpu's own, and takes the exclusive lock
    /// (waits for another hook).
    pub(crate) fn lock(&self) -> Result<Lock> {
        let dir = self.dir();
        files::create_dir_all(&dir, 0o700).map_err(|source| Error::Io {
            action: "create",
            path: dir.clone(),
            source,
        })?;
        own_dir(&dir)?;
        let path = dir.join(".lock");
        let file = files::open_lock_file(&path, 0o600).map_err(|source| Error::Io {
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

    /// Reads a VM's journal; `None` when there is none. Refuses, before any step can be acted on, a journal
    /// that is a link, of another format, of another VM, or that names what its steps do not own.
    pub(crate) fn load<S: Entry>(&self, vm: &str) -> Result<Option<Journal<S>>> {
        let path = self.path(vm)?;
        let Some(bytes) = read_journal(&path)? else {
            return Ok(None);
        };
        let corrupt = |source| Error::Corrupt {
            path: path.clone(),
            source,
        };
        // The header first: a newer format may hold steps this build cannot parse.
        let header: Header = serde_json::from_slice(&bytes).map_err(corrupt)?;
        if header.format.as_u64() != Some(u64::from(FORMAT)) {
            return Err(Error::UnknownFormat {
                path,
                found: header.format.to_string().chars().take(32).collect(),
            });
        }
        if header.vm != vm {
            return Err(Error::NotItsVm {
                path,
                file: vm.to_string(),
                inside: header.vm.chars().take(64).collect(),
            });
        }
        let journal = typed(&path, &bytes)?;
        Ok(Some(journal))
    }

    /// Replaces a VM's journal atomically and durably. Call with the lock held.
    pub(crate) fn save<S: Serialize>(&self, journal: &Journal<S>) -> Result<()> {
        let path = self.path(&journal.vm)?;
        let bytes = serde_json::to_vec_pretty(journal).map_err(|e| Error::Io {
            action: "encode",
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        // The temporary is created exclusively (O_EXCL|O_NOFOLLOW) in the directory only vmgpu can write,
        // after unlinking (never following) a leftover from a crash or anything planted there.
        let how = files::Replace {
            temp: self.dir().join(format!(".{}.json.tmp", journal.vm)),
            mode: 0o600,
            owner: None,
        };
        files::replace(&path, &bytes, &how).map_err(from_ops)
    }

    /// Removes a VM's journal (after a complete release). Call with the lock held.
    pub(crate) fn remove(&self, vm: &str) -> Result<()> {
        let path = self.path(vm)?;
        files::remove_file(&path).map_err(|source| Error::Io {
            action: "remove",
            path,
            source,
        })?;
        let dir = self.dir();
        files::sync_dir(&dir).map_err(|source| Error::Io {
            action: "sync",
            path: dir,
            source,
        })
    }

    /// The VMs that have a journal, sorted.
    pub(crate) fn list(&self) -> Result<Vec<String>> {
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
}

/// A failed step of the atomic replace, named as the journal names its own steps.
fn from_ops(e: crate::ops::Error) -> Error {
    match e {
        crate::ops::Error::File {
            action,
            path,
            source,
        } => Error::Io {
            action,
            path,
            source,
        },
        other => Error::Io {
            action: "write",
            path: PathBuf::new(),
            source: std::io::Error::other(other.to_string()),
        },
    }
}
