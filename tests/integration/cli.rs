//! Every subcommand exists, has `--help`, and unknown ones fail with a usage error.
use std::process::Command;

fn vmgpu() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vmgpu"))
}

#[test]
fn test_every_subcommand_has_help() {
    for sub in [
        "check",
        "gpus",
        "hook",
        "define",
        "view",
        "setup",
        "install",
        "uninstall",
        "restore",
        "status",
    ] {
        let out = vmgpu().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub} --help failed");
        assert!(!out.stdout.is_empty(), "{sub} --help printed nothing");
    }
}

#[test]
fn test_unknown_subcommand_is_usage_error() {
    let out = vmgpu().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn test_closed_stdout_ends_quietly_like_sigpipe() {
    // `vmgpu status | head -0`: the reader is gone before vmgpu prints.
    let root = tempfile::tempdir().unwrap();
    let mut child = vmgpu()
        .arg("--root")
        .arg(root.path())
        .arg("status")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(141), "{err}");
}
