//! `vmgpu install` and `vmgpu setup` against copies of recorded host trees through the simulated kernel
//! (`ops::sim`): exactly the files they should write or change inside the root change, the programs the
//! tree does not have are recorded in `/run/vmgpu-sim/commands`, and a second run changes nothing.
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use crate::fixtures::{copy_of, stderr, stdout, vmgpu};

/// Every entry under a tree: a file's bytes, a link's target, or a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    File(Vec<u8>),
    Link(String),
    Dir,
}

fn snapshot(root: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).unwrap();
            out.insert(rel, Entry::Link(target.display().to_string()));
        } else if meta.is_dir() {
            out.insert(rel, Entry::Dir);
            walk(root, &path, out);
        } else {
            out.insert(rel, Entry::File(std::fs::read(&path).unwrap()));
        }
    }
}

/// The paths whose entry differs between two snapshots (added, removed or changed), files and links only.
fn changed(before: &BTreeMap<String, Entry>, after: &BTreeMap<String, Entry>) -> Vec<String> {
    let mut paths: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .filter(|p| before.get(*p) != Some(&Entry::Dir) && after.get(*p) != Some(&Entry::Dir))
        .cloned()
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

fn run(root: &Path, args: &[&str]) -> Output {
    vmgpu()
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("SUDO_USER")
        .env_remove("VMGPU_SETUP_FAIL_AFTER_WRITES")
        .output()
        .unwrap()
}

fn read(root: &Path, path: &str) -> String {
    std::fs::read_to_string(root.join(path)).unwrap_or_default()
}

fn is_vmgpu(path: &Path) -> bool {
    std::fs::read(path).ok() == std::fs::read(crate::install::hook_binary()).ok()
}

#[test]
fn test_install_on_the_seed_tree_writes_the_hook_and_a_rerun_changes_nothing() {
    let tree = copy_of("seed-tumbleweed-5900x");
    let root = tree.path();
    std::fs::create_dir_all(root.join("run/systemd/system")).unwrap();
    let before = snapshot(root);
    let out = run(root, &["install", "--restart"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = snapshot(root);
    // The daemon restart is the simulation's unit state; libvirtd is the seed's daemon.
    assert_eq!(
        changed(&before, &after),
        [
            "etc/libvirt/hooks/qemu",
            // the hook-only binary's pointer to the vmgpu that starts the viewer (cargo builds both)
            "etc/libvirt/hooks/vmgpu-cli-path",
            "run/vmgpu-sim/units/libvirtd.service"
        ]
    );
    let hook = root.join("etc/libvirt/hooks/qemu");
    assert!(is_vmgpu(&hook));
    let mode = std::os::unix::fs::PermissionsExt::mode(&hook.metadata().unwrap().permissions());
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(read(root, "run/vmgpu-sim/units/libvirtd.service"), "active");
    assert!(
        stdout(&out).contains("restarted libvirtd"),
        "{}",
        stdout(&out)
    );

    let mtime = hook.metadata().unwrap().modified().unwrap();
    let again = run(root, &["install"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("up to date"), "{}", stdout(&again));
    assert_eq!(snapshot(root), after);
    assert_eq!(hook.metadata().unwrap().modified().unwrap(), mtime);

    let gone = run(root, &["uninstall"]);
    assert!(gone.status.success(), "{}", stderr(&gone));
    assert_eq!(
        changed(&before, &snapshot(root)),
        ["run/vmgpu-sim/units/libvirtd.service"]
    );
}

/// What setup writes on the seed host for its second GPU: the guide's files corrected, the initramfs
/// configuration, the shared-memory file's owner, the hook.
const SEED_SETUP_FILES: &[&str] = &[
    "etc/apparmor.d/local/abstractions/libvirt-qemu",
    "etc/dracut.conf.d/gpu-passthrough.conf",
    "etc/dracut.conf.d/vfio.conf",
    "etc/libvirt/hooks/qemu",
    "etc/libvirt/hooks/vmgpu-cli-path",
    "etc/modprobe.d/kvm.conf",
    "etc/modprobe.d/vfio.conf",
    "etc/modules-load.d/vfio-pci.conf",
    "etc/sysconfig/libvirt-guests",
    "etc/tmpfiles.d/10-looking-glass.conf",
    "run/vmgpu-sim/commands",
];

#[test]
fn test_setup_on_the_seed_tree_writes_its_files_and_a_rerun_changes_nothing() {
    let tree = copy_of("seed-tumbleweed-5900x");
    let root = tree.path();
    let before = snapshot(root);
    let args = ["setup", "--gpu", "0000:04:00.0", "--user", "alice", "--yes"];
    let out = run(root, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = snapshot(root);
    let (records, written): (Vec<String>, Vec<String>) = changed(&before, &after)
        .into_iter()
        .partition(|p| p.starts_with("var/lib/vmgpu/"));
    assert_eq!(written, SEED_SETUP_FILES);
    assert!(!records.is_empty());
    // dracut is not in the tree: recorded, not run; `vmgpu install` ran as this binary on the same root.
    assert_eq!(
        read(root, "run/vmgpu-sim/commands"),
        "dracut --force --regenerate-all\n"
    );
    assert!(is_vmgpu(&root.join("etc/libvirt/hooks/qemu")));
    assert!(read(root, "etc/modprobe.d/vfio.conf").contains("ids=10de:17c8,10de:0fb0"));
    assert!(read(root, "etc/sysconfig/libvirt-guests").contains("\nON_SHUTDOWN=shutdown\n"));

    let again = run(root, &args);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("nothing to change"),
        "{}",
        stdout(&again)
    );
    assert_eq!(changed(&after, &snapshot(root)), Vec::<String>::new());

    // Undo puts every file it wrote back as it was (the hook stays: `vmgpu uninstall` removes it) and
    // replays the initramfs rebuild.
    let undo = run(root, &["setup", "--undo"]);
    assert!(undo.status.success(), "{}", stderr(&undo));
    let undone = snapshot(root);
    let left: Vec<String> = changed(&before, &undone)
        .into_iter()
        .filter(|p| !p.starts_with("var/lib/vmgpu/"))
        .collect();
    assert_eq!(
        left,
        [
            "etc/libvirt/hooks/qemu",
            "etc/libvirt/hooks/vmgpu-cli-path",
            "run/vmgpu-sim/commands"
        ]
    );
    assert_eq!(
        read(root, "run/vmgpu-sim/commands"),
        "dracut --force --regenerate-all\ndracut --force --regenerate-all\n"
    );
}

#[test]
fn test_setup_on_the_fedora_tree_simulates_services_groups_and_selinux() {
    let tree = copy_of("fedora-intel-turing");
    let root = tree.path();
    // alice is not in kvm yet, so setup adds her.
    let group = read(root, "etc/group").replace("kvm:x:36:qemu,alice", "kvm:x:36:qemu");
    std::fs::write(root.join("etc/group"), group).unwrap();
    // The tools setup checks for, present as the recorded trees have them: empty files, nothing to run.
    for tool in [
        "bin/dnf",
        "bin/systemctl",
        "sbin/usermod",
        "sbin/setsebool",
        "sbin/restorecon",
    ] {
        std::fs::write(root.join("usr").join(tool), "").unwrap();
    }
    let args = ["setup", "--user", "alice", "--yes", "--install-packages"];
    let out = run(root, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let commands = read(root, "run/vmgpu-sim/commands");
    let programs: Vec<&str> = commands
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        programs,
        [
            "dnf",
            "grubby",
            "dracut",
            "systemctl",
            "usermod",
            "setsebool"
        ],
        "{commands}"
    );
    assert!(read(root, "etc/group").contains("kvm:x:36:qemu,alice\n"));
    assert_eq!(
        read(root, "sys/fs/selinux/booleans/virt_hooks_unconfined"),
        "1 1"
    );
    let wants = root.join("etc/systemd/system/sockets.target.wants/virtnetworkd.socket");
    assert!(wants.symlink_metadata().is_ok());

    // What the simulation made true is not planned again (the package install always is).
    let plan = run(
        root,
        &[
            "setup",
            "--user",
            "alice",
            "--dry-run",
            "--install-packages",
        ],
    );
    assert!(plan.status.success(), "{}", stderr(&plan));
    let text = stdout(&plan);
    for done in ["systemctl enable", "usermod", "setsebool"] {
        assert!(!text.contains(done), "{done} planned again:\n{text}");
    }
}
