//! The human report of a [`Diagnosis`]: each known cause as what happened / why / fix with the lines that show
//! it; an unknown failure as its log lines.
use super::{Diagnosis, Evidence, Source};

/// Formats the diagnosis for a terminal (plain text, no colour).
pub fn text(d: &Diagnosis) -> String {
    let mut s = String::new();
    let failures = d
        .findings
        .iter()
        .filter(|f| !super::signatures::is_advisory(f.id))
        .count();
    if failures > 0 {
        s.push_str(&format!(
            "vmgpu explain {}: {} known cause{}, most likely first\n",
            d.vm,
            failures,
            if failures == 1 { "" } else { "s" }
        ));
    } else {
        s.push_str(&format!(
            "vmgpu explain {}: unknown: no known failure signature matched\n",
            d.vm
        ));
    }
    for (i, f) in d.findings.iter().enumerate() {
        s.push_str(&format!("\n{}. {} [{}]\n", i + 1, f.what, f.id));
        s.push_str(&format!("   why: {}\n", f.why));
        s.push_str(&format!("   fix: {}\n", f.fix));
        s.push_str("   seen in:\n");
        for e in &f.evidence {
            s.push_str(&format!("     {}\n", line(e)));
        }
    }
    if !d.unknown.is_empty() {
        s.push_str(
            "\nthe relevant log lines (not a guess: read them, or attach them to a bug report):\n",
        );
        for e in &d.unknown {
            s.push_str(&format!("  {}\n", line(e)));
        }
    } else if failures == 0 && d.findings.is_empty() {
        s.push_str("\nno error lines in the logs read\n");
    }
    if !d.notes.is_empty() {
        s.push_str("\nnot read:\n");
        for n in &d.notes {
            s.push_str(&format!("  {n}\n"));
        }
    }
    s
}

/// `QEMU log:12: text` (no line number for the domain XML's facts).
fn line(e: &Evidence) -> String {
    if e.source == Source::Domain || e.line == 0 {
        format!("{}: {}", e.source.label(), e.text)
    } else {
        format!("{}:{}: {}", e.source.label(), e.line, e.text)
    }
}
