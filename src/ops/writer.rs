//! Writes that may block, run in a helper process with a deadline.
//!
//! A thread is not enough: a thread stuck in an uninterruptible sysfs write (driver `unbind` waits until
//! every user closes the device) keeps the whole process alive, so libvirtd, which waits for the hook's exit
//! and for its stdout/stderr to close, would hang with it. The helper holds none of libvirt's pipes (its
//! stdin/stdout/stderr are /dev/null) and no other descriptor of ours (a journal lock must not outlive us);
//! it talks to us over two pipes. Protocol, one request per line: `<path>\t<value>\n` → `ok\n` or
//! `err <errno>\n`. On a timeout the helper is abandoned (it exits when its write returns and it reads
//! end-of-file).
//!
//! How it starts: the hook process is single-threaded, so the helper is a plain `fork` of it: no second
//! program start (under TCG that was ~20-45 ms per hook call, most of the hook's cost beyond the bare
//! writes). A process with threads (where only async-signal-safe code may run after `fork`) starts vmgpu
//! again instead, with [`ENV_WRITER`] set.
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

use super::process::Program;
use super::{Error, Result, files, fork};

/// Set in the environment of the helper process; `main` checks it first.
pub(crate) const ENV_WRITER: &str = "VMGPU_INTERNAL_WRITER";

/// How the helper process is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// `fork` when this process has a single thread, else [`Start::Exec`].
    Auto,
    /// `fork` (callers make sure that is safe: see [`fork_helper`]).
    Fork,
    /// Start vmgpu again with [`ENV_WRITER`].
    Exec,
}

/// A running helper: its pid and our ends of the two pipes.
struct Helper {
    pid: Pid,
    requests: File,
    replies: File,
}

/// The sysfs writer: starts its helper on the first write.
pub(crate) struct Writer {
    helper: Option<Helper>,
    start: Start,
}

impl Writer {
    /// No helper yet; it starts on the first write (forked when that is safe).
    pub(crate) fn new() -> Self {
        Self::starting(Start::Auto)
    }

    /// A writer whose helper starts as `start` says.
    pub(crate) fn starting(start: Start) -> Self {
        Self {
            helper: None,
            start,
        }
    }

    /// Writes `value` to `path` in the helper, waiting at most `timeout`.
    pub(crate) fn write(&mut self, path: &Path, value: &str, timeout: Duration) -> Result<()> {
        let fail = |detail: String| Error::Command {
            command: "vmgpu sysfs writer".into(),
            detail,
        };
        let text = path.to_string_lossy();
        if text.contains(['\t', '\n']) || value.contains(['\t', '\n']) {
            return Err(fail(format!("refusing to send {text:?} {value:?}")));
        }
        if self.helper.is_none() && self.start == Start::Auto {
            self.helper = take_preforked();
        }
        if self.helper.is_none() {
            let start = match self.start {
                Start::Auto if single_threaded() => Start::Fork,
                Start::Auto => Start::Exec,
                other => other,
            };
            let helper = match start {
                Start::Exec => exec_helper(),
                _ => fork_helper(),
            };
            let helper = helper.map_err(|e| fail(format!("cannot start: {e}")))?;
            tracing::debug!(pid = helper.pid.as_raw(), ?start, "sysfs writer started");
            self.helper = Some(helper);
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
                // Abandon it: closing its requests pipe lets it exit once the kernel lets the write return.
                self.helper = None;
                Err(Error::Timeout {
                    path: PathBuf::from(path),
                    value: value.to_string(),
                    timeout,
                })
            }
            Exchange::Broken(detail) => {
                self.helper = None;
                Err(fail(detail))
            }
        }
    }

    fn exchange(&mut self, request: &str, deadline: Instant) -> Exchange {
        let Some(helper) = self.helper.as_mut() else {
            return Exchange::Broken("not running".into());
        };
        if let Err(e) = helper.requests.write_all(request.as_bytes()) {
            return Exchange::Broken(format!("cannot send: {e}"));
        }
        let mut reply = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Exchange::TimedOut;
            }
            let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(helper.replies.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Exchange::Broken(format!("poll: {e}")),
            }
            let mut chunk = [0u8; 64];
            match helper.replies.read(&mut chunk) {
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

impl Drop for Helper {
    fn drop(&mut self) {
        // Our `requests` end closes right after this: end-of-file makes the helper exit at once (or, if a
        // write is stuck, as soon as the kernel lets that write return). Never wait for it: this only reaps
        // a helper that is already gone; init reaps the others once vmgpu has exited.
        let _ = waitpid(self.pid, Some(WaitPidFlag::WNOHANG));
    }
}

/// The helper [`prefork`] started, until the first writer takes it.
static PREFORKED: Mutex<Option<Helper>> = Mutex::new(None);

/// Forks the helper now, at the start of a hook call that may write: the process is still small (fewer
/// pages to copy and to fault back in) and has one thread. The first [`Writer`] takes it; when none does,
/// it exits as soon as vmgpu does. Does nothing with `VMGPU_WRITER_START=exec` or when threads exist.
pub(crate) fn prefork() {
    if std::env::var("VMGPU_WRITER_START").as_deref() == Ok("exec") || !single_threaded() {
        return;
    }
    if let Ok(helper) = fork_helper() {
        *PREFORKED.lock().unwrap_or_else(|e| e.into_inner()) = Some(helper);
    }
}

fn take_preforked() -> Option<Helper> {
    PREFORKED.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// True when this process has exactly one thread (`/proc/self/task`); false when that cannot be read.
fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|tasks| tasks.count() == 1)
}

/// Starts vmgpu again as the helper (stdin/stdout are the pipes, stderr /dev/null).
fn exec_helper() -> std::io::Result<Helper> {
    let exe = std::env::current_exe()?;
    let mut child = Program::new(exe).env(ENV_WRITER, "1").spawn_with_pipes()?;
    let pipes = child.stdin.take().zip(child.stdout.take());
    let Some((stdin, stdout)) = pipes else {
        return Err(std::io::Error::other("no pipes to the helper"));
    };
    // `child` is dropped without waiting: the helper may outlive a stuck write (see `Drop for Helper`).
    Ok(Helper {
        pid: Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX)),
        requests: File::from(OwnedFd::from(stdin)),
        replies: File::from(OwnedFd::from(stdout)),
    })
}

/// Forks the helper. Only for a single-threaded process (or a test that accepts the risk): see
/// [`fork::run_in_child`].
fn fork_helper() -> std::io::Result<Helper> {
    let (request_rx, request_tx) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (reply_rx, reply_tx) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let pid = fork::run_in_child(move || forked_main(request_rx, reply_tx))?;
    Ok(Helper {
        pid,
        requests: File::from(request_tx),
        replies: File::from(reply_rx),
    })
}

/// The forked helper: /dev/null on stdin/stdout/stderr, every other descriptor but its two pipe ends
/// closed, then [`serve_on`] those.
fn forked_main(requests: OwnedFd, replies: OwnedFd) -> u8 {
    // Duplicates above the stdio numbers, in case the parent ran with 0-2 closed and the pipes took them.
    let (Ok(requests_hi), Ok(replies_hi)) = (requests.try_clone(), replies.try_clone()) else {
        return 1;
    };
    drop((requests, replies));
    let Ok(null) = nix::fcntl::open("/dev/null", OFlag::O_RDWR, Mode::empty()) else {
        return 1;
    };
    let redirected = nix::unistd::dup2_stdin(&null)
        .and_then(|()| nix::unistd::dup2_stdout(&null))
        .and_then(|()| nix::unistd::dup2_stderr(&null));
    drop(null);
    if redirected.is_err() {
        return 1;
    }
    fork::close_all_but(&[requests_hi.as_raw_fd(), replies_hi.as_raw_fd()]);
    serve_on(
        BufReader::new(File::from(requests_hi)),
        File::from(replies_hi),
    )
}

enum Exchange {
    Reply(String),
    TimedOut,
    Broken(String),
}

fn libc_eio() -> i32 {
    5
}

/// The main loop of the helper started with [`ENV_WRITER`] (stdin/stdout are the pipes): returns its exit
/// code.
pub(crate) fn serve() -> u8 {
    serve_on(std::io::stdin().lock(), std::io::stdout())
}

/// Answers requests from `requests` on `replies` until end-of-file; returns the exit code.
fn serve_on(mut requests: impl BufRead, mut replies: impl Write) -> u8 {
    let mut line = String::new();
    loop {
        line.clear();
        match requests.read_line(&mut line) {
            Ok(0) | Err(_) => return 0,
            Ok(_) => {}
        }
        let Some((path, value)) = line.trim_end_matches('\n').split_once('\t') else {
            return 2;
        };
        let reply = match files::write_attribute(Path::new(path), value) {
            Ok(()) => "ok\n".to_string(),
            Err(e) => format!("err {}\n", e.raw_os_error().unwrap_or(libc_eio())),
        };
        if replies
            .write_all(reply.as_bytes())
            .and_then(|()| replies.flush())
            .is_err()
        {
            return 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(20);

    // The test harness has threads, so these fork a multi-threaded process: acceptable here because the
    // child only allocates (glibc's malloc is fork-safe) and uses no lock another thread may hold.
    #[test]
    fn test_forked_helper_writes_and_reports_errno() {
        let dir = tempfile::tempdir().unwrap();
        let attr = dir.path().join("attr");
        std::fs::write(&attr, "").unwrap();
        let mut writer = Writer::starting(Start::Fork);
        let other = dir.path().join("other");
        std::fs::write(&other, "").unwrap();
        writer.write(&attr, "vfio-pci", LONG).unwrap();
        writer.write(&other, "1", LONG).unwrap();
        assert_eq!(std::fs::read_to_string(&attr).unwrap(), "vfio-pci");
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "1");
        let missing = dir.path().join("missing");
        match writer.write(&missing, "1", LONG) {
            Err(Error::Write { source, .. }) => assert_eq!(source.raw_os_error(), Some(2)),
            other => panic!("expected ENOENT, got {other:?}"),
        }
        assert!(!missing.exists(), "an attribute write never creates a file");
    }

    #[test]
    fn test_forked_helper_times_out_on_a_blocked_write_and_is_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        let mut writer = Writer::starting(Start::Fork);
        // opening a FIFO for writing blocks until a reader comes: a stand-in for an unbind in D state
        let t = Instant::now();
        let result = writer.write(&fifo, "1", Duration::from_millis(300));
        assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
        assert!(t.elapsed() < LONG);
        assert!(writer.helper.is_none(), "the stuck helper is abandoned");
        // let the abandoned helper finish its write (it then reads end-of-file and exits)
        let mut reader = File::open(&fifo).unwrap();
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, "1");
    }

    #[test]
    fn test_forked_helper_holds_no_descriptor_of_ours() {
        // a pipe standing in for libvirt's stdout: once we close our write end, the read end must see
        // end-of-file although the helper still runs
        let (rx, tx) = nix::unistd::pipe().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let attr = dir.path().join("attr");
        std::fs::write(&attr, "").unwrap();
        let mut writer = Writer::starting(Start::Fork);
        writer.write(&attr, "1", LONG).unwrap();
        drop(tx);
        let mut fds = [PollFd::new(rx.as_fd(), PollFlags::POLLIN)];
        let ready = poll(&mut fds, PollTimeout::from(5000u16)).unwrap();
        assert_eq!(ready, 1, "the helper keeps our pipe open");
        let mut buf = [0u8; 1];
        assert_eq!(File::from(rx).read(&mut buf).unwrap(), 0);
        drop(writer);
    }

    #[test]
    fn test_helper_refuses_separators_in_requests() {
        let mut writer = Writer::starting(Start::Fork);
        let result = writer.write(Path::new("/tmp/a\tb"), "1", LONG);
        assert!(matches!(result, Err(Error::Command { .. })), "{result:?}");
        assert!(
            writer.helper.is_none(),
            "nothing started for a refused request"
        );
    }

    #[test]
    fn test_serve_on_answers_each_line() {
        let dir = tempfile::tempdir().unwrap();
        let attr = dir.path().join("attr");
        std::fs::write(&attr, "").unwrap();
        let requests = format!("{}\t5\n{}/nope\t1\n", attr.display(), dir.path().display());
        let mut replies = Vec::new();
        assert_eq!(serve_on(requests.as_bytes(), &mut replies), 0);
        assert_eq!(String::from_utf8(replies).unwrap(), "ok\nerr 2\n");
    }
}
