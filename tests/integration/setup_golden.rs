//! Golden dry-run plans of `vmgpu setup` for every host fixture, committed under `tests/fixtures/setup/` to be
//! read and reviewed. `UPDATE_GOLDEN=1 cargo test --test integration setup_golden` rewrites them.
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The dry-run output as the user sees it: the plan, or the error and exit code.
fn dry_run(root: &Path, gpu: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vmgpu"))
        .arg("--root")
        .arg(root)
        .args(["setup", "--dry-run", "--user", "alice", "--gpu", gpu])
        .env_remove("SUDO_USER")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        stdout
    } else {
        format!(
            "exit {}\n{stdout}{}",
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

fn golden(name: &str, actual: &str) {
    let path = repo().join(format!("tests/fixtures/setup/{name}.plan"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(
        actual,
        expected,
        "{name}: the plan differs from {}",
        path.display()
    );
}

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/hosts").join(name)
}

#[test]
fn test_golden_seed_tumbleweed() {
    let name = "seed-tumbleweed-5900x";
    golden(name, &dry_run(&fixture(name), "0000:04:00.0"));
}

/// The seed host before its owner followed the guide: the plan is the guide's own changes.
#[test]
fn test_golden_seed_tumbleweed_before_the_guide() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(fixture("seed-tumbleweed-5900x"))
        .arg(dir.path().join("host"))
        .status()
        .unwrap();
    assert!(status.success());
    let root = dir.path().join("host");
    let grub = std::fs::read_to_string(root.join("etc/default/grub")).unwrap();
    std::fs::write(
        root.join("etc/default/grub"),
        grub.replace(
            "GRUB_CMDLINE_LINUX=\"iommu=pt amd_iommu=on rd.driver.pre=vfio-pci\"",
            "GRUB_CMDLINE_LINUX=\"\"",
        ),
    )
    .unwrap();
    for f in [
        "etc/modprobe.d/vfio.conf",
        "etc/modprobe.d/kvm.conf",
        "etc/modules-load.d/vfio-pci.conf",
        "etc/dracut.conf.d/gpu-passthrough.conf",
    ] {
        std::fs::remove_file(root.join(f)).unwrap();
    }
    let plan = dry_run(&root, "0000:04:00.0");
    contrib_matches(&root);
    for needle in [
        "+GRUB_CMDLINE_LINUX=\"iommu=pt amd_iommu=on rd.driver.pre=vfio-pci\"",
        "grub2-mkconfig -o /boot/grub2/grub.cfg",
        "+options vfio-pci ids=10de:17c8,10de:0fb0",
        "+force_drivers+=\" vfio_pci vfio vfio_iommu_type1 \"",
        "+kvm_amd",
        "+options kvm ignore_msrs=1",
        "qemu-ovmf-x86_64",
    ] {
        assert!(plan.contains(needle), "missing {needle:?} in\n{plan}");
    }
    assert!(!plan.contains("vfio_virqfd"), "{plan}");
    golden("seed-tumbleweed-5900x-before-guide", &plan);
}

#[test]
fn test_golden_fedora_intel_turing() {
    let name = "fedora-intel-turing";
    golden(name, &dry_run(&fixture(name), "0000:01:00.0"));
}

#[test]
fn test_golden_arch_sdboot_iommu_off() {
    let name = "arch-sdboot-iommu-off";
    golden(name, &dry_run(&fixture(name), "0000:03:00.0"));
}

#[test]
fn test_golden_ubuntu_builtin_vfio_twins() {
    let name = "ubuntu-builtin-vfio-twins";
    golden(name, &dry_run(&fixture(name), "0000:05:00.0"));
}

#[test]
fn test_golden_cloud_vm_noiommu() {
    let name = "cloud-vm-noiommu";
    golden(name, &dry_run(&fixture(name), "0000:01:00.0"));
}

/// `contrib/` holds what setup writes on the seed host before the guide (with `--kvmfr`).
fn contrib_matches(root: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_vmgpu"))
        .arg("--root")
        .arg(root)
        .args([
            "setup",
            "--dry-run",
            "--json",
            "--kvmfr",
            "--user",
            "alice",
            "--gpu",
            "0000:04:00.0",
        ])
        .env_remove("SUDO_USER")
        .output()
        .unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut compared = 0;
    for f in plan["files"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap();
        let contrib = repo()
            .join("contrib")
            .join(path.trim_start_matches("/etc/"));
        if path == "/etc/default/grub" || path == "/etc/sysconfig/libvirt-guests" {
            continue;
        }
        let text = std::fs::read_to_string(&contrib).unwrap_or_default();
        assert_eq!(
            text,
            f["after"].as_str().unwrap(),
            "{} is out of date",
            contrib.display()
        );
        compared += 1;
    }
    assert!(compared >= 8, "only {compared} contrib files compared");
}
