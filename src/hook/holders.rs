//! Who holds a device that is about to be unbound: processes with one of its device nodes open
//! (`/dev/snd/*C<card>*` of an audio function, `/dev/dri/card*`/`renderD*` of a GPU, `/dev/nvidia*` for
//! the NVIDIA driver), found through `/proc/<pid>/fd`. An unbind of a held audio function blocks in the
//! kernel until the holder lets go, so vmgpu refuses up front and names the holders.
use crate::host::pci::PCI_DEVICES;
use crate::host::{HostRoot, PciDevice};

/// One process holding a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    /// Process id.
    pub pid: u32,
    /// `/proc/<pid>/comm`.
    pub comm: String,
    /// The node it holds.
    pub node: String,
}

/// The device nodes of a PCI function (`/dev/dri/...`, `/dev/snd/...`), from its sysfs directory.
pub(crate) fn device_nodes(root: &HostRoot, device: &PciDevice) -> Vec<String> {
    let dir = format!("{PCI_DEVICES}/{}", device.address);
    let mut nodes = Vec::new();
    for name in root.list_dir(format!("{dir}/drm")).unwrap_or_default() {
        if name.starts_with("card") || name.starts_with("renderD") {
            nodes.push(format!("/dev/dri/{name}"));
        }
    }
    for card in root.list_dir(format!("{dir}/sound")).unwrap_or_default() {
        if !card.starts_with("card") {
            continue;
        }
        for name in root
            .list_dir(format!("{dir}/sound/{card}"))
            .unwrap_or_default()
        {
            let is_node = ["controlC", "pcmC", "hwC", "midiC"]
                .iter()
                .any(|p| name.starts_with(p));
            if is_node {
                nodes.push(format!("/dev/snd/{name}"));
            }
        }
    }
    nodes
}

/// Every process (but this one) with an open file matching `nodes` exactly, or starting with one of
/// `prefixes` (`/dev/nvidia`).
pub(crate) fn find(root: &HostRoot, nodes: &[String], prefixes: &[&str]) -> Vec<Holder> {
    if nodes.is_empty() && prefixes.is_empty() {
        return Vec::new();
    }
    let me = std::process::id();
    let mut holders = Vec::new();
    for pid in root.list_dir("/proc").unwrap_or_default() {
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let fd_dir = root.path(format!("/proc/{pid}/fd"));
        let Ok(entries) = std::fs::read_dir(&fd_dir) else {
            continue; // gone, or a kernel thread
        };
        for entry in entries.flatten() {
            let Ok(target) = std::fs::read_link(entry.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            let held = nodes.iter().any(|n| *n == target)
                || prefixes.iter().any(|p| target.starts_with(p));
            if held {
                let comm = root
                    .read_optional(format!("/proc/{pid}/comm"))
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| "?".into());
                holders.push(Holder {
                    pid,
                    comm,
                    node: target.into_owned(),
                });
                break;
            }
        }
    }
    holders
}

/// `pid 812 (pipewire) on /dev/snd/controlC0, …`.
pub(crate) fn describe(holders: &[Holder]) -> String {
    holders
        .iter()
        .map(|h| format!("pid {} ({}) on {}", h.pid, h.comm, h.node))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_find_names_process_holding_node() {
        let dir = tempfile::tempdir().unwrap();
        let fd = dir.path().join("proc/4242/fd");
        std::fs::create_dir_all(&fd).unwrap();
        std::os::unix::fs::symlink("/dev/snd/controlC0", fd.join("7")).unwrap();
        std::fs::write(dir.path().join("proc/4242/comm"), "pipewire\n").unwrap();
        let root = HostRoot::new(dir.path());
        let holders = find(&root, &["/dev/snd/controlC0".to_string()], &[]);
        assert_eq!(
            describe(&holders),
            "pid 4242 (pipewire) on /dev/snd/controlC0"
        );
    }

    #[test]
    fn test_find_without_nodes_is_empty() {
        let root = HostRoot::new("/nonexistent");
        assert!(find(&root, &[], &[]).is_empty());
    }
}
