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
//! address parses as a [`PciAddress`] (in the one form vmgpu writes), every step parses as a step of a kind
//! this build writes (its typed fields included), and passes [`Entry::check`] (it names only the kind of
//! object that step owns). The directory is vmgpu's own (owned by the running user, mode 0700) and temporaries are
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

mod store;
mod trust;
pub(crate) use store::Store;

/// Where journals live (a host path, resolved under the root).
pub(crate) const DIR: &str = "/run/vmgpu";
/// The journal format this build writes (and the only one it reads).
pub(crate) const FORMAT: u32 = 1;
/// The largest journal read (a real one is a few KiB).
pub(crate) const MAX_BYTES: u64 = 1 << 20;

/// A journaled step: what [`Store::load`] checks before anything acts on it.
pub(crate) trait Entry: Serialize + DeserializeOwned {
    /// The kind a step read from a journal says it is, when it is a kind this build writes (`None`: not a
    /// step of this build; the journal is then corrupt rather than untrusted).
    fn known_kind(raw: &serde_json::Value) -> Option<&str>;

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
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// Where a VM's preparation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Phase {
    /// `prepare` is running or crashed: the last step may be half done.
    Preparing,
    /// `prepare` finished: the VM holds what the journal lists.
    Prepared,
    /// `release` or `restore` is running or crashed.
    Releasing,
}

/// One VM's journal: what it holds and the steps to undo, in the order they were done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Journal<S> {
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
    pub holds: Vec<PciAddress>,
    /// The steps, each written before it was applied.
    pub steps: Vec<S>,
}

impl<S> Journal<S> {
    /// A new, empty journal in phase `Preparing`.
    pub(crate) fn new(vm: &str) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A test step: "bad" is refused.
    impl Entry for String {
        fn known_kind(raw: &serde_json::Value) -> Option<&str> {
            raw.as_str()
        }

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
        let mut text = serde_json::to_value(&journal).unwrap();
        text["holds"] = serde_json::json!(["../../etc"]);
        write_journal(&dir, "vm.json", &text.to_string());
        let err = store.load::<String>("vm").unwrap_err();
        assert!(matches!(err, Error::Untrusted { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("holds: \"../../etc\" is not a PCI address"),
            "{err}"
        );
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
