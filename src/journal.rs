//! The write-ahead journal of what the hook changed for a VM: `/run/vmgpu/<vm>.json` under the host root.
//!
//! Every step is written here (and synced: file, then directory) *before* the change it describes, so a
//! crash at any point leaves a journal that `release` or `vmgpu restore` can replay. Each save replaces the
//! whole file atomically (write a temporary file, fsync, rename, fsync the directory): a reader sees the
//! old or the new version, never a torn one. `/run` is a tmpfs, which is right: every change vmgpu makes is
//! runtime-only and gone after a reboot, and so is the journal. One lock file serializes hooks of
//! different VMs (libvirt serializes the hooks of one VM itself).
//!
//! # Trust
//! A journal is data, never an order. Loading one checks, before any step is acted on: the file is a regular
//! file (not a symlink), its `format` is [`FORMAT`], its `vm` is the VM its file is named after, every held
//! address is a PCI address, and every step passes [`Entry::check`] (it names only the kind of object that
//! step owns). The directory is vmgpu's own (owned by the running user, mode 0700) and temporaries are
//! created exclusively, never through a link.
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::host::{HostRoot, PciAddress};
use crate::ops::files;

/// Where journals live (a host path, resolved under the root).
pub const DIR: &str = "/run/vmgpu";
/// The journal format this build writes (and the only one it reads).
pub const FORMAT: u32 = 1;
/// The largest journal read (a real one is a few KiB).
pub const MAX_BYTES: u64 = 1 << 20;

/// A journaled step: what [`Store::load`] checks before anything acts on it.
pub trait Entry: Serialize + DeserializeOwned {
    /// Refuses a step that names anything but the kind of object it owns (a path outside its place, a
    /// name that is not a plain name); the message says what is wrong.
    fn check(&self) -> std::result::Result<(), String>;
}

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
    /// The journal says it belongs to another VM than its file name.
    #[error(
        "journal {path} says it belongs to VM {inside:?}, but a journal belongs to the VM its file is named after ({file:?}); move it away and check the host by hand"
    )]
    NotItsVm {
        /// The full path.
        path: PathBuf,
        /// The VM of the file name.
        file: String,
        /// The `vm` field.
        inside: String,
    },
    /// The journal was written in a format this build does not know.
    #[error(
        "journal {path} has format {found}, but this vmgpu reads only format {FORMAT}: restore it with the vmgpu that wrote it, or move it away and check the host by hand"
    )]
    UnknownFormat {
        /// The full path.
        path: PathBuf,
        /// The `format` value as written.
        found: String,
    },
    /// A step or held address names something it does not own.
    #[error(
        "journal {path}, {what}: {problem}; nothing was done (move the journal away and check the host by hand)"
    )]
    Untrusted {
        /// The full path.
        path: PathBuf,
        /// `step 3 (shm-file)` or `holds`.
        what: String,
        /// What is wrong.
        problem: String,
    },
    /// The journal directory or a file in it is not vmgpu's own.
    #[error(
        "{path} {problem}; vmgpu keeps its journals only in a directory of its own (remove it and try again)"
    )]
    Unsafe {
        /// The full path.
        path: PathBuf,
        /// What is wrong.
        problem: String,
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

    /// Creates the directory (0700) if needed, makes sure it is vmgpu's own, and takes the exclusive lock
    /// (waits for another hook).
    pub fn lock(&self) -> Result<Lock> {
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
    pub fn load<S: Entry>(&self, vm: &str) -> Result<Option<Journal<S>>> {
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
        let journal: Journal<S> = serde_json::from_slice(&bytes).map_err(corrupt)?;
        let untrusted = |what: String, problem: String| Error::Untrusted {
            path: path.clone(),
            what,
            problem,
        };
        for held in &journal.holds {
            if held.parse::<PciAddress>().map(|a| a.to_string()).as_deref() != Ok(held.as_str()) {
                return Err(untrusted(
                    "holds".into(),
                    format!("{:?} is not a PCI address", cut(held)),
                ));
            }
        }
        for (index, step) in journal.steps.iter().enumerate() {
            step.check()
                .map_err(|problem| untrusted(format!("step {}", index + 1), problem))?;
        }
        Ok(Some(journal))
    }

    /// Replaces a VM's journal atomically and durably. Call with the lock held.
    pub fn save<S: Serialize>(&self, journal: &Journal<S>) -> Result<()> {
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
    pub fn remove(&self, vm: &str) -> Result<()> {
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

/// What is read of a journal before its steps.
#[derive(Deserialize)]
struct Header {
    format: serde_json::Value,
    vm: String,
}

/// The journal's bytes (`None`: no journal). A link, a non-regular file or an oversized file is refused.
fn read_journal(path: &Path) -> Result<Option<Vec<u8>>> {
    let flags = files::ReadFlags {
        no_follow: true,
        non_block: true,
    };
    let file = match files::open_read(path, flags) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(Error::Unsafe {
                path: path.to_path_buf(),
                problem: "is a symbolic link".into(),
            });
        }
        Err(source) => {
            return Err(Error::Io {
                action: "open",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let io = |source| Error::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    };
    if !file.metadata().map_err(io)?.is_file() {
        return Err(Error::Unsafe {
            path: path.to_path_buf(),
            problem: "is not a regular file".into(),
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(Error::Unsafe {
            path: path.to_path_buf(),
            problem: format!("is over {MAX_BYTES} bytes"),
        });
    }
    Ok(Some(bytes))
}

/// Makes sure the journal directory is vmgpu's own: a real directory (not a link) owned by the running
/// user; a mode open to others is closed to 0700.
fn own_dir(dir: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(dir).map_err(|source| Error::Io {
        action: "stat",
        path: dir.to_path_buf(),
        source,
    })?;
    let unsafe_dir = |problem: String| Error::Unsafe {
        path: dir.to_path_buf(),
        problem,
    };
    if !meta.file_type().is_dir() {
        return Err(unsafe_dir("is not a directory (a symbolic link?)".into()));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(unsafe_dir(format!(
            "is owned by uid {}, not by vmgpu (uid {me})",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        tracing::warn!(
            "{}: mode {:o} is open to others; closing it to 0700",
            dir.display(),
            meta.mode() & 0o7777
        );
        files::set_mode(dir, 0o700).map_err(|source| Error::Io {
            action: "chmod",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

fn cut(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A test step: "bad" is refused.
    impl Entry for String {
        fn check(&self) -> std::result::Result<(), String> {
            if self == "bad" {
                Err("bad step".into())
            } else {
                Ok(())
            }
        }
    }

    fn write_journal(dir: &tempfile::TempDir, name: &str, text: &str) {
        std::fs::create_dir_all(dir.path().join("run/vmgpu")).unwrap();
        std::fs::write(dir.path().join("run/vmgpu").join(name), text).unwrap();
    }

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
    fn test_load_unknown_format_is_refused_naming_it() {
        let (dir, store) = store();
        let mut journal = serde_json::to_value(Journal::<String>::new("vm")).unwrap();
        journal["format"] = 7.into();
        journal["steps"] = serde_json::json!([{"step": "from-the-future"}]);
        write_journal(&dir, "vm.json", &journal.to_string());
        let err = store.load::<String>("vm").unwrap_err();
        assert!(matches!(err, Error::UnknownFormat { .. }), "{err}");
        assert!(err.to_string().contains("format 7"), "{err}");
    }

    #[test]
    fn test_load_other_vm_inside_is_refused() {
        let (dir, store) = store();
        let journal = serde_json::to_string(&Journal::<String>::new("b")).unwrap();
        write_journal(&dir, "a.json", &journal);
        let err = store.load::<String>("a").unwrap_err();
        assert!(matches!(err, Error::NotItsVm { .. }), "{err}");
    }

    #[test]
    fn test_load_refuses_untrusted_step_and_bad_holds() {
        let (dir, store) = store();
        let mut journal = Journal::<String>::new("vm");
        journal.steps = vec!["ok".into(), "bad".into()];
        write_journal(&dir, "vm.json", &serde_json::to_string(&journal).unwrap());
        let err = store.load::<String>("vm").unwrap_err();
        assert!(err.to_string().contains("step 2: bad step"), "{err}");
        journal.steps.clear();
        journal.holds = vec!["../../etc".into()];
        write_journal(&dir, "vm.json", &serde_json::to_string(&journal).unwrap());
        let err = store.load::<String>("vm").unwrap_err();
        assert!(err.to_string().contains("holds"), "{err}");
    }

    #[test]
    fn test_load_refuses_a_symlinked_journal() {
        let (dir, store) = store();
        let real = dir.path().join("elsewhere.json");
        std::fs::write(
            &real,
            serde_json::to_string(&Journal::<String>::new("vm")).unwrap(),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("run/vmgpu")).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("run/vmgpu/vm.json")).unwrap();
        assert!(matches!(
            store.load::<String>("vm"),
            Err(Error::Unsafe { .. })
        ));
    }

    #[test]
    fn test_save_never_follows_a_planted_temporary() {
        let (dir, store) = store();
        let _lock = store.lock().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("run/vmgpu/.vm.json.tmp")).unwrap();
        store.save(&Journal::<String>::new("vm")).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(store.load::<String>("vm").unwrap().is_some());
    }

    #[test]
    fn test_lock_closes_an_open_directory_and_refuses_a_link() {
        let (dir, store) = store();
        std::fs::create_dir_all(dir.path().join("run/vmgpu")).unwrap();
        let run = dir.path().join("run/vmgpu");
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o777)).unwrap();
        drop(store.lock().unwrap());
        let mode = std::fs::metadata(&run).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::remove_dir_all(&run).unwrap();
        std::fs::create_dir(dir.path().join("other")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("other"), &run).unwrap();
        assert!(matches!(store.lock(), Err(Error::Unsafe { .. })));
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
