//! The libvirt qemu hook: prepare a GPU VM's host (vfio-pci, CPUs, hugepages, IVSHMEM) and put it back,
//! crash-safe through a write-ahead journal.
//!
//! # Contract
//! - **argv**: exactly `<vm> <op> <sub-op> <extra>` (libvirt's form; `release end 'from snapshot'` is one
//!   element). Invoked as `…/hooks/qemu`, `…/hooks/qemu.d/<any>` or `vmgpu hook <4 args>`; any other count
//!   is a usage error.
//! - **stdin**: the domain XML (read in full, at most 10 MiB). A document that does not mention vmgpu's
//!   namespace (`https://vmgpu.dev/xmlns/config/1`) ends the run at once: exit 0, no output, no state.
//! - **stdout**: never written (for `migrate`/`restore` libvirt reads it as replacement XML; empty means
//!   unchanged). Logs go to journald when its socket exists, else stderr (`VMGPU_LOG` sets the filter).
//! - **ops**: `prepare begin` prepares; `started begin` starts the viewer when configured; `release end`
//!   undoes the journal (the metadata is not needed for that). `stopped end` changes nothing: libvirt runs
//!   it *before* it reattaches and resets its managed hostdevs, and a device given back to its host driver
//!   before that reset comes back broken (an HDA codec that no longer answers, a DRM device with a wrong
//!   ID); `release end` runs after libvirt is done with the devices. `start`, `reconnect`, `attach`,
//!   `migrate`, `restore` and unknown ops change nothing. See docs/hook.md.
//! - **exit codes**: 0 done or nothing to do; 1 refused or failed (libvirt aborts the start; the message is
//!   one line on stderr, every change already undone); 2 usage error (`vmgpu hook` only; as `hooks/qemu`
//!   every failure is 1).
//! - **journal**: `/run/vmgpu/<vm>.json` (under `--root`), written and synced before each change; removed
//!   after a complete release. `/run/vmgpu/.lock` serializes hooks of different VMs.
//! - **env**: `VMGPU_CRASH_AFTER_STEP=N` (tests) SIGKILLs vmgpu right after prepare step N (1-based) was
//!   journaled and applied; `VMGPU_WRITE_TIMEOUT_MS` sets the deadline of blocking sysfs writes (default
//!   10000); `VMGPU_LOG` the log filter.
//! - **root**: with `--root DIR` other than `/`, every path is under DIR and the kernel's side of each change
//!   is simulated (driver links, modules, hugepage counts: see `ops::sim`); with `/` it is real.
use std::io::Read;

use crate::domain::read::hook_view::HookView;
use crate::domain::read::metadata;
use crate::host::HostRoot;
use crate::ops::{self, HostOps};

pub(crate) mod cpus;
pub(crate) mod error;
pub(crate) mod governor;
pub(crate) mod gpu;
pub(crate) mod holders;
pub(crate) mod hugepages;
pub(crate) mod irqs;
pub mod launch_viewer;
pub(crate) mod location;
pub(crate) mod run;
pub(crate) mod shared_state;
pub(crate) mod shm;
pub(crate) mod single_gpu;
pub(crate) mod step;
pub(crate) mod trust;

pub use error::{Error, Result};

/// The most stdin the hook reads.
pub(crate) const MAX_STDIN: usize = crate::domain::read::xml::MAX_BYTES;

/// One hook call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    /// The domain name.
    pub vm: String,
    /// The operation (`prepare`, `release`, …).
    pub op: String,
    /// The sub-operation (`begin`, `end`, `-`).
    pub sub_op: String,
    /// The extra argument (`-`, or the shutoff reason for `release`).
    pub extra: String,
}

impl Event {
    /// True for the ops vmgpu acts on (the others change nothing and must never fail: a failed
    /// `reconnect` makes libvirt kill the running VM).
    pub(crate) fn acts(&self) -> bool {
        matches!(
            (self.op.as_str(), self.sub_op.as_str()),
            ("prepare", "begin") | ("started", "begin") | ("release", "end")
        )
    }

    /// Refuses a VM name that cannot name a journal file.
    pub(crate) fn check_name(&self) -> Result<()> {
        let vm = &self.vm;
        if vm.is_empty() || vm.contains(['/', '\0']) || vm.starts_with('.') || vm.len() > 200 {
            return Err(Error::Usage(format!(
                "{:?} is not a VM name vmgpu can keep a journal for",
                vm.chars().take(64).collect::<String>()
            )));
        }
        Ok(())
    }

    /// Parses libvirt's four arguments.
    pub(crate) fn parse(args: &[String]) -> Result<Event> {
        let [vm, op, sub_op, extra] = args else {
            return Err(Error::Usage(format!(
                "expected 4 arguments `<vm> <op> <sub-op> <extra>` as libvirt passes them, got {} ({})",
                args.len(),
                args.iter()
                    .map(|a| format!("{:?}", a.chars().take(40).collect::<String>()))
                    .collect::<Vec<_>>()
                    .join(" ")
            )));
        };
        Ok(Event {
            vm: vm.clone(),
            op: op.clone(),
            sub_op: sub_op.clone(),
            extra: extra.clone(),
        })
    }
}

/// Runs one hook call against `root` with the domain XML from `stdin`.
pub(crate) fn run(root: &HostRoot, args: &[String], stdin: &mut dyn Read) -> Result<()> {
    let event = Event::parse(args)?;
    if !event.acts() {
        // start, reconnect, attach, migrate, restore, and ops a newer libvirt adds: change nothing, print
        // nothing (empty stdout = "XML unchanged" for migrate/restore), never fail.
        let _ = std::io::copy(&mut stdin.take(MAX_STDIN as u64), &mut std::io::sink());
        return Ok(());
    }
    let xml = read_stdin(stdin)?;
    tracing::debug!(
        "{} {} {}: {} bytes of XML",
        event.vm,
        event.op,
        event.sub_op,
        xml.len()
    );
    let ops = ops::for_root(root);
    match (event.op.as_str(), event.sub_op.as_str()) {
        ("prepare", "begin") => {
            let Some((view, config)) = domain(&event, &xml)? else {
                return Ok(());
            };
            run::prepare(ops.as_ref(), &event.vm, &view, &config)
        }
        ("started", "begin") => {
            let Some((_, config)) = domain(&event, &xml)? else {
                return Ok(());
            };
            if config.viewer.launch {
                launch_viewer::launch(ops.as_ref(), &event.vm, config.viewer.user.as_deref());
            }
            Ok(())
        }
        // A name that cannot name a journal has none: nothing to undo.
        ("release", "end") if event.check_name().is_ok() => release(ops.as_ref(), &event),
        _ => Ok(()),
    }
}

/// Undoes the VM's journal, if any (the XML is not needed).
fn release(ops: &dyn HostOps, event: &Event) -> Result<()> {
    if let Some(undone) = run::release(ops, &event.vm)? {
        tracing::info!(
            "{}: {} {} ({}): host restored ({undone} steps)",
            event.vm,
            event.op,
            event.sub_op,
            event.extra
        );
    }
    Ok(())
}

/// The view and config when the domain has vmgpu metadata.
fn domain(event: &Event, xml: &str) -> Result<Option<(HookView, crate::domain::VmgpuConfig)>> {
    if !metadata::mentions_namespace(xml) {
        return Ok(None);
    }
    // Only vmgpu's own domains need a name that can name a journal file (a foreign one is left alone).
    event.check_name()?;
    let view = HookView::parse(xml)?;
    if !view.name.is_empty() && view.name != event.vm {
        return Err(Error::NameMismatch {
            argv: event.vm.clone(),
            xml: view.name.chars().take(64).collect(),
        });
    }
    let Some(config) = view.config.clone() else {
        return Ok(None);
    };
    Ok(Some((view, config)))
}

fn read_stdin(stdin: &mut dyn Read) -> Result<String> {
    let mut bytes = Vec::new();
    stdin
        .take(MAX_STDIN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::Stdin)?;
    if bytes.len() > MAX_STDIN {
        return Err(Error::StdinTooLarge(MAX_STDIN));
    }
    String::from_utf8(bytes)
        .map_err(|e| Error::Stdin(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn test_event_parse_from_snapshot_is_one_argument() {
        let e = Event::parse(&args(&["vm", "release", "end", "from snapshot"])).unwrap();
        assert_eq!(e.extra, "from snapshot");
    }

    #[test]
    fn test_event_parse_wrong_count_is_usage_error() {
        for a in [
            &["vm"][..],
            &["vm", "release", "end", "from", "snapshot"][..],
        ] {
            assert!(matches!(Event::parse(&args(a)), Err(Error::Usage(_))));
        }
    }

    #[test]
    fn test_run_foreign_domain_is_ok_without_touching_root() {
        let xml = "<domain><name>vm</name></domain>";
        let root = HostRoot::new("/nonexistent-root");
        run(
            &root,
            &args(&["vm", "prepare", "begin", "-"]),
            &mut xml.as_bytes(),
        )
        .unwrap();
    }
}
