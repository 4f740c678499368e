//! Whether the host really displays on its boot VGA. The firmware's flag alone is not that: a headless host,
//! or one whose desktop runs on another card, can have the guest's card as boot VGA. A boot VGA is the
//! host's display when a DRM output of it is connected and lit (a console or a compositor scanning out on
//! it). A firmware framebuffer (efifb, simpledrm) on a boot VGA with no lit output does not count: the hook
//! releases it. Other cards are judged as before (a process holding their DRM nodes stops the hook).
//! `define` and the hook use this one rule.
use super::PciAddress;
use super::pci::PCI_DEVICES;
use super::pci::PciDevice;
use super::root::{HostRoot, Result};

/// The lit output that makes `device` the host's display: it is the boot VGA and has one.
pub(crate) fn host_display_output(root: &HostRoot, device: &PciDevice) -> Result<Option<String>> {
    if device.boot_vga != Some(true) {
        return Ok(None);
    }
    lit_output(root, device.address)
}

/// The first output of `address`'s DRM device(s) that is connected and enabled (`card1-HDMI-A-1`), if any.
pub(crate) fn lit_output(root: &HostRoot, address: PciAddress) -> Result<Option<String>> {
    let drm = format!("{PCI_DEVICES}/{address}/drm");
    for card in root.list_dir(&drm)? {
        if !card.starts_with("card") || card.contains('-') {
            continue; // renderD128, controlD64
        }
        let prefix = format!("{card}-");
        for output in root.list_dir(format!("{drm}/{card}"))? {
            if !output.starts_with(&prefix) {
                continue;
            }
            let dir = format!("{drm}/{card}/{output}");
            let connected =
                root.read_optional(format!("{dir}/status"))?.as_deref() == Some("connected");
            let enabled =
                root.read_optional(format!("{dir}/enabled"))?.as_deref() == Some("enabled");
            if connected && enabled {
                return Ok(Some(output));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(status: &str, enabled: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let out = dir
            .path()
            .join("sys/bus/pci/devices/0000:01:00.0/drm/card0/card0-DP-1");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("status"), format!("{status}\n")).unwrap();
        std::fs::write(out.join("enabled"), format!("{enabled}\n")).unwrap();
        std::fs::create_dir_all(
            dir.path()
                .join("sys/bus/pci/devices/0000:01:00.0/drm/renderD128"),
        )
        .unwrap();
        dir
    }

    fn lit(dir: &tempfile::TempDir) -> Option<String> {
        lit_output(&HostRoot::new(dir.path()), "0000:01:00.0".parse().unwrap()).unwrap()
    }

    #[test]
    fn test_connected_enabled_output_is_lit() {
        assert_eq!(
            lit(&tree("connected", "enabled")).as_deref(),
            Some("card0-DP-1")
        );
    }

    #[test]
    fn test_dark_or_unplugged_outputs_are_not_lit() {
        assert_eq!(lit(&tree("connected", "disabled")), None);
        assert_eq!(lit(&tree("disconnected", "disabled")), None);
        let none = tempfile::tempdir().unwrap();
        assert_eq!(lit(&none), None);
    }
}
