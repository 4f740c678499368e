//! The host model on recorded and derived trees: topology, distro detection, GPU units, and bad input.
use vmgpu::host::{Bootloader, CpuVendor, Family, Host, HostRoot, InitramfsTool, Verdict};

use super::fixtures;

fn read(name: &str) -> Host {
    Host::read(&HostRoot::new(fixtures::host(name))).unwrap()
}

#[test]
fn test_recorded_q35_turing_shape_four_functions_one_group() {
    let host = read("recorded/q35-iommu");

    let cards = host.gpus();

    let card = cards
        .iter()
        .find(|c| c.address().to_string() == "0000:02:00.0")
        .unwrap();
    assert_eq!(card.functions.len(), 4);
    assert_eq!(card.verdict, Verdict::PassableWithAllFunctions);
}

#[test]
fn test_recorded_q35_noiommu_has_no_groups() {
    let host = read("recorded/q35-noiommu");

    assert!(!host.iommu.enabled());
    assert!(host.pci.iter().all(|d| d.iommu_group.is_none()));
}

#[test]
fn test_seed_5900x_topology_two_ccx() {
    let host = read("seed-tumbleweed-5900x");

    let l3: Vec<String> = host.cpu.l3_groups().iter().map(|s| s.to_string()).collect();

    assert_eq!(host.cpu.physical_cores().len(), 12);
    assert_eq!(l3, ["0-5,12-17", "6-11,18-23"]);
    assert_eq!(host.cpu.vendor, CpuVendor::Amd);
}

#[test]
fn test_ubuntu_hybrid_cores_adjacent_siblings() {
    let host = read("ubuntu-builtin-vfio-twins");

    let cores = host.cpu.physical_cores();

    assert_eq!(cores.len(), 10);
    assert_eq!(cores[0].to_string(), "0-1");
    assert_eq!(cores[9].to_string(), "15");
}

#[test]
fn test_distro_detection_per_fixture() {
    let cases = [
        (
            "seed-tumbleweed-5900x",
            Family::OpenSuse,
            Bootloader::Grub2,
            InitramfsTool::Dracut,
        ),
        (
            "fedora-intel-turing",
            Family::Fedora,
            Bootloader::BlsGrubby,
            InitramfsTool::Dracut,
        ),
        (
            "arch-sdboot-iommu-off",
            Family::Arch,
            Bootloader::SystemdBoot,
            InitramfsTool::Mkinitcpio,
        ),
        (
            "ubuntu-builtin-vfio-twins",
            Family::Ubuntu,
            Bootloader::Grub2,
            InitramfsTool::InitramfsTools,
        ),
        (
            "cloud-vm-noiommu",
            Family::Debian,
            Bootloader::Grub2,
            InitramfsTool::InitramfsTools,
        ),
    ];
    for (name, family, bootloader, initramfs) in cases {
        let d = read(name).distro;
        assert_eq!(
            (d.family, d.bootloader, d.initramfs),
            (family, bootloader, initramfs),
            "{name}"
        );
    }
}

#[test]
fn test_ubuntu_vfio_builtin_detected() {
    let host = read("ubuntu-builtin-vfio-twins");

    assert!(host.kernel.vfio_pci_builtin());
    assert!(host.kernel.version() >= (6, 2));
}

#[test]
fn test_bench_tree_has_over_100_devices() {
    let host = read("bench-many-devices");

    assert!(host.pci.len() >= 100, "{}", host.pci.len());
}

/// Runs `vmgpu ARGS --root DIR` and returns (exit code, stderr).
fn run_on(dir: &std::path::Path, sub: &str) -> (Option<i32>, String) {
    let out = fixtures::vmgpu()
        .args([sub, "--root"])
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_clear_error(code: Option<i32>, stderr: &str, needle: &str) {
    assert_eq!(code, Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(needle), "{stderr}");
}

#[test]
fn test_missing_root_is_clear_error() {
    let (code, stderr) = run_on(std::path::Path::new("/nonexistent/vmgpu-root"), "check");

    assert_clear_error(code, &stderr, "does not exist");
}

#[test]
fn test_half_empty_tree_is_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sys/bus/pci/devices")).unwrap();
    std::fs::create_dir_all(dir.path().join("proc")).unwrap();

    let (code, stderr) = run_on(dir.path(), "gpus");

    assert_clear_error(
        code,
        &stderr,
        "is not a host tree: /proc/cmdline is missing",
    );
}

#[test]
fn test_dangling_driver_link_is_clear_error() {
    let dir = fixtures::copy_of("cloud-vm-noiommu");
    let link = dir
        .path()
        .join("sys/devices/pci0000:00/0000:00:1c.0/0000:01:00.0/driver");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("../../../../bus/pci/drivers/nvidia", &link).unwrap();

    let (code, stderr) = run_on(dir.path(), "check");

    assert_clear_error(
        code,
        &stderr,
        "driver points to ../../../../bus/pci/drivers/nvidia",
    );
}

#[test]
fn test_garbage_class_is_clear_error() {
    let dir = fixtures::copy_of("cloud-vm-noiommu");
    let class = dir
        .path()
        .join("sys/devices/pci0000:00/0000:00:1c.0/0000:01:00.0/class");
    std::fs::write(&class, "VGA compatible controller\n").unwrap();

    let (code, stderr) = run_on(dir.path(), "gpus");

    assert_clear_error(code, &stderr, "class: expected a hexadecimal number");
}

#[test]
fn test_garbage_cpu_list_is_clear_error() {
    let dir = fixtures::copy_of("cloud-vm-noiommu");
    std::fs::write(dir.path().join("sys/devices/system/cpu/online"), "0-\n").unwrap();

    let (code, stderr) = run_on(dir.path(), "check");

    assert_clear_error(code, &stderr, "not a CPU list");
}
