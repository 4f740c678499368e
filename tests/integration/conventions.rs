//! What users expect of a command-line tool: `--version` with the git revision, shell completions and a man
//! page from the clap definitions, and `NO_COLOR` honoured on a terminal. And what the code's readers expect:
//! no source file over [`MAX_SOURCE_LINES`], and the side-effect rule (`clippy.toml`) waived only in `src/ops/`.
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::{build_script, fixtures};

#[test]
fn test_version_names_the_package_version_and_revision_when_built_from_git() {
    let out = fixtures::vmgpu().arg("--version").output().unwrap();
    let text = fixtures::stdout(&out);
    let package = env!("CARGO_PKG_VERSION");

    assert!(out.status.success());
    let rest = text
        .trim_end()
        .strip_prefix(&format!("vmgpu {package}"))
        .unwrap_or_else(|| panic!("unexpected --version: {text:?}"));
    // `vmgpu 0.1.0` from a tarball, `vmgpu 0.1.0 (abc1234)` from a checkout.
    if !rest.is_empty() {
        let revision = rest.strip_prefix(" (").and_then(|r| r.strip_suffix(')'));
        let revision = revision.unwrap_or_else(|| panic!("unexpected --version: {text:?}"));
        assert!(
            revision.len() >= 7 && revision.chars().all(|c| c.is_ascii_hexdigit()),
            "{text:?}"
        );
    }
}

#[test]
fn test_build_script_outside_a_git_checkout_falls_back_to_the_package_version() {
    let not_a_checkout = tempfile::tempdir().unwrap();

    assert_eq!(
        build_script::version("9.8.7", not_a_checkout.path()),
        "9.8.7"
    );
}

#[test]
fn test_completions_are_generated_for_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let out = fixtures::vmgpu()
            .args(["completions", shell])
            .output()
            .unwrap();
        let script = fixtures::stdout(&out);

        assert!(out.status.success(), "{shell}: {}", fixtures::stderr(&out));
        for sub in [
            "check", "gpus", "define", "view", "setup", "install", "status",
        ] {
            assert!(script.contains(sub), "{shell} completions lack {sub}");
        }
    }
}

#[test]
fn test_completions_for_an_unknown_shell_is_a_usage_error() {
    let out = fixtures::vmgpu()
        .args(["completions", "tcsh"])
        .output()
        .unwrap();

    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn test_man_page_is_roff_with_the_subcommands() {
    let out = fixtures::vmgpu().arg("man").output().unwrap();
    let page = fixtures::stdout(&out);

    assert!(out.status.success());
    assert!(page.contains(".TH vmgpu 1"));
    assert!(page.contains("setup") && page.contains("define"));
}

/// `vmgpu gpus` with stdout on a pseudo-terminal, so colour is allowed; returns what it printed.
fn gpus_on_a_terminal(no_color: Option<&str>) -> String {
    let pty = nix::pty::openpty(None, None).unwrap();
    let mut cmd = fixtures::vmgpu();
    cmd.arg("gpus")
        .arg("--root")
        .arg(fixtures::host("fedora-intel-turing"))
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(File::from(pty.slave))
        .stderr(Stdio::null());
    if let Some(value) = no_color {
        cmd.env("NO_COLOR", value);
    }
    let mut child = cmd.spawn().unwrap();
    // Our copy of the slave end went into `cmd`; drop it so the master reads EOF (EIO) once the child exits.
    drop(cmd);
    let mut master = File::from(pty.master);
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match master.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
        }
    }
    assert!(child.wait().unwrap().success());
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn test_colour_on_a_terminal_and_none_with_no_color() {
    let coloured = gpus_on_a_terminal(None);
    let plain = gpus_on_a_terminal(Some("1"));
    let empty_value = gpus_on_a_terminal(Some(""));

    assert!(
        coloured.contains('\x1b'),
        "no colour on a terminal: {coloured:.200}"
    );
    assert!(
        !plain.contains('\x1b'),
        "colour despite NO_COLOR=1: {plain:.200}"
    );
    // no-color.org: an empty NO_COLOR does not count as set.
    assert!(empty_value.contains('\x1b'));
}

/// The longest a file under `src/` may be: past this it holds more than one job and is split into a module.
const MAX_SOURCE_LINES: usize = 600;

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn test_no_source_file_is_over_the_line_limit() {
    let too_long: Vec<String> = rust_files(&src_dir())
        .into_iter()
        .filter_map(|path| {
            let lines = std::fs::read_to_string(&path).unwrap().lines().count();
            (lines > MAX_SOURCE_LINES).then(|| format!("{} ({lines} lines)", path.display()))
        })
        .collect();

    assert!(
        too_long.is_empty(),
        "split into modules with one job each (at most {MAX_SOURCE_LINES} lines): {too_long:?}"
    );
}

#[test]
fn test_only_ops_waives_the_side_effect_rule() {
    let ops = src_dir().join("ops");
    let waivers: Vec<String> = rust_files(&src_dir())
        .into_iter()
        .filter(|path| !path.starts_with(&ops))
        .filter(|path| {
            std::fs::read_to_string(path).unwrap().lines().any(|line| {
                line.contains("allow(clippy::disallowed_methods)")
                    && !line.contains("cfg_attr(test,")
            })
        })
        .map(|path| path.display().to_string())
        .collect();

    assert!(
        waivers.is_empty(),
        "write files and start programs through ops::files / ops::process instead: {waivers:?}"
    );
}

/// The top-level module a file under `src/` belongs to (`hook` for `src/hook/run.rs`, `report` for
/// `src/report.rs`).
fn top_module(path: &Path) -> String {
    let rel = path.strip_prefix(src_dir()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The top-level modules a file's code names as `crate::…` (comments and its `mod tests` left out).
fn crate_imports(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
    let mut found = Vec::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        for (at, _) in line.match_indices("crate::") {
            let name: String = line[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

#[test]
fn test_no_two_top_level_modules_import_each_other() {
    let mut edges = std::collections::BTreeMap::<(String, String), String>::new();
    for path in rust_files(&src_dir()) {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with("tests.rs") || name == "test_tree.rs" {
            continue;
        }
        let from = top_module(&path);
        for to in crate_imports(&std::fs::read_to_string(&path).unwrap()) {
            if to != from {
                edges
                    .entry((from.clone(), to))
                    .or_insert_with(|| path.display().to_string());
            }
        }
    }
    let circles: Vec<String> = edges
        .iter()
        .filter(|((a, b), _)| a < b && edges.contains_key(&(b.clone(), a.clone())))
        .map(|((a, b), at)| format!("{a} <-> {b} ({at}, {})", edges[&(b.clone(), a.clone())]))
        .collect();
    assert!(
        circles.is_empty(),
        "imports go one way (docs/architecture.md's table): {circles:?}"
    );
}
