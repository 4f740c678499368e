//! `vmgpu install` / `uninstall` through `--root`: the main hook path when free or ours, `qemu.d/vmgpu`
//! next to a foreign hook, never overwriting or deleting a foreign one; NixOS's hooks directory.
use crate::fakehost::{FakeHost, stderr};

const FOREIGN: &str = "#!/bin/sh\n# someone else's hook\nexit 0\n";

/// What `install` copies: the hook-only `vmgpu-hook` beside the binary under test (cargo builds both), or the
/// binary itself where there is none (`VMGPU_TEST_BIN`).
pub(crate) fn hook_binary() -> std::path::PathBuf {
    let sibling = crate::fakehost::binary().with_file_name("vmgpu-hook");
    if sibling.exists() {
        sibling
    } else {
        crate::fakehost::binary()
    }
}

fn is_vmgpu_copy(path: &std::path::Path) -> bool {
    std::fs::read(path).unwrap() == std::fs::read(hook_binary()).unwrap()
}

/// The `NEEDED` libraries' names sit in the ELF's dynamic string table: a plain byte search finds them.
fn mentions(binary: &std::path::Path, library: &str) -> bool {
    let bytes = std::fs::read(binary).unwrap();
    bytes
        .windows(library.len())
        .any(|w| w == library.as_bytes())
}

#[test]
fn test_install_copies_the_hook_only_binary_which_links_neither_libvirt_nor_libpulse() {
    let hook = std::path::PathBuf::from(env!("CARGO_BIN_EXE_vmgpu-hook"));
    let full = std::path::PathBuf::from(env!("CARGO_BIN_EXE_vmgpu"));
    for library in ["libvirt.so.0", "libpulse.so.0", "libpulse-simple.so.0"] {
        // only where the default build links it (a --no-default-features build links neither)
        if mentions(&full, library) {
            assert!(!mentions(&hook, library), "vmgpu-hook needs {library}");
        }
    }
    let host = FakeHost::new();
    let out = host.vmgpu(&["install"], "", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    if hook_binary().ends_with("vmgpu-hook") {
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("vmgpu-hook)"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        // the hook starts the viewer with the vmgpu that installed it
        let pointer = host.read("/etc/libvirt/hooks/vmgpu-cli-path");
        assert_eq!(
            std::path::Path::new(&pointer),
            crate::fakehost::binary().canonicalize().unwrap()
        );
        assert!(host.vmgpu(&["uninstall"], "", &[]).status.success());
        assert!(!host.path("/etc/libvirt/hooks/vmgpu-cli-path").exists());
    }
}

#[test]
fn test_install_skips_a_hook_binary_of_another_build() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("vmgpu");
    std::fs::copy(crate::fakehost::binary(), &exe).unwrap();
    std::fs::write(
        dir.path().join("vmgpu-hook"),
        "#!/bin/sh\n# vmgpu-hook-marker:3f9c1e7a-libvirt-qemu-hook 0.0.1\n",
    )
    .unwrap();
    let host = FakeHost::new();
    let out = std::process::Command::new(&exe)
        .arg("--root")
        .arg(host.root())
        .arg("install")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("of another build"),
        "{}",
        stderr(&out)
    );
    let installed = std::fs::read(host.path("/etc/libvirt/hooks/qemu")).unwrap();
    assert_eq!(installed, std::fs::read(&exe).unwrap());
    assert!(!host.path("/etc/libvirt/hooks/vmgpu-cli-path").exists());
}

#[test]
fn test_hook_binary_runs_as_the_hook_and_refuses_other_use() {
    let hook = std::path::PathBuf::from(env!("CARGO_BIN_EXE_vmgpu-hook"));
    let out = std::process::Command::new(&hook)
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("vmgpu install"), "{}", stderr(&out));
    // as libvirt runs it: hooks/qemu VM OP SUB -, a domain without vmgpu metadata is none of its business
    let dir = tempfile::tempdir().unwrap();
    let qemu = dir.path().join("qemu");
    std::fs::copy(&hook, &qemu).unwrap();
    let mut child = std::process::Command::new(&qemu)
        .args(["other-vm", "started", "begin", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(b"<domain type='kvm'><name>other-vm</name></domain>");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "the hook printed to stdout");
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
