//! Checks before a journal is read: the file is no link and not oversized, the directory is vmgpu's own;
//! then the typed read, which names the held address or the step that is not what vmgpu writes.
use super::*;

/// What is read of a journal before its steps.
#[derive(Deserialize)]
pub(super) struct Header {
    pub(super) format: serde_json::Value,
    pub(super) vm: String,
}

/// A journal whose held addresses and steps are not parsed yet, so that a bad one can be named.
#[derive(Deserialize)]
struct Raw {
    vm: String,
    phase: Phase,
    pid: u32,
    started_unix: u64,
    holds: Vec<serde_json::Value>,
    steps: Vec<serde_json::Value>,
}

/// The typed journal (its header already checked): a broken structure or a step of a kind this build does
/// not write is corrupt; a held address or a step of a known kind that does not parse, or fails
/// [`Entry::check`], is untrusted, and the message names it.
pub(super) fn typed<S: Entry>(path: &Path, bytes: &[u8]) -> Result<Journal<S>> {
    let corrupt = |source| Error::Corrupt {
        path: path.to_path_buf(),
        source,
    };
    let untrusted = |what: String, problem: String| Error::Untrusted {
        path: path.to_path_buf(),
        what,
        problem,
    };
    let raw: Raw = serde_json::from_slice(bytes).map_err(corrupt)?;
    let holds = raw
        .holds
        .iter()
        .map(|held| {
            PciAddress::deserialize(held).map_err(|e| untrusted("holds".into(), e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut steps = Vec::with_capacity(raw.steps.len());
    for (index, value) in raw.steps.iter().enumerate() {
        let what = || format!("step {}", index + 1);
        let step = match S::deserialize(value) {
            Ok(step) => step,
            Err(e) => match S::known_kind(value) {
                Some(kind) => return Err(untrusted(what(), format!("({}) {e}", cut(kind)))),
                None => return Err(corrupt(e)),
            },
        };
        step.check().map_err(|problem| untrusted(what(), problem))?;
        steps.push(step);
    }
    Ok(Journal {
        format: FORMAT,
        vm: raw.vm,
        phase: raw.phase,
        pid: raw.pid,
        started_unix: raw.started_unix,
        holds,
        steps,
    })
}

/// The journal's bytes (`None`: no journal). A link, a non-regular file or an oversized file is refused.
pub(super) fn read_journal(path: &Path) -> Result<Option<Vec<u8>>> {
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
pub(super) fn own_dir(dir: &Path) -> Result<()> {
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

pub(super) fn cut(text: &str) -> String {
    text.chars().take(64).collect()
}
