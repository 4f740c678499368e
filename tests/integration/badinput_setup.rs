//! The setup and define part of the bad-input corpus: `/etc/default/grub` shell syntax on the lines setup
//! edits, and a `--user` that does not exist. Each case runs on a copy of a recorded host inside a sandbox
//! with a canary outside the root; it must be refused naming the line (or the user), and the sandbox must
//! not change.
use std::collections::BTreeMap;
use std::path::Path;

use crate::fixtures::{copy_into, stderr, vmgpu};

const HOST: &str = "ubuntu-builtin-vfio-twins";
const GPU: &str = "0000:05:00.0";

pub struct Case {
    pub name: &'static str,
    /// `/etc/default/grub`, or `None` to keep the fixture's.
    pub grub: Option<&'static str>,
    pub args: Vec<&'static str>,
    pub message: &'static str,
}

fn grub(name: &'static str, text: &'static str, message: &'static str) -> Case {
    Case {
        name,
        grub: Some(text),
        args: vec!["setup", "--dry-run", "--user", "alice", "--gpu", GPU],
        message,
    }
}

fn user(name: &'static str, args: &[&'static str], message: &'static str) -> Case {
    Case {
        name,
        grub: None,
        args: args.to_vec(),
        message,
    }
}

pub fn cases() -> Vec<Case> {
    vec![
        grub(
            "trailing command",
            "GRUB_CMDLINE_LINUX=\"quiet\"; rm -rf /boot\n",
            "line 1 ",
        ),
        grub(
            "trailing semicolon",
            "GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX=\"quiet\" ;\n",
            "line 2 ",
        ),
        grub(
            "and-list after value",
            "GRUB_CMDLINE_LINUX=quiet && reboot\n",
            "line 1 ",
        ),
        grub(
            "inside if fi",
            "if [ -e /etc/x ]; then\n  GRUB_CMDLINE_LINUX=\"quiet\"\nfi\n",
            "line 2 ",
        ),
        grub(
            "one-line if",
            "if true; then GRUB_CMDLINE_LINUX=\"quiet\"; fi\n",
            "line 1 ",
        ),
        grub(
            "inside else",
            "if false; then\n  X=1\nelse\n  GRUB_CMDLINE_LINUX=\"a\"\nfi\n",
            "line 4 ",
        ),
        grub(
            "inside case",
            "case \"$x\" in\n  a) GRUB_CMDLINE_LINUX=\"a\" ;;\nesac\n",
            "line 2 ",
        ),
        grub(
            "inside a loop",
            "for i in 1; do\nGRUB_CMDLINE_LINUX=\"a\"\ndone\n",
            "line 2 ",
        ),
        grub(
            "inside a function",
            "setit() {\n  GRUB_CMDLINE_LINUX=\"a\"\n}\nsetit\n",
            "line 2 ",
        ),
        grub(
            "behind a test",
            "[ -d /sys/firmware/efi ] && GRUB_CMDLINE_LINUX=\"a\"\n",
            "line 1 ",
        ),
        grub(
            "dot include",
            "GRUB_CMDLINE_LINUX=\"\"\n. /etc/default/grub.local\n",
            "line 2 ",
        ),
        grub(
            "source include",
            "source /etc/default/grub.local\nGRUB_CMDLINE_LINUX=\"\"\n",
            "line 1 ",
        ),
        grub(
            "unset after",
            "GRUB_CMDLINE_LINUX=\"\"\nunset GRUB_CMDLINE_LINUX\n",
            "line 2 ",
        ),
        grub(
            "default var in if",
            "GRUB_CMDLINE_LINUX=\"\"\nif x; then\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nfi\n",
            "line 3 ",
        ),
        grub(
            "command substitution",
            "GRUB_CMDLINE_LINUX=\"$(cat /etc/x)\"\n",
            "line 1 ",
        ),
        grub(
            "string across lines",
            "GRUB_CMDLINE_LINUX=\"quiet\nsplash\"\n",
            "line 1 ",
        ),
        user(
            "setup for a user who does not exist",
            &["setup", "--dry-run", "--user", "mallory", "--gpu", GPU],
            "--user \"mallory\" does not exist",
        ),
        user(
            "setup for a passwd-injection user",
            &["setup", "--dry-run", "--user", "alice:x:0:0", "--gpu", GPU],
            "does not exist",
        ),
        user(
            "setup for an empty user",
            &["setup", "--dry-run", "--user", "", "--gpu", GPU],
            "does not exist",
        ),
        user(
            "define for a user who does not exist",
            &["define", "--dry-run", "--gpu", "none", "--user", "mallory"],
            "--user \"mallory\" does not exist",
        ),
        user(
            "define for a numeric user",
            &["define", "--dry-run", "--gpu", "none", "--user", "4242"],
            "--user \"4242\" does not exist",
        ),
    ]
}

fn snapshot(dir: &Path, base: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let rel = path.strip_prefix(base).unwrap().display().to_string();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            snapshot(&path, base, out);
        } else if meta.file_type().is_symlink() {
            out.insert(
                rel,
                std::fs::read_link(&path)
                    .unwrap()
                    .display()
                    .to_string()
                    .into(),
            );
        } else {
            out.insert(rel, std::fs::read(&path).unwrap_or_default());
        }
    }
}

/// Runs every case; returns the failures.
pub fn run_all(cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let outer = tempfile::tempdir().unwrap();
        std::fs::write(outer.path().join("canary"), "canary\n").unwrap();
        let root = outer.path().join("root");
        copy_into(HOST, &root);
        if let Some(text) = case.grub {
            std::fs::write(root.join("etc/default/grub"), text).unwrap();
        }
        let mut before = BTreeMap::new();
        snapshot(outer.path(), outer.path(), &mut before);
        let out = vmgpu()
            .arg("--root")
            .arg(&root)
            .args(&case.args)
            .env_remove("SUDO_USER")
            .env("XDG_CONFIG_HOME", root.join("no-user-templates"))
            .output()
            .unwrap();
        let err = stderr(&out);
        if out.status.success() {
            failures.push(format!("{}: accepted", case.name));
        }
        if !err.contains(case.message) {
            failures.push(format!("{}: {err:?} lacks {:?}", case.name, case.message));
        }
        if !out.stdout.is_empty() {
            failures.push(format!("{}: printed a plan or domain", case.name));
        }
        let mut after = BTreeMap::new();
        snapshot(outer.path(), outer.path(), &mut after);
        if before != after {
            failures.push(format!("{}: the sandbox changed", case.name));
        }
    }
    failures
}

#[test]
fn test_bad_setup_and_define_input_refused_naming_line_or_user() {
    let failures = run_all(&cases());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
