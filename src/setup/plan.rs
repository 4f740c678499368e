//! [`Plan`]: the file edits and commands `vmgpu setup` computes from [`SetupInputs`] and the current files,
//! and what each promises to be true after a reboot. Computing a plan changes nothing.
use serde::{Deserialize, Serialize};

use super::files::FileSource;
use super::inputs::{Bootloader, SetupInputs};
use super::{boot, guide, vfio};

/// Why a plan cannot be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The bootloader was not recognised.
    #[error(
        "the bootloader of this host was not recognised (looked for /etc/default/grub with grub-mkconfig, \
         grubby, sdbootutil, kernelstub, systemd-boot entries, /etc/kernel/cmdline); add these kernel \
         parameters by hand: {params}"
    )]
    UnknownBootloader {
        /// The parameters the user must add.
        params: String,
    },
    /// The guest GPU is the only display GPU: the host would boot to a black screen (failure mode 6).
    #[error(
        "{gpu} is the only display GPU of this host: binding it to vfio-pci at boot leaves the host without a \
         screen (single-GPU hosts hand the GPU over per VM run instead, with `vmgpu define --single-gpu`)"
    )]
    OnlyDisplayGpu {
        /// The GPU.
        gpu: String,
    },
    /// The guest card has no functions (an internal inconsistency of the inputs).
    #[error("the guest GPU has no PCI functions")]
    NoGuestFunctions,
    /// A configuration file could not be edited safely.
    #[error("cannot edit {path}")]
    Edit {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: super::grub::Error,
    },
}

/// Result of computing a plan.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// One file the plan writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileEdit {
    /// Host path, e.g. `/etc/modprobe.d/vfio.conf`.
    pub path: String,
    /// The current text; `None` when the file does not exist yet.
    pub before: Option<String>,
    /// The new text.
    pub after: String,
    /// Mode of a new file (an existing file keeps its own).
    pub mode: u32,
    /// Why (one line).
    pub why: String,
}

/// Where a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Runs {
    /// In the host root (`chroot <root>` when the root is not `/`).
    InRoot,
    /// This vmgpu binary with `--root <root>`.
    Vmgpu,
}

/// What a command is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum CommandKind {
    /// Regenerates boot files from edited configuration (grub.cfg, initramfs, boot entries).
    Regenerate,
    /// Installs packages.
    Packages,
    /// Enables services.
    Service,
    /// Adds the user to groups.
    Group,
    /// SELinux boolean or labels.
    Selinux,
    /// Installs the libvirt hook.
    Hook,
}

/// One command the plan runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PlanCommand {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// What it is for.
    pub kind: CommandKind,
    /// Where it runs.
    pub runs: Runs,
    /// Files it rewrites (host paths; `*` allowed in the last component), backed up before it runs so undo
    /// can put them back byte for byte.
    pub outputs: Vec<String>,
    /// Undo runs it again after restoring the files (it rebuilds boot files from configuration; `grubby` and
    /// `kernelstub`, which apply the parameters themselves, are not replayed).
    #[serde(default)]
    pub replay: bool,
    /// Why (one line).
    pub why: String,
}

impl PlanCommand {
    /// A command run in the host root.
    pub(crate) fn in_root(kind: CommandKind, argv: &[&str], why: &str) -> Self {
        Self {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            kind,
            runs: Runs::InRoot,
            outputs: Vec::new(),
            replay: false,
            why: why.to_string(),
        }
    }

    /// The same command, replayed by undo.
    pub(crate) fn replayed(mut self) -> Self {
        self.replay = true;
        self
    }

    /// The same command with the files it rewrites.
    pub(crate) fn with_outputs(mut self, outputs: &[&str]) -> Self {
        self.outputs = outputs.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The command as one shell-like line.
    pub(crate) fn line(&self) -> String {
        self.argv
            .iter()
            .map(|a| {
                if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '"') {
                    format!("'{a}'")
                } else {
                    a.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Something the plan promises to be true after a reboot; `vmgpu check` verifies each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum Promise {
    /// `/proc/cmdline` contains this parameter.
    KernelParam {
        /// e.g. `iommu=pt`.
        param: String,
    },
    /// The PCI function is bound to vfio-pci.
    BoundToVfio {
        /// Its address.
        address: String,
    },
    /// The module is loaded (or built in).
    ModuleLoaded {
        /// e.g. `kvm_amd`.
        module: String,
    },
    /// `/sys/module/<module>/parameters/<param>` reads `value`.
    ModuleParam {
        /// Module.
        module: String,
        /// Parameter.
        param: String,
        /// Expected value.
        value: String,
    },
    /// The shared-memory file exists with this owner.
    ShmFile {
        /// Path.
        path: String,
        /// Owner.
        user: String,
        /// Group.
        group: String,
    },
    /// The user is in the group.
    UserInGroup {
        /// User.
        user: String,
        /// Group.
        group: String,
    },
    /// The unit is enabled.
    UnitEnabled {
        /// e.g. `libvirtd.service`.
        unit: String,
    },
    /// The SELinux boolean is on.
    SelinuxBoolean {
        /// e.g. `virt_hooks_unconfined`.
        name: String,
    },
    /// The vmgpu hook is installed.
    HookInstalled,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Plan {
    /// One line naming the host and the GPU.
    pub title: String,
    /// The kernel parameters the host needs.
    pub kernel_params: Vec<String>,
    /// Whether the plan changes the boot configuration to get them (false: they are already set).
    #[serde(default)]
    pub kernel_params_change: bool,
    /// Files to write (only those that change).
    pub files: Vec<FileEdit>,
    /// Commands to run, in order, after the files are written.
    pub commands: Vec<PlanCommand>,
    /// Commands printed for the user to run (packages without `--install-packages`).
    pub manual: Vec<String>,
    /// Remarks and warnings.
    pub notes: Vec<String>,
    /// What must hold after a reboot.
    pub promises: Vec<Promise>,
}

impl Plan {
    /// True when applying would change nothing.
    pub(crate) fn is_noop(&self) -> bool {
        self.files.is_empty() && self.commands.is_empty()
    }

    /// Adds a file edit when `after` differs from the current text.
    pub(crate) fn edit(
        &mut self,
        files: &dyn FileSource,
        path: &str,
        after: String,
        why: &str,
    ) -> bool {
        let before = files.read(path);
        if before.as_deref() == Some(after.as_str()) {
            return false;
        }
        self.files.push(FileEdit {
            path: path.to_string(),
            before,
            after,
            mode: 0o644,
            why: why.to_string(),
        });
        true
    }
}

/// Computes the plan for the guest GPU in `inputs`, reading the files it edits from `files`.
pub(crate) fn compute(inputs: &SetupInputs, files: &dyn FileSource) -> Result<Plan> {
    let gpu = inputs.guest_address().ok_or(Error::NoGuestFunctions)?;
    if inputs.guest_is_boot_gpu && inputs.host_gpu_ids.is_empty() {
        return Err(Error::OnlyDisplayGpu {
            gpu: gpu.to_string(),
        });
    }
    let params = super::cmdline::wanted(inputs);
    if inputs.bootloader == Bootloader::Unknown {
        return Err(Error::UnknownBootloader {
            params: params.join(" "),
        });
    }
    let mut plan = Plan {
        title: format!(
            "vmgpu setup for {gpu} ({} function{}: {}) on {}",
            inputs.guest.len(),
            if inputs.guest.len() == 1 { "" } else { "s" },
            inputs.guest_ids().join(","),
            inputs.distro_name
        ),
        kernel_params: params.clone(),
        kernel_params_change: false,
        files: Vec::new(),
        commands: Vec::new(),
        manual: Vec::new(),
        notes: Vec::new(),
        promises: params
            .iter()
            .map(|p| Promise::KernelParam { param: p.clone() })
            .collect(),
    };
    if inputs.bootloader == Bootloader::NixOs {
        plan.kernel_params_change = true; // by hand, in configuration.nix (the note says how)
        guide::nixos(inputs, &mut plan);
        return Ok(plan);
    }
    let before = (plan.files.len(), plan.commands.len());
    boot::plan(inputs, files, &params, &mut plan)?;
    plan.kernel_params_change = (plan.files.len(), plan.commands.len()) != before;
    vfio::plan(inputs, files, &mut plan)?;
    guide::plan(inputs, files, &mut plan);
    // Packages first (the services and groups come with them), then the rest in the order the guide gives;
    // a regeneration two areas ask for (the UKI and the initramfs) runs once.
    plan.commands
        .sort_by_key(|c| c.kind != CommandKind::Packages);
    let mut seen: Vec<Vec<String>> = Vec::new();
    plan.commands.retain(|c| {
        let fresh = !seen.contains(&c.argv);
        seen.push(c.argv.clone());
        fresh
    });
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::files::MemoryFiles;
    use crate::setup::inputs::{Bootloader, Family, InitramfsTool, PackageManager, example};

    fn argv(plan: &Plan) -> Vec<String> {
        plan.commands.iter().map(PlanCommand::line).collect()
    }

    fn after<'a>(plan: &'a Plan, path: &str) -> &'a str {
        plan.files
            .iter()
            .find(|f| f.path == path)
            .map_or("", |f| f.after.as_str())
    }

    #[test]
    fn test_compute_grubby_adds_and_removes_in_one_command() {
        let mut inputs = example();
        inputs.family = Family::Fedora;
        inputs.bootloader = Bootloader::BlsGrubby;
        let files = MemoryFiles::default().with(
            "/boot/loader/entries/x.conf",
            "title Fedora\noptions root=UUID=1 ro amd_iommu=off\n",
        );
        let plan = compute(&inputs, &files).unwrap();
        assert!(
            argv(&plan).contains(
                &"grubby --update-kernel=ALL --remove-args=amd_iommu=off \
              '--args=iommu=pt amd_iommu=on rd.driver.pre=vfio-pci'"
                    .to_string()
            )
        );
    }

    #[test]
    fn test_compute_grubby_is_noop_when_entries_have_everything() {
        let mut inputs = example();
        inputs.bootloader = Bootloader::BlsGrubby;
        let files = MemoryFiles::default().with(
            "/boot/loader/entries/x.conf",
            "options root=UUID=1 iommu=pt amd_iommu=on rd.driver.pre=vfio-pci\n",
        );
        let plan = compute(&inputs, &files).unwrap();
        assert!(!argv(&plan).iter().any(|c| c.starts_with("grubby")));
    }

    #[test]
    fn test_compute_sdbootutil_seeds_kernel_cmdline_from_proc() {
        let mut inputs = example();
        inputs.bootloader = Bootloader::Sdbootutil;
        let files = MemoryFiles::default()
            .with("/proc/cmdline", "BOOT_IMAGE=/vmlinuz root=UUID=1 quiet\n")
            .with("/boot/efi/loader/entries/a.conf", "");
        let plan = compute(&inputs, &files).unwrap();
        assert_eq!(
            after(&plan, "/etc/kernel/cmdline"),
            "root=UUID=1 quiet iommu=pt amd_iommu=on rd.driver.pre=vfio-pci\n"
        );
        assert!(argv(&plan).contains(&"sdbootutil update-all-entries".to_string()));
    }

    #[test]
    fn test_compute_uki_with_mkinitcpio_rebuilds_once() {
        let mut inputs = example();
        inputs.family = Family::Arch;
        inputs.package_manager = PackageManager::Pacman;
        inputs.bootloader = Bootloader::Uki;
        inputs.initramfs = InitramfsTool::Mkinitcpio;
        let files = MemoryFiles::default().with("/etc/kernel/cmdline", "root=UUID=1 rw\n");
        let plan = compute(&inputs, &files).unwrap();
        assert_eq!(
            after(&plan, "/etc/kernel/cmdline"),
            "root=UUID=1 rw iommu=pt amd_iommu=on\n"
        );
        let rebuilds = argv(&plan).iter().filter(|c| *c == "mkinitcpio -P").count();
        assert_eq!(rebuilds, 1);
    }

    #[test]
    fn test_compute_kernelstub_adds_missing_only() {
        let mut inputs = example();
        inputs.family = Family::PopOs;
        inputs.bootloader = Bootloader::Kernelstub;
        inputs.initramfs = InitramfsTool::InitramfsTools;
        let files = MemoryFiles::default().with(
            "/etc/kernelstub/configuration",
            r#"{"user": {"kernel_options": ["quiet", "splash", "iommu=pt"]}}"#,
        );
        let plan = compute(&inputs, &files).unwrap();
        assert!(argv(&plan).contains(&"kernelstub -a amd_iommu=on".to_string()));
    }

    #[test]
    fn test_compute_nixos_changes_nothing_and_prints_snippet() {
        let mut inputs = example();
        inputs.family = Family::NixOs;
        inputs.bootloader = Bootloader::NixOs;
        inputs.initramfs = InitramfsTool::NixOs;
        let plan = compute(&inputs, &MemoryFiles::default()).unwrap();
        assert!(plan.is_noop());
        assert!(
            plan.notes
                .iter()
                .any(|n| n.contains("boot.kernelParams = [ \"iommu=pt\""))
        );
    }

    #[test]
    fn test_compute_shared_ids_binds_by_address_not_id() {
        let mut inputs = example();
        inputs.host_gpu_ids = vec!["10de:17c8".to_string()];
        let plan = compute(&inputs, &MemoryFiles::default()).unwrap();
        assert!(!after(&plan, "/etc/modprobe.d/vfio.conf").contains("ids="));
        assert!(
            after(&plan, "/etc/udev/rules.d/60-vmgpu-vfio-bind.rules")
                .contains("KERNEL==\"0000:04:00.1\"")
        );
        assert!(!plan.kernel_params.iter().any(|p| p.contains("ids=")));
    }

    #[test]
    fn test_compute_builtin_vfio_puts_ids_on_cmdline() {
        let mut inputs = example();
        inputs.kernel.builtin = vec!["vfio_pci".to_string(), "vfio".to_string()];
        let plan = compute(&inputs, &MemoryFiles::default()).unwrap();
        assert!(
            plan.kernel_params
                .contains(&"vfio-pci.ids=10de:17c8,10de:0fb0".to_string())
        );
    }

    #[test]
    fn test_compute_boot_gpu_guest_gets_framebuffer_params() {
        let mut inputs = example();
        inputs.guest_is_boot_gpu = true;
        let plan = compute(&inputs, &MemoryFiles::default()).unwrap();
        assert!(plan.kernel_params.contains(&"video=efifb:off".to_string()));
        assert!(
            plan.kernel_params
                .contains(&"initcall_blacklist=sysfb_init".to_string())
        );
    }

    #[test]
    fn test_compute_old_kernel_lists_vfio_virqfd() {
        let mut inputs = example();
        inputs.kernel.release = "6.1.0-13-amd64".to_string();
        let plan = compute(&inputs, &MemoryFiles::default()).unwrap();
        assert!(after(&plan, "/etc/dracut.conf.d/vfio.conf").contains(" vfio_virqfd "));
    }

    #[test]
    fn test_command_line_quotes_spaces() {
        let cmd = PlanCommand::in_root(CommandKind::Regenerate, &["grubby", "--args=a b"], "x");
        assert_eq!(cmd.line(), "grubby '--args=a b'");
    }
}
