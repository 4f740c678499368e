//! Reading the output of a program under a deadline (`journalctl` for `vmgpu explain`). Changes nothing on the
//! host; it lives here because `ops/` is where vmgpu starts processes.
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Error, Result};

/// Runs `program ARGS` with stdin on /dev/null and returns at most `max_bytes` of its stdout (the rest is read
/// and dropped, so the program never blocks on a full pipe). The program is killed at the deadline; a non-zero
/// exit is an error carrying the start of its stderr.
pub fn run_capture(
    program: &str,
    args: &[&str],
    timeout: Duration,
    max_bytes: usize,
) -> Result<String> {
    let command = format!("{program} {}", args.join(" "));
    let fail = |detail: String| Error::Command {
        command: command.clone(),
        detail,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot start: {e}")))?;
    // Readers in threads: a full stdout pipe would otherwise stall the child until the deadline.
    let stdout = child
        .stdout
        .take()
        .map(|pipe| std::thread::spawn(move || read_bounded(pipe, max_bytes)));
    let stderr = child
        .stderr
        .take()
        .map(|pipe| std::thread::spawn(move || read_bounded(pipe, 4096)));
    let deadline = Instant::now() + timeout;
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
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(fail(format!("cannot wait: {e}"))),
        }
    };
    let out = stdout.and_then(|t| t.join().ok()).unwrap_or_default();
    let err = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    if !status.success() {
        let err: String = err.trim().chars().take(300).collect();
        return Err(fail(format!("{status}: {err}")));
    }
    Ok(out)
}

/// Reads a pipe to its end, keeping the first `max` bytes (lossy UTF-8).
fn read_bounded(mut pipe: impl Read, max: usize) -> String {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = max.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_captures_stdout_bounded() {
        let out = run_capture(
            "sh",
            &["-c", "echo hello; echo world"],
            Duration::from_secs(10),
            8,
        )
        .unwrap();
        assert_eq!(out, "hello\nwo");
    }

    #[test]
    fn test_failure_carries_stderr() {
        let err = run_capture(
            "sh",
            &["-c", "echo nope >&2; exit 3"],
            Duration::from_secs(10),
            64,
        )
        .unwrap_err();
        assert!(err.to_string().contains("sh -c"), "{err}");
        assert!(format!("{err:?}").contains("nope"), "{err:?}");
    }

    #[test]
    fn test_deadline_kills() {
        let err = run_capture("sleep", &["30"], Duration::from_millis(200), 64).unwrap_err();
        assert!(format!("{err:?}").contains("killed"), "{err:?}");
    }
}
