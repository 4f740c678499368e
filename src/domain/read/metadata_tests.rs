//! Tests of `domain::read::metadata`: parsing, writing, round trips, refused values.
use super::*;
// The round trips write with the define side.
use crate::domain::write::metadata::to_xml;

fn domain(config: &str) -> String {
    format!("<domain type='kvm'><name>win</name><metadata>{config}</metadata></domain>")
}

fn full() -> VmgpuConfig {
    VmgpuConfig {
        gpus: vec!["0000:04:00.0".parse().unwrap()],
        functions: Vec::new(),
        isolate_cpus: true,
        hugepages: true,
        shmem: Some(ShmemConfig {
            user: Some("alice".into()),
            group: "kvm".into(),
            remove_on_stop: true,
        }),
        single_gpu: false,
        viewer: ViewerConfig {
            launch: true,
            user: Some("alice".into()),
            clipboard: true,
        },
        display: None,
        tuning: TuningConfig::default(),
        sound_off: false,
    }
}

#[test]
fn test_sound_off_round_trip_and_absent_means_on() {
    let mut config = full();
    assert!(!to_xml(&config).contains("sound"), "not written while on");
    config.sound_off = true;
    let xml = to_xml(&config);
    assert!(xml.contains("<vmgpu:sound enabled=\"no\"/>"), "{xml}");
    assert_eq!(
        VmgpuConfig::from_domain_xml(&domain(&xml)).unwrap(),
        Some(config)
    );
    let bad = domain(&format!(
        "<v:config xmlns:v='{NAMESPACE}' version='1'><v:sound enabled='off'/></v:config>"
    ));
    assert!(VmgpuConfig::from_domain_xml(&bad).is_err());
}

#[test]
fn test_tuning_round_trip_and_absent_means_off() {
    let mut config = full();
    assert!(!to_xml(&config).contains("tuning"), "not written while off");
    config.tuning.governor = true;
    let xml = to_xml(&config);
    assert!(
        xml.contains("<vmgpu:tuning governor=\"performance\" irq-affinity=\"no\"/>"),
        "{xml}"
    );
    assert_eq!(
        VmgpuConfig::from_domain_xml(&domain(&xml)).unwrap(),
        Some(config.clone())
    );
    config.tuning.irq_affinity = true;
    let back = VmgpuConfig::from_domain_xml(&domain(&to_xml(&config))).unwrap();
    assert_eq!(back, Some(config));
    for bad in [
        "<v:tuning governor='ondemand'/>",
        "<v:tuning irq-affinity='on'/>",
    ] {
        let xml = domain(&format!(
            "<v:config xmlns:v='{NAMESPACE}' version='1'>{bad}</v:config>"
        ));
        assert!(VmgpuConfig::from_domain_xml(&xml).is_err(), "{bad}");
    }
}

#[test]
fn test_display_phase_and_media_round_trip() {
    let mut config = full();
    config.display = Some(DisplayConfig {
        mode: "install".into(),
        media: vec![
            "/srv/iso/Win 11.iso".into(),
            "/srv/iso/virtio-win.iso".into(),
        ],
    });
    let back = VmgpuConfig::from_domain_xml(&domain(&to_xml(&config))).unwrap();
    assert_eq!(back, Some(config));
    let bad = domain(&format!(
        "<v:config xmlns:v='{NAMESPACE}' version='1'><v:display mode='vga'/></v:config>"
    ));
    assert!(VmgpuConfig::from_domain_xml(&bad).is_err());
}

#[test]
fn test_viewer_clipboard_round_trip() {
    let mut config = full();
    assert!(to_xml(&config).contains("<vmgpu:viewer launch=\"yes\" user=\"alice\"/>"));
    config.viewer.clipboard = false;
    let xml = to_xml(&config);
    assert!(xml.contains("<vmgpu:viewer launch=\"yes\" user=\"alice\" clipboard=\"no\"/>"));
    let back = VmgpuConfig::from_domain_xml(&domain(&xml)).unwrap();
    assert_eq!(back, Some(config));
    let bad = domain(&format!(
        "<v:config xmlns:v='{NAMESPACE}' version='1'><v:viewer clipboard='off'/></v:config>"
    ));
    assert!(VmgpuConfig::from_domain_xml(&bad).is_err());
    let absent = domain(&format!(
        "<v:config xmlns:v='{NAMESPACE}' version='1'><v:viewer/></v:config>"
    ));
    let absent = VmgpuConfig::from_domain_xml(&absent).unwrap().unwrap();
    assert!(absent.viewer.clipboard, "absent means on");
}

#[test]
fn test_to_xml_with_function_identities_round_trips() {
    let mut config = full();
    config.functions = vec![FunctionIdentity {
        address: "0000:04:00.1".parse().unwrap(),
        vendor: 0x10de,
        device: 0x10f8,
        subsystem: None,
        class: 0x040300,
    }];
    let xml = to_xml(&config);
    assert!(xml.contains("<vmgpu:function address=\"0000:04:00.1\" id=\"10de:10f8\" subsystem=\"none\" class=\"0x040300\"/>"), "{xml}");
    let back = VmgpuConfig::from_domain_xml(&domain(&xml)).unwrap();
    assert_eq!(back, Some(config));
}

#[test]
fn test_from_domain_xml_without_metadata_is_none() {
    let xml = "<domain><name>x</name></domain>";
    assert_eq!(VmgpuConfig::from_domain_xml(xml).unwrap(), None);
}

#[test]
fn test_from_domain_xml_readme_example_reads_every_field() {
    let readme = r#"<vmgpu:config xmlns:vmgpu="https://vmgpu.dev/xmlns/config/1" version="1">
<vmgpu:gpu address="0000:04:00.0"/>
<vmgpu:isolate-cpus enabled="yes"/>
<vmgpu:hugepages enabled="yes"/>
<vmgpu:shmem user="alice" group="kvm" remove-on-stop="yes"/>
<vmgpu:single-gpu enabled="no"/>
<vmgpu:viewer launch="yes" user="alice"/>
  </vmgpu:config>"#;
    let config = VmgpuConfig::from_domain_xml(&domain(readme)).unwrap();
    assert_eq!(config, Some(full()));
}

#[test]
fn test_to_xml_round_trips() {
    let config = full();
    let back = VmgpuConfig::from_domain_xml(&domain(&to_xml(&config))).unwrap();
    assert_eq!(back, Some(config));
}

#[test]
fn test_from_domain_xml_other_prefix_same_namespace_is_read() {
    let xml = domain(&format!(
        "<v:config xmlns:v='{NAMESPACE}' version='1'><v:gpu address='01:00.0'/></v:config>"
    ));
    let config = VmgpuConfig::from_domain_xml(&xml).unwrap().unwrap();
    assert_eq!(config.gpus, vec!["0000:01:00.0".parse().unwrap()]);
}

#[test]
fn test_from_domain_xml_foreign_namespace_config_is_ignored() {
    let xml = domain(&format!(
        "<vmgpu:config xmlns:vmgpu='urn:other' version='9'/><!-- {NAMESPACE} -->"
    ));
    assert_eq!(VmgpuConfig::from_domain_xml(&xml).unwrap(), None);
}

#[test]
fn test_from_domain_xml_unknown_version_is_error() {
    let xml = domain(&format!("<v:config xmlns:v='{NAMESPACE}' version='2'/>"));
    let err = VmgpuConfig::from_domain_xml(&xml).unwrap_err();
    assert!(
        matches!(err, Error::UnknownVersion(ref v) if v == "2"),
        "{err}"
    );
}

#[test]
fn test_from_domain_xml_missing_version_is_error() {
    let xml = domain(&format!("<v:config xmlns:v='{NAMESPACE}'/>"));
    assert!(matches!(
        VmgpuConfig::from_domain_xml(&xml),
        Err(Error::MissingVersion)
    ));
}

#[test]
fn test_from_domain_xml_malformed_with_namespace_is_error() {
    let xml = format!("<domain><metadata><v:config xmlns:v='{NAMESPACE}' version='1'></domain>");
    assert!(matches!(
        VmgpuConfig::from_domain_xml(&xml),
        Err(Error::Xml(_))
    ));
}

#[test]
fn test_from_domain_xml_bad_enabled_value_is_error() {
    let xml = domain(&format!(
        "<v:config xmlns:v='{NAMESPACE}' version='1'><v:hugepages enabled='true'/></v:config>"
    ));
    let err = VmgpuConfig::from_domain_xml(&xml).unwrap_err();
    assert!(err.to_string().contains("yes or no"), "{err}");
}

#[test]
fn test_from_domain_xml_hostile_user_is_error() {
    let xml = domain(&format!(
        "<v:config xmlns:v='{NAMESPACE}' version='1'><v:shmem user='../root'/></v:config>"
    ));
    assert!(VmgpuConfig::from_domain_xml(&xml).is_err());
}

#[test]
fn test_from_domain_xml_unknown_elements_are_ignored() {
    let xml = domain(&format!(
        "<v:config xmlns:v='{NAMESPACE}' version='1'><v:future x='1'/><v:hugepages enabled='yes' new='2'/></v:config>"
    ));
    let config = VmgpuConfig::from_domain_xml(&xml).unwrap().unwrap();
    assert!(config.hugepages);
}

#[test]
fn test_from_domain_xml_defaults_when_elements_absent() {
    let xml = domain(&format!("<v:config xmlns:v='{NAMESPACE}' version='1'/>"));
    let config = VmgpuConfig::from_domain_xml(&xml).unwrap().unwrap();
    assert_eq!(config, VmgpuConfig::default());
}

#[test]
fn test_from_domain_xml_two_configs_is_error() {
    let one = format!("<v:config xmlns:v='{NAMESPACE}' version='1'/>");
    let xml = domain(&format!("{one}{one}"));
    assert!(matches!(
        VmgpuConfig::from_domain_xml(&xml),
        Err(Error::Duplicate)
    ));
}

#[test]
fn test_from_metadata_xml_unprefixed_libvirt_form_is_read() {
    let xml =
        "<config version='1'><gpu address='0000:04:00.0'/><hugepages enabled='yes'/></config>";
    let config = VmgpuConfig::from_metadata_xml(xml).unwrap();
    assert!(config.hugepages);
    assert_eq!(config.gpus.len(), 1);
}
