//! The journal part of the bad-input corpus: hostile and broken journals fed to `vmgpu restore`, libvirt's
//! `release end`, a `prepare` over a stale journal and `vmgpu status`. Each case runs the real binary on a
//! fresh simulated host whose root lies inside a sandbox directory with canary files *outside* the root
//! (what a `..` escape of `--root` would hit); the whole sandbox, the journal included, must be unchanged.
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use serde_json::{Value, json};

use crate::fakehost::{FakeHost, domain, stderr};
use crate::fixtures::stdout;

/// A host root inside a sandbox with canaries around it.
pub struct Sandbox {
    pub outer: tempfile::TempDir,
    pub host: FakeHost,
}

impl Sandbox {
    pub fn new() -> Self {
        let outer = tempfile::tempdir().unwrap();
        let put = |rel: &str, text: &str| {
            let path = outer.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        put("canary", "canary\n");
        put("tmp/x/victim", "victim\n");
        put("etc/passwd", "outside:x:0:0::/:/bin/sh\n");
        std::fs::create_dir_all(outer.path().join("emptydir")).unwrap();
        let host = FakeHost::new_in(outer.path());
        Sandbox { outer, host }
    }

    /// The root's name inside the sandbox, for paths that climb out of it.
    pub fn write_journal(&self, vm: &str, text: &str) {
        let dir = self.host.path("/run/vmgpu");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(dir.join(format!("{vm}.json")), text).unwrap();
    }

    /// Everything in the sandbox (content, mode, owner, link targets) but vmgpu's lock file and the
    /// simulation's bookkeeping.
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        walk(self.outer.path(), self.outer.path(), &mut out);
        out
    }
}

fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let rel = path.strip_prefix(base).unwrap().display().to_string();
        if rel.ends_with("run/vmgpu/.lock") || rel.contains("run/vmgpu-sim") {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let value = if meta.file_type().is_symlink() {
            format!("-> {}", std::fs::read_link(&path).unwrap().display())
        } else if meta.is_dir() {
            walk(base, &path, out);
            "dir".to_string()
        } else {
            format!(
                "{:?} {:o} {}:{}",
                std::fs::read_to_string(&path).unwrap_or_default(),
                meta.mode() & 0o7777,
                meta.uid(),
                meta.gid()
            )
        };
        if !rel.ends_with("run/vmgpu") {
            out.insert(rel, value);
        }
    }
}

/// What a case runs.
#[derive(Clone, Copy, Debug)]
pub enum Run {
    Restore,
    Release,
    Prepare,
    Status,
}

pub struct Case {
    pub name: String,
    pub journal: String,
    pub run: Run,
    pub message: String,
}

/// A journal of `gpu-vm` holding one step.
fn journal_with(step: Value) -> Value {
    json!({
        "format": 1, "vm": "gpu-vm", "phase": "prepared", "pid": 1, "started_unix": 0,
        "holds": [], "steps": [step]
    })
}

fn shm(path: &str) -> Value {
    json!({"step": "shm-file", "path": path, "size": 33554432, "uid": 0, "gid": 0, "remove_on_stop": true})
}

fn cgroup_cpus(path: &str, original: &str) -> Value {
    json!({"step": "restrict-cgroup-cpus", "path": path, "cpus": "0-1", "original": original})
}

fn hugepages(path: &str, size_kib: u64) -> Value {
    json!({"step": "hugepages", "path": path, "size_kib": size_kib, "needed": 16, "original": 7})
}

fn bind(address: &str, driver: Option<&str>, over: Option<&str>) -> Value {
    json!({"step": "bind-vfio", "address": address, "original_driver": driver, "original_override": over})
}

/// Steps that name something they do not own, each with the refusal's step kind.
fn hostile_steps() -> Vec<(&'static str, Value)> {
    vec![
        ("shm-file", shm("/../canary")),
        ("shm-file", shm("/../../../tmp/x/victim")),
        ("shm-file", shm("/../tmp/x/victim")),
        ("shm-file", shm("/dev/shm/../../../canary")),
        ("shm-file", shm("/dev/shm/../../etc/passwd")),
        ("shm-file", shm("/etc/passwd")),
        ("shm-file", shm("dev/shm/looking-glass")),
        ("shm-file", shm("/dev/shm/a/b")),
        ("shm-file", shm("/dev/shm/..")),
        ("shm-file", shm("/dev/shm/")),
        ("shm-file", shm("/dev/shmx")),
        ("shm-file", shm("/dev/shm//../../canary")),
        ("restrict-cgroup-cpus", cgroup_cpus("/etc/passwd", "pwned")),
        ("restrict-cgroup-cpus", cgroup_cpus("/../canary", "")),
        (
            "restrict-cgroup-cpus",
            cgroup_cpus("/sys/fs/cgroup/../../../../canary", "1"),
        ),
        (
            "restrict-cgroup-cpus",
            cgroup_cpus("/sys/fs/cgroup/system.slice/../../../../etc/passwd", "1"),
        ),
        (
            "restrict-cgroup-cpus",
            cgroup_cpus("/sys/fs/cgroup/system.slice/cpuset.cpus", "pwned"),
        ),
        (
            "restrict-cgroup-cpus",
            cgroup_cpus("/sys/fs/cgroup/system.slice/cgroup.procs", "1"),
        ),
        (
            "restrict-cgroup-cpus",
            cgroup_cpus("/sys/fs/cgroup/cpuset.cpus", "0"),
        ),
        (
            "create-cgroup",
            json!({"step": "create-cgroup", "path": "/sys/fs/cgroup/../../../../emptydir"}),
        ),
        (
            "create-cgroup",
            json!({"step": "create-cgroup", "path": "/../emptydir"}),
        ),
        (
            "create-cgroup",
            json!({"step": "create-cgroup", "path": "/sys/fs/cgroup"}),
        ),
        (
            "create-cgroup",
            json!({"step": "create-cgroup", "path": "/dev/shm"}),
        ),
        (
            "enable-controller",
            json!({"step": "enable-controller", "path": "/etc/passwd", "controller": "cpuset"}),
        ),
        (
            "enable-controller",
            json!({"step": "enable-controller", "path": "/../canary", "controller": "cpuset"}),
        ),
        (
            "enable-controller",
            json!({"step": "enable-controller", "path": "/sys/fs/cgroup/cgroup.subtree_control", "controller": "cpuset +memory"}),
        ),
        ("hugepages", hugepages("/etc/passwd", 2048)),
        ("hugepages", hugepages("/../canary", 2048)),
        (
            "hugepages",
            hugepages(
                "/sys/kernel/mm/hugepages/../../../../canary/nr_hugepages",
                2048,
            ),
        ),
        (
            "hugepages",
            hugepages(
                "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
                2048,
            ),
        ),
        (
            "hugepages",
            hugepages(
                "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
                1048576,
            ),
        ),
        (
            "hugepages",
            hugepages(
                "/sys/devices/system/node/nodeX/hugepages/hugepages-2048kB/nr_hugepages",
                2048,
            ),
        ),
        (
            "unbind-vtconsole",
            json!({"step": "unbind-vtconsole", "path": "/etc/passwd"}),
        ),
        (
            "unbind-vtconsole",
            json!({"step": "unbind-vtconsole", "path": "/sys/class/vtconsole/../../../../canary"}),
        ),
        (
            "unbind-vtconsole",
            json!({"step": "unbind-vtconsole", "path": "/sys/class/vtconsole/vtcon1/../../../../../canary"}),
        ),
        (
            "unbind-platform",
            json!({"step": "unbind-platform", "driver": "../../../../../../tmp/x", "device": "victim"}),
        ),
        (
            "unbind-platform",
            json!({"step": "unbind-platform", "driver": "efi-framebuffer", "device": "../x"}),
        ),
        ("bind-vfio", bind("../../../../../tmp/x", None, None)),
        ("bind-vfio", bind("0000:01:00.0/../../../..", None, None)),
        ("bind-vfio", bind("1:00.0", None, None)),
        // typed addresses take only the form vmgpu writes
        ("bind-vfio", bind("0000:0A:00.0", None, None)),
        (
            "bind-vfio",
            json!({"step": "bind-vfio", "address": 7, "original_driver": null, "original_override": null}),
        ),
        (
            "bind-vfio",
            bind("0000:01:00.0", Some("../../../../../tmp/x"), None),
        ),
        ("bind-vfio", bind("0000:01:00.0", Some("-f"), None)),
        ("bind-vfio", bind("0000:01:00.0", None, Some("a/b"))),
        (
            "unload-module",
            json!({"step": "unload-module", "module": "-r"}),
        ),
        (
            "unload-module",
            json!({"step": "unload-module", "module": "../../x"}),
        ),
        (
            "unload-module",
            json!({"step": "unload-module", "module": "a b"}),
        ),
        ("stop-unit", json!({"step": "stop-unit", "unit": "--now"})),
        (
            "stop-unit",
            json!({"step": "stop-unit", "unit": "a/b.service"}),
        ),
        ("stop-unit", json!({"step": "stop-unit", "unit": "sshd"})),
        (
            "restrict-unit-cpus",
            json!({"step": "restrict-unit-cpus", "unit": "--all", "cpus": "0", "original": ""}),
        ),
        (
            "restrict-unit-cpus",
            json!({"step": "restrict-unit-cpus", "unit": "user.slice", "cpus": "0", "original": "0 CPUWeight=1"}),
        ),
        (
            "performance-governor",
            json!({"step": "performance-governor", "cpus": "2", "originals": [{"cpu": 2, "knob": "scaling_governor", "value": "../../../canary"}]}),
        ),
        (
            "performance-governor",
            json!({"step": "performance-governor", "cpus": "2", "originals": [{"cpu": 9, "knob": "scaling_governor", "value": "powersave"}]}),
        ),
        (
            "move-irqs",
            json!({"step": "move-irqs", "reserved": "2-3", "devices": ["0000:01:00.0/../../../.."], "originals": []}),
        ),
        (
            "move-irqs",
            json!({"step": "move-irqs", "reserved": "2-3", "devices": [], "originals": [{"irq": 9, "cpus": "0-1 /etc"}]}),
        ),
        (
            "move-irqs",
            json!({"step": "move-irqs", "reserved": "2-3", "devices": ["01:00.0"], "originals": []}),
        ),
    ]
}

/// Journals that are not this build's or not this VM's, with the expected message.
fn broken_journals() -> Vec<(String, String, &'static str)> {
    let base = journal_with(shm("/dev/shm/looking-glass"));
    let with = |key: &str, value: Value| {
        let mut j = base.clone();
        j[key] = value;
        j.to_string()
    };
    let mut out = Vec::new();
    for (format, shown) in [
        (json!(0), "format 0"),
        (json!(2), "format 2"),
        (json!(999), "format 999"),
        (json!("1"), "format \"1\""),
        (json!(-1), "format -1"),
        (json!(1.5), "format 1.5"),
        (json!(null), "format null"),
    ] {
        out.push((format!("format {format}"), with("format", format), shown));
    }
    for vm in ["b", "other-vm", "", "../gpu-vm", "gpu-vm ", "GPU-VM"] {
        out.push((
            format!("vm field {vm:?}"),
            with("vm", json!(vm)),
            "a journal belongs to the VM its file is named after",
        ));
    }
    for holds in [
        json!(["../../etc"]),
        json!(["0000:01:00.0/.."]),
        json!([""]),
        json!(["01:00.0"]),
        json!([7]),
    ] {
        out.push((format!("holds {holds}"), with("holds", holds), "holds"));
    }
    for (name, text) in [
        ("not json", "garbage".to_string()),
        ("truncated", "{\"format\":1,".to_string()),
        ("no format", {
            let mut j = base.clone();
            j.as_object_mut().unwrap().remove("format");
            j.to_string()
        }),
        (
            "unknown step",
            with(
                "steps",
                json!([{"step": "format-disk", "path": "/dev/sda"}]),
            ),
        ),
        ("steps not a list", with("steps", json!("rm -rf /"))),
    ] {
        out.push((name.to_string(), text, "is corrupt"));
    }
    out
}

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (kind, step) in hostile_steps() {
        let journal = journal_with(step.clone()).to_string();
        for run in [Run::Restore, Run::Release, Run::Prepare] {
            cases.push(Case {
                name: format!("{run:?} of {kind} step {step}"),
                journal: journal.clone(),
                run,
                message: format!("step 1: ({kind})"),
            });
        }
    }
    for (name, journal, message) in broken_journals() {
        for run in [Run::Restore, Run::Release, Run::Status] {
            cases.push(Case {
                name: format!("{run:?} of journal with {name}"),
                journal: journal.clone(),
                run,
                message: message.to_string(),
            });
        }
    }
    cases
}

fn run_case(sandbox: &Sandbox, run: Run) -> std::process::Output {
    let host = &sandbox.host;
    match run {
        Run::Restore => host.vmgpu(&["restore", "gpu-vm"], "", &[]),
        Run::Release => host.hook(&["gpu-vm", "release", "end", "-"], &domain("gpu-vm.xml")),
        Run::Prepare => host.hook(&["gpu-vm", "prepare", "begin", "-"], &domain("gpu-vm.xml")),
        Run::Status => host.vmgpu(&["status"], "", &[]),
    }
}

/// Runs every case (on a few threads: most of the time is process start-up); returns the failures.
pub fn run_all(cases: &[Case]) -> Vec<String> {
    let chunk = cases.len().div_ceil(4).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = cases
            .chunks(chunk)
            .map(|part| scope.spawn(|| run_some(part)))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    })
}

fn run_some(cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let sandbox = Sandbox::new();
        sandbox.write_journal("gpu-vm", &case.journal);
        let before = sandbox.snapshot();
        let out = run_case(&sandbox, case.run);
        let (err, text) = (stderr(&out), stdout(&out));
        if out.status.code() != Some(1) {
            failures.push(format!(
                "{}: exit {:?}, expected 1: {err}",
                case.name,
                out.status.code()
            ));
        }
        let (shown, other) = match case.run {
            Run::Status => (&text, &err),
            _ => (&err, &text),
        };
        if !shown.contains(&case.message)
            || matches!(case.run, Run::Status) && !shown.contains("BROKEN")
        {
            failures.push(format!(
                "{}: message {shown:?} lacks {:?}",
                case.name, case.message
            ));
        }
        if !other.is_empty() {
            failures.push(format!(
                "{}: wrote {other:?} to the other stream",
                case.name
            ));
        }
        // `status` ends with its pointer to `vmgpu explain`; the finding itself is one line.
        let finding_lines = shown
            .lines()
            .filter(|l| !l.contains("`vmgpu explain <vm>` says why"))
            .count();
        if finding_lines > 1 {
            failures.push(format!("{}: more than one line: {shown:?}", case.name));
        }
        let after = sandbox.snapshot();
        if after != before {
            let diff: Vec<String> = before
                .keys()
                .chain(after.keys())
                .filter(|k| before.get(*k) != after.get(*k))
                .map(|k| format!("{k}: {:?} -> {:?}", before.get(k), after.get(k)))
                .collect();
            failures.push(format!(
                "{}: the sandbox changed: {}",
                case.name,
                diff.join("; ")
            ));
        }
    }
    failures
}

#[test]
fn test_bad_journal_corpus_refused_naming_why_and_nothing_changes() {
    let failures = run_all(&cases());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
