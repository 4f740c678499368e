//! Puts the git revision into `vmgpu --version` (`0.1.0 (84863e1)`); outside a git checkout (a source
//! tarball, a vendored copy) or without git the version is just the package version, never a build failure.
// Tests, benches and the build script may write files and start programs directly (clippy.toml).
#![allow(clippy::disallowed_methods)]
use std::path::{Path, PathBuf};
use std::process::Command;

/// `git -C dir ARGS` trimmed, or `None` when git is missing, fails, or prints nothing.
// The build script runs at build time, outside the product's side-effect layer (`ops/`).
#[allow(clippy::disallowed_methods)]
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The `--version` text for the package version and the source directory: with ` (REVISION)` in a checkout.
pub(crate) fn version(package: &str, dir: &Path) -> String {
    match git(dir, &["rev-parse", "--short", "HEAD"]) {
        Some(revision) => format!("{package} ({revision})"),
        None => package.to_string(),
    }
}

/// The git files whose change means a new revision: HEAD (branch switch), the branch's ref (new commit) and
/// packed-refs. Only files that exist, because cargo re-runs the script on every build for a missing one.
fn watched(dir: &Path) -> Vec<PathBuf> {
    let git_path =
        |name: &str| git(dir, &["rev-parse", "--git-path", name]).map(|path| dir.join(path));
    [
        git_path("HEAD"),
        git(dir, &["rev-parse", "--symbolic-full-name", "HEAD"]).and_then(|name| git_path(&name)),
        git_path("packed-refs"),
    ]
    .into_iter()
    .flatten()
    .filter(|path| path.exists())
    .collect()
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| ".".into()));
    for path in watched(&dir) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!(
        "cargo:rustc-env=VMGPU_VERSION={}",
        version(env!("CARGO_PKG_VERSION"), &dir)
    );
}
