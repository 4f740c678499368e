//! Crash safety with the real binary: for every step N of prepare, SIGKILL right after step N was journaled
//! and applied (`VMGPU_CRASH_AFTER_STEP=N`), then `vmgpu restore` (or libvirt's `release`) → the host tree
//! equals the one before prepare.
use crate::fakehost::{FakeHost, assert_same, domain, stderr};

fn step_count() -> usize {
    let host = FakeHost::new();
    let out = host.hook(&["gpu-vm", "prepare", "begin", "-"], &domain("gpu-vm.xml"));
    assert!(out.status.success(), "{}", stderr(&out));
    let status = host.vmgpu(&["status", "--json"], "", &[]);
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    doc["vms"][0]["steps"].as_array().unwrap().len()
}

fn crash_at(host: &FakeHost, step: usize) {
    let n = step.to_string();
    let out = host.vmgpu(
        &["hook", "gpu-vm", "prepare", "begin", "-"],
        &domain("gpu-vm.xml"),
        &[("VMGPU_CRASH_AFTER_STEP", &n)],
    );
    assert_eq!(
        out.status.code(),
        None,
        "step {step}: expected SIGKILL, {}",
        stderr(&out)
    );
    assert!(host.path("/run/vmgpu/gpu-vm.json").exists());
}

#[test]
fn test_crash_after_every_step_then_restore_gives_original_host() {
    let steps = step_count();
    // two functions to vfio-pci, the CPU share, the hugepage share, the shm file
    assert!(steps >= 5, "only {steps} steps");
    for step in 1..=steps {
        let host = FakeHost::new();
        let before = host.snapshot();
        crash_at(&host, step);
        let out = host.vmgpu(&["restore", "gpu-vm"], "", &[]);
        assert!(out.status.success(), "step {step}: {}", stderr(&out));
        assert_eq!(
            host.snapshot(),
            before,
            "host differs after crash at step {step} + restore"
        );
        assert!(!host.path("/run/vmgpu/gpu-vm.json").exists());
    }
}

#[test]
fn test_crash_then_release_hook_restores_too() {
    let host = FakeHost::new();
    let before = host.snapshot();
    crash_at(&host, 3);
    let out = host.hook(
        &["gpu-vm", "release", "end", "failed"],
        &domain("gpu-vm.xml"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&before, &host.snapshot(), "after");
}

#[test]
fn test_crash_then_prepare_again_restores_first_then_prepares() {
    let host = FakeHost::new();
    let before = host.snapshot();
    crash_at(&host, 2);
    let prepare = host.hook(&["gpu-vm", "prepare", "begin", "-"], &domain("gpu-vm.xml"));
    assert!(prepare.status.success(), "{}", stderr(&prepare));
    let release = host.hook(&["gpu-vm", "release", "end", "-"], &domain("gpu-vm.xml"));
    assert!(release.status.success(), "{}", stderr(&release));
    assert_same(&before, &host.snapshot(), "after");
}

#[test]
fn test_restore_without_journal_says_nothing_to_do() {
    let host = FakeHost::new();
    let out = host.vmgpu(&["restore", "gpu-vm"], "", &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to restore"));
}

#[test]
fn test_restore_of_a_journal_without_steps_is_not_called_no_journal() {
    let host = FakeHost::new();
    host.file(
        "/run/vmgpu/gpu-vm.json",
        r#"{"format":1,"vm":"gpu-vm","phase":"preparing","pid":1,"started_unix":0,"holds":[],"steps":[]}"#,
    );

    let out = host.vmgpu(&["restore", "gpu-vm"], "", &[]);
    let text = String::from_utf8_lossy(&out.stdout);

    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("recorded no changes"), "{text}");
    assert!(!text.contains("no journal"), "{text}");
    assert!(!host.path("/run/vmgpu/gpu-vm.json").exists());
}
