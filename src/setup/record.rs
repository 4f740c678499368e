//! The record of an applied plan, kept with its backups under `<root>/var/lib/vmgpu/backup/<timestamp>/`:
//! `record.json` (what was written, which commands ran, what was promised) and `files/<host path>` (every
//! original file and every boot file a command rewrote). Written before the first file is replaced, so an
//! interrupted setup can still be undone.
use std::fs;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::plan::{PlanCommand, Promise};
use super::write;
use crate::host::HostRoot;

/// Where backups live, as a host path.
pub(crate) const BACKUP_DIR: &str = "/var/lib/vmgpu/backup";

/// Errors reading or writing records.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A record or backup could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A record is not valid JSON of the expected shape.
    #[error("{path} is not a vmgpu setup record")]
    Parse {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// Writing a record or backup failed.
    #[error("cannot write the setup record")]
    Write(#[source] write::Error),
}

/// Result of record operations.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// How far an apply got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum State {
    /// Backups taken, files being replaced (an interruption leaves this).
    Writing,
    /// Files written, commands running.
    Written,
    /// Everything done.
    Complete,
    /// A command failed and the files were put back.
    RolledBack,
    /// `--undo` restored it.
    Undone,
}

/// One file the plan wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileRecord {
    /// Host path.
    pub path: String,
    /// It existed before (its backup is in `files/`); otherwise undo removes it.
    pub existed: bool,
    /// What setup wrote (to tell a later manual edit apart).
    pub after: String,
}

/// The applied plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// Format version (1).
    pub version: u32,
    /// The backup directory name (a UTC timestamp).
    pub id: String,
    /// The plan's title.
    pub title: String,
    /// Progress.
    pub state: State,
    /// Files written.
    pub files: Vec<FileRecord>,
    /// Boot files the commands rewrite, backed up before they ran (host paths).
    pub artefacts: Vec<String>,
    /// Commands, in order.
    pub commands: Vec<PlanCommand>,
    /// What must hold after a reboot.
    pub promises: Vec<Promise>,
}

/// The backup store of one root.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    root: HostRoot,
}

impl Store {
    /// The store under `root`.
    pub(crate) fn new(root: &HostRoot) -> Self {
        Self { root: root.clone() }
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.path(format!("{BACKUP_DIR}/{id}"))
    }

    /// A new, unused backup id (the current UTC time, with a suffix when taken).
    pub(crate) fn new_id(&self) -> String {
        let base = write::timestamp();
        let mut id = base.clone();
        let mut n = 1;
        while self.dir(&id).exists() {
            n += 1;
            id = format!("{base}-{n}");
        }
        id
    }

    /// Where the backup of `host_path` for record `id` lives.
    pub(crate) fn backup_path(&self, id: &str, host_path: &str) -> PathBuf {
        self.dir(id)
            .join("files")
            .join(host_path.trim_start_matches('/'))
    }

    /// Copies the current `host_path` into the backup of `id`, keeping its mode and owner.
    pub(crate) fn back_up(&self, id: &str, host_path: &str) -> Result<()> {
        let real = self.root.path(host_path);
        let bytes = fs::read(&real).map_err(|source| Error::Read {
            path: real.clone(),
            source,
        })?;
        write::atomic(&self.backup_path(id, host_path), &bytes, Some(&real), 0o600)
            .map_err(Error::Write)
    }

    /// Writes (replaces) the record.
    pub(crate) fn save(&self, record: &Record) -> Result<()> {
        let text = serde_json::to_string_pretty(record).map_err(|source| Error::Parse {
            path: self.dir(&record.id),
            source,
        })?;
        write::atomic(
            &self.dir(&record.id).join("record.json"),
            format!("{text}\n").as_bytes(),
            None,
            0o600,
        )
        .map_err(Error::Write)
    }

    /// Every record, oldest first.
    pub(crate) fn all(&self) -> Result<Vec<Record>> {
        let base = self.root.path(BACKUP_DIR);
        let mut ids: Vec<String> = match fs::read_dir(&base) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(Error::Read { path: base, source }),
        };
        ids.sort();
        let mut out = Vec::new();
        for id in ids {
            let path = self.dir(&id).join("record.json");
            let text = match fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(Error::Read { path, source }),
            };
            let record =
                serde_json::from_str(&text).map_err(|source| Error::Parse { path, source })?;
            out.push(record);
        }
        Ok(out)
    }

    /// The newest record that is still in effect (not undone or rolled back).
    pub(crate) fn latest_active(&self) -> Result<Option<Record>> {
        Ok(self
            .all()?
            .into_iter()
            .rev()
            .find(|r| !matches!(r.state, State::Undone | State::RolledBack)))
    }
}
