//! The signatures whose evidence is more than lines holding a set of fragments: small detector functions.
use super::*;

/// A failed hook whose command line names a script other than vmgpu (a `qemu.d/` entry or a foreign
/// `hooks/qemu`).
pub(super) fn foreign_hook_failed(logs: &Logs) -> Vec<Evidence> {
    let mut found = Vec::new();
    for source in Source::ALL {
        for (i, line) in logs.lines(source).enumerate() {
            let lower = line.to_lowercase();
            if !lower.contains("hook script execution failed") && !lower.contains("hooks/qemu.d/") {
                continue;
            }
            let foreign = match lower.find("hooks/qemu.d/") {
                Some(at) => {
                    let script = lower[at + "hooks/qemu.d/".len()..]
                        .split(|c: char| c.is_whitespace() || c == ')')
                        .next()
                        .unwrap_or("");
                    !script.is_empty() && !script.starts_with("vmgpu")
                }
                None => {
                    lower.contains("hooks/qemu ")
                        && lower.contains("unexpected exit status")
                        && !lower.contains("vmgpu")
                }
            };
            if foreign && (lower.contains("exit status") || lower.contains("fail")) {
                found.push(evidence(source, i, line));
            }
        }
    }
    found
}

/// A GPU driver named in the kernel log for a passed-through address while vfio-pci was configured with ids.
pub(super) fn vfio_not_early(logs: &Logs) -> Vec<Evidence> {
    const HOST_DRIVERS: &[&str] = &["nvidia", "nouveau", "amdgpu", "radeon", "i915", "xe"];
    let vfio_ids = logs
        .lines(Source::Kernel)
        .any(|l| l.contains("vfio_pci: add [") || l.contains("vfio-pci: add ["));
    let mut found: Vec<Evidence> = logs
        .lines(Source::Hook)
        .enumerate()
        .filter(|(_, l)| l.contains("after binding, not vfio-pci"))
        .map(|(i, l)| evidence(Source::Hook, i, l))
        .collect();
    if !vfio_ids {
        return found;
    }
    for (i, line) in logs.lines(Source::Kernel).enumerate() {
        let claimed = logs.domain.hostdevs.iter().any(|addr| {
            HOST_DRIVERS
                .iter()
                .any(|drv| line.contains(&format!("{drv} {addr}:")))
        });
        if claimed {
            found.push(evidence(Source::Kernel, i, line));
        }
    }
    found
}

/// The journal of this VM exists.
pub(super) fn journal_left_over(logs: &Logs) -> Vec<Evidence> {
    if !logs.has(Source::Journal) {
        return Vec::new();
    }
    let phase = logs
        .lines(Source::Journal)
        .enumerate()
        .find(|(_, l)| l.contains("\"phase\""));
    let (i, line) = phase.unwrap_or((0, logs.lines(Source::Journal).next().unwrap_or("")));
    vec![evidence(Source::Journal, i, line)]
}

/// An NVIDIA (vendor 0x10de) display device passed through without `<kvm><hidden>`.
pub(super) fn nvidia_code_43(logs: &Logs) -> Vec<Evidence> {
    if logs.domain.kvm_hidden {
        return Vec::new();
    }
    logs.hostdev_vendors
        .iter()
        .filter(|(_, vendor)| *vendor == 0x10de)
        .take(1)
        .map(|(addr, _)| Evidence {
            source: Source::Domain,
            line: 0,
            text: format!(
                "hostdev {addr} is an NVIDIA device (vendor 0x10de) and <features><kvm><hidden state='on'/> is not set"
            ),
        })
        .collect()
}
