//! One viewer per VM and user: the first `vmgpu view` for a VM holds a lock and listens on a socket in the
//! user's runtime directory; a second launch for the same VM (the hook's auto-launch after a VM restart, or the
//! user again) asks the first to come to the front and exits.
//!
//! Why `$XDG_RUNTIME_DIR`: it is the user's own directory (`/run/user/<uid>`, mode 0700, made by
//! pam_systemd/logind), so no other local user can connect to the socket (to raise our window or probe it) or
//! create the lock or socket first (to block or impersonate the viewer). An abstract socket would be reachable
//! by every user in the network namespace, and a name in `/tmp` could be taken first by anyone. The directory
//! is checked (owned by us, no group/other bits); without a usable one, there is no single-instance rule and
//! the viewer says so on stderr.
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use crate::ops::files;

/// How long a second launch waits for the first one to listen (it may be starting at the same moment).
const CONNECT_WAIT: Duration = Duration::from_secs(3);
/// What a second launch sends.
const RAISE: &str = "raise";

/// Errors of claiming the VM's viewer slot.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// No private runtime directory: the single-instance rule is off.
    #[error("{0}")]
    NoRuntimeDir(String),
    /// The lock or socket could not be made.
    #[error("cannot set up {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Another viewer holds the lock but does not answer.
    #[error(
        "another `vmgpu view` for {key} is running (it holds {lock}) but does not answer on its socket; close that window"
    )]
    NotAnswering {
        /// The VM or file.
        key: String,
        /// The lock file.
        lock: PathBuf,
    },
}

/// The outcome of [`claim`].
pub(crate) enum Claim {
    /// This process is the VM's viewer; keep the value alive while the window is open.
    First(Instance),
    /// Another viewer for the VM was asked to come to the front: exit.
    Raised,
}

/// The lock and socket of the VM's one viewer; removed on drop.
pub(crate) struct Instance {
    _lock: Flock<File>,
    socket: PathBuf,
    listener: UnixListener,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Instance({})", self.socket.display())
    }
}

/// Claims the viewer slot for `key` (the VM name, or the shm path) in `$XDG_RUNTIME_DIR/vmgpu`.
pub(crate) fn claim(key: &str) -> Result<Claim, Error> {
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| Error::NoRuntimeDir("XDG_RUNTIME_DIR is not set".into()))?;
    claim_in(&runtime, key)
}

/// [`claim`] in a given runtime directory.
pub(crate) fn claim_in(runtime: &Path, key: &str) -> Result<Claim, Error> {
    check_private(runtime)?;
    let dir = runtime.join("vmgpu");
    files::create_dir(&dir, 0o700)
        .or_else(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
    let name = file_key(key);
    let lock_path = dir.join(format!("view-{name}.lock"));
    let socket = dir.join(format!("view-{name}.sock"));
    let file = files::open_lock_file(&lock_path, 0o600).map_err(|source| Error::Io {
        path: lock_path.clone(),
        source,
    })?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            // We hold the lock, so a socket file left here is from a viewer that died: replace it.
            let _ = files::remove_file(&socket);
            let listener = files::bind_socket(&socket).map_err(|source| Error::Io {
                path: socket.clone(),
                source,
            })?;
            Ok(Claim::First(Instance {
                _lock: lock,
                socket,
                listener,
            }))
        }
        Err(_) => ask_to_raise(&socket)
            .map(|()| Claim::Raised)
            .map_err(|_| Error::NotAnswering {
                key: key.to_string(),
                lock: lock_path,
            }),
    }
}

/// The directory must be ours and closed to everyone else, or the socket would let another user in.
fn check_private(dir: &Path) -> Result<(), Error> {
    let meta = std::fs::metadata(dir).map_err(|e| {
        Error::NoRuntimeDir(format!("the runtime directory {}: {e}", dir.display()))
    })?;
    let uid = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return Err(Error::NoRuntimeDir(format!(
            "the runtime directory {} is not private to this user (owner {}, mode {:o})",
            dir.display(),
            meta.uid(),
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// A file-name-safe key: the name itself when short and plain, else a hash of it.
fn file_key(key: &str) -> String {
    let plain = key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if plain && key.len() <= 48 && !key.starts_with('.') {
        return key.to_string();
    }
    // FNV-1a: stable across runs (unlike std's RandomState), which is all that is needed here.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    format!("h{hash:016x}")
}

fn ask_to_raise(socket: &Path) -> std::io::Result<()> {
    let end = Instant::now() + CONNECT_WAIT;
    let mut stream = loop {
        match UnixStream::connect(socket) {
            Ok(s) => break s,
            Err(e) if Instant::now() >= end => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    stream.set_read_timeout(Some(CONNECT_WAIT))?;
    stream.write_all(format!("{RAISE}\n").as_bytes())?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?;
    if reply.trim() == "ok" {
        Ok(())
    } else {
        Err(std::io::Error::other("no answer"))
    }
}

impl Instance {
    /// Answers second launches on a thread of its own; `on_raise` runs for each.
    pub(crate) fn serve(&self, on_raise: impl Fn() + Send + 'static) -> std::io::Result<()> {
        let listener = self.listener.try_clone()?;
        std::thread::Builder::new()
            .name("view-instance".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { continue };
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                    let mut line = String::new();
                    let Ok(reader) = stream.try_clone() else {
                        continue;
                    };
                    if BufReader::new(reader.take(64)).read_line(&mut line).is_ok()
                        && line.trim() == RAISE
                    {
                        on_raise();
                        let _ = stream.write_all(b"ok\n");
                    }
                }
            })?;
        Ok(())
    }
}

use std::io::Read as _;

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = files::remove_file(&self.socket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn private_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    #[test]
    fn test_second_claim_raises_the_first() {
        let dir = private_dir();
        let Claim::First(first) = claim_in(dir.path(), "win11").unwrap() else {
            panic!("the first claim must win");
        };
        let raised = Arc::new(AtomicU32::new(0));
        let r = raised.clone();
        first
            .serve(move || {
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        assert!(matches!(claim_in(dir.path(), "win11"), Ok(Claim::Raised)));
        assert_eq!(raised.load(Ordering::SeqCst), 1);
        // Another VM is independent.
        assert!(matches!(claim_in(dir.path(), "other"), Ok(Claim::First(_))));
        drop(first);
        assert!(matches!(claim_in(dir.path(), "win11"), Ok(Claim::First(_))));
    }

    #[test]
    fn test_a_directory_others_can_enter_is_refused() {
        let dir = private_dir();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(
            claim_in(dir.path(), "win11"),
            Err(Error::NoRuntimeDir(_))
        ));
    }

    #[test]
    fn test_file_key_hashes_paths() {
        assert_eq!(file_key("win11"), "win11");
        let k = file_key("/dev/shm/looking-glass");
        assert!(k.starts_with('h') && k.len() == 17, "{k}");
    }
}
