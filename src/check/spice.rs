//! SPICE: a vmgpu domain whose SPICE server takes any local user (no password, or not only on loopback) is a
//! warning. Reads the persistent domain files under /etc/libvirt/qemu (never libvirt itself); without read
//! access there is nothing to say.
use super::{Context, Finding};
use crate::domain::metadata::NAMESPACE;
use crate::domain::spice_graphics;

const DIR: &str = "/etc/libvirt/qemu";

/// Runs the SPICE check: one finding per vmgpu domain.
pub fn check(ctx: &Context) -> Vec<Finding> {
    const ID: &str = "spice.ticket";
    let root = &ctx.host.root;
    let Ok(mut names) = root.list_dir(DIR) else {
        return Vec::new();
    };
    names.sort();
    names
        .iter()
        .filter(|n| n.ends_with(".xml"))
        .filter_map(|n| {
            let xml = root.read_string(format!("{DIR}/{n}")).ok()?;
            xml.contains(NAMESPACE)
                .then_some((n.trim_end_matches(".xml"), xml))
        })
        .map(|(vm, xml)| match spice_graphics::open_to_others(&xml) {
            Some(why) => Finding::warn(
                ID,
                format!("VM {vm}: {why}"),
                format!(
                    "vmgpu define {vm} --update (sets a random password, listens on 127.0.0.1)"
                ),
            ),
            None => Finding::pass(
                ID,
                format!("VM {vm}: its SPICE server is closed to other users"),
            ),
        })
        .collect()
}
