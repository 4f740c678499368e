//! Error-chain printing, exit codes and logging.
//!
//! Exit codes follow ripgrep: 0 all good, 1 findings (a failed check; for the hook: veto the start),
//! 2 usage or internal error.
use std::io::IsTerminal;
use std::process::ExitCode;

/// What a command reports when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to report.
    Ok,
    /// The command ran and found problems (a FAIL in `check`).
    Findings,
}

/// Exit code for findings.
pub(crate) const EXIT_FINDINGS: u8 = 1;
/// Exit code for usage and internal errors.
pub(crate) const EXIT_ERROR: u8 = 2;

/// An error that carries its own exit code (for example a usage error = 2, a hook veto = 1), and optionally
/// the error it wraps (printed as the rest of the chain).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct ExitError {
    /// The one-line message shown to the user.
    pub message: String,
    /// The process exit code.
    pub code: u8,
    /// What caused it.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl ExitError {
    /// An error with an explicit exit code.
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code,
            source: None,
        }
    }

    /// An error with an explicit exit code and its cause.
    pub(crate) fn caused_by(
        code: u8,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            code,
            source: Some(Box::new(source)),
        }
    }
}

/// The levels of an error chain, each printed once: a level whose text the level above already shows in
/// full (a wrapper that formats its cause inline) is skipped.
pub(crate) fn levels(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        let shown = out.last().is_some_and(|above| above.contains(&text));
        if !text.is_empty() && !shown {
            out.push(text);
        }
        next = e.source();
    }
    out
}

/// An error and every cause on one line, `a: b: c`: the one chain printer (what libvirt shows for a hook,
/// what logs carry).
pub(crate) fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    levels(err).join(": ")
}

/// Formats an error and its causes on one line: `a: b: c` (what libvirt shows for a hook).
pub(crate) fn chain_one_line(err: &anyhow::Error) -> String {
    one_line(err.as_ref())
}

/// Formats an error and its causes for a human at a terminal: the error, then numbered causes.
pub(crate) fn chain_numbered(err: &anyhow::Error) -> String {
    let levels = levels(err.as_ref());
    let mut out = levels.first().cloned().unwrap_or_default();
    for (i, cause) in levels.iter().skip(1).enumerate() {
        out.push_str(&format!("\n  {}: {}", i + 1, cause));
    }
    out
}

fn exit_code_of(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|e| e.downcast_ref::<ExitError>())
        .map_or(EXIT_ERROR, |e| e.code)
}

/// Whether to print ANSI colours on a stream: only on a terminal, and never when `NO_COLOR` is set to a
/// non-empty value (<https://no-color.org>).
pub(crate) fn use_colour(stream_is_terminal: bool) -> bool {
    stream_is_terminal && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// Maps a command result to the process exit code, printing the error chain on stderr.
pub fn finish(result: anyhow::Result<Outcome>) -> ExitCode {
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Findings) => ExitCode::from(EXIT_FINDINGS),
        Err(err) => {
            let text = if std::io::stderr().is_terminal() {
                chain_numbered(&err)
            } else {
                chain_one_line(&err)
            };
            eprintln!("vmgpu: {text}");
            ExitCode::from(exit_code_of(&err))
        }
    }
}

/// Ends a command line clap refused. A value its parser refused (or one outside a closed set) is bad input
/// like any other: one line that names the option and the fix, exit 2. Help, version and the other usage errors (an unknown option, a
/// missing value) print as clap prints them, with the usage and the tips.
pub fn refused_command_line(err: clap::Error) -> ExitCode {
    match value_error_line(&err) {
        Some(line) => {
            eprintln!("vmgpu: {line}");
            ExitCode::from(EXIT_ERROR)
        }
        None => err.exit(),
    }
}

/// `--looking-glass: resolution 0x0 is out of range (…)` for a value its parser refused, `--grab-toggle:
/// "x" is not one of ctrl-ctrl, alt-alt, …` for one outside a closed set.
fn value_error_line(err: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let why = match err.kind() {
        ErrorKind::ValueValidation => one_line(std::error::Error::source(err)?),
        ErrorKind::InvalidValue => {
            let (Some(ContextValue::String(value)), Some(ContextValue::Strings(valid))) = (
                err.get(ContextKind::InvalidValue),
                err.get(ContextKind::ValidValue),
            ) else {
                return None;
            };
            format!("{value:?} is not one of {}", valid.join(", "))
        }
        _ => return None,
    };
    // clap names the argument as `--looking-glass <MODE>` (an option) or `<SHELL>` (a positional).
    let arg = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.split_whitespace().next().unwrap_or_default(),
        _ => "",
    };
    Some(if arg.is_empty() {
        why
    } else {
        format!("{arg}: {why}")
    })
}

/// Like [`finish`] for hook mode: always one line (libvirt passes stderr on to the API caller), and any error
/// vetoes the operation with exit 1.
pub(crate) fn finish_hook(result: anyhow::Result<Outcome>) -> ExitCode {
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("vmgpu: {}", chain_one_line(&err));
            ExitCode::from(EXIT_FINDINGS)
        }
    }
}

/// The journald identifier of every vmgpu log line (`journalctl -t vmgpu`).
pub(crate) const SYSLOG_IDENTIFIER: &str = "vmgpu";

/// Exit code of a command whose reader closed standard output (`vmgpu status | head`), as a shell reports a
/// process killed by SIGPIPE (128 + 13).
pub(crate) const EXIT_CLOSED_STDOUT: i32 = 141;

/// Makes a closed standard output end the process quietly with [`EXIT_CLOSED_STDOUT`] instead of a panic
/// message: Rust ignores SIGPIPE, so `println!` to a closed pipe panics ("failed printing to stdout"). The
/// output was cut short by the reader on purpose; there is nothing to report.
pub fn quiet_on_closed_stdout() {
    let report_panic = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.starts_with("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(EXIT_CLOSED_STDOUT);
        }
        report_panic(info);
    }));
}

/// Sets up `tracing`: journald when its socket exists, stderr otherwise. Never stdout.
pub fn init_logging(verbose: u8) {
    use tracing_subscriber::prelude::*;
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VMGPU_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let registry = tracing_subscriber::registry().with(filter);
    let journald = std::path::Path::new("/run/systemd/journal/socket")
        .exists()
        .then(tracing_journald::layer)
        .and_then(Result::ok)
        // Our own identifier: as libvirt's hook the process name would be `qemu` (`journalctl -t vmgpu`).
        .map(|layer| layer.with_syslog_identifier(SYSLOG_IDENTIFIER.to_string()));
    let result = match journald {
        Some(layer) => registry.with(layer).try_init(),
        None => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(use_colour(std::io::stderr().is_terminal()))
                    .with_target(false),
            )
            .try_init(),
    };
    // A second init (tests) is harmless.
    let _ = result;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_a_refused_value_is_one_line_naming_its_option() {
        use clap::Parser;
        let err = crate::cli::Cli::try_parse_from(["vmgpu", "define", "--looking-glass", "0x0"])
            .unwrap_err();
        assert_eq!(
            value_error_line(&err).as_deref(),
            Some("--looking-glass: resolution 0x0 is out of range (each side 64..=16384 pixels)")
        );
        let err =
            crate::cli::Cli::try_parse_from(["vmgpu", "check", "--gpu", "banana"]).unwrap_err();
        let line = value_error_line(&err).unwrap();
        assert!(
            line.starts_with("--gpu: \"banana\" is not a PCI address"),
            "{line}"
        );
        let err = crate::cli::Cli::try_parse_from(["vmgpu", "define", "--grab-toggle", "f12"])
            .unwrap_err();
        assert_eq!(
            value_error_line(&err).as_deref(),
            Some(
                "--grab-toggle: \"f12\" is not one of ctrl-ctrl, alt-alt, shift-shift, meta-meta, scrolllock, ctrl-scrolllock"
            )
        );
        let unknown = crate::cli::Cli::try_parse_from(["vmgpu", "check", "--frob"]).unwrap_err();
        assert_eq!(value_error_line(&unknown), None);
    }

    #[test]
    fn test_chain_one_line_joins_causes() {
        let err = anyhow::anyhow!("root cause")
            .context("middle")
            .context("top");
        assert_eq!(chain_one_line(&err), "top: middle: root cause");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot write to {0}: {1}")]
    struct Inline(&'static str, #[source] std::io::Error);

    #[test]
    fn test_one_line_prints_every_level_once_with_errno() {
        let io = std::io::Error::from_raw_os_error(16);
        let err = ExitError::caused_by(1, "top", Inline("/sys/x/bind", io));
        let line = one_line(&err);
        assert_eq!(
            line.matches("Device or resource busy (os error 16)")
                .count(),
            1,
            "{line}"
        );
        assert!(
            line.starts_with("top: cannot write to /sys/x/bind: "),
            "{line}"
        );
    }

    #[test]
    fn test_exit_code_of_exit_error_is_its_code() {
        let err = anyhow::Error::new(ExitError::new(7, "x")).context("ctx");
        assert_eq!(exit_code_of(&err), 7);
    }

    #[test]
    fn test_chain_leaves_out_causes_the_parent_already_printed() {
        #[derive(Debug, thiserror::Error)]
        #[error("0x0 character is not permitted in XML")]
        struct Inner;
        #[derive(Debug, thiserror::Error)]
        #[error("invalid character reference: {0}")]
        struct Middle(#[source] Inner);
        let err = anyhow::Error::new(Middle(Inner)).context("cannot read the domain XML");

        assert_eq!(
            chain_one_line(&err),
            "cannot read the domain XML: invalid character reference: 0x0 character is not permitted in XML"
        );
        assert_eq!(chain_numbered(&err).lines().count(), 2);
    }
}
