//! `vmgpu view` without a display: finding a VM's shared memory through libvirt (the test driver) and the
//! usage errors.
use std::process::Command;

fn vmgpu_view(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vmgpu"))
        .arg("view")
        .args(args)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap()
}

#[test]
fn test_view_without_vm_or_shm_is_a_usage_error() {
    let out = vmgpu_view(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--shm PATH"));
}

#[cfg(feature = "libvirt")]
#[test]
fn test_view_unknown_vm_names_it() {
    let out = vmgpu_view(&["no-such-vm", "-c", "test:///default"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no VM named no-such-vm"));
}

#[cfg(feature = "libvirt")]
#[test]
fn test_view_vm_without_shmem_says_how_to_fix() {
    let out = vmgpu_view(&["test", "-c", "test:///default"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no ivshmem-plain <shmem> device"));
}

#[test]
fn test_view_without_a_display_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let out = vmgpu_view(&["--shm", dir.path().join("missing").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open a window"));
}
