//! `vmgpu setup` end to end on host trees: the seed plan, apply/no-op/undo byte for byte, and bad input
//! (unknown bootloader, missing tool, only display GPU, manual edits, a failing command, a crash between
//! two writes). Apply tests chroot into a busybox tree, so they need root (CI runs as root).
use std::process::{Command, Output};

use crate::fixtures::{stderr, stdout};
use crate::setup_tree::{Function, Tree};

fn vmgpu(tree: &Tree, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmgpu"))
        .arg("--root")
        .arg(tree.dir.path())
        .arg("setup")
        .args(args)
        .env_remove("SUDO_USER")
        .env_remove("VMGPU_SETUP_FAIL_AFTER_WRITES")
        .output()
        .unwrap()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

const APPLY: &[&str] = &[
    "--gpu",
    "0000:04:00.0",
    "--yes",
    "--no-hook",
    "--user",
    "alice",
];

#[test]
fn test_setup_dry_run_changes_nothing() {
    let tree = Tree::seed();
    let before = tree.snapshot();
    let out = vmgpu(&tree, &["--gpu", "0000:04:00.0", "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tree.snapshot(), before);
}

#[test]
fn test_setup_json_plan_is_parseable() {
    let tree = Tree::seed();
    let out = vmgpu(&tree, &["--gpu", "0000:04:00.0", "--dry-run", "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["kernel_params"][0], "iommu=pt");
}

#[test]
fn test_setup_unknown_bootloader_is_refused_with_params() {
    let tree = Tree::new("ID=gentoo\n", "6.12.0", crate::setup_tree::SEED_GPUS);
    let before = tree.snapshot();
    let out = vmgpu(&tree, &["--gpu", "0000:04:00.0", "--yes"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("bootloader of this host was not recognised"),
        "{err}"
    );
    assert!(err.contains("iommu=pt amd_iommu=on"), "{err}");
    assert_eq!(tree.snapshot(), before);
}

#[test]
fn test_setup_only_display_gpu_is_refused() {
    let tree = Tree::new(
        "ID=debian\n",
        "6.1.0",
        &[Function("0000:01:00.0", 0x030000, "1002:73bf", 1, true)],
    );
    tree.write("etc/default/grub", "GRUB_CMDLINE_LINUX=\"\"\n");
    let out = vmgpu(&tree, &["--gpu", "0000:01:00.0", "--yes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("only display GPU"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn test_setup_shell_syntax_in_grub_is_refused() {
    let tree = Tree::seed();
    tree.write("etc/default/grub", "GRUB_CMDLINE_LINUX=\"$EXTRA quiet\"\n");
    let out = vmgpu(&tree, &["--gpu", "0000:04:00.0", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot edit /etc/default/grub"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn test_setup_missing_regeneration_tool_changes_nothing() {
    let tree = Tree::seed();
    let before = tree.snapshot();
    let out = vmgpu(&tree, &["--gpu", "0000:04:00.0", "--yes", "--no-hook"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("`grub2-mkconfig` is not installed"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(tree.snapshot(), before);
    assert!(!tree.path("var/lib/vmgpu").exists());
}

#[test]
fn test_setup_apply_writes_and_rerun_is_noop() {
    if !is_root() {
        eprintln!("skipped: needs root for chroot");
        return;
    }
    let tree = Tree::debian_with_tools();
    let out = vmgpu(&tree, APPLY);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        tree.read("boot/grub/grub.cfg")
            .contains("iommu=pt amd_iommu=on")
    );
    assert!(
        tree.read("boot/initrd.img-6.1.0-13-amd64")
            .contains("vfio_virqfd")
    );
    assert!(
        tree.read("etc/modprobe.d/vfio.conf")
            .contains("ids=10de:17c8,10de:0fb0")
    );
    let again = vmgpu(&tree, APPLY);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("nothing to change"),
        "{}",
        stdout(&again)
    );
    // The parameters line says they are already set, not the same words as when they change.
    assert!(
        stdout(&again).contains("iommu=pt amd_iommu=on (already set: no boot change)"),
        "{}",
        stdout(&again)
    );
    let backups = std::fs::read_dir(tree.path("var/lib/vmgpu/backup"))
        .unwrap()
        .count();
    assert_eq!(backups, 1);
}

#[test]
fn test_setup_undo_restores_every_file_byte_for_byte() {
    if !is_root() {
        eprintln!("skipped: needs root for chroot");
        return;
    }
    let tree = Tree::debian_with_tools();
    let before = tree.snapshot();
    assert!(vmgpu(&tree, APPLY).status.success());
    assert_ne!(tree.snapshot(), before);
    let out = vmgpu(&tree, &["--undo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tree.snapshot(), before);
}

#[test]
fn test_setup_crash_between_two_writes_is_undone() {
    if !is_root() {
        eprintln!("skipped: needs root for chroot");
        return;
    }
    let tree = Tree::debian_with_tools();
    let before = tree.snapshot();
    let out = Command::new(env!("CARGO_BIN_EXE_vmgpu"))
        .arg("--root")
        .arg(tree.dir.path())
        .arg("setup")
        .args(APPLY)
        .env("VMGPU_SETUP_FAIL_AFTER_WRITES", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("stopped after 1 file"),
        "{}",
        stderr(&out)
    );
    let changed = tree
        .snapshot()
        .iter()
        .filter(|f| !before.contains(f))
        .count();
    assert_eq!(changed, 1, "exactly one file was replaced before the crash");
    let undo = vmgpu(&tree, &["--undo"]);
    assert!(undo.status.success(), "{}", stderr(&undo));
    assert_eq!(tree.snapshot(), before);
}

#[test]
fn test_setup_failing_command_puts_files_back() {
    if !is_root() {
        eprintln!("skipped: needs root for chroot");
        return;
    }
    let tree = Tree::debian_with_tools();
    tree.script(
        "usr/sbin/update-initramfs",
        "#!/bin/sh\necho broken > /boot/initrd.img-6.1.0-13-amd64\nexit 3\n",
    );
    let before = tree.snapshot();
    let out = vmgpu(&tree, APPLY);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("every file was put back"),
        "{}",
        stderr(&out)
    );
    assert_eq!(tree.snapshot(), before);
}

#[test]
fn test_setup_second_run_after_manual_edit_keeps_it_and_undo_refuses() {
    if !is_root() {
        eprintln!("skipped: needs root for chroot");
        return;
    }
    let tree = Tree::debian_with_tools();
    assert!(vmgpu(&tree, APPLY).status.success());
    let edited = tree
        .read("etc/default/grub")
        .replace("GRUB_TIMEOUT=5", "GRUB_TIMEOUT=2")
        .replace(" amd_iommu=on", "");
    tree.write("etc/default/grub", &edited);

    let undo = vmgpu(&tree, &["--undo"]);
    assert_eq!(undo.status.code(), Some(2));
    assert!(
        stderr(&undo).contains("edited since vmgpu setup"),
        "{}",
        stderr(&undo)
    );
    assert_eq!(tree.read("etc/default/grub"), edited);

    let rerun = vmgpu(
        &tree,
        &["--gpu", "0000:04:00.0", "--dry-run", "--user", "alice"],
    );
    let text = stdout(&rerun);
    assert!(text.contains("changed by hand since vmgpu setup"), "{text}");
    assert!(
        text.contains("+GRUB_CMDLINE_LINUX=\"iommu=pt amd_iommu=on\""),
        "{text}"
    );
    assert!(!text.contains("-GRUB_TIMEOUT=2"), "{text}");
}

#[test]
fn test_check_after_setup_reports_what_did_not_take_effect() {
    if !is_root() {
        eprintln!("skipped: needs root for chroot");
        return;
    }
    let tree = Tree::debian_with_tools();
    assert!(vmgpu(&tree, APPLY).status.success());
    let severity = |tree: &Tree, id: &str| -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_vmgpu"))
            .arg("--root")
            .arg(tree.dir.path())
            .args(["check", "--json", "--gpu", "0000:04:00.0"])
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .map(|f| f["severity"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(severity(&tree, "setup.record"), "PASS");
    assert_eq!(severity(&tree, "setup.kernel_params"), "FAIL");
    assert_eq!(severity(&tree, "setup.vfio_bound"), "FAIL");

    // "Reboot": the new command line, vfio-pci on both functions.
    tree.write(
        "proc/cmdline",
        "BOOT_IMAGE=/vmlinuz root=/dev/sda1 iommu=pt amd_iommu=on quiet\n",
    );
    std::fs::create_dir_all(tree.path("sys/bus/pci/drivers/vfio-pci")).unwrap();
    for f in ["0000:04:00.0", "0000:04:00.1"] {
        std::os::unix::fs::symlink(
            "../../../bus/pci/drivers/vfio-pci",
            tree.path(&format!("sys/devices/pci0000:00/{f}/driver")),
        )
        .unwrap();
    }
    assert_eq!(severity(&tree, "setup.kernel_params"), "PASS");
    assert_eq!(severity(&tree, "setup.vfio_bound"), "PASS");
}

#[test]
fn test_setup_installs_the_hook_once() {
    if !is_root() {
        eprintln!("skipped: needs root for chroot");
        return;
    }
    let tree = Tree::debian_with_tools();
    let with_hook = ["--gpu", "0000:04:00.0", "--yes", "--user", "alice"];
    let out = vmgpu(&tree, &with_hook);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        tree.path("etc/libvirt/hooks/qemu").exists(),
        "{}",
        stderr(&out)
    );
    let again = vmgpu(&tree, &with_hook);
    assert!(
        stdout(&again).contains("nothing to change"),
        "{}",
        stdout(&again)
    );
}

#[test]
fn test_setup_read_only_etc_writes_nothing() {
    if !is_root() {
        eprintln!("skipped: needs root for a private mount namespace");
        return;
    }
    let tree = Tree::debian_with_tools();
    let before = tree.snapshot();
    let etc = tree.path("etc");
    let script = format!(
        "mount --bind {etc} {etc} && mount -o remount,bind,ro {etc} && exec \"$0\" --root {root} setup {args}",
        etc = etc.display(),
        root = tree.dir.path().display(),
        args = APPLY.join(" ")
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .arg(env!("CARGO_BIN_EXE_vmgpu"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("cannot write") && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(tree.snapshot(), before);
    assert!(!tree.path("var/lib/vmgpu/backup").exists());
}
