//! A small host tree for the hook tests (what the real-kernel harness's q35 guest looks like): a root port
//! 00:1c.0 and a "GPU" behind it (VGA 01:00.0 on bochs-drm + HDA 01:00.1 on snd_hda_intel) in IOMMU group
//! 3, vfio-pci loaded, 4 CPUs, cgroup v2 without systemd, 2 MiB and 1 GiB hugepage pools, /etc/passwd and
//! /etc/group, an empty /dev/shm, the IRQs of `/proc/irq` (no cpufreq, like a VM without ACPI
//! P-states: `cpufreq` adds it). Plus helpers to run the binary against it and snapshot it.
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const GPU: &str = "0000:01:00.0";
pub const AUDIO: &str = "0000:01:00.1";
pub const PORT: &str = "0000:00:1c.0";

/// Where the fake host's IRQs come from: the real q35 guest's (tests/fixtures/hosts/recorded/PROVENANCE.md).
const RECORDED_IRQS: &str = "tests/fixtures/hosts/recorded/q35-iommu/proc/irq";
/// IRQs added to the recorded ones for cases the recording lacks: one a user put on a pinned CPU of gpu-vm.xml
/// (CPU 2) and a managed queue on the other (CPU 3), which the kernel refuses to move (EIO).
const EXTRA_IRQS: [(u32, &str); 2] = [(48, "2"), (49, "3")];
/// The IRQs the kernel refuses to move: the timer and the cascade (as the real-kernel harness saw), the
/// managed queue.
pub const REFUSING_IRQS: [u32; 3] = [0, 2, 49];

/// Every IRQ of the fake host with its `smp_affinity_list` when the host is created.
pub fn irqs() -> Vec<(u32, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(RECORDED_IRQS);
    let mut out: Vec<(u32, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let irq: u32 = e.file_name().to_str()?.parse().ok()?;
            let cpus = std::fs::read_to_string(e.path().join("smp_affinity_list")).ok()?;
            Some((irq, cpus.trim().to_string()))
        })
        .collect();
    out.extend(EXTRA_IRQS.iter().map(|(i, c)| (*i, c.to_string())));
    out.sort();
    out
}

pub struct FakeHost {
    pub dir: tempfile::TempDir,
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

impl FakeHost {
    pub fn new() -> Self {
        Self::in_dir(tempfile::tempdir().unwrap())
    }

    /// The same tree in a new directory inside `parent` (which can hold canary files outside the root).
    pub fn new_in(parent: &Path) -> Self {
        Self::in_dir(tempfile::tempdir_in(parent).unwrap())
    }

    fn in_dir(dir: tempfile::TempDir) -> Self {
        let host = FakeHost { dir };
        host.device(PORT, "0x060400", "0x8086", "0x29c9", Some("pcieport"), 1);
        host.device(GPU, "0x030000", "0x1234", "0x1111", Some("bochs-drm"), 3);
        host.device(
            AUDIO,
            "0x040300",
            "0x8086",
            "0x293e",
            Some("snd_hda_intel"),
            3,
        );
        host.driver("vfio-pci");
        std::fs::create_dir_all(host.path("/sys/module/vfio_pci")).unwrap();
        host.file("/sys/bus/pci/drivers_probe", "");
        std::fs::create_dir_all(host.path(&format!("/sys/bus/pci/devices/{GPU}/drm/card0")))
            .unwrap();
        std::fs::create_dir_all(host.path(&format!(
            "/sys/bus/pci/devices/{AUDIO}/sound/card0/controlC0"
        )))
        .unwrap();
        std::fs::create_dir_all(host.path(&format!(
            "/sys/bus/pci/devices/{AUDIO}/sound/card0/pcmC0D0p"
        )))
        .unwrap();
        host.file("/sys/devices/system/cpu/online", "0-3\n");
        host.file(
            "/sys/fs/cgroup/cgroup.controllers",
            "cpuset cpu io memory pids\n",
        );
        host.file("/sys/fs/cgroup/cgroup.subtree_control", "\n");
        for (size, max) in [("2048", None), ("1048576", Some("0"))] {
            let dir = format!("/sys/kernel/mm/hugepages/hugepages-{size}kB");
            host.file(&format!("{dir}/nr_hugepages"), "0\n");
            host.file(&format!("{dir}/free_hugepages"), "0\n");
            if let Some(max) = max {
                host.file(&format!("{dir}/sim_max"), &format!("{max}\n"));
            }
        }
        host.file(
            "/proc/meminfo",
            "MemTotal:  2048000 kB\nHugepagesize:       2048 kB\n",
        );
        host.file(
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\n",
        );
        host.file("/etc/group", "root:x:0:\nkvm:x:992:alice\nalice:x:1000:\n");
        host.irqs();
        std::fs::create_dir_all(host.path("/dev/shm")).unwrap();
        std::fs::create_dir_all(host.path("/run")).unwrap();
        host
    }

    /// `/proc/irq` as the q35 guest's kernel shows it (recorded, plus [`EXTRA_IRQS`]); `sim_refuse` marks the
    /// IRQs the simulated kernel refuses to move.
    fn irqs(&self) {
        self.file("/proc/irq/default_smp_affinity", "f\n");
        for (irq, cpus) in irqs() {
            self.file(
                &format!("/proc/irq/{irq}/smp_affinity_list"),
                &format!("{cpus}\n"),
            );
        }
        for irq in REFUSING_IRQS {
            self.file(&format!("/proc/irq/{irq}/sim_refuse"), "");
        }
    }

    /// An MSI vector of a PCI device: `/sys/bus/pci/devices/<addr>/msi_irqs/<irq>` (the kernel's sysfs
    /// file holds "msi" or "msix") and its `/proc/irq/<irq>` on every CPU.
    pub fn msi_vector(&self, addr: &str, irq: u32) {
        self.file(
            &format!("/sys/bus/pci/devices/{addr}/msi_irqs/{irq}"),
            "msix\n",
        );
        self.file(&format!("/proc/irq/{irq}/smp_affinity_list"), "0-3\n");
    }

    /// cpufreq for CPUs 0-3 as acpi-cpufreq shows it (`scaling_driver`, `scaling_governor`,
    /// `scaling_available_governors`), or intel_pstate in active mode (`powersave`/`performance` only, plus
    /// `energy_performance_preference`).
    pub fn cpufreq(&self, driver: &str, governor: &str) {
        for cpu in 0..4 {
            let dir = format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq");
            self.file(&format!("{dir}/scaling_driver"), &format!("{driver}\n"));
            self.file(&format!("{dir}/scaling_governor"), &format!("{governor}\n"));
            if driver == "intel_pstate" {
                self.file(
                    &format!("{dir}/scaling_available_governors"),
                    "performance powersave\n",
                );
                self.file(
                    &format!("{dir}/energy_performance_preference"),
                    "balance_performance\n",
                );
            } else {
                self.file(
                    &format!("{dir}/scaling_available_governors"),
                    "conservative ondemand userspace powersave performance schedutil\n",
                );
            }
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, host_path: &str) -> PathBuf {
        self.dir.path().join(host_path.trim_start_matches('/'))
    }

    pub fn file(&self, host_path: &str, content: &str) {
        write(&self.path(host_path), content);
    }

    pub fn driver(&self, name: &str) {
        let dir = self.path(&format!("/sys/bus/pci/drivers/{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        write(&dir.join("bind"), "");
        write(&dir.join("unbind"), "");
    }

    pub fn device(
        &self,
        addr: &str,
        class: &str,
        vendor: &str,
        device: &str,
        driver: Option<&str>,
        group: u32,
    ) {
        let dir = self.path(&format!("/sys/bus/pci/devices/{addr}"));
        std::fs::create_dir_all(&dir).unwrap();
        write(&dir.join("class"), &format!("{class}\n"));
        write(&dir.join("vendor"), &format!("{vendor}\n"));
        write(&dir.join("device"), &format!("{device}\n"));
        write(&dir.join("driver_override"), "(null)\n");
        let group_dir = self.path(&format!("/sys/kernel/iommu_groups/{group}/devices"));
        std::fs::create_dir_all(&group_dir).unwrap();
        symlink(&dir, group_dir.join(addr)).unwrap();
        symlink(
            self.path(&format!("/sys/kernel/iommu_groups/{group}")),
            dir.join("iommu_group"),
        )
        .unwrap();
        if let Some(driver) = driver {
            write(&dir.join("sim_native_driver"), &format!("{driver}\n"));
            self.driver(driver);
            let driver_dir = self.path(&format!("/sys/bus/pci/drivers/{driver}"));
            symlink(&driver_dir, dir.join("driver")).unwrap();
            symlink(&dir, driver_dir.join(addr)).unwrap();
        }
    }

    /// The driver a device is bound to.
    pub fn driver_of(&self, addr: &str) -> Option<String> {
        std::fs::read_link(self.path(&format!("/sys/bus/pci/devices/{addr}/driver")))
            .ok()
            .map(|t| t.file_name().unwrap().to_string_lossy().into_owned())
    }

    pub fn read(&self, host_path: &str) -> String {
        std::fs::read_to_string(self.path(host_path))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Every file (trimmed content, mode, owner), symlink (target) and directory under the root, except
    /// vmgpu's own state (`run/vmgpu`) and the simulation's bookkeeping (`run/vmgpu-sim`).
    pub fn snapshot(&self) -> Snapshot {
        let mut out = BTreeMap::new();
        walk(self.root(), self.root(), &mut out);
        Snapshot(out)
    }

    /// Runs `vmgpu --root <tree> ARGS` with `stdin`.
    pub fn vmgpu(&self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
        let mut child = Command::new(binary())
            .arg("--root")
            .arg(self.root())
            .args(args)
            .envs(env.iter().copied())
            .env_remove("VMGPU_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The hook may exit before reading everything (a usage error): ignore EPIPE.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    }

    /// `vmgpu hook <vm> <op> <sub> <extra>`.
    pub fn hook(&self, hook_args: &[&str], xml: &str) -> Output {
        let mut args = vec!["hook"];
        args.extend_from_slice(hook_args);
        self.vmgpu(&args, xml, &[])
    }
}

/// A host tree's state; `Debug` of a difference shows only what differs.
#[derive(PartialEq, Eq)]
pub struct Snapshot(pub BTreeMap<String, String>);

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Snapshot({} entries)", self.0.len())
    }
}

impl Snapshot {
    /// The entries that differ from `other`: `path: self | other`.
    pub fn diff(&self, other: &Snapshot) -> Vec<String> {
        let keys: std::collections::BTreeSet<&String> =
            self.0.keys().chain(other.0.keys()).collect();
        keys.into_iter()
            .filter(|k| self.0.get(*k) != other.0.get(*k))
            .map(|k| format!("{k}: {:?} | {:?}", self.0.get(k), other.0.get(k)))
            .collect()
    }
}

/// Asserts two snapshots are equal, listing the differences.
#[track_caller]
pub fn assert_same(before: &Snapshot, after: &Snapshot, what: &str) {
    let diff = before.diff(after);
    assert!(
        diff.is_empty(),
        "{what}: host tree differs (before | after):\n{}",
        diff.join("\n")
    );
}

fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let rel = path
            .strip_prefix(base)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel == "run/vmgpu" || rel == "run/vmgpu-sim" {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            out.insert(
                rel,
                format!("-> {}", std::fs::read_link(&path).unwrap().display()),
            );
        } else if meta.is_dir() {
            out.insert(rel.clone(), "dir".into());
            walk(base, &path, out);
        } else {
            let content = std::fs::read_to_string(&path).unwrap_or_default();
            out.insert(
                rel,
                format!(
                    "{:?} mode {:o} {}:{} size {}",
                    content.trim(),
                    meta.mode() & 0o7777,
                    meta.uid(),
                    meta.gid(),
                    meta.len()
                ),
            );
        }
    }
}

/// The binary under test: `VMGPU_TEST_BIN` when set (a copy taken right after the build, for a target
/// directory other checkouts build into at the same time), else cargo's.
pub fn binary() -> PathBuf {
    std::env::var_os("VMGPU_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_vmgpu")))
}

/// A domain fixture.
pub fn domain(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/domains")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

pub use crate::fixtures::stderr;
