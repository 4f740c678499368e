//! `vmgpu define`: the rendered domain on a seed-like host (a 5900X with an RTX 3070 as the host display and a
//! GTX 980 Ti for the guest), schema validation of every template × option combination with
//! `virt-xml-validate`, bad input refused in one line before libvirt is touched, and `--update`'s rewrite
//! keeping a hand-edited domain byte for byte outside vmgpu's parts.
use std::path::Path;
use std::process::{Command, Output};

use vmgpu::domain::write::looking_glass::LookingGlass;

use vmgpu::domain::write::pinning::{Cpus, PinRequest};
use vmgpu::domain::write::spec::{
    DisplayMode, DomainSpec, Evdev, GpuPassthrough, Hugepages, Network, VirtType,
};
use vmgpu::domain::write::spec_xml::{self, Scope};

use crate::fixtures::{stderr, stdout};

/// A libvirt URI that cannot be reached: an error mentioning it proves vmgpu tried libvirt.
const NO_LIBVIRT: &str = "qemu+unix:///system?socket=/nonexistent/vmgpu-test-sock";

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// One PCI function: address, class, vendor:device, IOMMU group, boot_vga.
fn pci(
    root: &Path,
    addr: &str,
    class: &str,
    ids: (&str, &str),
    group: u32,
    boot_vga: Option<bool>,
) {
    let dir = format!("sys/bus/pci/devices/{addr}");
    write(root, &format!("{dir}/class"), &format!("{class}\n"));
    write(root, &format!("{dir}/vendor"), &format!("0x{}\n", ids.0));
    write(root, &format!("{dir}/device"), &format!("0x{}\n", ids.1));
    if let Some(b) = boot_vga {
        write(
            root,
            &format!("{dir}/boot_vga"),
            if b { "1\n" } else { "0\n" },
        );
    }
    write(
        root,
        &format!("sys/kernel/iommu_groups/{group}/devices/{addr}"),
        "",
    );
    std::os::unix::fs::symlink(
        format!("../../../../kernel/iommu_groups/{group}"),
        root.join(format!("{dir}/iommu_group")),
    )
    .unwrap();
}

/// The seed's machine: Ryzen 9 5900X (SMT siblings n and n+12, CCX 0-5 and 6-11), 32 GiB, RTX 3070 at
/// 0b:00 (boot display), GTX 980 Ti at 04:00 (VGA + HDMI audio, alone in group 18), a root port at 00:03.1.
/// `dirty` adds a USB controller of another slot to the 980 Ti's group.
fn seed_host(dirty: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "proc/cmdline",
        "BOOT_IMAGE=/boot/vmlinuz amd_iommu=on iommu=pt\n",
    );
    write(
        r,
        "proc/meminfo",
        "MemTotal:       32781516 kB\nMemAvailable:   30000000 kB\nHugepagesize:       2048 kB\n",
    );
    write(r, "proc/sys/kernel/osrelease", "6.11.8-1-default\n");
    write(
        r,
        "proc/cpuinfo",
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD Ryzen 9 5900X 12-Core Processor\nflags\t\t: fpu svm topoext\n\n",
    );
    write(r, "sys/devices/system/cpu/online", "0-23\n");
    for cpu in 0..24u32 {
        let core = cpu % 12;
        let c = format!("sys/devices/system/cpu/cpu{cpu}");
        write(r, &format!("{c}/topology/physical_package_id"), "0\n");
        write(r, &format!("{c}/topology/core_id"), &format!("{core}\n"));
        write(
            r,
            &format!("{c}/topology/thread_siblings_list"),
            &format!("{core},{}\n", core + 12),
        );
        write(r, &format!("{c}/cache/index3/level"), "3\n");
        let l3 = if core < 6 {
            "0-5,12-17\n"
        } else {
            "6-11,18-23\n"
        };
        write(r, &format!("{c}/cache/index3/shared_cpu_list"), l3);
    }
    pci(r, "0000:00:03.1", "0x060400", ("1022", "1483"), 2, None);
    pci(
        r,
        "0000:04:00.0",
        "0x030000",
        ("10de", "17c8"),
        18,
        Some(false),
    );
    pci(r, "0000:04:00.1", "0x040300", ("10de", "0fb0"), 18, None);
    // the 980 Ti's board (ASUS), as in the recorded host: define records it in the metadata
    for f in ["0000:04:00.0", "0000:04:00.1"] {
        write(
            r,
            &format!("sys/bus/pci/devices/{f}/subsystem_vendor"),
            "0x1043\n",
        );
        write(
            r,
            &format!("sys/bus/pci/devices/{f}/subsystem_device"),
            "0x8548\n",
        );
    }
    pci(
        r,
        "0000:0b:00.0",
        "0x030000",
        ("10de", "2484"),
        20,
        Some(true),
    );
    pci(r, "0000:0b:00.1", "0x040300", ("10de", "228b"), 20, None);
    // the host's desktop: a lit output on the 3070
    lit_output(r, "0000:0b:00.0", "enabled");
    if dirty {
        pci(r, "0000:05:00.0", "0x0c0330", ("1b21", "2142"), 18, None);
    }
    write(r, "dev/input/by-id/usb-Logitech_USB_Keyboard-event-kbd", "");
    write(r, "dev/input/by-id/usb-Logitech_G203-event-mouse", "");
    write(
        r,
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\n",
    );
    dir
}

/// A DRM output of `addr`'s card, connected, `enabled` or `disabled`.
fn lit_output(root: &Path, addr: &str, enabled: &str) {
    let dir = format!("sys/bus/pci/devices/{addr}/drm/card1/card1-DP-1");
    write(root, &format!("{dir}/status"), "connected\n");
    write(root, &format!("{dir}/enabled"), &format!("{enabled}\n"));
}

fn vmgpu(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmgpu"))
        .arg("--root")
        .arg(root)
        .arg("define")
        .args(args)
        .env_remove("SUDO_USER")
        .env("XDG_CONFIG_HOME", root.join("no-user-templates"))
        .output()
        .unwrap()
}

/// Runs `virt-xml-validate FILE domain`; the schema check is part of the suite (install-deps.sh installs it).
fn validate(xml: &str, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("domain.xml");
    std::fs::write(&file, xml).unwrap();
    let out = Command::new("virt-xml-validate")
        .arg(&file)
        .arg("domain")
        .output()
        .expect("virt-xml-validate (libvirt-clients + libxml2-utils) must be installed: tests/install-deps.sh");
    assert!(
        out.status.success(),
        "{what}: virt-xml-validate failed:\n{}{}\n{xml}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The seed's recorded host (foundation fixture): 5900X, RTX 3070 (boot display), GTX 980 Ti at 04:00.
fn seed_fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hosts/seed-tumbleweed-5900x")
}

#[test]
fn test_define_dry_run_on_seed_is_valid_windows11_with_980ti_ccx_pins_and_32mib() {
    let out = vmgpu(&seed_fixture(), &["--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let xml = stdout(&out);
    validate(&xml, "seed windows11");
    assert!(xml.contains("<tpm model='tpm-crb'>"));
    assert!(xml.contains("<feature enabled='yes' name='secure-boot'/>"));
    assert!(xml.contains("bus='0x04' slot='0x00' function='0x0'"));
    assert!(xml.contains("bus='0x04' slot='0x00' function='0x1'"));
    assert!(xml.contains("bus='0x01' slot='0x00' function='0x0' multifunction='on'"));
    assert!(xml.contains("bus='0x01' slot='0x00' function='0x1'/>"));
    assert!(xml.contains("<vcpupin vcpu='0' cpuset='6'/>\n    <vcpupin vcpu='1' cpuset='18'/>"));
    assert!(xml.contains("<topology sockets='1' dies='1' cores='6' threads='2'/>"));
    assert!(xml.contains("<emulatorpin cpuset='0-5,12-17'/>"));
    assert!(xml.contains("<feature policy='require' name='topoext'/>"));
    assert!(xml.contains("<size unit='M'>32</size>"));
    insta::assert_snapshot!("seed_windows11_dry_run", xml);
}

#[test]
fn test_define_on_derived_seed_with_explicit_gpu_matches_recorded_seed() {
    let recorded = vmgpu(&seed_fixture(), &["--dry-run"]);
    let host = seed_host(false);
    let derived = vmgpu(host.path(), &["--dry-run", "--gpu", "0000:04:00.0"]);
    assert!(derived.status.success(), "{}", stderr(&derived));
    assert_eq!(stdout(&derived), stdout(&recorded));
}

#[test]
fn test_define_without_gpu_picks_the_non_display_card() {
    let host = seed_host(false);
    let out = vmgpu(host.path(), &["--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("<vmgpu:gpu address=\"0000:04:00.0\">"));
}

#[test]
fn test_define_every_template_and_option_combination_validates() {
    let host = seed_host(false);
    let combos: &[&[&str]] = &[
        &[],
        &["--memory", "16G", "--hugepages", "1G"],
        &[
            "--pin",
            "off",
            "--vcpus",
            "4",
            "--looking-glass",
            "off",
            "--hugepages",
            "off",
        ],
        &["--looking-glass", "kvmfr:2560x1440", "--hide-hypervisor"],
        &[
            "--pin",
            "6,18,7,19,8,20,9,21",
            "--looking-glass",
            "3840x2160,hdr",
        ],
        &[
            "--vcpus",
            "8",
            "--user",
            "alice",
            "--keyboard",
            "auto",
            "--mouse",
            "auto",
            "--grab-toggle",
            "scrolllock",
        ],
        &[
            "--disk",
            "/var/lib/libvirt/images/g.qcow2",
            "--iso",
            "/srv/iso/Win11_24H2.iso",
        ],
        &[
            "--gpu",
            "none",
            "--virt-type",
            "qemu",
            "--network",
            "none",
            "--memory",
            "256M",
        ],
        &["--network", "bridge:br0", "--gpu", "0000:04:00.1"],
        &[
            "--gpu",
            "0000:0b:00.0",
            "--single-gpu",
            "--network",
            "network:lan",
        ],
    ];
    for template in ["windows11", "windows10", "linux"] {
        for combo in combos {
            let mut args = vec!["--dry-run", "--template", template];
            args.extend_from_slice(combo);
            let out = vmgpu(host.path(), &args);
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
            let xml = stdout(&out);
            validate(&xml, &format!("{args:?}"));
            // The guest's sound card on the SPICE audiodev (the viewer plays it).
            assert!(
                xml.contains("<sound model='ich9'>\n      <audio id='1'/>\n    </sound>")
                    && xml.contains("<audio id='1' type='spice'/>"),
                "{args:?}: no ich9 sound on the SPICE audiodev"
            );
        }
    }
}

/// Runs a refused define and returns its one-line message (exit 2, nothing on stdout, never reaching libvirt).
fn refused(host: &Path, args: &[&str]) -> String {
    let mut all = vec!["win11", "--connect", NO_LIBVIRT];
    all.extend_from_slice(args);
    let out = vmgpu(host, &all);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?} printed {}", stdout(&out));
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: not one line: {err}"
    );
    assert!(
        !err.contains("nonexistent"),
        "{args:?} reached libvirt: {err}"
    );
    err
}

#[test]
fn test_define_unknown_template_is_refused() {
    let host = seed_host(false);
    let err = refused(host.path(), &["--template", "windows95"]);
    assert!(
        err.contains("unknown template \"windows95\" (known: linux, windows10, windows11)"),
        "{err}"
    );
}

#[test]
fn test_define_missing_gpu_is_refused() {
    let host = seed_host(false);
    let err = refused(host.path(), &["--gpu", "0000:09:00.0"]);
    assert!(err.contains("there is no PCI device 0000:09:00.0"), "{err}");
}

#[test]
fn test_define_bridge_as_gpu_is_refused() {
    let host = seed_host(false);
    let err = refused(host.path(), &["--gpu", "0000:00:03.1"]);
    assert!(
        err.contains("0000:00:03.1 is a PCI bridge, not a GPU"),
        "{err}"
    );
}

#[test]
fn test_define_host_display_gpu_is_refused_without_single_gpu() {
    let host = seed_host(false);
    let err = refused(host.path(), &["--gpu", "0000:0b:00.0"]);
    assert!(
        err.contains("0000:0b:00.0 is the host's display GPU (its output card1-DP-1 is lit)"),
        "{err}"
    );
    assert!(err.contains("--single-gpu"), "{err}");
}

#[test]
fn test_define_boot_vga_the_host_does_not_display_on_is_passed_without_single_gpu() {
    // the guest card in the first slot is the firmware's boot VGA; the desktop runs on the other card
    let host = seed_host(false);
    write(
        host.path(),
        "sys/bus/pci/devices/0000:04:00.0/boot_vga",
        "1\n",
    );
    write(
        host.path(),
        "sys/bus/pci/devices/0000:0b:00.0/boot_vga",
        "0\n",
    );
    lit_output(host.path(), "0000:04:00.0", "disabled");
    let out = vmgpu(host.path(), &["--dry-run", "--gpu", "0000:04:00.0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("<vmgpu:single-gpu enabled=\"no\"/>"));
}

#[test]
fn test_define_only_gpu_headless_boot_vga_is_chosen_without_single_gpu() {
    let host = seed_host(false);
    std::fs::remove_dir_all(host.path().join("sys/bus/pci/devices/0000:0b:00.0")).unwrap();
    std::fs::remove_dir_all(host.path().join("sys/bus/pci/devices/0000:0b:00.1")).unwrap();
    write(
        host.path(),
        "sys/bus/pci/devices/0000:04:00.0/boot_vga",
        "1\n",
    );
    let out = vmgpu(host.path(), &["--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("<vmgpu:gpu address=\"0000:04:00.0\">"));
}

#[test]
fn test_define_memory_beyond_host_is_refused() {
    let host = seed_host(false);
    let err = refused(host.path(), &["--memory", "64G"]);
    assert!(
        err.contains("more than this host has (32013 MiB in total)"),
        "{err}"
    );
}

#[test]
fn test_define_zero_resolution_is_refused() {
    let host = seed_host(false);
    let err = refused(host.path(), &["--looking-glass", "0x0"]);
    assert!(err.contains("resolution 0x0 is out of range"), "{err}");
}

#[test]
fn test_define_huge_resolution_is_refused() {
    let host = seed_host(false);
    let err = refused(host.path(), &["--looking-glass", "99999x99999"]);
    assert!(
        err.contains("resolution 99999x99999 is out of range"),
        "{err}"
    );
}

#[test]
fn test_define_unclean_group_names_foreign_member_and_fix() {
    let host = seed_host(true);
    let err = refused(host.path(), &["--gpu", "0000:04:00.0"]);
    assert!(
        err.contains("IOMMU group 18 of 0000:04:00.0 also holds 0000:05:00.0 (USB controller)"),
        "{err}"
    );
    assert!(
        err.contains("put the card in a slot whose group holds only its own functions"),
        "{err}"
    );
}

#[test]
fn test_define_existing_domain_is_refused_without_update() {
    // libvirt's test driver always has a domain called "test".
    let host = seed_host(false);
    let out = vmgpu(
        host.path(),
        &["test", "--connect", "test:///default", "--gpu", "none"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("domain test already exists; use --update"),
        "{err}"
    );
}

#[test]
fn test_define_libvirt_error_is_one_line() {
    let host = seed_host(false);
    let out = vmgpu(
        host.path(),
        &["x", "--connect", NO_LIBVIRT, "--gpu", "none"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("cannot connect to libvirt at"), "{err}");
}

#[test]
fn test_define_list_templates_names_the_builtins() {
    let host = seed_host(false);
    let out = vmgpu(host.path(), &["--list-templates"]);
    assert_eq!(
        stdout(&out),
        "linux        built in\nwindows10    built in\nwindows11    built in\n"
    );
}

/// The spec `--update` applies to the hand-edited domain below.
fn update_spec() -> DomainSpec {
    let host = vmgpu::host::Host::read(&vmgpu::host::HostRoot::new(seed_fixture())).unwrap();
    let cpus = Cpus::from_topology(&host.cpu);
    DomainSpec {
        name: "win11".into(),
        virt_type: VirtType::Kvm,
        memory_kib: 16 * 1024 * 1024,
        pins: cpus.plan(&PinRequest::Auto, Some(8)).unwrap(),
        amd: true,
        hugepages: Hugepages::TwoMiB,
        gpu: Some(GpuPassthrough {
            functions: vec![
                "0000:04:00.0".parse().unwrap(),
                "0000:04:00.1".parse().unwrap(),
            ],
            guest_bus: 6,
            identities: Vec::new(),
        }),
        looking_glass: LookingGlass::parse("2560x1440").unwrap(),
        shm_name: "looking-glass".into(),
        disk: None,
        iso: None,
        drivers: None,
        display: None,
        recorded_display: None,
        clipboard: true,
        sound: true,
        tuning: Default::default(),
        media: Vec::new(),
        old_media: Vec::new(),
        evdev: Evdev {
            keyboard: None,
            mouse: None,
            grab_toggle: "ctrl-ctrl".into(),
        },
        hide_hypervisor: false,
        single_gpu: false,
        user: Some("alice".into()),
        network: Network::Template,
    }
}

const HAND_EDITED: &str = include_str!("../fixtures/domains/hand-edited.xml");

#[test]
fn test_update_keeps_user_edits_byte_for_byte() {
    let old_gpus = vec!["0000:04:00.0".parse().unwrap()];
    let out = spec_xml::render(HAND_EDITED, &update_spec(), Scope::Update, &old_gpus).unwrap();
    validate(&out, "updated hand-edited domain");
    for kept in [
        "<!-- my gaming VM: do not touch the USB controller -->",
        "<title>Gaming &amp; work</title>",
        "<libosinfo:os id=\"http://microsoft.com/win/11\"/>",
        "<qemu:arg value=\"-fw_cfg\"/>",
        "<address domain=\"0x0000\" bus=\"0x09\" slot=\"0x00\" function=\"0x3\"/>",
        "<vcpusched vcpus='0-7' scheduler='fifo' priority='1'/>",
        "<source type='memfd'/>",
    ] {
        assert!(out.contains(kept), "lost {kept}:\n{out}");
    }
    insta::assert_snapshot!("hand_edited_updated", out);
}

#[test]
fn test_update_twice_changes_nothing_more() {
    let old_gpus = vec!["0000:04:00.0".parse().unwrap()];
    let once = spec_xml::render(HAND_EDITED, &update_spec(), Scope::Update, &old_gpus).unwrap();
    let twice = spec_xml::render(&once, &update_spec(), Scope::Update, &old_gpus).unwrap();
    assert_eq!(once, twice);
}

#[test]
fn test_define_tcg_drops_hyperv_and_kvm_features() {
    let host = seed_host(false);
    let out = vmgpu(
        host.path(),
        &["--dry-run", "--virt-type", "qemu", "--hide-hypervisor"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let xml = stdout(&out);
    assert!(xml.contains("<domain type='qemu'>"));
    assert!(
        !xml.contains("<hyperv") && !xml.contains("<kvm>") && !xml.contains("hypervclock"),
        "{xml}"
    );
}

#[test]
fn test_update_keeps_the_gpus_guest_bus() {
    let bus =
        spec_xml::guest_bus_for_update(HAND_EDITED, &["0000:04:00.1".parse().unwrap()]).unwrap();
    assert_eq!(bus, Some(6));
}

#[test]
fn test_update_new_gpu_gets_a_bus_after_the_highest_controller() {
    let bus =
        spec_xml::guest_bus_for_update(HAND_EDITED, &["0000:0b:00.0".parse().unwrap()]).unwrap();
    assert_eq!(bus, Some(7));
}

#[test]
fn test_define_uses_a_system_template_from_etc() {
    let host = seed_host(false);
    let custom = vmgpu::domain::write::template::BUILTIN[0]
        .1
        .replace("<devices>", "<devices>\n    <!-- gaming rig -->");
    write(host.path(), "etc/vmgpu/templates/gaming.xml", &custom);
    let listed = stdout(&vmgpu(host.path(), &["--list-templates"]));
    let out = vmgpu(host.path(), &["--dry-run", "--template", "gaming"]);
    assert!(
        listed.contains("gaming") && listed.contains("etc/vmgpu/templates/gaming.xml"),
        "{listed}"
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("<!-- gaming rig -->"));
    assert!(stdout(&out).contains("<name>gaming</name>"));
}

/// A file that looks like an ISO 9660 image (the volume descriptor at 32 KiB).
fn fake_iso(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut bytes = vec![0u8; 0x8800];
    bytes[0x8000] = 1;
    bytes[0x8001..0x8006].copy_from_slice(b"CD001");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn test_define_install_phase_virtual_display_isos_and_boot_order_validate() {
    let host = seed_host(false);
    let drivers = fake_iso(host.path(), "virtio-win.iso");
    let drivers = drivers.to_str().unwrap();
    for template in ["windows11", "windows10", "linux"] {
        for display in [None, Some("install"), Some("both"), Some("looking-glass")] {
            let mut args = vec![
                "--dry-run",
                "--template",
                template,
                "--disk",
                "/var/lib/libvirt/images/w.qcow2",
                "--iso",
                "/srv/iso/Win11.iso",
                "--drivers",
                drivers,
            ];
            if let Some(d) = display {
                args.extend(["--display", d]);
            }
            let out = vmgpu(host.path(), &args);
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
            let xml = stdout(&out);
            validate(&xml, &format!("{args:?}"));
            let mode = display.unwrap_or("install");
            assert!(
                xml.contains(&format!("<vmgpu:display mode=\"{mode}\"/>")),
                "{xml}"
            );
            assert!(xml.contains(&format!("<vmgpu:media path=\"{drivers}\"/>")));
            assert!(xml.contains("<target dev='sdb' bus='sata'/>"), "drivers CD");
            assert!(xml.contains("<streaming mode='off'/>"));
            if mode == "looking-glass" {
                assert!(xml.contains("<model type='none'/>"));
                assert!(
                    xml.contains(
                        "<target dev='sda' bus='sata'/>\n      <readonly/>\n      <boot order='2'/>"
                    ),
                    "the disk boots first: {xml}"
                );
            } else {
                assert!(xml.contains("<model type='vga' vram='16384' heads='1' primary='yes'/>"));
                assert!(
                    xml.contains(
                        "<target dev='sda' bus='sata'/>\n      <readonly/>\n      <boot order='1'/>"
                    ),
                    "the ISO boots first: {xml}"
                );
            }
        }
    }
}

#[test]
fn test_define_bad_install_input_is_refused() {
    let host = seed_host(false);
    let not_iso = host.path().join("notes.txt");
    std::fs::write(&not_iso, "hello").unwrap();
    let not_iso = not_iso.to_str().unwrap();
    for (args, says) in [
        (
            vec!["--drivers", "/missing/virtio-win.iso"],
            "--drivers /missing/virtio-win.iso: cannot open",
        ),
        (vec!["--drivers", not_iso], "is not an ISO image"),
        (vec!["--display", "vga"], "is not a display mode"),
        (
            vec!["--display", "looking-glass", "--looking-glass", "off"],
            "leaves the guest without a screen",
        ),
    ] {
        let err = refused(host.path(), &args);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // A template without SPICE graphics cannot take the install display.
    let dir = host.path().join("etc/vmgpu/templates");
    std::fs::create_dir_all(&dir).unwrap();
    let plain = include_str!("../../templates/linux.xml")
        .replace(
            "<graphics type='spice' autoport='yes'>",
            "<graphics type='vnc' autoport='yes'>",
        )
        .replace("<image compression='off'/>", "")
        .replace("<streaming mode='off'/>", "");
    std::fs::write(dir.join("novnc.xml"), plain).unwrap();
    let err = refused(
        host.path(),
        &["--template", "novnc", "--display", "install"],
    );
    assert!(err.contains("has no <graphics type='spice'>"), "{err}");
}

/// `--update --display install` then `--update --display looking-glass`: the virtual display and the ISOs
/// vmgpu attached go, a CD-ROM the user added and every other edit stay byte-identical.
#[test]
fn test_update_display_phase_round_trip_keeps_user_edits() {
    let old_gpus = vec!["0000:04:00.0".parse().unwrap()];
    let user_cd = "<disk type='file' device='cdrom'>\n      <source file='/home/me/games.iso'/>\n      <target dev='sdc' bus='sata'/>\n      <readonly/>\n    </disk>\n    ";
    let start = HAND_EDITED.replacen(
        "<disk type='file' device='disk'>",
        &format!("{user_cd}<disk type='file' device='disk'>"),
        1,
    );
    let media = vec![
        std::path::PathBuf::from("/srv/iso/Win11.iso"),
        std::path::PathBuf::from("/srv/iso/virtio-win.iso"),
    ];
    let mut install = update_spec();
    install.display = Some(DisplayMode::Install);
    install.media = media.clone();
    let installing = spec_xml::render(&start, &install, Scope::Update, &old_gpus).unwrap();
    validate(&installing, "update to install");
    assert!(installing.contains("<model type='vga' vram='16384' heads='1' primary='yes'/>"));
    assert!(installing.contains("<source file='/srv/iso/virtio-win.iso'/>"));
    assert!(installing.contains("<vmgpu:display mode=\"install\"/>"));
    let again = spec_xml::render(&installing, &install, Scope::Update, &old_gpus).unwrap();
    assert_eq!(installing, again, "a second update changes nothing");

    let mut lg = update_spec();
    lg.display = Some(DisplayMode::LookingGlass);
    lg.old_media = media;
    let finished = spec_xml::render(&installing, &lg, Scope::Update, &old_gpus).unwrap();
    validate(&finished, "update to looking-glass");
    let direct = spec_xml::render(&start, &lg, Scope::Update, &old_gpus).unwrap();
    assert_eq!(finished, direct, "nothing of the install phase is left");
    assert!(
        finished.contains("/home/me/games.iso"),
        "the user's CD stays"
    );
    assert!(!finished.contains("/srv/iso/"));
    assert!(finished.contains("<model type='none'/>"));
    assert!(finished.contains("<vmgpu:display mode=\"looking-glass\"/>"));
}

#[test]
fn test_define_dry_run_says_on_stderr_when_there_is_no_disk_or_iso() {
    let bare = vmgpu(&seed_fixture(), &["--dry-run"]);
    let full = vmgpu(
        &seed_fixture(),
        &[
            "--dry-run",
            "--disk",
            "/var/lib/libvirt/images/g.qcow2",
            "--iso",
            "/srv/iso/Win11_24H2.iso",
        ],
    );
    let bare_err = String::from_utf8_lossy(&bare.stderr);

    assert!(bare.status.success(), "{bare_err}");
    assert!(
        bare_err.contains("no --disk") && bare_err.contains("no --iso"),
        "{bare_err}"
    );
    assert!(String::from_utf8_lossy(&bare.stdout).contains("<domain"));
    assert!(full.status.success());
    assert!(!String::from_utf8_lossy(&full.stderr).contains("note:"));
}

#[test]
fn test_define_tuning_flags_write_the_tuning_element_and_default_is_off() {
    let off = stdout(&vmgpu(&seed_fixture(), &["--dry-run"]));
    assert!(!off.contains("vmgpu:tuning"), "off by default");
    let out = vmgpu(
        &seed_fixture(),
        &["--dry-run", "--performance-governor", "--irq-affinity"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let xml = stdout(&out);
    validate(&xml, "seed windows11 with tuning");
    assert!(
        xml.contains(r#"<vmgpu:tuning governor="performance" irq-affinity="yes"/>"#),
        "{xml}"
    );
    let config = vmgpu::domain::VmgpuConfig::from_domain_xml(&xml)
        .unwrap()
        .unwrap();
    assert!(config.tuning.governor && config.tuning.irq_affinity);
}

/// `--update` gives a domain defined before vmgpu did audio (the hand-edited one has no sound device) the ich9
/// card on a SPICE audiodev, and every other byte stays: the output is the input plus exactly those lines.
#[test]
fn test_update_adds_the_sound_card_and_keeps_every_other_byte() {
    let old_gpus = vec!["0000:04:00.0".parse().unwrap()];
    let mut quiet = update_spec();
    quiet.sound = false;
    let without = spec_xml::render(HAND_EDITED, &quiet, Scope::Update, &old_gpus).unwrap();
    assert!(!without.contains("<sound"), "{without}");
    assert!(
        without.contains(r#"<vmgpu:sound enabled="no"/>"#),
        "{without}"
    );
    validate(&without, "updated hand-edited domain, --no-sound");
    let with = spec_xml::render(HAND_EDITED, &update_spec(), Scope::Update, &old_gpus).unwrap();
    validate(&with, "updated hand-edited domain with sound");
    let card = "    <sound model='ich9'>\n      <audio id='1'/>\n    </sound>\n    <audio id='1' type='spice'/>\n";
    assert_eq!(
        with.replacen(card, "", 1),
        without.replace("      <vmgpu:sound enabled=\"no\"/>\n", ""),
        "the card and its audio are the only change"
    );
    assert!(with.contains(&format!("{card}    <memballoon")), "{with}");
    // --no-sound on a domain that has vmgpu's card takes it out again; the SPICE audiodev may stay.
    let removed = spec_xml::render(&with, &quiet, Scope::Update, &old_gpus).unwrap();
    assert_eq!(
        removed.replacen("    <audio id='1' type='spice'/>\n", "", 1),
        without
    );
    // A sound card of the user's own is left as it is, on and off.
    let own = HAND_EDITED.replacen(
        "    <memballoon",
        "    <sound model=\"usb\"/>\n    <memballoon",
        1,
    );
    for spec in [update_spec(), quiet] {
        let out = spec_xml::render(&own, &spec, Scope::Update, &old_gpus).unwrap();
        assert!(
            out.contains("<sound model=\"usb\"/>\n    <memballoon"),
            "{out}"
        );
        assert_eq!(out.matches("<sound").count(), 1, "{out}");
    }
}

#[test]
fn test_define_no_sound_leaves_the_card_out_and_says_so_in_the_metadata() {
    let with = stdout(&vmgpu(&seed_fixture(), &["--dry-run"]));
    assert!(with.contains("<sound model='ich9'>"));
    assert!(!with.contains("vmgpu:sound"), "written only when off");
    let out = vmgpu(&seed_fixture(), &["--dry-run", "--no-sound"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let xml = stdout(&out);
    validate(&xml, "seed windows11 --no-sound");
    assert!(!xml.contains("<sound"), "{xml}");
    let config = vmgpu::domain::VmgpuConfig::from_domain_xml(&xml)
        .unwrap()
        .unwrap();
    assert!(config.sound_off);
}
