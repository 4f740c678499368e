//! Kernel command-line parameters: which ones the guest GPU needs, and how to merge them into an existing
//! command line so existing parameters stay, stale vfio ones are replaced and nothing is duplicated.
use super::inputs::{CpuVendor, InitramfsTool, SetupInputs};

/// The kernel parameters a passthrough host needs, in the guide's order (`iommu=pt amd_iommu=on
/// rd.driver.pre=vfio-pci`, then `vfio-pci.ids=` and the framebuffer ones when they apply).
pub(crate) fn wanted(inputs: &SetupInputs) -> Vec<String> {
    let mut params = vec!["iommu=pt".to_string()];
    match inputs.cpu_vendor {
        CpuVendor::Amd => params.push("amd_iommu=on".to_string()),
        CpuVendor::Intel => params.push("intel_iommu=on".to_string()),
        CpuVendor::Other => {}
    }
    if inputs.initramfs == InitramfsTool::Dracut {
        params.push("rd.driver.pre=vfio-pci".to_string());
    }
    // Built-in vfio-pci ignores modprobe.d, so the ids go on the command line; identical host and guest ids
    // are bound by address instead (an id would take the host's card too).
    if inputs.vfio_pci_builtin() && !inputs.ids_shared_with_host() {
        params.push(format!("vfio-pci.ids={}", inputs.guest_ids().join(",")));
    }
    if inputs.guest_is_boot_gpu {
        params.push("video=efifb:off".to_string());
        if inputs.kernel.version().is_none_or(|v| v >= (5, 15)) {
            params.push("initcall_blacklist=sysfb_init".to_string());
        }
    }
    params
}

/// The role a parameter plays, so `amd_iommu=off` and `amd_iommu=on` are recognised as the same setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Iommu,
    AmdIommu,
    IntelIommu,
    VfioIds,
    RdDriverPreVfio,
    VideoEfifb,
    SysfbBlacklist,
}

fn slot(token: &str) -> Option<Slot> {
    let (key, value) = token.split_once('=').unwrap_or((token, ""));
    let key = key.replace('-', "_");
    match key.as_str() {
        "iommu" => Some(Slot::Iommu),
        "amd_iommu" => Some(Slot::AmdIommu),
        "intel_iommu" => Some(Slot::IntelIommu),
        "vfio_pci.ids" => Some(Slot::VfioIds),
        "rd.driver.pre" if value.replace('-', "_") == "vfio_pci" => Some(Slot::RdDriverPreVfio),
        "video" if value.starts_with("efifb:") => Some(Slot::VideoEfifb),
        "initcall_blacklist" if value == "sysfb_init" => Some(Slot::SysfbBlacklist),
        _ => None,
    }
}

/// Splits a command line into parameters (whitespace outside double quotes separates them).
pub(crate) fn split(cmdline: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in cmdline.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if c.is_whitespace() && !quoted {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Merges `wanted` into `existing`: a parameter in the same role is replaced where it stands, duplicates are
/// dropped, a `vfio-pci.ids=` that is not wanted is dropped (it would bind the wrong device), missing ones are
/// appended in order, and everything else is kept as it was.
pub(crate) fn merge(existing: &[String], wanted: &[String]) -> Vec<String> {
    let mut placed = vec![false; wanted.len()];
    let mut out = Vec::new();
    for token in existing {
        let Some(s) = slot(token) else {
            out.push(token.clone());
            continue;
        };
        match wanted.iter().position(|w| slot(w) == Some(s)) {
            Some(i) if !placed[i] => {
                placed[i] = true;
                out.push(wanted[i].clone());
            }
            Some(_) => {}
            None if s == Slot::VfioIds => {}
            None => out.push(token.clone()),
        }
    }
    for (w, done) in wanted.iter().zip(placed) {
        if !done {
            out.push(w.clone());
        }
    }
    out
}

/// Removes from `existing` every parameter in the role of one of `wanted` (they are set elsewhere on the
/// same command line) and every unwanted `vfio-pci.ids=`.
pub(crate) fn remove_roles(existing: &[String], wanted: &[String]) -> Vec<String> {
    existing
        .iter()
        .filter(|token| match slot(token) {
            None => true,
            Some(Slot::VfioIds) => false,
            Some(s) => !wanted.iter().any(|w| slot(w) == Some(s)),
        })
        .cloned()
        .collect()
}

/// The parameters of `wanted` not already present, exactly, in `existing`.
pub(crate) fn missing(existing: &[String], wanted: &[String]) -> Vec<String> {
    wanted
        .iter()
        .filter(|w| !existing.contains(w))
        .cloned()
        .collect()
}

/// The parameters of `existing` that `merge` would drop or replace (what `grubby --remove-args` gets).
pub(crate) fn stale(existing: &[String], wanted: &[String]) -> Vec<String> {
    let merged = merge(existing, wanted);
    existing
        .iter()
        .filter(|t| !merged.contains(t))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        split(s)
    }

    #[test]
    fn test_merge_into_empty_appends_in_order() {
        let out = merge(&[], &v("iommu=pt amd_iommu=on rd.driver.pre=vfio-pci"));
        assert_eq!(
            out.join(" "),
            "iommu=pt amd_iommu=on rd.driver.pre=vfio-pci"
        );
    }

    #[test]
    fn test_merge_keeps_unrelated_and_replaces_stale_in_place() {
        let out = merge(
            &v("splash amd_iommu=off quiet vfio-pci.ids=1002:67df"),
            &v("iommu=pt amd_iommu=on vfio-pci.ids=10de:17c8"),
        );
        assert_eq!(
            out.join(" "),
            "splash amd_iommu=on quiet vfio-pci.ids=10de:17c8 iommu=pt"
        );
    }

    #[test]
    fn test_merge_drops_duplicates_and_unwanted_ids() {
        let out = merge(
            &v("iommu=pt iommu=pt vfio_pci.ids=10de:1 quiet"),
            &v("iommu=pt"),
        );
        assert_eq!(out.join(" "), "iommu=pt quiet");
    }

    #[test]
    fn test_merge_is_idempotent() {
        let wanted = v("iommu=pt amd_iommu=on rd.driver.pre=vfio-pci");
        let once = merge(&v("quiet splash"), &wanted);
        assert_eq!(merge(&once, &wanted), once);
    }

    #[test]
    fn test_merge_keeps_other_rd_driver_pre() {
        let out = merge(&v("rd.driver.pre=nvme"), &v("rd.driver.pre=vfio-pci"));
        assert_eq!(out.join(" "), "rd.driver.pre=nvme rd.driver.pre=vfio-pci");
    }

    #[test]
    fn test_split_keeps_quoted_values_whole() {
        assert_eq!(split(r#"a="b c" d"#), vec![r#"a="b c""#, "d"]);
    }

    #[test]
    fn test_stale_lists_replaced_tokens() {
        let out = stale(&v("amd_iommu=off quiet"), &v("amd_iommu=on"));
        assert_eq!(out, vec!["amd_iommu=off"]);
    }
}
