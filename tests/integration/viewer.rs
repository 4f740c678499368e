//! `vmgpu view` without a display: finding a VM's shared memory through libvirt (the test driver) and the
//! usage errors.
use std::process::Command;

fn vmgpu_view(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vmgpu"))
        .arg("view")
        .args(args)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("WAYLAND_SOCKET")
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
    let shm = dir.path().join("looking-glass");
    std::fs::write(&shm, vec![0u8; 1 << 20]).unwrap();

    let out = vmgpu_view(&["--shm", shm.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);

    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("cannot open a window"), "{err}");
    assert!(!err.contains(".rs:") && !err.contains(".;"), "{err}");
}

#[test]
fn test_view_missing_shm_without_a_display_names_the_file_first() {
    let dir = tempfile::tempdir().unwrap();
    let out = vmgpu_view(&["--shm", dir.path().join("missing").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);

    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("missing does not exist"), "{err}");
    assert!(!err.contains("cannot open a window"), "{err}");
}

#[test]
fn test_view_shm_that_is_a_directory_is_refused_before_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let out = vmgpu_view(&["--shm", dir.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);

    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("is a directory"), "{err}");
}
