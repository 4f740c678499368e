//! `vmgpu check` on the fixtures (snapshots of the human and JSON reports, exit codes, the seed's guest GPU) and
//! on the machine running the tests (a VM without IOMMU on CI: IOMMU FAIL, exit 1).
use super::fixtures;

fn check(root: &std::path::Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let out = fixtures::vmgpu()
        .arg("check")
        .arg("--root")
        .arg(root)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(root: &std::path::Path, extra: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let (code, out, _) = check(root, &args);
    (code, serde_json::from_str(&out).unwrap())
}

fn finding<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id}"))
}

#[test]
fn test_check_seed_guest_is_980ti_with_both_functions() {
    let (_, report) = json(&fixtures::host("seed-tumbleweed-5900x"), &[]);

    assert_eq!(report["guest_gpu"]["address"], "0000:04:00.0");
    assert_eq!(report["guest_gpu"]["id"], "10de:17c8");
    assert_eq!(
        report["guest_gpu"]["functions"],
        serde_json::json!(["0000:04:00.0", "0000:04:00.1"])
    );
}

#[test]
fn test_check_seed_flags_vfio_virqfd_with_dracut_fix() {
    let (code, report) = json(&fixtures::host("seed-tumbleweed-5900x"), &[]);

    let f = finding(&report, "vfio.virqfd");
    assert_eq!(code, Some(1));
    assert_eq!(f["severity"], "FAIL");
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("dracut -f --regenerate-all")
    );
}

#[test]
fn test_check_arch_iommu_off_fix_edits_loader_entry() {
    let (code, report) = json(&fixtures::host("arch-sdboot-iommu-off"), &[]);

    let f = finding(&report, "iommu.enabled");
    assert_eq!(code, Some(1));
    assert_eq!(f["severity"], "FAIL");
    assert!(f["what"].as_str().unwrap().contains("amd_iommu=off"));
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("/boot/loader/entries/arch.conf")
    );
}

#[test]
fn test_check_fedora_fix_uses_grubby() {
    let dir = fixtures::copy_of("fedora-intel-turing");
    std::fs::write(
        dir.path().join("proc/cmdline"),
        "root=UUID=x ro rhgb quiet intel_iommu=on\n",
    )
    .unwrap();

    let (_, report) = json(dir.path(), &[]);

    assert_eq!(
        finding(&report, "iommu.pt")["fix"],
        "run `grubby --update-kernel=ALL --args=\"iommu=pt\"`; reboot"
    );
}

#[test]
fn test_check_gpu_flag_selects_card() {
    let (_, report) = json(
        &fixtures::host("ubuntu-builtin-vfio-twins"),
        &["--gpu", "01:00.0"],
    );

    assert_eq!(report["guest_gpu"]["address"], "0000:01:00.0");
    assert_eq!(finding(&report, "gpu.host_display")["severity"], "WARN");
}

#[test]
fn test_check_bad_gpu_flag_is_usage_error() {
    let (code, _, stderr) = check(
        &fixtures::host("seed-tumbleweed-5900x"),
        &["--gpu", "banana"],
    );

    assert_eq!(code, Some(2));
    assert!(stderr.contains("--gpu"), "{stderr}");
}

#[test]
fn test_check_human_output_per_machine() {
    for name in fixtures::MACHINES {
        let (code, out, _) = check(&fixtures::host(name), &[]);
        assert!(matches!(code, Some(0 | 1)), "{name}: {code:?}");
        insta::assert_snapshot!(format!("check_{name}"), out);
    }
}

#[test]
fn test_check_json_per_machine() {
    for name in fixtures::MACHINES {
        let (_, report) = json(&fixtures::host(name), &[]);
        insta::assert_json_snapshot!(format!("check_json_{name}"), report);
    }
}

/// The machine running the tests: on CI a VM without an IOMMU, where `check` must say so and exit 1.
#[test]
fn test_check_live_host_without_iommu_fails_iommu() {
    let groups = std::fs::read_dir("/sys/kernel/iommu_groups").map_or(0, |d| d.count());
    if groups > 0 {
        eprintln!("skipped: this machine has IOMMU groups");
        return;
    }

    let (code, report) = json(std::path::Path::new("/"), &[]);

    let f = finding(&report, "iommu.enabled");
    assert_eq!(code, Some(1));
    assert_eq!(f["severity"], "FAIL");
    assert!(f["what"].as_str().unwrap().contains("no IOMMU"), "{f}");
}

#[test]
fn test_check_vmgpu_binary_copied_into_qemu_d_is_the_hook() {
    let dir = fixtures::copy_of("fedora-intel-turing");
    let hooks = dir.path().join("etc/libvirt/hooks");
    std::fs::write(
        hooks.join("qemu"),
        "#!/bin/sh\nexec /opt/other-tool \"$@\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(hooks.join("qemu.d")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_vmgpu"), hooks.join("qemu.d/vmgpu")).unwrap();

    let (_, report) = json(dir.path(), &[]);

    let f = finding(&report, "libvirt.hook");
    assert_eq!(f["severity"], "PASS", "{f}");
    assert!(f["what"].as_str().unwrap().contains("qemu.d/vmgpu"), "{f}");
}

#[test]
fn test_check_amd_reset_bug_card_warns_vendor_reset() {
    let dir = fixtures::copy_of("seed-tumbleweed-5900x");
    let gpu = dir
        .path()
        .join("sys/devices/pci0000:00/0000:00:01.2/0000:02:00.0/0000:03:04.0/0000:04:00.0");
    std::fs::write(gpu.join("vendor"), "0x1002\n").unwrap();
    std::fs::write(gpu.join("device"), "0x67df\n").unwrap();

    let (_, report) = json(dir.path(), &[]);

    let f = finding(&report, "gpu.reset");
    assert_eq!(f["severity"], "WARN", "{f}");
    assert!(f["fix"].as_str().unwrap().contains("vendor-reset"), "{f}");
}

/// The `looking_glass.shm` findings of a check report.
fn shm_findings(report: &serde_json::Value) -> Vec<serde_json::Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "looking_glass.shm")
        .cloned()
        .collect()
}

#[test]
fn test_check_inspects_the_shm_file_its_domain_names() {
    // The fixture's /dev/shm/looking-glass is 0644 (a WARN while no domain names another file); its one vmgpu
    // domain is defined with `--shm-name lg-gpu-vm`.
    let root = fixtures::copy_of("ubuntu-builtin-vfio-twins");
    let (_, before) = json(root.path(), &[]);
    let default = shm_findings(&before);
    assert_eq!(default.len(), 1);
    assert_eq!(default[0]["severity"], "WARN", "{default:?}");
    assert!(
        default[0]["what"]
            .as_str()
            .unwrap()
            .starts_with("/dev/shm/looking-glass is")
    );

    let xml = crate::fakehost::domain("gpu-vm.xml")
        .replace("<shmem name='looking-glass'>", "<shmem name='lg-gpu-vm'>");
    assert!(xml.contains("lg-gpu-vm"));
    std::fs::create_dir_all(root.path().join("etc/libvirt/qemu")).unwrap();
    std::fs::write(root.path().join("etc/libvirt/qemu/gpu-vm.xml"), xml).unwrap();
    let (_, absent) = json(root.path(), &[]);
    let shm = shm_findings(&absent);
    assert_eq!(shm.len(), 1, "{shm:?}");
    assert_eq!(shm[0]["severity"], "PASS");
    assert!(
        shm[0]["what"]
            .as_str()
            .unwrap()
            .starts_with("VM gpu-vm: /dev/shm/lg-gpu-vm does not exist yet"),
        "{shm:?}"
    );

    std::fs::write(root.path().join("dev/shm/lg-gpu-vm"), "").unwrap();
    let stat = root.path().join("node-stat.txt");
    let mut lines = std::fs::read_to_string(&stat).unwrap();
    lines.push_str("/dev/shm/lg-gpu-vm f 0640 107 107 1727003000\n");
    std::fs::write(&stat, lines).unwrap();
    let (_, present) = json(root.path(), &[]);
    let shm = shm_findings(&present);
    assert_eq!(shm.len(), 1, "{shm:?}");
    assert_eq!(shm[0]["severity"], "WARN");
    let what = shm[0]["what"].as_str().unwrap();
    assert!(
        what.starts_with("VM gpu-vm: /dev/shm/lg-gpu-vm is") && what.contains("0640"),
        "{what}"
    );
    assert!(
        shm[0]["fix"]
            .as_str()
            .unwrap()
            .contains("chmod 0660 /dev/shm/lg-gpu-vm"),
        "{shm:?}"
    );
}
