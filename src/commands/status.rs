//! `vmgpu status`: every VM vmgpu prepared (a journal in `/run/vmgpu`) and what it holds.
use std::path::Path;

use anyhow::Context;

use crate::cli::StatusArgs;
use crate::hook::run::VmJournal;
use crate::host::HostRoot;
use crate::journal::Store;
use crate::report::Outcome;

/// Runs `vmgpu status`.
pub fn run(root: &Path, args: &StatusArgs) -> anyhow::Result<Outcome> {
    let root = HostRoot::new(root);
    let store = Store::new(&root);
    let mut journals: Vec<VmJournal> = Vec::new();
    for vm in store.list().context("cannot list the journals")? {
        if let Some(journal) = store
            .load(&vm)
            .with_context(|| format!("cannot read VM {vm:?}'s journal"))?
        {
            journals.push(journal);
        }
    }
    if args.json {
        let doc = serde_json::json!({ "format": crate::journal::FORMAT, "vms": journals });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(Outcome::Ok);
    }
    if journals.is_empty() {
        println!(
            "vmgpu holds nothing (no journal in {})",
            root.path(crate::journal::DIR).display()
        );
    }
    for journal in &journals {
        println!(
            "{}: {}, pid {}, holds {}",
            journal.vm,
            phase_name(journal.phase),
            journal.pid,
            if journal.holds.is_empty() {
                "no PCI devices".to_string()
            } else {
                journal.holds.join(" ")
            }
        );
        for (i, step) in journal.steps.iter().enumerate() {
            println!("  {}. {}", i + 1, step.describe());
        }
    }
    println!("a VM that did not start or runs badly: `vmgpu explain <vm>` says why");
    Ok(Outcome::Ok)
}

/// The phase as the JSON and the docs spell it (`prepared`, not `Prepared`).
fn phase_name(phase: crate::journal::Phase) -> String {
    match serde_json::to_value(phase) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{phase:?}").to_lowercase(),
    }
}
