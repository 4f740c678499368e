//! `vmgpu explain <vm>`: why the VM did not start. Reads its logs (`explain::sources`), the domain XML (libvirt,
//! or `--xml`), matches the signature table and prints the causes most likely first. Exit 0 whenever it could
//! read something; 2 on bad input.
use std::io::Write;
use std::path::Path;

use anyhow::Context as _;

use crate::cli::ExplainArgs;
use crate::explain::{self, FixContext, diagnosis_text, sources};
use crate::host::{Distro, HostRoot};
use crate::report::{EXIT_ERROR, ExitError, Outcome};

/// Runs `vmgpu explain`.
pub(crate) fn run(root: &Path, args: &ExplainArgs) -> anyhow::Result<Outcome> {
    let root = HostRoot::new(root);
    if args.vm.is_empty() || args.vm.contains(['/', '\0']) || args.vm.starts_with('.') {
        return Err(ExitError::new(
            EXIT_ERROR,
            format!(
                "{:?} is not a VM name (give the name `virsh list --all` shows)",
                args.vm
            ),
        )
        .into());
    }
    let xml_file = match &args.xml {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
            ExitError::new(
                EXIT_ERROR,
                format!(
                    "--xml {}: {e} (give a domain XML file, e.g. from `virsh dumpxml`)",
                    path.display()
                ),
            )
        })?),
        None => None,
    };
    let mut logs = match &args.logs {
        Some(dir) => sources::from_dir(dir, &args.vm).map_err(|e| {
            ExitError::new(
                EXIT_ERROR,
                format!("--logs: {e} (give the directory the logs were saved in)"),
            )
        })?,
        None => {
            let mut notes = Vec::new();
            let domain_xml = xml_file
                .clone()
                .or_else(|| domain_xml(&args.connect, &args.vm, &mut notes));
            let mut logs = sources::gather(&sources::Request {
                root: &root,
                vm: &args.vm,
                since: args.since.as_deref(),
                domain_xml,
            });
            logs.notes.extend(notes);
            logs
        }
    };
    if args.logs.is_some()
        && let Some(xml) = &xml_file
    {
        match explain::DomainFacts::parse(xml) {
            Ok(facts) => logs.domain = facts,
            Err(note) => logs.notes.push(note),
        }
    }
    let distro = Distro::read(&root).context("reading the distro for the fix commands")?;
    let cpuinfo = root
        .read_optional("/proc/cpuinfo")
        .ok()
        .flatten()
        .unwrap_or_default();
    let cpu_vendor = crate::host::parse::cpuinfo_field(&cpuinfo, "vendor_id");
    let diagnosis = explain::diagnose(
        &logs,
        &FixContext {
            distro: &distro,
            vm: &args.vm,
            cpu_vendor,
        },
    );
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &diagnosis).context("writing JSON")?;
        writeln!(out)?;
    } else {
        out.write_all(diagnosis_text::text(&diagnosis).as_bytes())?;
    }
    Ok(Outcome::Ok)
}

/// The domain's XML from libvirt; a note (not an error) when libvirt is not there or does not know the VM.
#[cfg(feature = "libvirt")]
fn domain_xml(uri: &str, vm: &str, notes: &mut Vec<String>) -> Option<String> {
    let result = crate::libvirt::Libvirt::open(uri).and_then(|conn| conn.inactive_xml(vm));
    match result {
        Ok(Some(xml)) => Some(xml),
        Ok(None) => {
            notes.push(format!("domain XML: libvirt at {uri} has no domain {vm:?}"));
            None
        }
        Err(e) => {
            notes.push(format!("domain XML: {e} (or pass --xml FILE)"));
            None
        }
    }
}

/// Without libvirt support the XML only comes from `--xml`.
#[cfg(not(feature = "libvirt"))]
fn domain_xml(_uri: &str, _vm: &str, notes: &mut Vec<String>) -> Option<String> {
    notes.push("domain XML: this build has no libvirt support (pass --xml FILE)".to_string());
    None
}
