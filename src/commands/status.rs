//! `vmgpu status`: every VM vmgpu prepared (a journal in `/run/vmgpu`) and what it holds. A journal that
//! cannot be used (corrupt, another format or VM, naming what its steps do not own) is listed as broken with
//! the reason, the others are still listed, and the exit code is 1.
use std::path::Path;

use anyhow::Context;

use crate::cli::StatusArgs;
use crate::hook::run::VmJournal;
use crate::host::HostRoot;
use crate::journal::Store;
use crate::report::{Outcome, one_line};

/// One VM's entry: its journal, or why it cannot be used.
enum Entry {
    Journal(Box<VmJournal>),
    Broken { vm: String, reason: String },
}

/// Runs `vmgpu status`.
pub(crate) fn run(root: &Path, args: &StatusArgs) -> anyhow::Result<Outcome> {
    let root = HostRoot::new(root);
    let store = Store::new(&root);
    let mut entries = Vec::new();
    for vm in store.list().context("cannot list the journals")? {
        match store.load(&vm) {
            Ok(Some(journal)) => entries.push(Entry::Journal(Box::new(journal))),
            Ok(None) => {} // released meanwhile
            Err(e) => entries.push(Entry::Broken {
                vm,
                reason: one_line(&e),
            }),
        }
    }
    let broken = entries.iter().any(|e| matches!(e, Entry::Broken { .. }));
    if args.json {
        print_json(&entries)?;
    } else {
        print_text(&root, &entries);
    }
    Ok(if broken {
        Outcome::Findings
    } else {
        Outcome::Ok
    })
}

fn print_json(entries: &[Entry]) -> anyhow::Result<()> {
    let vms: Vec<&VmJournal> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Journal(j) => Some(j.as_ref()),
            Entry::Broken { .. } => None,
        })
        .collect();
    let broken: Vec<serde_json::Value> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Broken { vm, reason } => Some(serde_json::json!({ "vm": vm, "error": reason })),
            Entry::Journal(_) => None,
        })
        .collect();
    let doc = serde_json::json!({ "format": crate::journal::FORMAT, "vms": vms, "broken": broken });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

fn print_text(root: &HostRoot, entries: &[Entry]) {
    if entries.is_empty() {
        println!(
            "vmgpu holds nothing (no journal in {})",
            root.path(crate::journal::DIR).display()
        );
    }
    for entry in entries {
        match entry {
            Entry::Broken { vm, reason } => println!("{vm}: BROKEN: {reason}"),
            Entry::Journal(journal) => {
                println!(
                    "{}: {}, pid {}, holds {}",
                    journal.vm,
                    phase_name(journal.phase),
                    journal.pid,
                    if journal.holds.is_empty() {
                        "no PCI devices".to_string()
                    } else {
                        let holds: Vec<String> =
                            journal.holds.iter().map(ToString::to_string).collect();
                        holds.join(" ")
                    }
                );
                for (i, step) in journal.steps.iter().enumerate() {
                    println!("  {}. {}", i + 1, step.describe());
                }
            }
        }
    }
    println!("a VM that did not start or runs badly: `vmgpu explain <vm>` says why");
}

/// The phase as the JSON and the docs spell it (`prepared`, not `Prepared`).
fn phase_name(phase: crate::journal::Phase) -> String {
    match serde_json::to_value(phase) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{phase:?}").to_lowercase(),
    }
}
