//! [`RealOps`]: changes the live host. Blocking sysfs writes go through the [`Writer`] helper with a
//! deadline; helper programs (modprobe, systemctl) run with a deadline too, stdio never inherited.
use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use super::files;
use super::process::{Output, Program};
use super::writer::{Start, Writer};
use super::{Error, HostOps, NewFile, Result};
use crate::host::HostRoot;

/// Deadline of a blocking sysfs write (override: `VMGPU_WRITE_TIMEOUT_MS`).
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of a helper program (modprobe, systemctl stop of a display manager).
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The live implementation.
pub(crate) struct RealOps {
    root: HostRoot,
    writer: RefCell<Writer>,
    write_timeout: Duration,
}

impl RealOps {
    /// Operations on `root` (normally `/`).
    pub(crate) fn new(root: HostRoot) -> Self {
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
        files::write_attribute(&full, value).map_err(|source| Error::Write {
            path: full,
            value: value.to_string(),
            source,
        })
    }

    fn load_module(&self, module: &str) -> Result<()> {
        run_program(captured(&modprobe(), &[module]), COMMAND_TIMEOUT)
    }

    fn unload_module(&self, module: &str) -> Result<()> {
        run_program(captured(&modprobe(), &["-r", module]), COMMAND_TIMEOUT)
    }

    fn systemctl(&self, args: &[&str]) -> Result<()> {
        run_program(captured("systemctl", args), COMMAND_TIMEOUT)
    }

    fn run(&self, program: Program, deadline: Duration) -> Result<()> {
        run_program(program, deadline)
    }

    fn create_dir(&self, path: &str) -> Result<()> {
        let full = self.root.path(path);
        files::create_dir(&full, 0o777).map_err(|source| Error::File {
            action: "create directory",
            path: full,
            source,
        })
    }

    fn remove_dir(&self, path: &str) -> Result<()> {
        let full = self.root.path(path);
        files::remove_dir(&full).map_err(|source| Error::File {
            action: "remove directory",
            path: full,
            source,
        })
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

    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Creates a new regular file: `O_CREAT|O_EXCL|O_NOFOLLOW`, size, owner, mode (shared by the simulation).
#[allow(clippy::disallowed_methods)]
pub(crate) fn create_file_at(root: &HostRoot, file: &NewFile) -> Result<()> {
    let full = root.path(&file.path);
    let err = |action: &'static str| {
        let path = full.clone();
        move |source| Error::File {
            action,
            path,
            source,
        }
    };
    let handle = files::create_new(&full, file.mode).map_err(err("create"))?;
    handle.set_len(file.size).map_err(err("set the size of"))?;
    std::os::unix::fs::fchown(&handle, Some(file.uid), Some(file.gid)).map_err(err("chown"))?;
    handle
        .set_permissions(std::fs::Permissions::from_mode(file.mode))
        .map_err(err("chmod"))?;
    Ok(())
}

/// Removes a file if it is there (a directory is an error; a symlink itself is removed, never its target).
pub(crate) fn remove_file_at(root: &HostRoot, path: &str) -> Result<()> {
    let full = root.path(path);
    files::remove_file(&full).map_err(|source| Error::File {
        action: "remove",
        path: full,
        source,
    })
}

fn modprobe() -> String {
    ["/sbin/modprobe", "/usr/sbin/modprobe", "/usr/bin/modprobe"]
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map_or_else(|| "modprobe".to_string(), |p| p.to_string())
}

/// A helper program with stdin/stdout on /dev/null and stderr captured (for the error message).
fn captured(program: &str, args: &[&str]) -> Program {
    Program::new(program)
        .args(args)
        .stderr(Output::Capture { max: 4096 })
}

/// Runs a program to its end, killing it at the deadline; a failure names the command and its status
/// (and the start of its stderr, when captured).
pub(crate) fn run_program(program: Program, timeout: Duration) -> Result<()> {
    let command = program.line();
    let done = program.run(timeout).map_err(|e| Error::Command {
        command: command.clone(),
        detail: e.to_string(),
    })?;
    if done.status.success() {
        return Ok(());
    }
    let head = done.stderr_head();
    let detail = if head.is_empty() {
        done.status.to_string()
    } else {
        format!("{}: {head}", done.status)
    };
    Err(Error::Command { command, detail })
}
