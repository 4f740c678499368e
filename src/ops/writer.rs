//! Writes that may block, run in a helper process with a deadline.
//!
//! A thread is not enough: a thread stuck in an uninterruptible sysfs write (driver `unbind` waits until
//! every user closes the device) keeps the whole process alive, so libvirtd, which waits for the hook's exit
//! and for its stdout/stderr to close, would hang with it. The helper is vmgpu itself started with
//! [`ENV_WRITER`] set, with stdin/stdout as pipes to us and stderr on /dev/null, so it never holds libvirt's
//! pipes. Protocol, one request per line: `<path>\t<value>\n` → `ok\n` or `err <errno>\n`. On a timeout the
//! helper is abandoned (it exits when its write returns and it reads end-of-file).
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::{Error, Result};

/// Set in the environment of the helper process; `main` checks it first.
pub const ENV_WRITER: &str = "VMGPU_INTERNAL_WRITER";

/// A running helper.
pub struct Writer {
    child: Option<Child>,
}

impl Writer {
    /// No helper yet; it starts on the first write.
    pub fn new() -> Self {
        Self { child: None }
    }

    /// Writes `value` to `path` in the helper, waiting at most `timeout`.
    pub fn write(&mut self, path: &Path, value: &str, timeout: Duration) -> Result<()> {
        let fail = |detail: String| Error::Command {
            command: "vmgpu sysfs writer".into(),
            detail,
        };
        let text = path.to_string_lossy();
        if text.contains(['\t', '\n']) || value.contains(['\t', '\n']) {
            return Err(fail(format!("refusing to send {text:?} {value:?}")));
        }
        if self.child.is_none() {
            let exe = std::env::current_exe()
                .map_err(|e| fail(format!("cannot find own binary: {e}")))?;
            let child = Command::new(exe)
                .env(ENV_WRITER, "1")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| fail(format!("cannot start: {e}")))?;
            self.child = Some(child);
        }
        let deadline = Instant::now() + timeout;
        let result = self.exchange(&format!("{text}\t{value}\n"), deadline);
        match result {
            Exchange::Reply(line) if line == "ok" => Ok(()),
            Exchange::Reply(line) => {
                let errno = line
                    .strip_prefix("err ")
                    .and_then(|n| n.trim().parse::<i32>().ok())
                    .unwrap_or(libc_eio());
                Err(Error::Write {
                    path: PathBuf::from(path),
                    value: value.to_string(),
                    source: std::io::Error::from_raw_os_error(errno),
                })
            }
            Exchange::TimedOut => {
                // Abandon it: closing its stdin lets it exit once the kernel lets the write return.
                self.child = None;
                Err(Error::Timeout {
                    path: PathBuf::from(path),
                    value: value.to_string(),
                    timeout,
                })
            }
            Exchange::Broken(detail) => {
                self.child = None;
                Err(fail(detail))
            }
        }
    }

    fn exchange(&mut self, request: &str, deadline: Instant) -> Exchange {
        let Some(child) = self.child.as_mut() else {
            return Exchange::Broken("not running".into());
        };
        let (Some(stdin), Some(stdout)) = (child.stdin.as_mut(), child.stdout.as_mut()) else {
            return Exchange::Broken("no pipes".into());
        };
        if let Err(e) = stdin
            .write_all(request.as_bytes())
            .and_then(|()| stdin.flush())
        {
            return Exchange::Broken(format!("cannot send: {e}"));
        }
        let mut reply = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Exchange::TimedOut;
            }
            let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Exchange::Broken(format!("poll: {e}")),
            }
            let mut chunk = [0u8; 64];
            match stdout.read(&mut chunk) {
                Ok(0) => return Exchange::Broken("helper exited".into()),
                Ok(n) => reply.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Exchange::Broken(format!("read: {e}")),
            }
            if let Some(end) = reply.iter().position(|&b| b == b'\n') {
                let line = String::from_utf8_lossy(reply.get(..end).unwrap_or_default());
                return Exchange::Reply(line.into_owned());
            }
        }
    }
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // End-of-file on its stdin makes it exit at once (or, if a write is stuck, as soon as the kernel
            // lets that write return). Never wait for it: init reaps it once vmgpu has exited.
            drop(child.stdin.take());
            if let Ok(Some(_)) = child.try_wait() {
                tracing::debug!("sysfs writer: exited");
            }
        }
    }
}

enum Exchange {
    Reply(String),
    TimedOut,
    Broken(String),
}

fn libc_eio() -> i32 {
    5
}

/// The helper's main loop (vmgpu started with [`ENV_WRITER`]): returns the process exit code.
pub fn serve() -> u8 {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    let mut line = String::new();
    loop {
        line.clear();
        match stdin.read_line(&mut line) {
            Ok(0) | Err(_) => return 0,
            Ok(_) => {}
        }
        let Some((path, value)) = line.trim_end_matches('\n').split_once('\t') else {
            return 2;
        };
        let reply = match write_attribute(Path::new(path), value) {
            Ok(()) => "ok\n".to_string(),
            Err(e) => format!("err {}\n", e.raw_os_error().unwrap_or(libc_eio())),
        };
        if stdout
            .write_all(reply.as_bytes())
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return 0;
        }
    }
}

/// One `write(2)` of the whole value to an existing attribute (no create, no truncate), as `echo` does.
pub fn write_attribute(path: &Path, value: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.write_all(value.as_bytes())
}
