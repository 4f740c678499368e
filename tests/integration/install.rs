//! `vmgpu install` / `uninstall` through `--root`: the main hook path when free or ours, `qemu.d/vmgpu`
//! next to a foreign hook, never overwriting or deleting a foreign one; NixOS's hooks directory.
use crate::fakehost::{FakeHost, stderr};

const FOREIGN: &str = "#!/bin/sh\n# someone else's hook\nexit 0\n";

fn is_vmgpu_copy(path: &std::path::Path) -> bool {
    std::fs::read(path).unwrap() == std::fs::read(crate::fakehost::binary()).unwrap()
}

#[test]
fn test_install_into_free_path_copies_binary() {
    let host = FakeHost::new();
    let out = host.vmgpu(&["install"], "", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let hook = host.path("/etc/libvirt/hooks/qemu");
    assert!(is_vmgpu_copy(&hook));
    let meta = std::fs::symlink_metadata(&hook).unwrap();
    assert!(meta.is_file());
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o755
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("systemctl restart libvirtd"));
}

#[test]
fn test_install_twice_replaces_own_hook() {
    let host = FakeHost::new();
    assert!(host.vmgpu(&["install"], "", &[]).status.success());
    assert!(host.vmgpu(&["install"], "", &[]).status.success());
    assert!(is_vmgpu_copy(&host.path("/etc/libvirt/hooks/qemu")));
    assert!(!host.path("/etc/libvirt/hooks/qemu.d/vmgpu").exists());
}

#[test]
fn test_install_next_to_foreign_hook_uses_qemu_d() {
    let host = FakeHost::new();
    host.file("/etc/libvirt/hooks/qemu", FOREIGN);
    assert!(host.vmgpu(&["install"], "", &[]).status.success());
    assert_eq!(host.read("/etc/libvirt/hooks/qemu"), FOREIGN.trim());
    assert!(is_vmgpu_copy(&host.path("/etc/libvirt/hooks/qemu.d/vmgpu")));
}

#[test]
fn test_install_with_both_paths_foreign_refuses() {
    let host = FakeHost::new();
    host.file("/etc/libvirt/hooks/qemu", FOREIGN);
    host.file("/etc/libvirt/hooks/qemu.d/vmgpu", FOREIGN);
    let out = host.vmgpu(&["install"], "", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(host.read("/etc/libvirt/hooks/qemu.d/vmgpu"), FOREIGN.trim());
}

#[test]
fn test_uninstall_removes_ours_keeps_foreign() {
    let host = FakeHost::new();
    host.file("/etc/libvirt/hooks/qemu", FOREIGN);
    assert!(host.vmgpu(&["install"], "", &[]).status.success());
    let out = host.vmgpu(&["uninstall"], "", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!host.path("/etc/libvirt/hooks/qemu.d/vmgpu").exists());
    assert_eq!(host.read("/etc/libvirt/hooks/qemu"), FOREIGN.trim());
}

#[test]
fn test_install_on_nixos_uses_var_lib() {
    let host = FakeHost::new();
    host.file("/etc/os-release", "NAME=NixOS\nID=nixos\n");
    assert!(host.vmgpu(&["install"], "", &[]).status.success());
    assert!(is_vmgpu_copy(&host.path("/var/lib/libvirt/hooks/qemu")));
}

#[test]
fn test_install_restart_with_systemd_restarts_detected_daemon() {
    let host = FakeHost::new();
    std::fs::create_dir_all(host.path("/run/systemd/system")).unwrap();
    std::fs::create_dir_all(host.path("/sys/fs/cgroup/system.slice/virtqemud.service")).unwrap();
    let out = host.vmgpu(&["install", "--restart"], "", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("restarted virtqemud"));
}
