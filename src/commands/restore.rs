//! `vmgpu restore <vm>`: replay a VM's journal by hand (what `release` would have done), e.g. after vmgpu
//! or the host's libvirtd crashed in the middle of a prepare. A failed restore exits 1 (2 is for usage
//! errors), names each step left, and keeps the journal for another try.
use std::path::Path;

use crate::cli::RestoreArgs;
use crate::host::HostRoot;
use crate::report::{EXIT_ERROR, EXIT_FINDINGS, ExitError, Outcome};

/// Runs `vmgpu restore`.
pub(crate) fn run(root: &Path, args: &RestoreArgs) -> anyhow::Result<Outcome> {
    let root = HostRoot::new(root);
    let ops = crate::ops::for_root(&root);
    let undone = crate::hook::run::release(ops.as_ref(), &args.vm).map_err(|e| {
        let code = match e {
            crate::hook::Error::Journal(crate::journal::Error::BadName(_)) => EXIT_ERROR,
            _ => EXIT_FINDINGS,
        };
        let what = format!("cannot restore the host from VM {:?}'s journal", args.vm);
        ExitError::caused_by(code, what, e)
    })?;
    match undone {
        None => println!("{}: no journal, nothing to restore", args.vm),
        Some(0) => println!(
            "{}: its journal recorded no changes; journal removed, nothing else to restore",
            args.vm
        ),
        Some(undone) => println!("{}: host restored ({undone} steps undone)", args.vm),
    }
    Ok(Outcome::Ok)
}
