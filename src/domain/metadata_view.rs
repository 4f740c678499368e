//! The define side of the vmgpu metadata (schema v1, docs/metadata.md): the [`VmgpuConfig`] `define` writes for a
//! [`DomainSpec`], and how the rewrite recognises the existing `<vmgpu:config>` element.
use super::looking_glass::LookingGlass;
use super::metadata::{DisplayConfig, NAMESPACE, ShmemConfig, ViewerConfig, VmgpuConfig};
use super::spec::{DomainSpec, Hugepages};
use super::xml_index::Node;

/// True for a `<…:config>` element in vmgpu's namespace (whatever its prefix).
pub fn is_vmgpu_config(node: &Node) -> bool {
    node.local_name() == "config"
        && node
            .attrs
            .iter()
            .any(|(k, v)| (k == "xmlns" || k.starts_with("xmlns:")) && v == NAMESPACE)
}

/// The vmgpu configuration for `spec`.
pub fn config_for(spec: &DomainSpec) -> VmgpuConfig {
    let user = spec.user.clone().filter(|u| u != "root");
    VmgpuConfig {
        gpus: spec.gpu.iter().filter_map(|g| g.primary()).collect(),
        functions: spec
            .gpu
            .iter()
            .flat_map(|g| g.identities.iter().copied())
            .collect(),
        isolate_cpus: spec.pins.is_pinned(),
        hugepages: spec.hugepages != Hugepages::Off,
        shmem: matches!(spec.looking_glass, LookingGlass::Shmem(_)).then(|| ShmemConfig {
            user: user.clone(),
            ..ShmemConfig::default()
        }),
        single_gpu: spec.single_gpu,
        viewer: ViewerConfig {
            launch: user.is_some() && spec.looking_glass != LookingGlass::Off,
            user,
            clipboard: spec.clipboard,
        },
        display: spec
            .display
            .or(spec.recorded_display)
            .map(|mode| DisplayConfig {
                mode: mode.as_str().to_string(),
                media: spec
                    .media
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect(),
            }),
        tuning: spec.tuning,
        sound_off: !spec.sound,
    }
}

/// The `<vmgpu:config>` element for `spec`.
pub fn config_xml(spec: &DomainSpec) -> String {
    config_for(spec).to_xml()
}
