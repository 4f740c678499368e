//! The plan as text for a human (and the golden files): title, kernel parameters, a unified diff per file,
//! the commands, what the user runs by hand, and notes.
use std::fmt::Write as _;

use super::diff;
use super::plan::Plan;

/// Renders the plan. `root` is shown on commands that run in a chroot.
pub(crate) fn text(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", plan.title);
    // Say whether the boot configuration changes: the same line for "will be set" and "already set" misled.
    let params = plan.kernel_params.join(" ");
    if plan.kernel_params_change {
        let _ = writeln!(out, "kernel parameters: {params} (to be set: see below)");
    } else {
        let _ = writeln!(
            out,
            "kernel parameters: {params} (already set: no boot change)"
        );
    }
    if plan.is_noop() {
        let _ = writeln!(
            out,
            "\nnothing to change: this host is already set up as planned"
        );
    }
    for f in &plan.files {
        let _ = writeln!(out, "\n# {}: {}", f.path, f.why);
        out.push_str(&diff::unified(&f.path, f.before.as_deref(), &f.after));
    }
    if !plan.commands.is_empty() {
        let _ = writeln!(out, "\ncommands, in this order:");
        for c in &plan.commands {
            let _ = writeln!(out, "  {}    # {}", c.line(), c.why);
        }
    }
    if !plan.manual.is_empty() {
        let _ = writeln!(out, "\nrun yourself (or pass --install-packages):");
        for m in &plan.manual {
            let _ = writeln!(out, "  {m}");
        }
    }
    if !plan.notes.is_empty() {
        let _ = writeln!(out, "\nnotes:");
        for n in &plan.notes {
            let _ = writeln!(out, "  - {n}");
        }
    }
    out
}
