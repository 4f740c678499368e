//! The define side of the vmgpu metadata (schema v1, docs/metadata.md): the [`VmgpuConfig`] `define` writes for a
//! [`DomainSpec`], its `<vmgpu:config>` element, and how the rewrite recognises the existing one.
use super::looking_glass::LookingGlass;
use super::spec::{DomainSpec, Hugepages};
use std::fmt::Write as _;

use crate::domain::read::identity::FunctionIdentity;
use crate::domain::read::metadata::{
    DisplayConfig, NAMESPACE, PREFIX, ShmemConfig, VERSION, ViewerConfig, VmgpuConfig,
};
use crate::domain::read::xml::Node;

/// True for a `<…:config>` element in vmgpu's namespace (whatever its prefix).
pub(crate) fn is_vmgpu_config(node: &Node) -> bool {
    node.local_name() == "config"
        && node
            .attrs
            .iter()
            .any(|(k, v)| (k == "xmlns" || k.starts_with("xmlns:")) && v == NAMESPACE)
}

/// The vmgpu configuration for `spec`.
pub(crate) fn config_for(spec: &DomainSpec) -> VmgpuConfig {
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
pub(crate) fn config_xml(spec: &DomainSpec) -> String {
    to_xml(&config_for(spec))
}

/// Renders the `<vmgpu:config xmlns:vmgpu=… version="1">` element (indented by two spaces per level,
/// starting at column 0, no trailing newline), ready to go inside `<metadata>`.
pub(crate) fn to_xml(config: &VmgpuConfig) -> String {
    use quick_xml::escape::escape;
    let yn = |b: bool| if b { "yes" } else { "no" };
    let mut out =
        format!("<{PREFIX}:config xmlns:{PREFIX}=\"{NAMESPACE}\" version=\"{VERSION}\">\n");
    for gpu in &config.gpus {
        let functions: Vec<&FunctionIdentity> = config
            .functions
            .iter()
            .filter(|f| f.address.same_slot(gpu))
            .collect();
        if functions.is_empty() {
            let _ = writeln!(out, "  <{PREFIX}:gpu address=\"{gpu}\"/>");
            continue;
        }
        let _ = writeln!(out, "  <{PREFIX}:gpu address=\"{gpu}\">");
        for f in functions {
            let _ = writeln!(
                out,
                "    <{PREFIX}:function address=\"{}\" id=\"{}\" subsystem=\"{}\" class=\"{}\"/>",
                f.address,
                f.id_text(),
                f.subsystem_text(),
                f.class_text()
            );
        }
        let _ = writeln!(out, "  </{PREFIX}:gpu>");
    }
    let _ = writeln!(
        out,
        "  <{PREFIX}:isolate-cpus enabled=\"{}\"/>",
        yn(config.isolate_cpus)
    );
    let _ = writeln!(
        out,
        "  <{PREFIX}:hugepages enabled=\"{}\"/>",
        yn(config.hugepages)
    );
    if let Some(shmem) = &config.shmem {
        let user = shmem
            .user
            .as_deref()
            .map(|u| format!(" user=\"{}\"", escape(u)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  <{PREFIX}:shmem{user} group=\"{}\" remove-on-stop=\"{}\"/>",
            escape(shmem.group.as_str()),
            yn(shmem.remove_on_stop)
        );
    }
    let _ = writeln!(
        out,
        "  <{PREFIX}:single-gpu enabled=\"{}\"/>",
        yn(config.single_gpu)
    );
    let user = config
        .viewer
        .user
        .as_deref()
        .map(|u| format!(" user=\"{}\"", escape(u)))
        .unwrap_or_default();
    // Written only when off, so the element of a VM that never changed it stays as it was.
    let clipboard = if config.viewer.clipboard {
        ""
    } else {
        " clipboard=\"no\""
    };
    let _ = writeln!(
        out,
        "  <{PREFIX}:viewer launch=\"{}\"{user}{clipboard}/>",
        yn(config.viewer.launch)
    );
    // Written only when a switch is on, so the metadata of a VM that never used it stays as it was.
    if config.tuning.any() {
        let governor = if config.tuning.governor {
            "performance"
        } else {
            "no"
        };
        let _ = writeln!(
            out,
            "  <{PREFIX}:tuning governor=\"{governor}\" irq-affinity=\"{}\"/>",
            yn(config.tuning.irq_affinity)
        );
    }
    // Written only when off, like the clipboard.
    if config.sound_off {
        let _ = writeln!(out, "  <{PREFIX}:sound enabled=\"no\"/>");
    }
    if let Some(d) = &config.display {
        let _ = writeln!(
            out,
            "  <{PREFIX}:display mode=\"{}\"/>",
            escape(d.mode.as_str())
        );
        for m in &d.media {
            let _ = writeln!(out, "  <{PREFIX}:media path=\"{}\"/>", escape(m.as_str()));
        }
    }
    out.push_str(&format!("</{PREFIX}:config>"));
    out
}
