//! Helpers for the host fixtures: their paths, a copy to break for bad-input tests, and the binary.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The five machines `vmgpu check` and `gpus` are snapshot-tested on (see tests/fixtures/hosts/*/PROVENANCE.md).
pub const MACHINES: &[&str] = &[
    "seed-tumbleweed-5900x",
    "fedora-intel-turing",
    "arch-sdboot-iommu-off",
    "ubuntu-builtin-vfio-twins",
    "cloud-vm-noiommu",
];

/// `tests/fixtures/hosts/<name>`.
pub fn host(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hosts")
        .join(name)
}

/// The vmgpu binary.
pub fn vmgpu() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vmgpu"))
}

/// A command's standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command's standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Copies a fixture tree (symlinks as links) into a new temporary directory.
pub fn copy_of(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&host(name), dir.path());
    dir
}

/// Copies a fixture tree (symlinks as links) into `dst`.
pub fn copy_into(name: &str, dst: &Path) {
    copy_tree(&host(name), dst);
}

fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let target = dst.join(entry.file_name());
        let ft = entry.file_type().unwrap();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), target).unwrap();
        } else if ft.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
