//! `vmgpu explain`: every signature has a fixture (a log set under tests/fixtures/explain/<id>/, recorded or
//! written from documented messages, see its PROVENANCE.md) and explain names that signature first for it; a
//! log no signature knows gives "unknown" with its lines; fixes follow the distro; bad input is refused.
use std::path::{Path, PathBuf};

use vmgpu::explain::{self, FixContext, signatures::SIGNATURES, sources};
use vmgpu::host::{Distro, HostRoot};

use crate::fixtures::{host, stderr, stdout, vmgpu};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/explain")
}

fn fixture_dirs() -> Vec<(String, PathBuf)> {
    let mut dirs: Vec<(String, PathBuf)> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    dirs.sort();
    dirs
}

fn diagnose(dir: &Path, machine: &str) -> explain::Diagnosis {
    let logs = sources::from_dir(dir, "win11").unwrap();
    let distro = Distro::read(&HostRoot::new(host(machine))).unwrap();
    explain::diagnose(
        &logs,
        &FixContext {
            distro: &distro,
            vm: "win11",
            cpu_vendor: Some("GenuineIntel"),
        },
    )
}

#[test]
fn test_every_fixture_names_its_signature_first() {
    let mut wrong = Vec::new();
    for (name, dir) in fixture_dirs() {
        if name.starts_with("unknown") {
            continue;
        }
        let d = diagnose(&dir, "fedora-intel-turing");
        let first = d.findings.first().map_or("unknown", |f| f.id);
        if first != name {
            wrong.push(format!("{name}: first is {first}"));
        }
        let evidence = d.findings.first().map_or(0, |f| f.evidence.len());
        assert!(evidence > 0, "{name}: no evidence lines");
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn test_every_signature_has_a_fixture_with_provenance() {
    for sig in SIGNATURES {
        let dir = fixtures().join(sig.id);
        assert!(dir.is_dir(), "no fixture for signature {}", sig.id);
        let provenance = std::fs::read_to_string(dir.join("PROVENANCE.md"))
            .unwrap_or_else(|_| panic!("{}: no PROVENANCE.md", sig.id));
        assert!(
            provenance.contains("recorded") || provenance.contains("documented"),
            "{}: PROVENANCE.md says neither recorded nor documented",
            sig.id
        );
    }
    assert!(SIGNATURES.len() >= 20);
}

#[test]
fn test_unknown_failure_shows_its_lines_not_a_guess() {
    let d = diagnose(&fixtures().join("unknown-failure"), "fedora-intel-turing");
    assert!(d.findings.is_empty(), "{:?}", d.findings);
    assert!(
        d.unknown
            .iter()
            .any(|e| e.text.contains("opengl is not available")),
        "{:?}",
        d.unknown
    );
    let text = explain::diagnosis_text::text(&d);
    assert!(text.contains("unknown"), "{text}");
    assert!(text.contains("opengl is not available"), "{text}");
}

#[test]
fn test_fix_follows_the_distro() {
    for (machine, want) in [
        ("fedora-intel-turing", "dnf install edk2-ovmf"),
        ("arch-sdboot-iommu-off", "pacman -S --needed edk2-ovmf"),
        ("seed-tumbleweed-5900x", "zypper install qemu-ovmf-x86_64"),
        ("ubuntu-builtin-vfio-twins", "apt-get install ovmf"),
    ] {
        let d = diagnose(&fixtures().join("ovmf-missing"), machine);
        assert!(
            d.findings[0].fix.contains(want),
            "{machine}: {}",
            d.findings[0].fix
        );
    }
    let d = diagnose(&fixtures().join("iommu-off"), "fedora-intel-turing");
    assert!(
        d.findings[0]
            .fix
            .contains("grubby --update-kernel=ALL --args=\"intel_iommu=on iommu=pt\""),
        "{}",
        d.findings[0].fix
    );
}

#[test]
fn test_binary_prints_what_why_fix_and_json() {
    let dir = fixtures().join("group-not-viable");
    let out = vmgpu()
        .args(["--root"])
        .arg(host("fedora-intel-turing"))
        .args(["explain", "win11", "--logs"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("vmgpu explain win11: "), "{text}");
    for part in [
        "1. the IOMMU group",
        "[group-not-viable]",
        "why: ",
        "fix: ",
        "group 1 is not viable",
    ] {
        assert!(text.contains(part), "missing {part:?} in {text}");
    }
    let out = vmgpu()
        .args(["--root"])
        .arg(host("fedora-intel-turing"))
        .args(["explain", "win11", "--json", "--logs"])
        .arg(&dir)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["findings"][0]["id"], "group-not-viable");
    assert_eq!(json["findings"][0]["evidence"][0]["source"], "qemu");
}

#[test]
fn test_bad_input_is_one_line_exit_2() {
    for args in [
        vec!["explain", "../etc"],
        vec!["explain", "win11", "--xml", "/nonexistent/domain.xml"],
        vec!["explain", "win11", "--logs", "/nonexistent/logs"],
    ] {
        let out = vmgpu().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(stdout(&out).is_empty());
    }
}

#[test]
fn test_recorded_tree_reads_qemu_log_through_the_root() {
    // A host root holding the recorded QEMU log at libvirt's path: the non-live root reads files only.
    let root = tempfile::tempdir().unwrap();
    let logdir = root.path().join("var/log/libvirt/qemu");
    std::fs::create_dir_all(&logdir).unwrap();
    std::fs::copy(
        fixtures().join("spice-port-taken/qemu.log"),
        logdir.join("vmgpu-h35-spice-port-taken.log"),
    )
    .unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    std::fs::write(root.path().join("etc/os-release"), "ID=debian\n").unwrap();
    let out = vmgpu()
        .arg("--root")
        .arg(root.path())
        .args(["explain", "vmgpu-h35-spice-port-taken", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["findings"][0]["id"], "spice-port-taken", "{json}");
}

#[test]
fn test_failed_start_hook_stderr_ends_with_explain_hint_and_explain_reads_it() {
    use crate::fakehost::{FakeHost, domain};
    let host = FakeHost::new();
    let prepare = ["gpu-vm", "prepare", "begin", "-"];
    assert!(host.hook(&prepare, &domain("gpu-vm.xml")).status.success());
    let other = domain("gpu-vm.xml").replace("<name>gpu-vm</name>", "<name>other-vm</name>");
    let out = host.hook(&["other-vm", "prepare", "begin", "-"], &other);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    // One line of refusal; a warning about the fixture's metadata without device ids may come before it.
    let refusal: Vec<&str> = err
        .trim()
        .lines()
        .filter(|l| !l.contains(" WARN "))
        .collect();
    assert_eq!(refusal.len(), 1, "{err}");
    assert!(
        err.trim_end().ends_with("; run `vmgpu explain other-vm`"),
        "{err}"
    );
    // The same line as libvirt logs it, read back by explain.
    let logs = tempfile::tempdir().unwrap();
    std::fs::write(
        logs.path().join("hook.log"),
        format!(
            "libvirtd[1]: Hook script execution failed: internal error: Child process (LC_ALL=C \
             /etc/libvirt/hooks/qemu other-vm prepare begin -) unexpected exit status 1: {err}"
        ),
    )
    .unwrap();
    let d = diagnose(logs.path(), "fedora-intel-turing");
    assert_eq!(d.findings[0].id, "gpu-held-by-vm", "{:?}", d.findings);
    // A release that fails is not a failed start: no hint.
    let out = host.hook(
        &["gpu-vm", "release", "end", "-", "extra"],
        &domain("gpu-vm.xml"),
    );
    assert!(!stderr(&out).contains("vmgpu explain"), "{}", stderr(&out));
}
