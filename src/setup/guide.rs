//! The rest of the guide: kvm `ignore_msrs`, packages, the libvirt daemon, groups, the Looking Glass
//! shared-memory file (tmpfiles, kvmfr, AppArmor), the SELinux boolean for the hook, libvirt-guests
//! `ON_SHUTDOWN=shutdown`, the hook itself, and the NixOS snippet.
use super::files::FileSource;
use super::inputs::{Family, LibvirtDaemon, Mac, PackageManager, SetupInputs};
use super::plan::{CommandKind, Plan, PlanCommand, Promise, Runs};

/// The kvm modprobe.d file.
pub(crate) const KVM_CONF: &str = "/etc/modprobe.d/kvm.conf";
/// The tmpfiles.d entry for the shared-memory file.
pub(crate) const TMPFILES: &str = "/etc/tmpfiles.d/10-looking-glass.conf";
/// The shared-memory file (the default name; a domain defined with another `--shm-name` gets its file from
/// the hook).
pub(crate) const SHM_FILE: &str = crate::domain::write::looking_glass::DEFAULT_SHM_FILE;

const HEADER: &str = "# vmgpu setup:";

/// Adds everything after the boot configuration.
pub(crate) fn plan(inputs: &SetupInputs, files: &dyn FileSource, plan: &mut Plan) {
    kvm_conf(files, plan);
    packages(inputs, plan);
    daemon(inputs, plan);
    groups(inputs, plan);
    looking_glass(inputs, files, plan);
    libvirt_guests(inputs, files, plan);
    hook(inputs, plan);
}

fn kvm_conf(files: &dyn FileSource, plan: &mut Plan) {
    let mut out = format!(
        "{HEADER} Windows guests read MSRs KVM does not emulate; ignore them quietly.\n\
         options kvm ignore_msrs=1 report_ignored_msrs=0\n"
    );
    for line in files.read(KVM_CONF).unwrap_or_default().lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let ours = line.starts_with(HEADER)
            || matches!(words.as_slice(), ["options", "kvm", rest @ ..]
                if rest.iter().all(|w| w.starts_with("ignore_msrs=") || w.starts_with("report_ignored_msrs=")));
        if !ours {
            out.push_str(line);
            out.push('\n');
        }
    }
    plan.edit(
        files,
        KVM_CONF,
        out,
        "the guide's kvm ignore_msrs for Windows guests",
    );
    plan.promises.push(Promise::ModuleParam {
        module: "kvm".to_string(),
        param: "ignore_msrs".to_string(),
        value: "Y".to_string(),
    });
}

/// The virtualization packages for this package manager; empty for Nix and unknown ones.
pub(crate) fn package_names(inputs: &SetupInputs) -> &'static [&'static str] {
    match inputs.package_manager {
        PackageManager::Zypper => &[
            "libvirt",
            "qemu-kvm",
            "qemu-ovmf-x86_64",
            "virt-manager",
            "swtpm",
        ],
        PackageManager::Dnf => &["@virtualization", "edk2-ovmf", "swtpm", "swtpm-tools"],
        PackageManager::Pacman => &[
            "qemu-desktop",
            "libvirt",
            "edk2-ovmf",
            "virt-manager",
            "dnsmasq",
            "swtpm",
        ],
        PackageManager::Apt => &[
            "qemu-system-x86",
            "libvirt-daemon-system",
            "libvirt-clients",
            "ovmf",
            "virt-manager",
            "swtpm",
            "swtpm-tools",
        ],
        PackageManager::Nix | PackageManager::Unknown => &[],
    }
}

fn packages(inputs: &SetupInputs, plan: &mut Plan) {
    let names = package_names(inputs);
    let prefix: &[&str] = match inputs.package_manager {
        PackageManager::Zypper => &["zypper", "--non-interactive", "install"],
        PackageManager::Dnf => &["dnf", "install", "-y"],
        PackageManager::Pacman => &["pacman", "-S", "--needed", "--noconfirm"],
        PackageManager::Apt => &["apt-get", "install", "-y"],
        PackageManager::Nix | PackageManager::Unknown => {
            plan.notes.push(
                "package manager not recognised: install libvirt, QEMU, OVMF (UEFI firmware) and swtpm".into(),
            );
            return;
        }
    };
    let argv: Vec<&str> = prefix.iter().chain(names.iter()).copied().collect();
    let cmd = PlanCommand::in_root(
        CommandKind::Packages,
        &argv,
        "libvirt, QEMU, OVMF firmware, virt-manager, swtpm",
    );
    if inputs.options.install_packages {
        plan.commands.push(cmd);
    } else {
        plan.manual.push(cmd.line());
    }
}

fn daemon_units(inputs: &SetupInputs) -> Vec<&'static str> {
    let mut units = match inputs.daemon {
        LibvirtDaemon::Libvirtd => vec!["libvirtd.service"],
        LibvirtDaemon::Virtqemud => vec![
            "virtqemud.socket",
            "virtnetworkd.socket",
            "virtstoraged.socket",
        ],
    };
    units.push("libvirt-guests.service");
    units
}

fn daemon(inputs: &SetupInputs, plan: &mut Plan) {
    let units = daemon_units(inputs);
    let todo: Vec<&str> = units
        .iter()
        .copied()
        .filter(|u| !inputs.enabled_units.iter().any(|e| e == u))
        .collect();
    for u in &units {
        plan.promises.push(Promise::UnitEnabled {
            unit: u.to_string(),
        });
    }
    if todo.is_empty() {
        return;
    }
    let installed = todo
        .iter()
        .all(|u| inputs.installed_units.iter().any(|i| i == u));
    let mut argv = vec!["systemctl", "enable", "--now"];
    argv.extend(todo.iter().copied());
    let cmd = PlanCommand::in_root(
        CommandKind::Service,
        &argv,
        "start the libvirt daemon now and at boot",
    );
    if installed || inputs.options.install_packages {
        plan.commands.push(cmd);
    } else {
        plan.manual
            .push(format!("{}   # after installing the packages", cmd.line()));
    }
}

fn groups(inputs: &SetupInputs, plan: &mut Plan) {
    let Some(user) = &inputs.user else {
        plan.notes.push(format!(
            "no desktop user given (--user or sudo): skipped the libvirt/kvm groups and the owner of {SHM_FILE}"
        ));
        return;
    };
    let wanted: &[&str] = if inputs.family == Family::NixOs {
        &["libvirtd", "kvm"]
    } else {
        &["libvirt", "kvm"]
    };
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|g| !inputs.user_groups.iter().any(|u| u == g))
        .collect();
    for g in wanted {
        plan.promises.push(Promise::UserInGroup {
            user: user.clone(),
            group: g.to_string(),
        });
    }
    if missing.is_empty() {
        return;
    }
    let list = missing.join(",");
    let cmd = PlanCommand::in_root(
        CommandKind::Group,
        &["usermod", "--append", "--groups", &list, user],
        "use qemu:///system and /dev/kvm without root (log in again to take effect)",
    );
    let groups_exist = missing.iter().all(|g| inputs.groups.iter().any(|e| e == g));
    if inputs.options.install_packages || groups_exist {
        plan.commands.push(cmd);
    } else {
        plan.manual
            .push(format!("{}   # after installing the packages", cmd.line()));
    }
}

fn looking_glass(inputs: &SetupInputs, files: &dyn FileSource, plan: &mut Plan) {
    if let Some(user) = &inputs.user {
        let text = format!(
            "{HEADER} the Looking Glass shared-memory file, owned by the desktop user before QEMU starts.\n\
             # Type Path Mode User Group Age Argument\n\
             f {SHM_FILE} 0660 {user} kvm -\n"
        );
        plan.edit(
            files,
            TMPFILES,
            text,
            "the viewer can open the shared memory",
        );
        plan.promises.push(Promise::ShmFile {
            path: SHM_FILE.to_string(),
            user: user.clone(),
            group: "kvm".to_string(),
        });
    }
    if inputs.options.kvmfr {
        plan.edit(
            files,
            "/etc/modules-load.d/kvmfr.conf",
            format!("{HEADER} Looking Glass kvmfr\nkvmfr\n"),
            "load kvmfr at boot",
        );
        plan.edit(
            files,
            "/etc/modprobe.d/kvmfr.conf",
            format!(
                "{HEADER} one 32 MiB kvmfr device (1080p SDR)\noptions kvmfr static_size_mb=32\n"
            ),
            "size of /dev/kvmfr0",
        );
        let owner = inputs.user.as_deref().unwrap_or("root");
        plan.edit(
            files,
            "/etc/udev/rules.d/99-kvmfr.rules",
            format!(
                "{HEADER} the viewer user and QEMU may open /dev/kvmfr*\n\
                 SUBSYSTEM==\"kvmfr\", OWNER=\"{owner}\", GROUP=\"kvm\", MODE=\"0660\"\n"
            ),
            "kvmfr device permissions",
        );
        plan.notes.push(
            "kvmfr: add \"/dev/kvmfr0\" to cgroup_device_acl in /etc/libvirt/qemu.conf (vmgpu does not edit it)"
                .to_string(),
        );
        plan.promises.push(Promise::ModuleLoaded {
            module: "kvmfr".to_string(),
        });
    }
    match inputs.mac {
        Mac::AppArmor => {
            let path = "/etc/apparmor.d/local/abstractions/libvirt-qemu";
            let before = files.read(path).unwrap_or_default();
            let mut after = before.clone();
            let mut lines = vec![format!("{SHM_FILE} rw,")];
            if inputs.options.kvmfr {
                lines.push("/dev/kvmfr0 rw,".to_string());
            }
            for l in lines {
                if !before.lines().any(|b| b.trim() == l) {
                    if !after.is_empty() && !after.ends_with('\n') {
                        after.push('\n');
                    }
                    after.push_str(&l);
                    after.push('\n');
                }
            }
            plan.edit(
                files,
                path,
                after,
                "AppArmor lets QEMU open the shared memory",
            );
        }
        Mac::SeLinux => selinux(inputs, plan),
        Mac::None => {}
    }
}

fn selinux(inputs: &SetupInputs, plan: &mut Plan) {
    plan.promises.push(Promise::SelinuxBoolean {
        name: "virt_hooks_unconfined".to_string(),
    });
    if !inputs.selinux_hooks_unconfined {
        plan.commands.push(PlanCommand::in_root(
            CommandKind::Selinux,
            &["setsebool", "-P", "virt_hooks_unconfined", "on"],
            "let libvirt run the vmgpu hook unconfined",
        ));
    }
}

fn libvirt_guests(inputs: &SetupInputs, files: &dyn FileSource, plan: &mut Plan) {
    let path = inputs.family.libvirt_guests_config();
    let Some(before) = files.read(path) else {
        plan.manual.push(format!(
            "# after installing libvirt, run vmgpu setup again to set ON_SHUTDOWN=shutdown in {path}"
        ));
        return;
    };
    let mut found = false;
    let mut after = String::new();
    for line in before.split_inclusive('\n') {
        if line.trim_start().starts_with("ON_SHUTDOWN=") {
            if !found {
                after.push_str("ON_SHUTDOWN=shutdown\n");
            }
            found = true;
        } else {
            after.push_str(line);
        }
    }
    if !found {
        if !after.is_empty() && !after.ends_with('\n') {
            after.push('\n');
        }
        after.push_str("ON_SHUTDOWN=shutdown\n");
    }
    plan.edit(
        files,
        path,
        after,
        "a VM with a GPU cannot be suspended at host shutdown; shut it down instead",
    );
}

fn hook(inputs: &SetupInputs, plan: &mut Plan) {
    if !inputs.options.hook {
        return;
    }
    plan.promises.push(Promise::HookInstalled);
    if inputs.hook_installed {
        return;
    }
    let mut cmd = PlanCommand::in_root(
        CommandKind::Hook,
        &["vmgpu", "install"],
        "install vmgpu as libvirt's qemu hook",
    );
    cmd.runs = Runs::Vmgpu;
    plan.commands.push(cmd);
    if inputs.mac == Mac::SeLinux {
        plan.commands.push(PlanCommand::in_root(
            CommandKind::Selinux,
            &["restorecon", "-R", "/etc/libvirt/hooks"],
            "label the hook so libvirt may run it",
        ));
    }
}

/// NixOS: the configuration snippet; nothing is changed.
pub(crate) fn nixos(inputs: &SetupInputs, plan: &mut Plan) {
    let modules = super::vfio::initramfs_modules(inputs)
        .iter()
        .map(|m| format!("\"{m}\""))
        .collect::<Vec<_>>()
        .join(" ");
    let params = plan
        .kernel_params
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(" ");
    let user = inputs.user.as_deref().unwrap_or("YOUR-USER");
    plan.notes.push(format!(
        "NixOS is configured declaratively; vmgpu changes nothing. Add to configuration.nix, then run \
         `nixos-rebuild switch`:\n\n  boot.kernelParams = [ {params} ];\n  boot.initrd.kernelModules = [ \
         {modules} ];\n  boot.extraModprobeConfig = ''\n    options vfio-pci ids={ids}\n    options kvm \
         ignore_msrs=1 report_ignored_msrs=0\n  '';\n  virtualisation.libvirtd.enable = true;\n  \
         virtualisation.libvirtd.qemu.swtpm.enable = true;\n  programs.virt-manager.enable = true;\n  \
         users.users.{user}.extraGroups = [ \"libvirtd\" \"kvm\" ];\n  systemd.tmpfiles.rules = [ \"f {SHM_FILE} \
         0660 {user} kvm -\" ];\n  virtualisation.libvirtd.hooks.qemu.vmgpu = \"${{pkgs.vmgpu}}/bin/vmgpu\";",
        ids = inputs.guest_ids().join(",")
    ));
}
