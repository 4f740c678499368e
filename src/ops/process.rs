//! Starting processes: the one place vmgpu builds a `std::process::Command` (`clippy.toml` rejects
//! `Command::new` elsewhere). The policy is fixed: stdin is /dev/null unless bytes are given, stdout and
//! stderr are captured (bounded) or /dev/null — or, for `setup`'s long commands whose progress the user
//! watches, passed to our stderr, never to our stdout (the hook's stdout belongs to libvirt). Every
//! [`Program::run`] waits under a deadline and kills the program when it passes; the only spawn that does
//! not wait is [`Program::spawn_detached`] (the viewer, which outlives us). Captured output is read with
//! `poll` on the calling thread, so running a program never leaves the hook with a second thread.
use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// Where a program's stdout or stderr goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// /dev/null.
    Null,
    /// Read by us, keeping the first `max` bytes (the rest is read and dropped, so the program never blocks
    /// on a full pipe).
    Capture {
        /// Bytes kept.
        max: usize,
    },
    /// Our own stderr (progress of `setup`'s commands; never the hook).
    OurStderr,
}

/// Why a program did not run to an exit status.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// It could not be started (not installed, not executable).
    #[error("cannot start: {0}")]
    Start(#[source] std::io::Error),
    /// Waiting for it failed.
    #[error("cannot wait: {0}")]
    Wait(#[source] std::io::Error),
    /// It ran past its deadline and was killed.
    #[error("no answer within {} s, killed", .0.as_secs())]
    Timeout(Duration),
}

/// How a program ended, with what was captured.
#[derive(Debug)]
pub(crate) struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Captured stdout (lossy UTF-8; empty unless captured).
    pub stdout: String,
    /// Captured stderr (lossy UTF-8; empty unless captured).
    pub stderr: String,
}

impl Finished {
    /// The start of stderr, trimmed, for an error message.
    pub(crate) fn stderr_head(&self) -> String {
        self.stderr.trim().chars().take(300).collect()
    }
}

/// A program to run, with its arguments, environment and output policy.
#[derive(Debug)]
pub(crate) struct Program {
    command: Command,
    stdin: Option<Vec<u8>>,
    stdout: Output,
    stderr: Output,
}

impl Program {
    /// `program`, with stdin, stdout and stderr on /dev/null until told otherwise.
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn new(program: impl AsRef<OsStr>) -> Self {
        Self {
            command: Command::new(program),
            stdin: None,
            stdout: Output::Null,
            stderr: Output::Null,
        }
    }

    /// Adds an argument.
    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.command.arg(arg);
        self
    }

    /// Adds arguments.
    pub(crate) fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.command.args(args);
        self
    }

    /// The name the program sees as `argv[0]`.
    pub(crate) fn arg0(mut self, name: impl AsRef<OsStr>) -> Self {
        self.command.arg0(name);
        self
    }

    /// Sets an environment variable.
    pub(crate) fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// Sets environment variables.
    pub(crate) fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.command.envs(vars);
        self
    }

    /// Starts from an empty environment.
    pub(crate) fn env_clear(mut self) -> Self {
        self.command.env_clear();
        self
    }

    /// Removes an environment variable.
    pub(crate) fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.command.env_remove(key);
        self
    }

    /// The working directory.
    pub(crate) fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// Feeds `bytes` on stdin (then closes it).
    #[cfg(test)]
    pub(crate) fn stdin_bytes(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(bytes);
        self
    }

    /// Where stdout goes.
    pub(crate) fn stdout(mut self, output: Output) -> Self {
        self.stdout = output;
        self
    }

    /// Where stderr goes.
    pub(crate) fn stderr(mut self, output: Output) -> Self {
        self.stderr = output;
        self
    }

    /// The program and its arguments as one line, for messages.
    pub(crate) fn line(&self) -> String {
        let mut words = vec![self.command.get_program().to_string_lossy().into_owned()];
        words.extend(
            self.command
                .get_args()
                .map(|a| a.to_string_lossy().into_owned()),
        );
        words.join(" ")
    }

    /// The command as configured (tests look at the program and arguments).
    pub(crate) fn command(&self) -> &Command {
        &self.command
    }

    /// Runs it to its end, killing it at `timeout`. A non-zero exit is not an error here: the caller reads
    /// [`Finished::status`].
    pub(crate) fn run(mut self, timeout: Duration) -> Result<Finished, Failure> {
        self.command
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(stdio(self.stdout))
            .stderr(stdio(self.stderr));
        let mut child = self.command.spawn().map_err(Failure::Start)?;
        // Only a given stdin takes a thread; the outputs are read on this thread with poll, so the hook stays
        // single-threaded (its sysfs-writer helper is forked only then).
        let feeder = match (child.stdin.take(), self.stdin.take()) {
            (Some(mut pipe), Some(bytes)) => Some(std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            })),
            _ => None,
        };
        let mut stdout = Sink::new(child.stdout.take().map(OwnedFd::from), self.stdout);
        let mut stderr = Sink::new(child.stderr.take().map(OwnedFd::from), self.stderr);
        let deadline = Instant::now() + timeout;
        let late = |child: &mut Child| {
            let _ = child.kill();
            let _ = child.wait();
            Failure::Timeout(timeout)
        };
        // Read until both pipes close, or the program has exited and a quiet pipe is held only by something it
        // left running: a full pipe would otherwise stall it until the deadline.
        let mut exited = None;
        while stdout.open() || stderr.open() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(late(&mut child));
            }
            let ms = u16::try_from(left.as_millis().clamp(1, 50)).unwrap_or(50);
            let ready = {
                let mut fds: Vec<PollFd<'_>> = [&stdout, &stderr]
                    .iter()
                    .filter_map(|sink| sink.fd.as_ref())
                    .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
                    .collect();
                match poll(&mut fds, PollTimeout::from(ms)) {
                    Ok(0) => match child.try_wait() {
                        Ok(Some(status)) => {
                            exited = Some(status);
                            break;
                        }
                        _ => continue,
                    },
                    Ok(_) => fds
                        .iter()
                        .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
                        .collect::<Vec<bool>>(),
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(Failure::Wait(e.into())),
                }
            };
            let mut ready = ready.into_iter();
            for sink in [&mut stdout, &mut stderr] {
                if sink.open() && ready.next() == Some(true) {
                    sink.read_some();
                }
            }
        }
        let status = match exited {
            Some(status) => status,
            None => wait_until(&mut child, deadline).map_err(|e| match e {
                Waited::Failed(e) => Failure::Wait(e),
                Waited::Late => Failure::Timeout(timeout),
            })?,
        };
        if let Some(feeder) = feeder {
            let _ = feeder.join();
        }
        Ok(Finished {
            status,
            stdout: stdout.text(),
            stderr: stderr.text(),
        })
    }

    /// Starts it and does not wait (stdin, stdout and stderr on /dev/null): for a program that outlives us.
    pub(crate) fn spawn_detached(mut self) -> std::io::Result<()> {
        self.command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Dropping the handle neither waits nor kills.
        self.command.spawn().map(drop)
    }

    /// Starts it with stdin and stdout as pipes to us and stderr on /dev/null, for a helper that speaks a
    /// protocol over them (the sysfs writer): its caller owns the deadline of each exchange.
    pub(crate) fn spawn_with_pipes(mut self) -> std::io::Result<Child> {
        self.command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        self.command.spawn()
    }
}

/// Runs `program ARGS` and returns at most `max_bytes` of its stdout (`journalctl` for `vmgpu explain`); a
/// failure to run, the deadline or a non-zero exit is an error carrying the start of its stderr.
pub(crate) fn run_capture(
    program: &str,
    args: &[&str],
    timeout: Duration,
    max_bytes: usize,
) -> super::Result<String> {
    let program = Program::new(program)
        .args(args)
        .stdout(Output::Capture { max: max_bytes })
        .stderr(Output::Capture { max: 4096 });
    let command = program.line();
    let done = program.run(timeout).map_err(|e| super::Error::Command {
        command: command.clone(),
        detail: e.to_string(),
    })?;
    if !done.status.success() {
        return Err(super::Error::Command {
            command,
            detail: format!("{}: {}", done.status, done.stderr_head()),
        });
    }
    Ok(done.stdout)
}

fn stdio(output: Output) -> Stdio {
    match output {
        Output::Null => Stdio::null(),
        Output::Capture { .. } => Stdio::piped(),
        Output::OurStderr => Stdio::from(std::io::stderr()),
    }
}

/// One captured output: its pipe until end-of-file, and the first `max` bytes read from it.
struct Sink {
    fd: Option<OwnedFd>,
    max: usize,
    kept: Vec<u8>,
}

impl Sink {
    /// A sink for `pipe` when `output` captures (otherwise there is no pipe).
    fn new(pipe: Option<OwnedFd>, output: Output) -> Self {
        let max = match output {
            Output::Capture { max } => max,
            Output::Null | Output::OurStderr => 0,
        };
        Self {
            fd: pipe,
            max,
            kept: Vec::new(),
        }
    }

    fn open(&self) -> bool {
        self.fd.is_some()
    }

    /// One read of what is ready, keeping what fits (the rest is dropped, so the program never blocks);
    /// end-of-file or an error closes the pipe.
    fn read_some(&mut self) {
        let Some(fd) = self.fd.as_ref() else { return };
        let mut buf = [0u8; 8192];
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => self.fd = None,
            Ok(n) => {
                let room = self.max.saturating_sub(self.kept.len());
                self.kept
                    .extend_from_slice(buf.get(..n.min(room)).unwrap_or_default());
            }
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
            Err(_) => self.fd = None,
        }
    }

    /// What was kept (lossy UTF-8).
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.kept).into_owned()
    }
}

enum Waited {
    Failed(std::io::Error),
    Late,
}

/// Polls the child until it exits (short sleeps first: most helpers end within a millisecond or two), or
/// kills and reaps it at the deadline.
fn wait_until(child: &mut Child, deadline: Instant) -> Result<ExitStatus, Waited> {
    let mut pause = Duration::from_micros(200);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Waited::Late);
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(Waited::Failed(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(20);

    #[test]
    fn test_captures_stdout_bounded() {
        let done = Program::new("sh")
            .args(["-c", "echo hello; echo world"])
            .stdout(Output::Capture { max: 8 })
            .run(LONG)
            .unwrap();
        assert!(done.status.success());
        assert_eq!(done.stdout, "hello\nwo");
    }

    #[test]
    fn test_output_past_the_pipe_buffer_does_not_stall_the_program() {
        let done = Program::new("sh")
            .args(["-c", "head -c 1000000 /dev/zero; echo done >&2"])
            .stdout(Output::Capture { max: 16 })
            .stderr(Output::Capture { max: 64 })
            .run(LONG)
            .unwrap();
        assert!(done.status.success());
        assert_eq!(done.stdout.len(), 16);
        assert_eq!(done.stderr_head(), "done");
    }

    #[test]
    fn test_a_pipe_held_by_what_the_program_left_running_does_not_hold_us() {
        let t = Instant::now();
        let done = Program::new("sh")
            .args(["-c", "sleep 30 & echo started"])
            .stdout(Output::Capture { max: 64 })
            .run(LONG)
            .unwrap();
        assert!(done.status.success());
        assert_eq!(done.stdout, "started\n");
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn test_stdin_bytes_reach_the_program() {
        let done = Program::new("cat")
            .stdin_bytes(b"fed".to_vec())
            .stdout(Output::Capture { max: 64 })
            .run(LONG)
            .unwrap();
        assert_eq!(done.stdout, "fed");
    }

    #[test]
    fn test_failure_status_and_stderr_come_back() {
        let done = Program::new("sh")
            .args(["-c", "echo nope >&2; exit 3"])
            .stderr(Output::Capture { max: 64 })
            .run(LONG)
            .unwrap();
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.stderr_head(), "nope");
    }

    #[test]
    fn test_deadline_kills() {
        let t = Instant::now();
        let err = Program::new("sleep")
            .arg("30")
            .run(Duration::from_millis(200))
            .unwrap_err();
        assert!(matches!(err, Failure::Timeout(_)), "{err:?}");
        assert!(t.elapsed() < LONG);
    }

    #[test]
    fn test_missing_program_is_a_start_failure() {
        let err = Program::new("/nonexistent/vmgpu-test-program")
            .run(LONG)
            .unwrap_err();
        assert!(matches!(err, Failure::Start(_)), "{err:?}");
    }

    #[test]
    fn test_run_capture_failure_names_the_command_and_stderr() {
        let err = run_capture("sh", &["-c", "echo nope >&2; exit 3"], LONG, 64).unwrap_err();
        assert!(err.to_string().contains("sh -c"), "{err}");
        assert!(format!("{err:?}").contains("nope"), "{err:?}");
    }

    #[test]
    fn test_line_joins_program_and_arguments() {
        assert_eq!(
            Program::new("modprobe").args(["-r", "x"]).line(),
            "modprobe -r x"
        );
    }
}
