//! `vmgpu explain <vm>`: why a VM did not start (or runs badly). The domain's QEMU log, the kernel log, the hook
//! and libvirt log lines, vmgpu's journal and the domain XML are read together ([`sources`]) and matched against
//! a table of known failure signatures ([`signatures`]); each match is printed as what happened / why / the fix
//! for this distro, most likely first. A failure no signature knows is shown as its log lines, never guessed.
use serde::Serialize;

use crate::host::Distro;

pub mod diagnosis_text;
pub(crate) mod domain_facts;
pub(crate) mod fixes;
pub mod signatures;
pub mod sources;

pub use domain_facts::DomainFacts;

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// `/var/log/libvirt/qemu/<vm>.log` (QEMU's stderr and libvirt's start lines).
    Qemu,
    /// The kernel log since the last start.
    Kernel,
    /// vmgpu's hook log lines and libvirt's own log (where hook failures are reported).
    Hook,
    /// vmgpu's write-ahead journal `/run/vmgpu/<vm>.json`.
    Journal,
    /// The domain XML (facts, not lines: its evidence has line 0).
    Domain,
}

impl Source {
    /// Every source of log lines, in the order they are printed.
    pub(crate) const ALL: [Source; 4] =
        [Source::Qemu, Source::Kernel, Source::Hook, Source::Journal];

    /// A short name for the user.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Source::Qemu => "QEMU log",
            Source::Kernel => "kernel log",
            Source::Hook => "hook/libvirt log",
            Source::Journal => "vmgpu journal",
            Source::Domain => "domain XML",
        }
    }
}

/// Everything `explain` read about one VM.
#[derive(Debug, Clone, Default)]
pub struct Logs {
    /// The VM.
    pub vm: String,
    /// The text of each source that could be read (the QEMU log cut to the last start).
    pub texts: Vec<(Source, String)>,
    /// What the domain XML says (empty when no XML was available).
    pub domain: DomainFacts,
    /// PCI vendor id of each passed-through device, read from the host (`0000:01:00.0` → `0x10de`).
    pub hostdev_vendors: Vec<(String, u32)>,
    /// Why a source is missing or partial, one line each.
    pub notes: Vec<String>,
}

impl Logs {
    /// The lines of one source (none when it was not read).
    pub(crate) fn lines(&self, source: Source) -> impl Iterator<Item = &str> {
        self.texts
            .iter()
            .filter(move |(s, _)| *s == source)
            .flat_map(|(_, text)| text.lines())
    }

    /// True when the source was read and is not empty.
    pub(crate) fn has(&self, source: Source) -> bool {
        self.texts
            .iter()
            .any(|(s, text)| *s == source && !text.trim().is_empty())
    }
}

/// One log line that a signature matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// Where it came from.
    pub source: Source,
    /// 1-based line number within that source.
    pub line: usize,
    /// The line (cut to 400 characters).
    pub text: String,
}

/// A signature that matched, ready to print.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable id (`group-not-viable`).
    pub id: &'static str,
    /// What happened.
    pub what: &'static str,
    /// Why it happens.
    pub why: &'static str,
    /// The fix for this distro.
    pub fix: String,
    /// The lines that matched (at most [`MAX_EVIDENCE`]).
    pub evidence: Vec<Evidence>,
}

/// What `explain` concluded.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    /// The VM.
    pub vm: String,
    /// Known causes, most likely first.
    pub findings: Vec<Finding>,
    /// When nothing matched: the lines that look like errors, per source (the whole tail when none do).
    pub unknown: Vec<Evidence>,
    /// Missing or partial sources.
    pub notes: Vec<String>,
}

/// The most evidence lines kept per finding.
pub(crate) const MAX_EVIDENCE: usize = 4;
/// The most lines shown for an unknown failure.
pub(crate) const MAX_UNKNOWN_LINES: usize = 40;

/// What a fix text may depend on.
#[derive(Debug, Clone)]
pub struct FixContext<'a> {
    /// The host's distro (bootloader, initramfs tool, package manager).
    pub distro: &'a Distro,
    /// The VM.
    pub vm: &'a str,
    /// `GenuineIntel` / `AuthenticAMD` from `/proc/cpuinfo`, when known.
    pub cpu_vendor: Option<&'a str>,
}

/// Matches every signature against the logs: findings most likely first, or the error-looking lines when no
/// signature matched.
pub fn diagnose(logs: &Logs, fix: &FixContext<'_>) -> Diagnosis {
    let mut matched: Vec<(&signatures::Signature, Vec<Evidence>)> = signatures::SIGNATURES
        .iter()
        .filter_map(|sig| {
            let evidence = sig.detect.run(logs);
            (!evidence.is_empty()).then_some((sig, evidence))
        })
        .collect();
    // Root causes outrank their symptoms (rank); among equals, what the logs show first came first.
    matched.sort_by_key(|(sig, ev)| {
        (
            std::cmp::Reverse(sig.rank),
            ev.first().map_or(usize::MAX, |e| e.line),
        )
    });
    let findings: Vec<Finding> = matched
        .into_iter()
        .map(|(sig, mut evidence)| {
            evidence.truncate(MAX_EVIDENCE);
            Finding {
                id: sig.id,
                what: sig.what,
                why: sig.why,
                fix: (sig.fix)(fix),
                evidence,
            }
        })
        .collect();
    let unknown = if findings.iter().any(|f| !signatures::is_advisory(f.id)) {
        Vec::new()
    } else {
        error_lines(logs)
    };
    Diagnosis {
        vm: logs.vm.clone(),
        findings,
        unknown,
        notes: logs.notes.clone(),
    }
}

/// Words that mark a line as worth showing when no signature matched.
const ERROR_WORDS: &[&str] = &[
    "error",
    "fail",
    "denied",
    "cannot",
    "can't",
    "unable",
    "not viable",
    "refus",
    "timed out",
    "no such",
    "not permitted",
    "invalid",
    "warning",
    "terminating on signal",
    "shutting down",
];

/// What no signature explained: everything QEMU and libvirt said after the command line in the QEMU log, and the
/// error-looking lines of the other sources; the last [`MAX_UNKNOWN_LINES`] in all.
fn error_lines(logs: &Logs) -> Vec<Evidence> {
    let qemu = logs
        .lines(Source::Qemu)
        .enumerate()
        .filter(|(_, text)| !is_command_line(text))
        .map(|(i, text)| evidence(Source::Qemu, i, text));
    let others = [Source::Kernel, Source::Hook]
        .into_iter()
        .flat_map(|source| {
            logs.lines(source).enumerate().filter_map(move |(i, text)| {
                let lower = text.to_lowercase();
                ERROR_WORDS
                    .iter()
                    .any(|w| lower.contains(w))
                    .then(|| evidence(source, i, text))
            })
        });
    let mut lines: Vec<Evidence> = qemu.chain(others).collect();
    let excess = lines.len().saturating_sub(MAX_UNKNOWN_LINES);
    lines.drain(..excess);
    lines
}

/// The parts of a QEMU log that are libvirt's start banner and QEMU's command line (environment, binary,
/// arguments, each continued with a backslash), not messages.
fn is_command_line(line: &str) -> bool {
    let t = line.trim();
    t.is_empty()
        || t.ends_with('\\')
        || t.contains(": starting up ")
        || t.starts_with('-')
        || t.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        })
}

/// An evidence line (index is 0-based, the result 1-based), cut to 400 characters.
pub(crate) fn evidence(source: Source, index: usize, text: &str) -> Evidence {
    Evidence {
        source,
        line: index + 1,
        text: text.trim_end().chars().take(400).collect(),
    }
}
