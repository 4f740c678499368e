//! SPICE: a vmgpu domain whose SPICE server takes any local user (no password, or not only on loopback) is a
//! warning; and the display phase `define` recorded (install, looking-glass, both) with how to finish it. Reads the persistent domain files under /etc/libvirt/qemu (never libvirt itself); without read
//! access there is nothing to say.
use super::{Context, Finding};
use crate::domain::read::metadata::VmgpuConfig;
use crate::domain::write::spice_graphics;

/// Runs the SPICE check: one finding per vmgpu domain.
pub(crate) fn check(ctx: &Context) -> Vec<Finding> {
    super::vmgpu_domains(&ctx.host.root)
        .into_iter()
        .flat_map(|(vm, xml)| {
            let phase = display_phase(&vm, &xml);
            std::iter::once(ticket(&vm, &xml)).chain(phase)
        })
        .collect()
}

/// The display phase the metadata records (none for domains defined before it existed).
fn display_phase(vm: &str, xml: &str) -> Option<Finding> {
    const ID: &str = "spice.display";
    let display = VmgpuConfig::from_domain_xml(xml).ok()??.display?;
    let finish = format!("vmgpu define {vm} --update --display looking-glass");
    Some(match display.mode.as_str() {
        "install" => Finding::pass(
            ID,
            format!(
                "VM {vm}: install phase (virtual display shown through SPICE, {} ISO(s) attached); when Looking \
                 Glass runs in the guest: {finish}",
                display.media.len()
            ),
        ),
        "both" => Finding::warn(
            ID,
            format!(
                "VM {vm}: virtual display and Looking Glass both (Windows spreads its desktop over the two)"
            ),
            finish,
        ),
        _ => Finding::pass(
            ID,
            format!("VM {vm}: Looking Glass only, no virtual display"),
        ),
    })
}

fn ticket(vm: &str, xml: &str) -> Finding {
    const ID: &str = "spice.ticket";
    match spice_graphics::open_to_others(xml) {
        Some(why) => Finding::warn(
            ID,
            format!("VM {vm}: {why}"),
            format!("vmgpu define {vm} --update (sets a random password, listens on 127.0.0.1)"),
        ),
        None => Finding::pass(
            ID,
            format!("VM {vm}: its SPICE server is closed to other users"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::read::metadata::NAMESPACE;

    fn domain(display: &str) -> String {
        format!(
            "<domain><name>w</name><metadata><vmgpu:config xmlns:vmgpu='{NAMESPACE}' version='1'>{display}\
             </vmgpu:config></metadata></domain>"
        )
    }

    #[test]
    fn display_phase_is_shown_with_how_to_finish() {
        let install = display_phase(
            "w",
            &domain("<vmgpu:display mode='install'/><vmgpu:media path='/a.iso'/>"),
        )
        .unwrap();
        assert!(install.what.contains("install phase"), "{install:?}");
        assert!(install.what.contains("--display looking-glass"));
        let both = display_phase("w", &domain("<vmgpu:display mode='both'/>")).unwrap();
        assert!(
            both.fix
                .as_deref()
                .is_some_and(|f| f.contains("looking-glass")),
            "{both:?}"
        );
        assert!(display_phase("w", &domain("")).is_none());
    }
}
