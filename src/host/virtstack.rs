//! The virtualization stack as files under the root: the QEMU binary, OVMF firmware descriptors
//! (`/usr/share/qemu/firmware/*.json`) and the files they name, the libvirt daemon (libvirtd or the modular
//! virtqemud; installed, enabled, running — from binaries, systemd `.wants` links, sockets and `/proc/*/comm`,
//! never by calling libvirt), `/dev/kvm`, the qemu hook, `libvirt-guests`, the kvmfr device and the MAC
//! (AppArmor / SELinux) state. (A VM's Looking Glass file in `/dev/shm` is named by its domain: `check`
//! reads it with [`Node::read`].)
use serde::{Deserialize, Serialize};

use super::accounts::Accounts;
use super::distro::Family;
use super::parse;
use super::root::{self, FileStat, HostRoot};

/// Where QEMU firmware descriptors live, in libvirt's search order (system dirs; the user's is not ours).
pub(crate) const FIRMWARE_DIRS: &[&str] = &["/etc/qemu/firmware", "/usr/share/qemu/firmware"];
/// QEMU binaries, in the order distros install them.
pub(crate) const QEMU_BINARIES: &[&str] = &[
    "/usr/bin/qemu-system-x86_64",
    "/usr/libexec/qemu-kvm",
    "/usr/bin/qemu-kvm",
    "/run/current-system/sw/bin/qemu-system-x86_64",
];

/// Which libvirt daemon runs QEMU domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DaemonKind {
    /// The monolithic `libvirtd`.
    Libvirtd,
    /// The modular `virtqemud`.
    Virtqemud,
}

impl DaemonKind {
    /// The process and unit name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            DaemonKind::Libvirtd => "libvirtd",
            DaemonKind::Virtqemud => "virtqemud",
        }
    }
}

/// The libvirt daemon's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Daemon {
    /// The daemon that matters: the running one, else the enabled one, else an installed one.
    pub kind: Option<DaemonKind>,
    /// Installed binaries (`/usr/sbin/libvirtd`, `/usr/sbin/virtqemud`).
    pub installed: Vec<DaemonKind>,
    /// Units enabled through systemd `.wants` links (`virtqemud.socket`, `libvirtd.service`).
    pub enabled_units: Vec<String>,
    /// The running daemon process: (kind, pid, start time in seconds since the epoch when known).
    pub running: Option<(DaemonKind, u32, Option<i64>)>,
    /// Its control socket exists under `/run/libvirt`.
    pub socket: bool,
}

/// One firmware descriptor (the JSON fields vmgpu uses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Firmware {
    /// The descriptor's host path.
    pub descriptor: String,
    /// `description`.
    pub description: String,
    /// `interface-types` (`uefi`, `bios`).
    pub interfaces: Vec<String>,
    /// `features` (`secure-boot`, `enrolled-keys`, `requires-smm`, …).
    pub features: Vec<String>,
    /// `mapping.executable.filename` (or `mapping.filename`).
    pub executable: Option<String>,
    /// `mapping.nvram-template.filename`.
    pub nvram_template: Option<String>,
    /// True when the executable (and the template, if named) exist.
    pub files_present: bool,
    /// Set when the descriptor could not be parsed.
    pub error: Option<String>,
}

impl Firmware {
    /// A UEFI build for x86_64 guests.
    pub(crate) fn is_uefi(&self) -> bool {
        self.interfaces.iter().any(|i| i == "uefi")
    }
    /// Secure-boot capable.
    pub(crate) fn secure_boot(&self) -> bool {
        self.features.iter().any(|f| f == "secure-boot")
    }
}

#[derive(Deserialize)]
struct RawDescriptor {
    #[serde(default)]
    description: String,
    #[serde(rename = "interface-types", default)]
    interfaces: Vec<String>,
    #[serde(default)]
    features: Vec<String>,
    #[serde(default)]
    mapping: RawMapping,
}

#[derive(Deserialize, Default)]
struct RawMapping {
    executable: Option<RawFile>,
    #[serde(rename = "nvram-template")]
    nvram_template: Option<RawFile>,
    filename: Option<String>,
}

#[derive(Deserialize)]
struct RawFile {
    filename: String,
}

/// A device node or file with its owner and group names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// The host path.
    pub path: String,
    /// Kind, mode, uid, gid, mtime.
    pub stat: FileStat,
    /// The owner's name from `/etc/passwd`.
    pub owner: Option<String>,
    /// The group's name from `/etc/group`.
    pub group: Option<String>,
}

impl Node {
    /// The file or node at a host path, with its owner's and group's names (`None`: it does not exist).
    /// For a file outside the snapshot, such as a VM's Looking Glass file in `/dev/shm`.
    pub(crate) fn read(root: &HostRoot, path: &str) -> root::Result<Option<Node>> {
        let Some(stat) = root.stat(path)? else {
            return Ok(None);
        };
        let names = Accounts::read(root)?;
        Ok(Some(Node {
            path: path.to_string(),
            owner: names.user_name(stat.uid).map(str::to_string),
            group: names.group_name(stat.gid).map(str::to_string),
            stat,
        }))
    }
}

/// The qemu hook as installed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Hook {
    /// The hook path for this distro (`/etc/libvirt/hooks/qemu`, NixOS `/var/lib/libvirt/hooks/qemu`).
    pub path: String,
    /// Its file, when present.
    pub file: Option<Node>,
    /// True when it is vmgpu (a link to a `vmgpu` binary, or a file that mentions vmgpu).
    pub is_vmgpu: bool,
    /// Where the hook resolves to when it is a symlink (AppArmor checks the resolved path).
    pub link_target: Option<String>,
    /// Executable files in `qemu.d/`.
    pub qemu_d: Vec<String>,
    /// Where vmgpu is installed as a hook: the main hook, else `qemu.d/vmgpu` (`vmgpu install` puts it there
    /// when the main hook is another program's).
    pub vmgpu: Option<Node>,
}

/// Mandatory access control.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Mac {
    /// AppArmor is enabled in the kernel.
    pub apparmor: bool,
    /// SELinux mode: `enforcing` or `permissive` (`None`: off).
    pub selinux: Option<String>,
    /// The SELinux boolean `virt_hooks_unconfined` (current value), when it exists.
    pub virt_hooks_unconfined: Option<bool>,
}

/// The virtualization stack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VirtStack {
    /// The QEMU binary, if installed.
    pub qemu: Option<String>,
    /// Firmware descriptors, by path.
    pub firmware: Vec<Firmware>,
    /// The libvirt daemon.
    pub daemon: Daemon,
    /// `/dev/kvm`.
    pub kvm: Option<Node>,
    /// `/dev/net/tun` (libvirt's networks and user tap devices need it).
    pub tun: Option<Node>,
    /// `/dev/vhost-net` (in-kernel virtio-net acceleration).
    pub vhost_net: Option<Node>,
    /// The qemu hook.
    pub hook: Hook,
    /// `ON_SHUTDOWN` from the libvirt-guests config (`None`: not set, libvirt's default `suspend`).
    pub guests_on_shutdown: Option<String>,
    /// The libvirt-guests config file found, if any.
    pub guests_config: Option<String>,
    /// `/dev/kvmfr0`.
    pub kvmfr: Option<Node>,
    /// `swtpm` is installed (TPM 2.0 for Windows 11).
    pub swtpm: bool,
    /// AppArmor / SELinux.
    pub mac: Mac,
}

impl VirtStack {
    /// Reads the stack under `root`; the family picks NixOS's hook path and the daemon a distro runs by default
    /// when none runs or is enabled.
    pub(crate) fn read(root: &HostRoot, family: Family) -> root::Result<Self> {
        let nixos = family == Family::NixOs;
        let names = Accounts::read(root)?;
        let node = |path: &str| -> root::Result<Option<Node>> {
            Ok(root.stat(path)?.map(|stat| Node {
                path: path.to_string(),
                owner: names.user_name(stat.uid).map(str::to_string),
                group: names.group_name(stat.gid).map(str::to_string),
                stat,
            }))
        };
        let (guests_config, guests_on_shutdown) = read_guests(root)?;
        Ok(Self {
            qemu: QEMU_BINARIES
                .iter()
                .find(|p| root.exists(p))
                .map(|p| (*p).to_string()),
            firmware: read_firmware(root)?,
            daemon: read_daemon(root, family)?,
            kvm: node("/dev/kvm")?,
            tun: node("/dev/net/tun")?,
            vhost_net: node("/dev/vhost-net")?,
            hook: read_hook(root, nixos, &node)?,
            guests_on_shutdown,
            guests_config,
            kvmfr: node("/dev/kvmfr0")?,
            swtpm: root.exists("/usr/bin/swtpm") || root.exists("/run/current-system/sw/bin/swtpm"),
            mac: read_mac(root)?,
        })
    }

    /// The UEFI firmware whose files are present.
    pub(crate) fn usable_uefi(&self) -> impl Iterator<Item = &Firmware> {
        self.firmware
            .iter()
            .filter(|f| f.is_uefi() && f.files_present)
    }
}

fn read_firmware(root: &HostRoot) -> root::Result<Vec<Firmware>> {
    let mut out = Vec::new();
    for dir in FIRMWARE_DIRS {
        for name in root.list_dir(dir)? {
            if !name.ends_with(".json") {
                continue;
            }
            let descriptor = format!("{dir}/{name}");
            let text = root.read_raw(&descriptor)?;
            let fw = match serde_json::from_str::<RawDescriptor>(&text) {
                Ok(raw) => {
                    let executable = raw
                        .mapping
                        .executable
                        .map(|f| f.filename)
                        .or(raw.mapping.filename);
                    let nvram_template = raw.mapping.nvram_template.map(|f| f.filename);
                    let files_present = executable.as_deref().is_some_and(|e| root.exists(e))
                        && nvram_template.as_deref().is_none_or(|t| root.exists(t));
                    Firmware {
                        descriptor,
                        description: raw.description,
                        interfaces: raw.interfaces,
                        features: raw.features,
                        executable,
                        nvram_template,
                        files_present,
                        error: None,
                    }
                }
                Err(e) => Firmware {
                    descriptor,
                    description: String::new(),
                    interfaces: Vec::new(),
                    features: Vec::new(),
                    executable: None,
                    nvram_template: None,
                    files_present: false,
                    error: Some(e.to_string()),
                },
            };
            out.push(fw);
        }
    }
    Ok(out)
}

fn read_daemon(root: &HostRoot, family: Family) -> root::Result<Daemon> {
    let mut installed = Vec::new();
    for kind in [DaemonKind::Libvirtd, DaemonKind::Virtqemud] {
        let n = kind.name();
        if root.exists(format!("/usr/sbin/{n}")) || root.exists(format!("/usr/bin/{n}")) {
            installed.push(kind);
        }
    }
    let mut enabled_units = Vec::new();
    for base in ["/etc/systemd/system", "/usr/lib/systemd/system"] {
        for wants in root.list_dir(base)? {
            if !wants.ends_with(".wants") {
                continue;
            }
            for unit in root.list_dir(format!("{base}/{wants}"))? {
                let is_libvirt = ["libvirtd.", "virtqemud."]
                    .iter()
                    .any(|p| unit.starts_with(p));
                if is_libvirt && !enabled_units.contains(&unit) {
                    enabled_units.push(unit);
                }
            }
        }
    }
    enabled_units.sort();
    let running = find_daemon_process(root)?;
    let socket =
        root.exists("/run/libvirt/virtqemud-sock") || root.exists("/run/libvirt/libvirt-sock");
    let enabled = |k: DaemonKind| enabled_units.iter().any(|u| u.starts_with(k.name()));
    let kind = running
        .map(|(k, _, _)| k)
        .or_else(|| {
            [DaemonKind::Virtqemud, DaemonKind::Libvirtd]
                .into_iter()
                .find(|k| enabled(*k))
        })
        .or_else(|| {
            // Fedora and openSUSE default to the modular daemons, the others to libvirtd.
            let modular = matches!(family, Family::Fedora | Family::OpenSuse);
            installed
                .iter()
                .copied()
                .max_by_key(|k| (*k == DaemonKind::Virtqemud) == modular)
        });
    Ok(Daemon {
        kind,
        installed,
        enabled_units,
        running,
        socket,
    })
}

/// Finds a running libvirtd/virtqemud in `/proc/<pid>/comm`; its start time from `/proc/<pid>/stat` field 22
/// and `btime` of `/proc/stat` (clock ticks of 1/100 s, the value on every Linux architecture vmgpu runs on).
fn find_daemon_process(root: &HostRoot) -> root::Result<Option<(DaemonKind, u32, Option<i64>)>> {
    for name in root.list_dir("/proc")? {
        let Ok(pid) = name.parse::<u32>() else {
            continue;
        };
        // A process may exit while we look: a missing or unreadable comm is skipped.
        let Ok(comm) = root.read_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        let kind = match comm.as_str() {
            "libvirtd" => DaemonKind::Libvirtd,
            "virtqemud" => DaemonKind::Virtqemud,
            _ => continue,
        };
        let started = process_start(root, pid);
        return Ok(Some((kind, pid, started)));
    }
    Ok(None)
}

fn process_start(root: &HostRoot, pid: u32) -> Option<i64> {
    let stat = root.read_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)` part, which may contain spaces: field 22 is the 20th after it.
    let after = stat.rsplit_once(')')?.1;
    let ticks: i64 = after.split_whitespace().nth(19)?.parse().ok()?;
    let btime: i64 = root
        .read_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(btime + ticks / 100)
}

fn read_hook(
    root: &HostRoot,
    nixos: bool,
    node: &dyn Fn(&str) -> root::Result<Option<Node>>,
) -> root::Result<Hook> {
    let dir = if nixos {
        "/var/lib/libvirt/hooks"
    } else {
        "/etc/libvirt/hooks"
    };
    let path = format!("{dir}/qemu");
    let file = node(&path)?;
    let link = std::fs::read_link(root.path(&path)).ok();
    let is_vmgpu = file.is_some() && is_vmgpu_file(root, &path);
    let mut qemu_d = Vec::new();
    for name in root.list_dir(format!("{dir}/qemu.d"))? {
        let p = format!("{dir}/qemu.d/{name}");
        if let Some(st) = root.stat(&p)?
            && st.kind == root::FileKind::File
            && st.mode & 0o111 != 0
        {
            qemu_d.push(p);
        }
    }
    let dropin = format!("{dir}/qemu.d/vmgpu");
    let vmgpu = if is_vmgpu {
        file.clone()
    } else if is_vmgpu_file(root, &dropin) {
        node(&dropin)?
    } else {
        None
    };
    Ok(Hook {
        path,
        file,
        is_vmgpu,
        link_target: link.map(|l| l.to_string_lossy().into_owned()),
        qemu_d,
        vmgpu,
    })
}

/// True when the file is vmgpu: a symlink to a file named `vmgpu`, or a file (the binary `vmgpu install`
/// copies, or a wrapper script) that contains the word `vmgpu`. Reads at most 256 MiB.
fn is_vmgpu_file(root: &HostRoot, host_path: &str) -> bool {
    use std::io::Read;
    let path = root.path(host_path);
    if let Ok(target) = std::fs::read_link(&path)
        && target.file_name().is_some_and(|n| n == "vmgpu")
    {
        return true;
    }
    let Ok(file) = std::fs::File::open(&path) else {
        return false;
    };
    let needle = b"vmgpu";
    let mut reader = file.take(256 << 20);
    let mut buf = vec![0u8; 1 << 20];
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        carry.extend_from_slice(buf.get(..n).unwrap_or_default());
        if carry.windows(needle.len()).any(|w| w == needle) {
            return true;
        }
        // keep the last bytes: the word may straddle two reads
        let keep = carry.len().saturating_sub(needle.len() - 1);
        carry.drain(..keep);
    }
}

fn read_guests(root: &HostRoot) -> root::Result<(Option<String>, Option<String>)> {
    for path in super::distro::LIBVIRT_GUESTS_CONFIGS {
        if let Some(text) = root.read_optional(path)? {
            let value = parse::key_values(&text).get("ON_SHUTDOWN").cloned();
            return Ok((Some(path.to_string()), value));
        }
    }
    Ok((None, None))
}

fn read_mac(root: &HostRoot) -> root::Result<Mac> {
    let apparmor = root
        .read_optional("/sys/module/apparmor/parameters/enabled")?
        .is_some_and(|v| v == "Y")
        || root.exists("/sys/kernel/security/apparmor/profiles");
    let selinux = root
        .read_optional("/sys/fs/selinux/enforce")?
        .map(|v| if v == "1" { "enforcing" } else { "permissive" }.to_string());
    let virt_hooks_unconfined = root
        .read_optional("/sys/fs/selinux/booleans/virt_hooks_unconfined")?
        .map(|v| v.starts_with('1'));
    Ok(Mac {
        apparmor,
        selinux,
        virt_hooks_unconfined,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::host::test_tree::write;

    #[test]
    fn test_firmware_descriptor_parsed_and_files_checked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "usr/share/qemu/firmware/60-edk2.json",
            r#"{"description":"OVMF","interface-types":["uefi"],"features":["acpi-s3"],
               "mapping":{"device":"flash","executable":{"filename":"/usr/share/OVMF/OVMF_CODE_4M.fd","format":"raw"},
               "nvram-template":{"filename":"/usr/share/OVMF/OVMF_VARS_4M.fd","format":"raw"}}}"#,
        );
        write(d, "usr/share/OVMF/OVMF_CODE_4M.fd", "");
        let stack = VirtStack::read(&HostRoot::new(d), Family::Unknown).unwrap();
        assert!(stack.firmware[0].is_uefi());
        assert!(!stack.firmware[0].files_present, "VARS template is missing");
    }

    #[test]
    fn test_broken_descriptor_is_recorded_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "usr/share/qemu/firmware/x.json", "{not json");
        let stack = VirtStack::read(&HostRoot::new(dir.path()), Family::Unknown).unwrap();
        assert!(stack.firmware[0].error.is_some());
    }

    #[test]
    fn test_running_virtqemud_found_with_start_time() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "proc/stat", "cpu 1 2 3\nbtime 1700000000\n");
        write(d, "proc/812/comm", "virtqemud\n");
        let fields = "S 1 812 812 0 -1 4194560 1 0 0 0 1 1 0 0 20 0 17 0 500 0";
        write(d, "proc/812/stat", &format!("812 (virtqemud) {fields}\n"));
        let stack = VirtStack::read(&HostRoot::new(d), Family::Unknown).unwrap();
        assert_eq!(
            stack.daemon.running,
            Some((DaemonKind::Virtqemud, 812, Some(1_700_000_005)))
        );
    }

    #[test]
    fn test_guests_on_shutdown_read_from_sysconfig() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "etc/sysconfig/libvirt-guests",
            "ON_SHUTDOWN=shutdown\n",
        );
        let stack = VirtStack::read(&HostRoot::new(dir.path()), Family::Unknown).unwrap();
        assert_eq!(stack.guests_on_shutdown.as_deref(), Some("shutdown"));
    }
}
