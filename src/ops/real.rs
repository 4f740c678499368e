//! [`RealOps`]: changes the live host. Blocking sysfs writes go through the [`Writer`] helper with a
//! deadline; helper programs (modprobe, systemctl) run with a deadline too, stdio never inherited.
use std::cell::RefCell;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::writer::{self, Start, Writer};
use super::{Error, HostOps, NewFile, Result};
use crate::host::HostRoot;

/// Deadline of a blocking sysfs write (override: `VMGPU_WRITE_TIMEOUT_MS`).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of a helper program (modprobe, systemctl stop of a display manager).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The live implementation.
pub struct RealOps {
    root: HostRoot,
    writer: RefCell<Writer>,
    write_timeout: Duration,
}

impl RealOps {
    /// Operations on `root` (normally `/`).
    pub fn new(root: HostRoot) -> Self {
        let write_timeout = std::env::var("VMGPU_WRITE_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(WRITE_TIMEOUT, Duration::from_millis);
        // The benchmark compares both ways of starting the writer helper in one run (`fork` is the default
        // where it is safe).
        let start = match std::env::var("VMGPU_WRITER_START").as_deref() {
            Ok("exec") => Start::Exec,
            _ => Start::Auto,
        };
        Self {
            root,
            writer: RefCell::new(Writer::starting(start)),
            write_timeout,
        }
    }
}

impl HostOps for RealOps {
    fn root(&self) -> &HostRoot {
        &self.root
    }

    fn write(&self, path: &str, value: &str) -> Result<()> {
        let full = self.root.path(path);
        tracing::debug!(path = %full.display(), value, "write");
        if super::can_block(path) {
            return self
                .writer
                .borrow_mut()
                .write(&full, value, self.write_timeout);
        }
        writer::write_attribute(&full, value).map_err(|source| Error::Write {
            path: full,
            value: value.to_string(),
            source,
        })
    }

    fn load_module(&self, module: &str) -> Result<()> {
        run(&modprobe(), &[module], COMMAND_TIMEOUT)
    }

    fn unload_module(&self, module: &str) -> Result<()> {
        run(&modprobe(), &["-r", module], COMMAND_TIMEOUT)
    }

    fn systemctl(&self, args: &[&str]) -> Result<()> {
        run("systemctl", args, COMMAND_TIMEOUT)
    }

    fn create_dir(&self, path: &str) -> Result<()> {
        let full = self.root.path(path);
        std::fs::create_dir(&full).map_err(|source| Error::File {
            action: "create directory",
            path: full,
            source,
        })
    }

    fn remove_dir(&self, path: &str) -> Result<()> {
        let full = self.root.path(path);
        match std::fs::remove_dir(&full) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::File {
                action: "remove directory",
                path: full,
                source: e,
            }),
            _ => Ok(()),
        }
    }

    fn create_file(&self, file: &NewFile) -> Result<()> {
        create_file_at(&self.root, file)
    }

    fn remove_file(&self, path: &str) -> Result<()> {
        remove_file_at(&self.root, path)
    }

    fn pause(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// Creates a new regular file: `O_CREAT|O_EXCL|O_NOFOLLOW`, size, owner, mode (shared by the simulation).
pub fn create_file_at(root: &HostRoot, file: &NewFile) -> Result<()> {
    let full = root.path(&file.path);
    let err = |action: &'static str| {
        let path = full.clone();
        move |source| Error::File {
            action,
            path,
            source,
        }
    };
    let handle = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(file.mode)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(&full)
        .map_err(err("create"))?;
    handle.set_len(file.size).map_err(err("set the size of"))?;
    std::os::unix::fs::fchown(&handle, Some(file.uid), Some(file.gid)).map_err(err("chown"))?;
    handle
        .set_permissions(std::fs::Permissions::from_mode(file.mode))
        .map_err(err("chmod"))?;
    Ok(())
}

/// Removes a file if it is there (a directory is an error; a symlink itself is removed, never its target).
pub fn remove_file_at(root: &HostRoot, path: &str) -> Result<()> {
    let full = root.path(path);
    match std::fs::remove_file(&full) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::File {
            action: "remove",
            path: full,
            source: e,
        }),
        _ => Ok(()),
    }
}

fn modprobe() -> String {
    ["/sbin/modprobe", "/usr/sbin/modprobe", "/usr/bin/modprobe"]
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map_or_else(|| "modprobe".to_string(), |p| p.to_string())
}

/// Runs a program with stdin/stdout on /dev/null and stderr captured, killing it at the deadline.
pub fn run(program: &str, args: &[&str], timeout: Duration) -> Result<()> {
    let command = format!("{program} {}", args.join(" "));
    let fail = |detail: String| Error::Command {
        command: command.clone(),
        detail,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot start: {e}")))?;
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(200);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "no answer within {} s, killed",
                    timeout.as_secs()
                )));
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(fail(format!("cannot wait: {e}"))),
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let stderr: String = stderr.trim().chars().take(300).collect();
    Err(fail(format!("{status}: {stderr}")))
}
