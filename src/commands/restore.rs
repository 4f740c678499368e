//! `vmgpu restore <vm>`: replay a VM's journal by hand (what `release` would have done), e.g. after vmgpu
//! or the host's libvirtd crashed in the middle of a prepare.
use std::path::Path;

use anyhow::Context;

use crate::cli::RestoreArgs;
use crate::host::HostRoot;
use crate::report::Outcome;

/// Runs `vmgpu restore`.
pub fn run(root: &Path, args: &RestoreArgs) -> anyhow::Result<Outcome> {
    let root = HostRoot::new(root);
    let ops = crate::ops::for_root(&root);
    let undone = crate::hook::run::release(ops.as_ref(), &args.vm)
        .with_context(|| format!("cannot restore the host from VM {:?}'s journal", args.vm))?;
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
