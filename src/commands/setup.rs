//! `vmgpu setup`: show the plan (unified diffs and commands), ask once, apply it with backups; `--undo`
//! restores the last applied setup.
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::Context;

use crate::cli::SetupArgs;
use crate::host::{Host, HostRoot};
use crate::report::{EXIT_ERROR, ExitError, Outcome};
use crate::setup::apply;
use crate::setup::inputs::SetupOptions;
use crate::setup::record::{BACKUP_DIR, Store};
use crate::setup::runner::OpsRunner;
use crate::setup::{plan, plan_text, probe};

/// Runs `vmgpu setup`.
pub(crate) fn run(root: &Path, args: &SetupArgs) -> anyhow::Result<Outcome> {
    let host_root = HostRoot::new(root);
    let exe = std::env::current_exe().context("finding the vmgpu executable")?;
    // Under a root other than `/` the operations are the simulation's (`ops::sim`): nothing outside it changes.
    let ops = crate::ops::for_root(&host_root);
    let runner = OpsRunner::new(ops.as_ref(), &exe);
    if args.undo {
        let record = apply::undo(&host_root, &runner, args.force).context("undoing vmgpu setup")?;
        println!(
            "restored {} file(s) and {} boot file(s) of vmgpu setup {}",
            record.files.len(),
            record.artefacts.len(),
            record.id
        );
        println!(
            "left as they are: installed packages, enabled services, group memberships and the hook \
             (`vmgpu uninstall` removes it); reboot to boot without the vfio settings"
        );
        return Ok(Outcome::Ok);
    }

    super::check_user(&host_root, args.user.as_deref())?;
    let host = Host::read(&host_root).context("reading the host")?;
    let gpu = args.gpu;
    let options = SetupOptions {
        install_packages: args.install_packages,
        kvmfr: args.kvmfr,
        hook: !args.no_hook,
    };
    let (inputs, verdict_note) =
        probe::from_host(&host, gpu, args.user.clone(), options).context("vmgpu setup")?;
    let mut plan = plan::compute(&inputs, &host_root).context("planning vmgpu setup")?;
    if let Some(note) = verdict_note {
        plan.notes.insert(0, note);
    }
    let store = Store::new(&host_root);
    if let Some(previous) = store
        .latest_active()
        .context("reading earlier setup records")?
    {
        let edited = apply::edited_since(&host_root, &store, &previous);
        if !edited.is_empty() {
            plan.notes.insert(
                0,
                format!(
                    "changed by hand since vmgpu setup {} wrote them: {}. The plan keeps those edits; \
                     `--undo` would first undo this run, then that one",
                    previous.id,
                    edited.join(", ")
                ),
            );
        }
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", plan_text::text(&plan));
    }
    if args.dry_run || plan.is_noop() {
        return Ok(Outcome::Ok);
    }
    if !args.yes && !confirm()? {
        eprintln!("vmgpu setup: nothing changed");
        return Ok(Outcome::Ok);
    }
    let record = apply::apply(&host_root, &plan, &runner).context("applying vmgpu setup")?;
    eprintln!(
        "vmgpu setup: applied; originals kept in {}/{} — `vmgpu setup --undo` restores them. Reboot, then \
         `vmgpu check` verifies every item.",
        host_root.path(BACKUP_DIR).display(),
        record.id
    );
    Ok(Outcome::Ok)
}

/// Asks once on the terminal. Without one, refuses (use --yes).
fn confirm() -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(ExitError::new(
            EXIT_ERROR,
            "not applying without a terminal to ask on: pass --yes (or --dry-run to only show the plan)",
        )
        .into());
    }
    eprint!("Apply these changes? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
