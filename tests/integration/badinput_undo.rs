//! Bad input around the journal that is not a refused journal: a planted temporary, an undo that fails, a
//! failure whose errno must reach libvirt's one line, and `status` with a broken journal among good ones.
use crate::badinput_journal::Sandbox;
use crate::fakehost::{GPU, domain, stderr};
use crate::fixtures::stdout;

/// The one `vmgpu: …` line (what libvirt shows; without journald the log lines go to stderr too).
#[track_caller]
fn verdict(err: &str) -> String {
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("vmgpu: ")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    lines[0].to_string()
}

fn prepare(sandbox: &Sandbox) -> std::process::Output {
    sandbox
        .host
        .hook(&["gpu-vm", "prepare", "begin", "-"], &domain("gpu-vm.xml"))
}

#[test]
fn test_planted_temporary_link_is_never_followed() {
    let sandbox = Sandbox::new();
    let dir = sandbox.host.path("/run/vmgpu");
    std::fs::create_dir_all(&dir).unwrap();
    let canary = sandbox.outer.path().join("canary");
    std::os::unix::fs::symlink(&canary, dir.join(".gpu-vm.json.tmp")).unwrap();
    let out = prepare(&sandbox);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "canary\n");
    let mode = std::fs::metadata(&dir).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o700
    );
    let out = sandbox.host.vmgpu(&["restore", "gpu-vm"], "", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn test_journal_directory_that_is_a_link_is_refused_before_any_change() {
    let sandbox = Sandbox::new();
    let elsewhere = sandbox.outer.path().join("emptydir");
    std::os::unix::fs::symlink(&elsewhere, sandbox.host.path("/run/vmgpu")).unwrap();
    let before = sandbox.snapshot();
    let out = prepare(&sandbox);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a directory"), "{}", stderr(&out));
    assert_eq!(sandbox.snapshot(), before);
}

/// After a prepare, the pool and the shm file are made directories so their undo fails (EISDIR).
fn break_undo(sandbox: &Sandbox) {
    let pool = sandbox
        .host
        .path("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages");
    std::fs::remove_file(&pool).unwrap();
    std::fs::create_dir(&pool).unwrap();
    let shm = sandbox.host.path("/dev/shm/looking-glass");
    std::fs::remove_file(&shm).unwrap();
    std::fs::create_dir(&shm).unwrap();
}

#[test]
fn test_failed_restore_exits_1_names_each_step_left_and_keeps_the_journal() {
    let sandbox = Sandbox::new();
    assert!(prepare(&sandbox).status.success());
    break_undo(&sandbox);
    let out = sandbox.host.vmgpu(&["restore", "gpu-vm"], "", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = verdict(&stderr(&out));
    assert!(err.contains("left 2 step(s) not undone"), "{err}");
    assert!(
        err.contains("/dev/shm/looking-glass (33554432 bytes)"),
        "{err}"
    );
    assert!(err.contains("hugepages-2048kB/nr_hugepages"), "{err}");
    assert!(err.contains("(os error 21)"), "{err}");
    assert!(err.contains("run `vmgpu restore gpu-vm`"), "{err}");
    assert!(sandbox.host.path("/run/vmgpu/gpu-vm.json").exists());
    // The other steps were undone: the GPU is back on its driver.
    assert_eq!(sandbox.host.driver_of(GPU).as_deref(), Some("bochs-drm"));
    let status = sandbox.host.vmgpu(&["status", "--json"], "", &[]);
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(doc["vms"][0]["phase"], "releasing");
}

#[test]
fn test_errno_and_path_of_a_failed_prepare_reach_the_one_line_once() {
    let sandbox = Sandbox::new();
    // A host cgroup without its cpuset.cpus file: the write after the GPU's functions went to vfio-pci
    // fails with ENOENT (the pool and the cgroups are read at plan time, so this is the first write that can).
    std::fs::create_dir_all(sandbox.host.path("/sys/fs/cgroup/system.slice")).unwrap();
    let before = sandbox.host.snapshot();
    let out = prepare(&sandbox);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = verdict(&stderr(&out));
    assert!(err.contains("every change made so far was undone"), "{err}");
    assert!(err.contains("system.slice/cpuset.cpus"), "{err}");
    assert_eq!(err.matches("(os error 2)").count(), 1, "{err}");
    assert_eq!(before.diff(&sandbox.host.snapshot()), Vec::<String>::new());
}

#[test]
fn test_status_lists_every_vm_marks_the_broken_one_and_exits_1() {
    let sandbox = Sandbox::new();
    assert!(prepare(&sandbox).status.success());
    sandbox.write_journal("aaa-broken", "{\"format\":1,");
    sandbox.write_journal("zzz-other", "{\"format\":3,\"vm\":\"zzz-other\"}");
    let out = sandbox.host.vmgpu(&["status"], "", &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(text.contains("aaa-broken: BROKEN: journal"), "{text}");
    assert!(text.contains("gpu-vm: prepared"), "{text}");
    assert!(text.contains("zzz-other: BROKEN: journal"), "{text}");
    assert!(text.contains("format 3"), "{text}");
    let out = sandbox.host.vmgpu(&["status", "--json"], "", &[]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["vms"].as_array().unwrap().len(), 1);
    assert_eq!(doc["broken"].as_array().unwrap().len(), 2);
    assert_eq!(doc["broken"][0]["vm"], "aaa-broken");
}
