//! The define side of the vmgpu metadata (schema v1, see README): the `<vmgpu:config>` element `define` writes
//! for a [`DomainSpec`], and what `--update` needs to read back from an existing domain.
use quick_xml::escape::escape;

use super::looking_glass::LookingGlass;
use super::spec::{DomainSpec, Hugepages};
use super::xml_index::{Index, Node};
use crate::host::PciAddress;

/// vmgpu's XML namespace (schema version 1).
pub const NAMESPACE: &str = "https://vmgpu.dev/xmlns/config/1";

/// True for a `<…:config>` element in vmgpu's namespace.
pub fn is_vmgpu_config(node: &Node) -> bool {
    node.local_name() == "config"
        && node
            .attrs
            .iter()
            .any(|(k, v)| (k == "xmlns" || k.starts_with("xmlns:")) && v == NAMESPACE)
}

/// The GPUs the domain's vmgpu metadata names (none without metadata).
pub fn gpus(index: &Index<'_>) -> Vec<PciAddress> {
    let Some(config) = index.at(&["domain", "metadata"]).flat_map(|m| index.children(m)).find(|n| is_vmgpu_config(n))
    else {
        return Vec::new();
    };
    index
        .children(config)
        .filter(|n| n.local_name() == "gpu")
        .filter_map(|n| n.attr("address")?.parse().ok())
        .collect()
}

fn yes_no(on: bool) -> &'static str {
    if on { "yes" } else { "no" }
}

/// The `<vmgpu:config>` element for `spec`.
pub fn config_xml(spec: &DomainSpec) -> String {
    let mut lines = Vec::new();
    if let Some(gpu) = spec.gpu.as_ref().and_then(|g| g.primary()) {
        lines.push(format!("<vmgpu:gpu address=\"{gpu}\"/>"));
    }
    lines.push(format!("<vmgpu:isolate-cpus enabled=\"{}\"/>", yes_no(spec.pins.is_pinned())));
    lines.push(format!("<vmgpu:hugepages enabled=\"{}\"/>", yes_no(spec.hugepages != Hugepages::Off)));
    let user = spec.user.as_deref().unwrap_or("root");
    if matches!(spec.looking_glass, LookingGlass::Shmem(_)) {
        lines.push(format!("<vmgpu:shmem user=\"{}\" group=\"kvm\" remove-on-stop=\"yes\"/>", escape(user)));
    }
    lines.push(format!("<vmgpu:single-gpu enabled=\"{}\"/>", yes_no(spec.single_gpu)));
    let viewer = spec.looking_glass != LookingGlass::Off && user != "root";
    if viewer {
        lines.push(format!("<vmgpu:viewer launch=\"yes\" user=\"{}\"/>", escape(user)));
    } else {
        lines.push("<vmgpu:viewer launch=\"no\"/>".to_string());
    }
    let mut out = format!("<vmgpu:config xmlns:vmgpu=\"{NAMESPACE}\" version=\"1\">");
    for line in lines {
        out.push_str("\n  ");
        out.push_str(&line);
    }
    out.push_str("\n</vmgpu:config>");
    out
}
