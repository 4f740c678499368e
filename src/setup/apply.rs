//! Applying a plan and undoing it.
//!
//! Apply: check every command's program exists and every file is still as planned; stage every new file next
//! to its target (a read-only `/etc` fails here, before anything changed); back up the originals and the boot
//! files the commands rewrite; write the record; rename the staged files into place; run the commands. A
//! failing command puts every file back. Undo restores the newest record's files byte for byte, replays the
//! regeneration commands and puts the backed-up boot files back.
use super::files::{FileSource, find_program};
use super::plan::{Plan, Runs};
use super::record::{self, FileRecord, Record, State, Store};
use super::runner::{self, Runner};
use super::write::{self, Staged};
use crate::host::HostRoot;

/// Environment variable for tests: stop (as a crash would) after this many files were replaced.
pub(crate) const FAULT_ENV: &str = "VMGPU_SETUP_FAIL_AFTER_WRITES";

/// Why applying or undoing failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A command's program is not installed in the root.
    #[error("`{program}` is not installed (needed to {why}); nothing was changed")]
    MissingTool {
        /// The program.
        program: String,
        /// What it is for.
        why: String,
    },
    /// A file changed between planning and applying.
    #[error("{path} changed while the plan was shown; nothing was changed, run setup again")]
    ChangedSincePlan {
        /// The file.
        path: String,
    },
    /// A new file could not be staged.
    #[error("nothing was changed")]
    Stage(#[source] write::Error),
    /// Backups or the record could not be written.
    #[error("cannot keep the backups; nothing was changed")]
    Backup(#[source] record::Error),
    /// Replacing a file failed half-way.
    #[error("replacing the files failed; `vmgpu setup --undo` restores the ones already replaced")]
    Replace(#[source] write::Error),
    /// The fault injection of the tests.
    #[error("stopped after {0} file(s) by {FAULT_ENV} (as a crash would)")]
    InjectedFault(usize),
    /// A command failed; the files were put back.
    #[error("a command failed, so every file was put back as it was")]
    CommandFailed(#[source] runner::Error),
    /// A command failed and putting the files back failed too.
    #[error(
        "a command failed ({command}) and restoring the files failed too; run `vmgpu setup --undo`"
    )]
    RollbackFailed {
        /// The command failure.
        command: String,
        /// The restore failure.
        #[source]
        source: Box<Error>,
    },
    /// Nothing to undo.
    #[error("no applied vmgpu setup to undo (looked in {0})")]
    NothingToUndo(String),
    /// Files were edited after setup wrote them.
    #[error(
        "edited since vmgpu setup {id} wrote them: {paths}; undo would throw those edits away \
         (pass --force to restore the originals anyway); nothing was changed"
    )]
    EditedSinceSetup {
        /// The record.
        id: String,
        /// The files.
        paths: String,
    },
    /// Reading the records failed.
    #[error("reading the setup records")]
    Record(#[source] record::Error),
    /// A replayed command failed during undo.
    #[error("the files were restored, but a regeneration command failed")]
    Replay(#[source] runner::Error),
}

/// Result of apply and undo.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// Checks that every program the plan runs in the root exists there.
pub(crate) fn check_tools(root: &HostRoot, plan: &Plan) -> Result<()> {
    for c in plan.commands.iter().filter(|c| c.runs == Runs::InRoot) {
        let Some(program) = c.argv.first() else {
            continue;
        };
        if find_program(root, program).is_none() {
            return Err(Error::MissingTool {
                program: program.clone(),
                why: c.why.clone(),
            });
        }
    }
    Ok(())
}

/// Expands host-path globs (`*` in the last component only) to the existing files under `root`.
fn expand(root: &HostRoot, pattern: &str) -> Vec<String> {
    let Some((dir, name)) = pattern.rsplit_once('/') else {
        return Vec::new();
    };
    let Some((prefix, suffix)) = name.split_once('*') else {
        return if root.path(pattern).is_file() {
            vec![pattern.to_string()]
        } else {
            Vec::new()
        };
    };
    root.list(dir)
        .into_iter()
        .filter(|n| {
            n.starts_with(prefix) && n.ends_with(suffix) && n.len() >= prefix.len() + suffix.len()
        })
        .map(|n| format!("{dir}/{n}"))
        .filter(|p| root.path(p).is_file())
        .collect()
}

/// Applies `plan` to `root`, returning the record.
pub(crate) fn apply(root: &HostRoot, plan: &Plan, runner: &dyn Runner) -> Result<Record> {
    check_tools(root, plan)?;
    for f in &plan.files {
        if root.read(&f.path) != f.before {
            return Err(Error::ChangedSincePlan {
                path: f.path.clone(),
            });
        }
    }
    let mut staged = Vec::new();
    for f in &plan.files {
        let target = root.path(&f.path);
        let like = f.before.is_some().then_some(target.as_path());
        staged.push(Staged::new(&target, f.after.as_bytes(), like, f.mode).map_err(Error::Stage)?);
    }
    let store = Store::new(root);
    let id = store.new_id();
    let mut artefacts: Vec<String> = Vec::new();
    for c in &plan.commands {
        for pattern in &c.outputs {
            for p in expand(root, pattern) {
                if !artefacts.contains(&p) {
                    artefacts.push(p);
                }
            }
        }
    }
    let mut record = Record {
        version: 1,
        id: id.clone(),
        title: plan.title.clone(),
        state: State::Writing,
        files: plan
            .files
            .iter()
            .map(|f| FileRecord {
                path: f.path.clone(),
                existed: f.before.is_some(),
                after: f.after.clone(),
            })
            .collect(),
        artefacts: artefacts.clone(),
        commands: plan.commands.clone(),
        promises: plan.promises.clone(),
    };
    let back_up = || -> record::Result<()> {
        for f in plan.files.iter().filter(|f| f.before.is_some()) {
            store.back_up(&id, &f.path)?;
        }
        for a in &artefacts {
            store.back_up(&id, a)?;
        }
        store.save(&record)
    };
    back_up().map_err(Error::Backup)?;

    let fail_after: Option<usize> = std::env::var(FAULT_ENV).ok().and_then(|v| v.parse().ok());
    for (n, s) in staged.into_iter().enumerate() {
        if fail_after == Some(n) {
            return Err(Error::InjectedFault(n));
        }
        s.commit().map_err(Error::Replace)?;
    }
    record.state = State::Written;
    store.save(&record).map_err(Error::Backup)?;

    for c in &plan.commands {
        if let Err(e) = runner.run(c) {
            let command = e.to_string();
            return match restore(root, &store, &record, runner, false) {
                Ok(()) => {
                    record.state = State::RolledBack;
                    let _ = store.save(&record);
                    Err(Error::CommandFailed(e))
                }
                Err(source) => Err(Error::RollbackFailed {
                    command,
                    source: Box::new(source),
                }),
            };
        }
    }
    record.state = State::Complete;
    store.save(&record).map_err(Error::Backup)?;
    Ok(record)
}

/// Puts the record's files back (and, with `replay`, reruns the regeneration commands), then the boot files.
fn restore(
    root: &HostRoot,
    store: &Store,
    record: &Record,
    runner: &dyn Runner,
    replay: bool,
) -> Result<()> {
    let mut staged = Vec::new();
    let mut removals = Vec::new();
    for f in &record.files {
        let target = root.path(&f.path);
        if f.existed {
            let backup = store.backup_path(&record.id, &f.path);
            let bytes = std::fs::read(&backup).map_err(|source| {
                Error::Record(record::Error::Read {
                    path: backup.clone(),
                    source,
                })
            })?;
            staged.push(Staged::new(&target, &bytes, Some(&backup), 0o644).map_err(Error::Stage)?);
        } else {
            removals.push(target);
        }
    }
    for s in staged {
        s.commit().map_err(Error::Replace)?;
    }
    for path in &removals {
        write::remove(path).map_err(Error::Replace)?;
    }
    if replay {
        for c in record.commands.iter().filter(|c| c.replay) {
            runner.run(c).map_err(Error::Replay)?;
        }
    }
    for a in &record.artefacts {
        let backup = store.backup_path(&record.id, a);
        let bytes = std::fs::read(&backup).map_err(|source| {
            Error::Record(record::Error::Read {
                path: backup.clone(),
                source,
            })
        })?;
        write::atomic(&root.path(a), &bytes, Some(&backup), 0o644).map_err(Error::Replace)?;
    }
    Ok(())
}

/// The files of `record` that differ from both what setup wrote and the original (edited by hand since).
pub(crate) fn edited_since(root: &HostRoot, store: &Store, record: &Record) -> Vec<String> {
    record
        .files
        .iter()
        .filter(|f| {
            let now = std::fs::read(root.path(&f.path)).ok();
            let original = if f.existed {
                std::fs::read(store.backup_path(&record.id, &f.path)).ok()
            } else {
                None
            };
            now.as_deref() != Some(f.after.as_bytes()) && now != original
        })
        .map(|f| f.path.clone())
        .collect()
}

/// Undoes the newest applied setup. Refuses when a file was edited since, unless `force`.
pub(crate) fn undo(root: &HostRoot, runner: &dyn Runner, force: bool) -> Result<Record> {
    let store = Store::new(root);
    let Some(mut record) = store.latest_active().map_err(Error::Record)? else {
        return Err(Error::NothingToUndo(
            root.path(record::BACKUP_DIR).display().to_string(),
        ));
    };
    let edited = edited_since(root, &store, &record);
    if !edited.is_empty() && !force {
        return Err(Error::EditedSinceSetup {
            id: record.id.clone(),
            paths: edited.join(", "),
        });
    }
    for c in record
        .commands
        .iter()
        .filter(|c| c.replay && c.runs == Runs::InRoot)
    {
        if let Some(program) = c.argv.first()
            && find_program(root, program).is_none()
        {
            return Err(Error::MissingTool {
                program: program.clone(),
                why: c.why.clone(),
            });
        }
    }
    restore(root, &store, &record, runner, true)?;
    record.state = State::Undone;
    store.save(&record).map_err(Error::Backup)?;
    Ok(record)
}
