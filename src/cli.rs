//! Command-line definitions: flags as typed values, parsed by clap's value parsers (a value that does not
//! parse is refused before any command runs). Deriving plans from them (with the host model) is the job of
//! `commands/`.
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand};

use crate::domain::write::looking_glass::{DEFAULT_SHM_NAME, LookingGlass};
use crate::domain::write::pinning::PinRequest;
use crate::domain::write::spec::{DisplayMode, Hugepages, Network, Size, VirtType};
use crate::host::PciAddress;

/// vmgpu: a Windows VM with its own GPU, shown in a window on the host desktop.
#[derive(Debug, Parser)]
#[command(name = "vmgpu", version = env!("VMGPU_VERSION"), about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Read (and, for commands that change the host, write) the host through this root instead of `/`.
    /// Tests point it at a recorded sysfs/proc/etc tree.
    #[arg(
        long,
        global = true,
        env = "VMGPU_ROOT",
        default_value = "/",
        value_name = "DIR"
    )]
    pub root: PathBuf,

    /// More log output on stderr (-v info, -vv debug, -vvv trace). Never on stdout.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. (Parsed once per run, so the size difference between variants does not matter.)
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Check every step of a GPU-passthrough host and say how to fix what is missing.
    Check(CheckArgs),
    /// List the GPUs with all their functions, IOMMU groups, drivers and a passthrough verdict.
    Gpus(GpusArgs),
    /// Run as the libvirt qemu hook: `vmgpu hook <vm> <op> <sub-op> <extra>`, domain XML on stdin.
    Hook(HookArgs),
    /// Create an OVMF/Q35 domain with a GPU from a template.
    Define(DefineArgs),
    /// Show a VM's screen from its Looking Glass shared memory.
    View(ViewArgs),
    /// Configure the host (kernel command line, early vfio binding, packages) the way the guides do.
    Setup(SetupArgs),
    /// Install vmgpu as libvirt's qemu hook (never overwriting a foreign hook).
    Install(InstallArgs),
    /// Remove the hook vmgpu installed (a foreign hook is left alone).
    Uninstall(InstallArgs),
    /// Put the host back from a VM's journal after a crash (what `release` would have done).
    Restore(RestoreArgs),
    /// Show every VM vmgpu prepared and what it holds.
    Status(StatusArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    Completions(CompletionsArgs),
    /// Print the man page (roff) on stdout.
    Man,
    /// Say why a VM did not start (or runs badly): its QEMU, kernel and hook logs against known failures.
    Explain(ExplainArgs),
}

/// `vmgpu check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The guest GPU (PCI address such as 0000:04:00.0) when more than one qualifies.
    #[arg(long, value_name = "ADDR")]
    pub gpu: Option<PciAddress>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// `vmgpu gpus`.
#[derive(Debug, Args)]
pub struct GpusArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// `vmgpu hook`: the same arguments libvirt passes to `hooks/qemu`.
#[derive(Debug, Args)]
pub struct HookArgs {
    /// `<vm> <op> <sub-op> <extra>` as libvirt passes them.
    #[arg(num_args = 0.., trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARG")]
    pub args: Vec<String>,
}

/// `vmgpu define`.
#[derive(Debug, Args)]
pub struct DefineArgs {
    /// The new domain's name.
    pub name: Option<String>,
    /// Template name (see --list-templates).
    #[arg(long, default_value = "windows11")]
    pub template: String,
    /// List the templates and exit.
    #[arg(long)]
    pub list_templates: bool,
    /// The guest GPU's PCI address; every function of its IOMMU group is passed. Without it the one
    /// passable GPU that is not the host's display is taken; `none` defines a domain without a GPU.
    #[arg(long, value_name = "ADDR")]
    pub gpu: Option<GpuChoice>,
    /// Guest memory, e.g. 16G or 8192M.
    #[arg(long, default_value = "8G", value_name = "SIZE")]
    pub memory: Size,
    /// Number of vCPUs (default: what --pin gives, or 4).
    #[arg(long)]
    pub vcpus: Option<u32>,
    /// CPU pinning: `auto`, `off` or a host CPU list such as 2-7,14-19.
    #[arg(long, default_value = "auto", value_name = "CPUS")]
    pub pin: PinRequest,
    /// Hugepages backing guest RAM: 2M, 1G or off.
    #[arg(long, default_value = "2M", value_name = "SIZE")]
    pub hugepages: Hugepages,
    /// Looking Glass: WIDTHxHEIGHT[,hdr], `kvmfr[:WIDTHxHEIGHT[,hdr]]` or `off`.
    #[arg(long, default_value = "1920x1080", value_name = "MODE")]
    pub looking_glass: LookingGlass,
    /// Installer ISO to attach as a SATA CD-ROM (and boot from, in the install display mode).
    #[arg(long, value_name = "PATH")]
    pub iso: Option<PathBuf>,
    /// Driver ISO (virtio-win: virtio and IVSHMEM drivers, SPICE guest tools) to attach as a second CD-ROM.
    #[arg(long, value_name = "PATH")]
    pub drivers: Option<PathBuf>,
    /// Display mode: `install` (a virtual display shown through SPICE: firmware, installer, drivers),
    /// `looking-glass` (no virtual display; with --update also detaches the ISOs) or `both`. Default: install
    /// with --iso, else looking-glass; --update without it leaves the display as it is.
    #[arg(long, value_name = "MODE")]
    pub display: Option<DisplayMode>,
    /// Disk image path (created with qemu-img when missing).
    #[arg(long, value_name = "PATH")]
    pub disk: Option<PathBuf>,
    /// Size of a new disk, e.g. 128G.
    #[arg(long, default_value = "128G", value_name = "SIZE")]
    pub disk_size: Size,
    /// Keyboard for evdev passthrough (a /dev/input/by-id path); `auto` picks the first keyboard.
    #[arg(long, value_name = "DEV")]
    pub keyboard: Option<String>,
    /// Mouse for evdev passthrough (a /dev/input/by-id path); `auto` picks the first mouse.
    #[arg(long, value_name = "DEV")]
    pub mouse: Option<String>,
    /// Single-GPU mode: the host's only/boot GPU goes to the guest (the desktop stops while it runs).
    #[arg(long)]
    pub single_gpu: bool,
    /// While the VM runs, the `performance` CPU frequency governor (or energy-performance preference) on
    /// the pinned vCPU CPUs (`<vmgpu:tuning governor="performance">`; --update keeps it on).
    #[arg(long)]
    pub performance_governor: bool,
    /// While the VM runs, host device IRQs off the pinned CPUs and the GPU's MSI vectors onto them
    /// (`<vmgpu:tuning irq-affinity="yes">`; --update keeps it on).
    #[arg(long)]
    pub irq_affinity: bool,
    /// Hide the hypervisor from NVIDIA drivers older than R465.
    #[arg(long)]
    pub hide_hypervisor: bool,
    /// No sound card in the guest (the templates give it an ich9 HDA whose audio goes through SPICE to the
    /// viewer); recorded as `<vmgpu:sound enabled="no"/>`, which --update keeps (it adds the card otherwise).
    #[arg(long)]
    pub no_sound: bool,
    /// Desktop user who owns the shared-memory file and runs the viewer.
    #[arg(long, env = "SUDO_USER")]
    pub user: Option<String>,
    /// libvirt connection URI.
    #[arg(long, short = 'c', default_value = "qemu:///system")]
    pub connect: String,
    /// Print the domain XML and change nothing (no libvirt needed).
    #[arg(long)]
    pub dry_run: bool,
    /// Update the vmgpu parts of an existing domain, keeping every user edit.
    #[arg(long)]
    pub update: bool,
    /// Domain type: `kvm`, or `qemu` for emulation (TCG) on machines without usable KVM.
    #[arg(long, default_value = "kvm", value_name = "TYPE")]
    pub virt_type: VirtType,
    /// Guest network: `default` (the template's, libvirt network "default"), `network:NAME`, `bridge:NAME` or
    /// `none`.
    #[arg(long, default_value = "default", value_name = "NET")]
    pub network: Network,
    /// Name of the Looking Glass shared-memory file under /dev/shm.
    #[arg(long, default_value = DEFAULT_SHM_NAME, value_name = "NAME", value_parser = shm_name)]
    pub shm_name: String,
    /// Key combination that switches evdev keyboard and mouse between host and guest.
    #[arg(long, default_value = "ctrl-ctrl", value_name = "KEYS", value_parser = GRAB_TOGGLES)]
    pub grab_toggle: String,
}

/// `vmgpu view`.
#[derive(Debug, Args)]
pub struct ViewArgs {
    /// The VM whose screen to show (its shm file comes from the vmgpu metadata).
    pub vm: Option<String>,
    /// Read this shared-memory file or /dev/kvmfrN instead of the VM's.
    #[arg(long, value_name = "PATH")]
    pub shm: Option<PathBuf>,
    /// Run the built-in producer with a moving test scene (no VM needed).
    #[arg(long)]
    pub demo: bool,
    /// Start fullscreen.
    #[arg(long)]
    pub fullscreen: bool,
    /// libvirt connection URI used to look up the VM.
    #[arg(long, short = 'c', default_value = "qemu:///system")]
    pub connect: String,
    /// Drive the VM through this SPICE server instead of the one in the VM's live domain.
    #[arg(long, value_name = "HOST:PORT|unix:PATH", value_parser = parse_spice_target)]
    pub spice: Option<crate::spice::Target>,
    /// File holding the SPICE password (first line), for --spice.
    #[arg(long, value_name = "FILE", requires = "spice")]
    pub spice_password_file: Option<PathBuf>,
    /// Key that captures and releases keyboard and mouse (a winit key name: ScrollLock, Pause, ControlRight…).
    #[arg(long, value_name = "KEY", default_value = "ScrollLock")]
    pub escape_key: String,
    /// Show the screen only: no keyboard or mouse to the VM.
    #[arg(long, conflicts_with_all = ["spice", "spice_password_file"])]
    pub no_input: bool,
    /// No copy and paste with the guest (the VM's metadata can also turn it off: `<vmgpu:viewer clipboard="no"/>`).
    #[arg(long)]
    pub no_clipboard: bool,
    /// No sound from the guest (by default the SPICE playback channel goes to the desktop's sound server).
    #[arg(long)]
    pub no_audio: bool,
    /// Send the host's default microphone to the guest (SPICE record channel; off by default).
    #[arg(long)]
    pub mic: bool,
}

/// libvirt's `grabToggle` values for evdev input.
const GRAB_TOGGLES: [&str; 6] = [
    "ctrl-ctrl",
    "alt-alt",
    "shift-shift",
    "meta-meta",
    "scrolllock",
    "ctrl-scrolllock",
];

fn parse_spice_target(s: &str) -> Result<crate::spice::Target, String> {
    s.parse()
}

/// `define --gpu`: a PCI address, or `none` for a domain without a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuChoice {
    /// No GPU.
    None,
    /// This GPU.
    At(PciAddress),
}

impl FromStr for GpuChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            address => address.parse().map(Self::At).map_err(|_| {
                format!(
                    "{:?} is not a PCI address (expected the form 0000:04:00.0 or 04:00.0, or `none` for a \
                     domain without a GPU)",
                    s.chars().take(64).collect::<String>()
                )
            }),
        }
    }
}

/// `--shm-name`: a name the hook accepts as a file directly in `/dev/shm` (its one rule), and that needs no
/// quoting in the domain XML.
fn shm_name(name: &str) -> Result<String, String> {
    let ok = crate::hook::shm::valid_name(name) && !name.contains(['\'', '"', '<', '&']);
    if ok {
        Ok(name.to_string())
    } else {
        Err(format!(
            "{:?} is not a file name under /dev/shm (give a plain name such as {DEFAULT_SHM_NAME})",
            name.chars().take(64).collect::<String>()
        ))
    }
}

/// `vmgpu setup`.
#[derive(Debug, Args)]
pub struct SetupArgs {
    /// The guest GPU's PCI address.
    #[arg(long, value_name = "ADDR")]
    pub gpu: Option<PciAddress>,
    /// Show the plan (diff + commands) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply without asking.
    #[arg(long)]
    pub yes: bool,
    /// Machine-readable plan.
    #[arg(long)]
    pub json: bool,
    /// Run the package manager too (otherwise its command is printed).
    #[arg(long)]
    pub install_packages: bool,
    /// Restore every file the last applied setup changed.
    #[arg(long)]
    pub undo: bool,
    /// With --undo: restore even files edited by hand since setup wrote them.
    #[arg(long, requires = "undo")]
    pub force: bool,
    /// Also set up the kvmfr module for Looking Glass (udev rule, modules-load, AppArmor).
    #[arg(long)]
    pub kvmfr: bool,
    /// Do not install vmgpu as libvirt's qemu hook.
    #[arg(long)]
    pub no_hook: bool,
    /// Desktop user for groups and the shared-memory file.
    #[arg(long, env = "SUDO_USER")]
    pub user: Option<String>,
}

/// `vmgpu install` and `vmgpu uninstall`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Restart the libvirt daemon so it sees the hook (libvirt only looks for hooks when it starts).
    #[arg(long)]
    pub restart: bool,
}

/// `vmgpu restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The VM whose journal to replay.
    pub vm: String,
}

/// `vmgpu status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// `vmgpu completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write completions for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `vmgpu explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The VM whose last start to explain.
    pub vm: String,
    /// Read the logs from this time on (journalctl syntax, e.g. "2026-12-04 18:40" or "-1h"); default: the
    /// VM's last start in its QEMU log.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Read the domain XML from this file instead of asking libvirt.
    #[arg(long, value_name = "FILE")]
    pub xml: Option<PathBuf>,
    /// Explain logs saved elsewhere: a directory with qemu.log, kernel.log, hook.log, journal.json, domain.xml
    /// (each optional) instead of this host's.
    #[arg(long, value_name = "DIR", conflicts_with = "since")]
    pub logs: Option<PathBuf>,
    /// libvirt connection URI used to read the domain XML.
    #[arg(long, short = 'c', default_value = "qemu:///system")]
    pub connect: String,
}
