//! The known failure signatures, as data: each names its evidence (lines that contain all of a set of
//! lower-case fragments, or a small detector function), what happened, why, the fix (a function of the distro)
//! and a rank (root causes above the symptoms they cause). Fixtures: `tests/fixtures/explain/<id>/`.
use super::{Evidence, FixContext, Logs, Source, evidence, fixes};

mod detectors;
mod table;
pub use table::SIGNATURES;

/// One line pattern: every fragment (lower case) on one line of `source` (any source when `None`).
#[derive(Debug, Clone, Copy)]
pub struct Needle {
    /// The source to look in.
    pub source: Option<Source>,
    /// Fragments that must all be on the line.
    pub all: &'static [&'static str],
}

/// A needle in any source.
const fn any(all: &'static [&'static str]) -> Needle {
    Needle { source: None, all }
}

/// A needle in one source.
const fn from(source: Source, all: &'static [&'static str]) -> Needle {
    Needle {
        source: Some(source),
        all,
    }
}

/// How a signature finds its evidence.
#[derive(Debug, Clone, Copy)]
pub enum Detect {
    /// Any line matching any needle.
    Lines(&'static [Needle]),
    /// A detector for what lines alone cannot say (the XML, the journal, the hostdev addresses).
    Custom(fn(&Logs) -> Vec<Evidence>),
}

impl Detect {
    /// The evidence in `logs` (empty: no match).
    pub(crate) fn run(&self, logs: &Logs) -> Vec<Evidence> {
        match self {
            Detect::Lines(needles) => matching_lines(logs, needles),
            Detect::Custom(detect) => detect(logs),
        }
    }
}

fn matching_lines(logs: &Logs, needles: &[Needle]) -> Vec<Evidence> {
    let mut found = Vec::new();
    for source in Source::ALL {
        for (i, line) in logs.lines(source).enumerate() {
            let lower = line.to_lowercase();
            let hit = needles.iter().any(|n| {
                n.source.is_none_or(|s| s == source) && n.all.iter().all(|f| lower.contains(f))
            });
            if hit {
                found.push(evidence(source, i, line));
            }
        }
    }
    found
}

/// A known failure.
#[derive(Debug, Clone, Copy)]
pub struct Signature {
    /// Stable id; also the fixture directory name.
    pub id: &'static str,
    /// What happened.
    pub what: &'static str,
    /// Why.
    pub why: &'static str,
    /// The fix for this distro.
    pub fix: fn(&FixContext<'_>) -> String,
    /// Higher is more likely the root cause when several match.
    pub rank: u8,
    /// The evidence.
    pub detect: Detect,
}

/// Signatures that describe a risk, not a failure: they never hide the unknown lines.
pub(crate) fn is_advisory(id: &str) -> bool {
    matches!(id, "nvidia-code-43" | "journal-left-over")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_ids_are_unique_and_at_least_twenty() {
        let mut ids: Vec<&str> = SIGNATURES.iter().map(|s| s.id).collect();
        assert!(ids.len() >= 20, "{} signatures", ids.len());
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), SIGNATURES.len());
    }

    #[test]
    fn test_needles_are_lower_case() {
        for sig in SIGNATURES {
            if let Detect::Lines(needles) = sig.detect {
                for n in needles {
                    for f in n.all {
                        assert_eq!(*f, f.to_lowercase(), "{}: {f}", sig.id);
                    }
                }
            }
        }
    }
}
