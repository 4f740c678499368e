//! What a journaled [`Step`] may name. A journal is data, not an order: before `release`, `vmgpu restore`
//! or a `prepare` over a stale journal acts on one, every step must name only the kind of object it owns:
//! a PCI device under `/sys/bus/pci/devices`, a cgroup under the cgroup mount, a hugepage pool, a
//! vtconsole, `/dev/shm/<plain name>`, a module, unit or driver name. Paths are compared as text, component
//! by component, so `..`, `.`, empty components and NUL are refused and nothing can escape `--root`.
use super::cpus::CGROUP;
use super::hugepages::POOLS;
use super::shm::{SHM_DIR, valid_name};
use super::step::Step;
use crate::journal::Entry;

/// The longest name or path accepted from a journal.
const MAX_LEN: usize = 4096;

impl Entry for Step {
    fn known_kind(raw: &serde_json::Value) -> Option<&str> {
        raw.get("step")?
            .as_str()
            .filter(|kind| Step::KINDS.contains(kind))
    }

    fn check(&self) -> Result<(), String> {
        check_step(self).map_err(|problem| format!("({}) {problem}", self.kind()))
    }
}

fn check_step(step: &Step) -> Result<(), String> {
    match step {
        // PCI addresses are typed: a journal whose address is not one does not even parse.
        Step::BindVfio {
            original_driver,
            original_override,
            ..
        } => {
            if let Some(driver) = original_driver {
                plain_name("driver", driver)?;
            }
            if let Some(driver) = original_override {
                plain_name("driver_override", driver)?;
            }
            Ok(())
        }
        Step::StopUnit { unit } => unit_name(unit),
        Step::UnbindVtconsole { path } => {
            let rest = under(path, "/sys/class/vtconsole")?;
            match rest.as_slice() {
                [vtcon, "bind"] if numbered(vtcon, "vtcon") => Ok(()),
                _ => Err(not_what(path, "/sys/class/vtconsole/vtconN/bind")),
            }
        }
        Step::UnbindPlatform { driver, device } => {
            plain_name("driver", driver)?;
            plain_name("device", device)
        }
        Step::UnloadModule { module } => module_name(module),
        Step::EnableController { path, controller } => {
            cgroup_file(path, "cgroup.subtree_control", true)?;
            if controller.is_empty()
                || controller.len() > 32
                || !controller
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            {
                return Err(format!("{:?} is not a cgroup controller", cut(controller)));
            }
            Ok(())
        }
        Step::CreateCgroup { path } => {
            if under(path, CGROUP)?.is_empty() {
                return Err(not_what(path, "a cgroup below /sys/fs/cgroup"));
            }
            Ok(())
        }
        Step::RestrictUnitCpus {
            unit,
            cpus,
            original,
        } => {
            unit_name(unit)?;
            cpu_list(cpus)?;
            cpu_list(original)
        }
        Step::RestrictCgroupCpus {
            path,
            cpus,
            original,
        } => {
            cgroup_file(path, "cpuset.cpus", false)?;
            cpu_list(cpus)?;
            cpu_list(original)
        }
        Step::Hugepages { path, size_kib, .. } => hugepage_pool(path, *size_kib),
        // the shared steps name no path: their units and pools are checked against the host cgroups and
        // pool sizes vmgpu itself writes
        Step::IsolateCpus { reserved, baseline } => {
            cpu_list(reserved)?;
            super::shared_state::check_cpus(reserved, baseline)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        Step::ReserveHugepages { size_kib, node, .. } => {
            super::shared_state::check_pool(*size_kib, *node).map_err(|e| e.to_string())
        }
        // the tuning steps name no path either: a CPU or IRQ number and a fixed file name build it
        // (`/sys/devices/system/cpu/cpuN/cpufreq/{scaling_governor,energy_performance_preference}`,
        // `/proc/irq/N/smp_affinity_list`); the values are names and CPU lists. Only online CPUs' files are
        // written (checked against the host when the step runs).
        Step::PerformanceGovernor { cpus, originals } => {
            cpu_list(cpus)?;
            super::governor::check(cpus, originals)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        Step::MoveIrqs {
            reserved,
            originals,
            ..
        } => {
            cpu_list(reserved)?;
            super::irqs::check(reserved, originals)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        Step::ShmFile { path, .. } => match under(path, SHM_DIR)?.as_slice() {
            [name] if valid_name(name) => Ok(()),
            _ => Err(not_what(path, "/dev/shm/<name>")),
        },
    }
}

/// The components of `path` below `base`: both absolute, every component a plain name.
fn under<'a>(path: &'a str, base: &str) -> Result<Vec<&'a str>, String> {
    if path.len() > MAX_LEN {
        return Err(format!("a path of {} bytes", path.len()));
    }
    let rest = path
        .strip_prefix(base)
        .filter(|r| r.is_empty() || r.starts_with('/'))
        .ok_or_else(|| format!("{:?} is not under {base}", cut(path)))?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = rest[1..].split('/').collect();
    for part in &parts {
        if part.is_empty() || *part == "." || *part == ".." || part.contains('\0') {
            return Err(format!(
                "{:?} has an empty, `.`, `..` or NUL component",
                cut(path)
            ));
        }
    }
    Ok(parts)
}

/// `<cgroup mount>[/<cgroup>…]/<file>`; `at_mount`: the mount's own file is allowed.
fn cgroup_file(path: &str, file: &str, at_mount: bool) -> Result<(), String> {
    let parts = under(path, CGROUP)?;
    match parts.split_last() {
        Some((last, dirs)) if *last == file && (at_mount || !dirs.is_empty()) => Ok(()),
        _ => Err(not_what(
            path,
            &format!("the {file} of a cgroup under {CGROUP}"),
        )),
    }
}

/// `nr_hugepages` of a global or per-node pool whose size is `size_kib`.
fn hugepage_pool(path: &str, size_kib: u64) -> Result<(), String> {
    let pool = format!("hugepages-{size_kib}kB");
    let ok = match under(path, POOLS) {
        Ok(parts) => matches!(parts.as_slice(), [p, "nr_hugepages"] if *p == pool),
        Err(_) => matches!(
            under(path, "/sys/devices/system/node")?.as_slice(),
            [node, "hugepages", p, "nr_hugepages"] if numbered(node, "node") && *p == pool
        ),
    };
    if ok {
        Ok(())
    } else {
        Err(not_what(
            path,
            &format!("the nr_hugepages of a {size_kib} KiB hugepage pool"),
        ))
    }
}

/// A kernel driver or device name: letters, digits, `_ - . :`, not `.`/`..`, not an option.
fn plain_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!("{what} {:?} is not a plain name", cut(name)))
    }
}

fn module_name(module: &str) -> Result<(), String> {
    let ok = !module.is_empty()
        && module.len() <= 64
        && !module.starts_with('-')
        && module
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!("{:?} is not a module name", cut(module)))
    }
}

/// A systemd unit name (never an option for systemctl).
fn unit_name(unit: &str) -> Result<(), String> {
    const TYPES: &[&str] = &[".service", ".slice", ".scope", ".target", ".socket"];
    let ok = unit.len() <= 255
        && !unit.starts_with(['-', '.'])
        && TYPES
            .iter()
            .any(|t| unit.ends_with(t) && unit.len() > t.len())
        && unit
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:@\\".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!("{:?} is not a systemd unit name", cut(unit)))
    }
}

/// A kernel CPU list (`0-3,8`), or empty.
fn cpu_list(cpus: &str) -> Result<(), String> {
    let ok = cpus.len() <= MAX_LEN
        && cpus
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b',' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!("{:?} is not a CPU list", cut(cpus)))
    }
}

/// `vtcon3` for prefix `vtcon`.
fn numbered(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|n| !n.is_empty() && n.len() <= 6 && n.bytes().all(|b| b.is_ascii_digit()))
}

fn not_what(path: &str, expected: &str) -> String {
    format!("{:?} is not {expected}", cut(path))
}

fn cut(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shm(path: &str) -> Step {
        Step::ShmFile {
            path: path.into(),
            size: 1 << 25,
            uid: 0,
            gid: 0,
            remove_on_stop: true,
        }
    }

    fn cgroup_cpus(path: &str) -> Step {
        Step::RestrictCgroupCpus {
            path: path.into(),
            cpus: "0-1".into(),
            original: String::new(),
        }
    }

    #[test]
    fn test_steps_the_hook_writes_are_accepted() {
        let good = [
            shm("/dev/shm/looking-glass"),
            cgroup_cpus("/sys/fs/cgroup/system.slice/cpuset.cpus"),
            Step::EnableController {
                path: "/sys/fs/cgroup/cgroup.subtree_control".into(),
                controller: "cpuset".into(),
            },
            Step::CreateCgroup {
                path: "/sys/fs/cgroup/init.scope".into(),
            },
            Step::Hugepages {
                path: "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages".into(),
                size_kib: 2048,
                needed: 16,
                original: 0,
            },
            Step::Hugepages {
                path: "/sys/devices/system/node/node1/hugepages/hugepages-1048576kB/nr_hugepages"
                    .into(),
                size_kib: 1048576,
                needed: 1,
                original: 0,
            },
            Step::BindVfio {
                address: "0000:01:00.0".parse().unwrap(),
                original_driver: Some("snd_hda_intel".into()),
                original_override: None,
            },
            Step::UnbindVtconsole {
                path: "/sys/class/vtconsole/vtcon1/bind".into(),
            },
            Step::UnbindPlatform {
                driver: "efi-framebuffer".into(),
                device: "efi-framebuffer.0".into(),
            },
            Step::StopUnit {
                unit: "display-manager.service".into(),
            },
            Step::RestrictUnitCpus {
                unit: "user.slice".into(),
                cpus: "0,2-3".into(),
                original: String::new(),
            },
            Step::UnloadModule {
                module: "nvidia_drm".into(),
            },
        ];
        for step in good {
            assert_eq!(step.check(), Ok(()), "{step:?}");
        }
    }

    #[test]
    fn test_escapes_and_foreign_objects_are_refused() {
        let bad = [
            shm("/../../../tmp/x/victim"),
            shm("/dev/shm/../../etc/passwd"),
            shm("/dev/shm/a/b"),
            shm("/dev/shm"),
            cgroup_cpus("/etc/passwd"),
            cgroup_cpus("/sys/fs/cgroup/../../../etc/cpuset.cpus"),
            cgroup_cpus("/sys/fs/cgroup/cpuset.cpus"),
            cgroup_cpus("/sys/fs/cgroupx/a/cpuset.cpus"),
            Step::BindVfio {
                address: "0000:01:00.0".parse().unwrap(),
                original_driver: Some("../../../../etc".into()),
                original_override: None,
            },
            Step::StopUnit {
                unit: "--force".into(),
            },
            Step::UnloadModule {
                module: "-a".into(),
            },
            Step::Hugepages {
                path: "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages".into(),
                size_kib: 4,
                needed: 1,
                original: 0,
            },
        ];
        for step in bad {
            assert!(step.check().is_err(), "{step:?}");
        }
    }

    fn isolate(unit: &str, reserved: &str) -> Step {
        Step::IsolateCpus {
            reserved: reserved.into(),
            baseline: super::super::shared_state::CpuBaseline {
                systemd: false,
                controller_enabled: false,
                units: vec![super::super::shared_state::UnitBaseline {
                    unit: unit.into(),
                    cpus: String::new(),
                    existed: true,
                }],
            },
        }
    }

    fn reserve(size_kib: u64, node: Option<u32>) -> Step {
        Step::ReserveHugepages {
            size_kib,
            node,
            pages: 16,
            baseline: Default::default(),
        }
    }

    #[test]
    fn test_shared_steps_name_only_host_cgroups_and_real_pools() {
        assert_eq!(isolate("system.slice", "2-3").check(), Ok(()));
        assert_eq!(reserve(2048, None).check(), Ok(()));
        assert_eq!(reserve(1048576, Some(1)).check(), Ok(()));
        for bad in [
            isolate("../../../etc", "2"),
            isolate("machine.slice", "2"),
            isolate("system.slice", "2;rm"),
            reserve(4, None),
            reserve(3000, None),
            reserve(2048, Some(1 << 20)),
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    fn governor(cpus: &str, cpu: u32, value: &str) -> Step {
        Step::PerformanceGovernor {
            cpus: cpus.into(),
            originals: vec![super::super::governor::CpuFreqOriginal {
                cpu,
                knob: super::super::governor::Knob::ScalingGovernor,
                value: value.into(),
            }],
        }
    }

    fn irqs(devices: &[&str], irq: u32, cpus: &str) -> Step {
        Step::MoveIrqs {
            reserved: "2-3".into(),
            devices: devices.iter().map(|d| d.parse().unwrap()).collect(),
            originals: vec![super::super::irqs::IrqOriginal {
                irq,
                cpus: cpus.into(),
            }],
        }
    }

    #[test]
    fn test_tuning_steps_name_only_cpufreq_values_and_irq_numbers() {
        assert_eq!(governor("2-3", 2, "schedutil").check(), Ok(()));
        assert_eq!(irqs(&["0000:01:00.0"], 24, "0-3").check(), Ok(()));
        for bad in [
            governor("2-3", 2, "../../../etc/passwd"),
            governor("2-3", 2, "schedutil\n"),
            governor("2-3", 9, "schedutil"),
            governor("2;rm", 2, "schedutil"),
            irqs(&[], 1 << 21, "0-3"),
            irqs(&[], 24, "/etc"),
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        // a knob outside the closed set does not even parse
        let json = r#"{"step":"performance-governor","cpus":"2","originals":[{"cpu":2,"knob":"../x","value":"a"}]}"#;
        assert!(serde_json::from_str::<Step>(json).is_err());
    }

    #[test]
    fn test_an_address_that_is_not_one_does_not_parse() {
        for json in [
            r#"{"step":"bind-vfio","address":"0000:01:00.0/../../../../etc","original_driver":null,"original_override":null}"#,
            r#"{"step":"bind-vfio","address":"1:00.0","original_driver":null,"original_override":null}"#,
            r#"{"step":"move-irqs","reserved":"2-3","devices":["0000:01:00.0/../../x"],"originals":[]}"#,
        ] {
            let err = serde_json::from_str::<Step>(json).unwrap_err();
            assert!(err.to_string().contains("is not a PCI address"), "{err}");
        }
    }

    #[test]
    fn test_a_journal_an_earlier_build_wrote_loads_typed_and_saves_the_same() {
        let text = r#"{
  "format": 1,
  "vm": "vm",
  "phase": "prepared",
  "pid": 7,
  "started_unix": 0,
  "holds": [
    "0000:01:00.0",
    "0000:01:00.1"
  ],
  "steps": [
    {
      "step": "bind-vfio",
      "address": "0000:01:00.1",
      "original_driver": "snd_hda_intel",
      "original_override": null
    },
    {
      "step": "move-irqs",
      "reserved": "2-3",
      "devices": [
        "0000:01:00.0"
      ],
      "originals": []
    }
  ]
}"#;
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run/vmgpu");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("vm.json"), text).unwrap();
        let store = crate::journal::Store::new(&crate::host::HostRoot::new(dir.path()));
        let journal = store.load::<Step>("vm").unwrap().unwrap();
        let gpu: crate::host::PciAddress = "0000:01:00.0".parse().unwrap();
        assert_eq!(journal.holds, [gpu, gpu.with_function(1)]);
        assert_eq!(journal.steps[0].bound_address(), Some(gpu.with_function(1)));
        let _lock = store.lock().unwrap();
        store.save(&journal).unwrap();
        assert_eq!(std::fs::read_to_string(run.join("vm.json")).unwrap(), text);
    }

    #[test]
    fn test_every_kind_is_its_journal_tag() {
        let mut steps = vec![
            shm("/dev/shm/a"),
            cgroup_cpus("/sys/fs/cgroup/a/cpuset.cpus"),
            isolate("system.slice", "2"),
            reserve(2048, None),
            governor("2", 2, "schedutil"),
            irqs(&["0000:01:00.0"], 24, "0-3"),
        ];
        steps.extend(
            [
                r#"{"step":"bind-vfio","address":"0000:01:00.0","original_driver":null,"original_override":null}"#,
                r#"{"step":"stop-unit","unit":"a.service"}"#,
                r#"{"step":"unbind-vtconsole","path":"/sys/class/vtconsole/vtcon1/bind"}"#,
                r#"{"step":"unbind-platform","driver":"a","device":"b"}"#,
                r#"{"step":"unload-module","module":"a"}"#,
                r#"{"step":"enable-controller","path":"/sys/fs/cgroup/cgroup.subtree_control","controller":"cpuset"}"#,
                r#"{"step":"create-cgroup","path":"/sys/fs/cgroup/a"}"#,
                r#"{"step":"restrict-unit-cpus","unit":"a.slice","cpus":"0","original":""}"#,
                r#"{"step":"hugepages","path":"/x","size_kib":2048,"needed":1,"original":0}"#,
            ]
            .map(|json| serde_json::from_str::<Step>(json).unwrap()),
        );
        let mut kinds: Vec<&str> = steps.iter().map(Step::kind).collect();
        for step in &steps {
            let value = serde_json::to_value(step).unwrap();
            assert_eq!(value["step"], step.kind(), "{step:?}");
            assert_eq!(Step::known_kind(&value), Some(step.kind()));
        }
        kinds.sort_unstable();
        let mut all = Step::KINDS.to_vec();
        all.sort_unstable();
        assert_eq!(kinds, all, "one step of every kind");
        assert_eq!(
            Step::known_kind(&serde_json::json!({"step": "format-disk"})),
            None
        );
    }

    #[test]
    fn test_refusal_names_the_step_kind() {
        let err = shm("/etc/passwd").check().unwrap_err();
        assert!(err.starts_with("(shm-file)"), "{err}");
    }
}
