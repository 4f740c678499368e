//! [`SimOps`]: the kernel's side of every host change, simulated on a directory tree (a copy of a fixture),
//! so the hook's whole state machine runs in tests with the real binary (`--root DIR`).
//!
//! What it simulates: driver `bind`/`unbind`/`drivers_probe` on the `pci` and `platform` buses (the
//! `driver` symlink, `driver_override`; a device's default driver is named in its `sim_native_driver`
//! file, a device with a `sim_busy` file blocks its unbind → timeout), `modprobe` (creates
//! `/sys/module/M` and the driver directory), hugepage counts (capped by a `sim_max` file next to
//! `nr_hugepages`, `free_hugepages` follows), cgroup directories, `systemctl set-property … AllowedCPUs=`
//! (writes the unit's `cpuset.cpus`), `systemctl start/stop/restart` (a state file under `/run/vmgpu-sim`)
//! and `systemctl enable` (the `*.target.wants` link), and time: [`HostOps::pause`] moves the simulation's
//! clock instead of sleeping.
//!
//! Programs ([`HostOps::run`]): a root that brings its own (an executable at the usual places, as in the
//! setup harness's distro roots) runs them for real inside it (`chroot`); otherwise the command line is
//! appended to `/run/vmgpu-sim/commands` and its effect on what vmgpu reads back is simulated
//! (`systemctl`, `usermod --append --groups` edits `/etc/group`, `setsebool -P` sets the boolean); everything
//! else is only recorded.
// The simulated kernel edits a test tree the way the kernel edits sysfs (driver links, module directories,
// attribute files); it never runs on `/` (`ops::for_root`), so it writes with std directly.
#![allow(clippy::disallowed_methods)]
use std::cell::Cell;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::process::{Output, Program};
use super::{Error, HostOps, NewFile, Result};
use crate::host::HostRoot;

/// Where the simulation records the programs it was asked to run, one command line each.
pub(crate) const COMMANDS: &str = "/run/vmgpu-sim/commands";

/// The simulated kernel on a tree.
pub(crate) struct SimOps {
    root: HostRoot,
    /// Starts at the real time; only [`HostOps::pause`] moves it.
    clock: Cell<Instant>,
}

impl SimOps {
    /// Simulation on `root`.
    pub(crate) fn new(root: HostRoot) -> Self {
        Self {
            root,
            clock: Cell::new(Instant::now()),
        }
    }

    fn full(&self, path: &str) -> PathBuf {
        self.root.path(path)
    }

    fn write_error(&self, path: &str, value: &str, errno: i32) -> Error {
        Error::Write {
            path: self.full(path),
            value: value.to_string(),
            source: io::Error::from_raw_os_error(errno),
        }
    }

    fn bound_driver(&self, bus: &str, device: &str) -> Option<String> {
        self.root
            .read_link_name(format!("/sys/bus/{bus}/devices/{device}/driver"))
            .ok()
            .flatten()
    }

    fn link(&self, bus: &str, device: &str, driver: &str) -> io::Result<()> {
        let driver_dir = self.full(&format!("/sys/bus/{bus}/drivers/{driver}"));
        let device_dir = self.full(&format!("/sys/bus/{bus}/devices/{device}"));
        std::os::unix::fs::symlink(&driver_dir, device_dir.join("driver"))?;
        std::os::unix::fs::symlink(&device_dir, driver_dir.join(device))
    }

    fn unlink(&self, bus: &str, device: &str, driver: &str) -> io::Result<()> {
        std::fs::remove_file(self.full(&format!("/sys/bus/{bus}/devices/{device}/driver")))?;
        let back = self.full(&format!("/sys/bus/{bus}/drivers/{driver}/{device}"));
        match std::fs::remove_file(back) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn probe(&self, bus: &str, device: &str) -> io::Result<()> {
        if self.bound_driver(bus, device).is_some() {
            return Ok(());
        }
        let dir = format!("/sys/bus/{bus}/devices/{device}");
        let override_ = self
            .root
            .read_optional(format!("{dir}/driver_override"))
            .ok()
            .flatten()
            .filter(|v| !v.is_empty() && v != "(null)");
        let candidate = match override_ {
            Some(o) => Some(o),
            None => self
                .root
                .read_optional(format!("{dir}/sim_native_driver"))
                .ok()
                .flatten(),
        };
        match candidate {
            Some(driver) if self.root.exists(format!("/sys/bus/{bus}/drivers/{driver}")) => {
                self.link(bus, device, &driver)
            }
            _ => Ok(()), // no driver takes it, as the kernel does
        }
    }

    fn write_driver_attr(&self, path: &str, value: &str) -> Result<Option<()>> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let device = value.trim();
        let result = match parts.as_slice() {
            ["sys", "bus", bus, "drivers", driver, "unbind"] => {
                if self.bound_driver(bus, device).as_deref() != Some(*driver) {
                    return Err(self.write_error(path, value, 19)); // ENODEV
                }
                if self
                    .root
                    .exists(format!("/sys/bus/{bus}/devices/{device}/sim_busy"))
                {
                    return Err(Error::Timeout {
                        path: self.full(path),
                        value: value.to_string(),
                        timeout: Duration::from_millis(0),
                    });
                }
                self.unlink(bus, device, driver)
            }
            ["sys", "bus", bus, "drivers", driver, "bind"] => {
                if self.bound_driver(bus, device).is_some() {
                    return Err(self.write_error(path, value, 16)); // EBUSY
                }
                self.link(bus, device, driver)
            }
            ["sys", "bus", bus, "drivers_probe"] => self.probe(bus, device),
            ["sys", "bus", bus, "devices", _, "driver_override"] => {
                let _ = bus;
                let stored = if device.is_empty() { "(null)" } else { device };
                std::fs::write(self.full(path), format!("{stored}\n"))
            }
            _ => return Ok(None),
        };
        result
            .map(Some)
            .map_err(|e| self.write_error(path, value, e.raw_os_error().unwrap_or(5)))
    }

    fn write_hugepages(&self, path: &str, value: &str) -> Result<()> {
        let wanted: u64 = value
            .trim()
            .parse()
            .map_err(|_| self.write_error(path, value, 22))?;
        let dir = path.trim_end_matches("/nr_hugepages");
        let max = self
            .root
            .read_optional(format!("{dir}/sim_max"))
            .ok()
            .flatten()
            .and_then(|m| m.parse().ok())
            .unwrap_or(u64::MAX);
        let old = self.root.read_u64(path).unwrap_or(0);
        let free = self
            .root
            .read_u64(format!("{dir}/free_hugepages"))
            .unwrap_or(0);
        let in_use = old.saturating_sub(free);
        let new = wanted.min(max).max(in_use);
        let write = |p: String, v: u64| {
            std::fs::write(self.full(&p), format!("{v}\n"))
                .map_err(|e| self.write_error(&p, value, e.raw_os_error().unwrap_or(5)))
        };
        write(path.to_string(), new)?;
        if self.root.exists(format!("{dir}/free_hugepages")) {
            write(format!("{dir}/free_hugepages"), new - in_use)?;
        }
        Ok(())
    }
}

impl SimOps {
    /// The errno the kernel answers a tuning write with, if any: an IRQ it will not move (per-CPU or
    /// managed: EIO; the tree marks it with `sim_refuse` beside the file), a CPU list that is not one or
    /// holds no online CPU (EINVAL), a governor the CPU does not offer (EINVAL).
    fn refuses(&self, path: &str, value: &str) -> Option<i32> {
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        if path.starts_with("/proc/irq/") {
            if self.root.exists(format!("{dir}/sim_refuse")) {
                return Some(5);
            }
            let online =
                crate::host::cpu::read_cpu_list(&self.root, "/sys/devices/system/cpu/online");
            return match (value.trim().parse::<crate::host::cpu::CpuSet>(), online) {
                (Ok(set), Ok(online)) if !set.intersection(&online).is_empty() => None,
                _ => Some(22),
            };
        }
        if path.ends_with("/cpufreq/scaling_governor") {
            let available = self
                .root
                .read_optional(format!("{dir}/scaling_available_governors"))
                .ok()
                .flatten()
                .unwrap_or_default();
            if !available.split_whitespace().any(|g| g == value.trim()) {
                return Some(22);
            }
        }
        None
    }
}

impl HostOps for SimOps {
    fn root(&self) -> &HostRoot {
        &self.root
    }

    fn write(&self, path: &str, value: &str) -> Result<()> {
        if self.write_driver_attr(path, value)?.is_some() {
            return Ok(());
        }
        if path.ends_with("/nr_hugepages") {
            return self.write_hugepages(path, value);
        }
        if path.starts_with("/proc/sys/vm/") {
            return Ok(()); // drop_caches, compact_memory: nothing to simulate
        }
        let full = self.full(path);
        if !full.is_file() {
            return Err(self.write_error(path, value, 2));
        }
        if let Some(errno) = self.refuses(path, value) {
            return Err(self.write_error(path, value, errno));
        }
        let content = if path.starts_with("/proc/irq/") {
            // the kernel prints the list it parsed (`0-1`, never `0,1`)
            value
                .trim()
                .parse::<crate::host::cpu::CpuSet>()
                .map(|s| s.to_string())
                .unwrap_or_default()
        } else if path.ends_with("/cgroup.subtree_control") {
            let old = self.root.read_string(path).unwrap_or_default();
            let mut tokens: Vec<String> = old.split_whitespace().map(str::to_string).collect();
            for change in value.split_whitespace() {
                if let Some(add) = change.strip_prefix('+') {
                    if !tokens.iter().any(|t| t == add) {
                        tokens.push(add.to_string());
                    }
                } else if let Some(remove) = change.strip_prefix('-') {
                    tokens.retain(|t| t != remove);
                }
            }
            tokens.join(" ")
        } else {
            value.trim().to_string()
        };
        std::fs::write(&full, format!("{content}\n"))
            .map_err(|e| self.write_error(path, value, e.raw_os_error().unwrap_or(5)))
    }

    fn load_module(&self, module: &str) -> Result<()> {
        let fail = |e: io::Error| Error::Command {
            command: format!("modprobe {module}"),
            detail: e.to_string(),
        };
        let name = module.replace('-', "_");
        std::fs::create_dir_all(self.full(&format!("/sys/module/{name}"))).map_err(fail)?;
        let driver = if name == "vfio_pci" {
            "vfio-pci".to_string()
        } else {
            name
        };
        let dir = self.full(&format!("/sys/bus/pci/drivers/{driver}"));
        std::fs::create_dir_all(&dir).map_err(fail)?;
        for attr in ["bind", "unbind"] {
            std::fs::write(dir.join(attr), "").map_err(fail)?;
        }
        Ok(())
    }

    fn unload_module(&self, module: &str) -> Result<()> {
        let name = module.replace('-', "_");
        let dir = format!("/sys/bus/pci/drivers/{name}");
        let bound = self
            .root
            .list_dir(&dir)
            .unwrap_or_default()
            .into_iter()
            .any(|n| n.contains(':'));
        if bound {
            return Err(Error::Command {
                command: format!("modprobe -r {module}"),
                detail: format!("modprobe: FATAL: Module {name} is in use."),
            });
        }
        let _ = std::fs::remove_dir_all(self.full(&dir));
        let _ = std::fs::remove_dir_all(self.full(&format!("/sys/module/{name}")));
        Ok(())
    }

    fn systemctl(&self, args: &[&str]) -> Result<()> {
        let fail = |e: io::Error| Error::Command {
            command: format!("systemctl {}", args.join(" ")),
            detail: e.to_string(),
        };
        match args {
            ["set-property", "--runtime", unit, property] => {
                let cpus = property.strip_prefix("AllowedCPUs=").unwrap_or("");
                let path = self.full(&format!("/sys/fs/cgroup/{unit}/cpuset.cpus"));
                std::fs::write(path, format!("{cpus}\n")).map_err(fail)
            }
            [verb @ ("start" | "restart" | "stop"), unit] => {
                let state = if *verb == "stop" {
                    "inactive"
                } else {
                    "active"
                };
                self.unit_state(unit, state).map_err(fail)
            }
            ["enable", rest @ ..] => {
                let units = rest.iter().filter(|a| !a.starts_with("--"));
                for unit in units {
                    self.enable(unit).map_err(fail)?;
                    if rest.contains(&"--now") {
                        self.unit_state(unit, "active").map_err(fail)?;
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn run(&self, program: Program, deadline: Duration) -> Result<()> {
        let command = program.command();
        let name = command.get_program().to_string_lossy().into_owned();
        let args: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        if self.has_own_program(&name) {
            let chrooted = Program::new("chroot")
                .arg(self.root.base())
                .arg("/usr/bin/env")
                .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
                .arg(&name)
                .args(&args)
                .stdout(Output::OurStderr)
                .stderr(Output::OurStderr);
            return super::real::run_program(chrooted, deadline);
        }
        let line = program.line();
        tracing::info!("simulated: {line}");
        self.record(&line).map_err(|e| Error::Command {
            command: line.clone(),
            detail: e.to_string(),
        })?;
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match (name.as_str(), args.as_slice()) {
            ("systemctl", args) => self.systemctl(args),
            ("usermod", ["--append", "--groups", groups, user]) => self
                .add_to_groups(user, groups)
                .map_err(|e| Error::Command {
                    command: line,
                    detail: e.to_string(),
                }),
            ("setsebool", ["-P", name, value]) => {
                self.set_boolean(name, value).map_err(|e| Error::Command {
                    command: line,
                    detail: e.to_string(),
                })
            }
            _ => Ok(()),
        }
    }

    fn create_dir(&self, path: &str) -> Result<()> {
        let full = self.full(path);
        let result = std::fs::create_dir(&full).and_then(|()| {
            if path.starts_with("/sys/fs/cgroup/") {
                for file in ["cpuset.cpus", "cgroup.procs"] {
                    std::fs::write(full.join(file), "")?;
                }
            }
            Ok(())
        });
        result.map_err(|source| Error::File {
            action: "create directory",
            path: full,
            source,
        })
    }

    fn remove_dir(&self, path: &str) -> Result<()> {
        let full = self.full(path);
        if path.starts_with("/sys/fs/cgroup/") {
            // cgroupfs removes its attribute files with the directory
            for file in ["cpuset.cpus", "cgroup.procs"] {
                let _ = std::fs::remove_file(full.join(file));
            }
        }
        match std::fs::remove_dir(&full) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::File {
                action: "remove directory",
                path: full,
                source: e,
            }),
            _ => Ok(()),
        }
    }

    fn create_file(&self, file: &NewFile) -> Result<()> {
        match super::real::create_file_at(&self.root, file) {
            // a test run without root cannot chown: keep the simulation going
            Err(Error::File {
                action: "chown", ..
            }) if !nix::unistd::geteuid().is_root() => Ok(()),
            other => other,
        }
    }

    fn remove_file(&self, path: &str) -> Result<()> {
        super::real::remove_file_at(&self.root, path)
    }

    fn pause(&self, duration: Duration) {
        self.clock.set(self.clock.get() + duration);
    }

    fn now(&self) -> Instant {
        self.clock.get()
    }
}

/// The userland side of the simulation: programs, units, groups.
impl SimOps {
    /// True when the root has its own `program` to run: an executable file (or a link, as busybox
    /// installs them) in one of the usual binary directories.
    fn has_own_program(&self, program: &str) -> bool {
        use std::os::unix::fs::PermissionsExt;
        if program.contains('/') {
            return false;
        }
        let dirs = [
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ];
        dirs.iter().any(|dir| {
            match std::fs::symlink_metadata(self.full(&format!("{dir}/{program}"))) {
                Ok(m) if m.file_type().is_symlink() => true,
                Ok(m) => m.is_file() && m.permissions().mode() & 0o111 != 0,
                Err(_) => false,
            }
        })
    }

    fn record(&self, line: &str) -> io::Result<()> {
        use std::io::Write;
        let path = self.full(COMMANDS);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(file, "{line}")
    }

    fn unit_state(&self, unit: &str, state: &str) -> io::Result<()> {
        let dir = self.full("/run/vmgpu-sim/units");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(unit), state)
    }

    /// `systemctl enable`: the link in the target's `.wants` directory, as the unit's `[Install]` would.
    fn enable(&self, unit: &str) -> io::Result<()> {
        let target = if unit.ends_with(".socket") {
            "sockets.target"
        } else {
            "multi-user.target"
        };
        let dir = self.full(&format!("/etc/systemd/system/{target}.wants"));
        std::fs::create_dir_all(&dir)?;
        let link = dir.join(unit);
        if link.symlink_metadata().is_ok() {
            return Ok(());
        }
        std::os::unix::fs::symlink(format!("/usr/lib/systemd/system/{unit}"), link)
    }

    /// `setsebool -P NAME on|off`: the boolean's current and pending value, where the tree has it.
    fn set_boolean(&self, name: &str, value: &str) -> io::Result<()> {
        let path = self.full(&format!("/sys/fs/selinux/booleans/{name}"));
        if !path.is_file() {
            return Ok(());
        }
        let bit = u8::from(matches!(value, "on" | "1" | "true"));
        std::fs::write(path, format!("{bit} {bit}"))
    }

    /// `usermod --append --groups A,B user`: the user joins the member lists in `/etc/group`.
    fn add_to_groups(&self, user: &str, groups: &str) -> io::Result<()> {
        let path = self.full("/etc/group");
        let text = std::fs::read_to_string(&path)?;
        let wanted: Vec<&str> = groups.split(',').collect();
        let mut out = String::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.splitn(4, ':').collect();
            match fields.as_slice() {
                [name, _, _, members]
                    if wanted.contains(name) && !members.split(',').any(|m| m == user) =>
                {
                    let sep = if members.is_empty() { "" } else { "," };
                    out.push_str(&format!("{line}{sep}{user}\n"));
                }
                _ => out.push_str(&format!("{line}\n")),
            }
        }
        std::fs::write(&path, out)
    }
}
