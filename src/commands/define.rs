//! `vmgpu define`: build a [`DomainSpec`] from the command line and the host, write it into a template (or,
//! with `--update`, into the existing domain without touching anything else) and define it in libvirt.
//! Every check runs before anything is created, so a refused input leaves no trace.
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};

use crate::cli::{DefineArgs, GpuChoice};
use crate::domain::read::identity::FunctionIdentity;
use crate::domain::write::looking_glass::LookingGlass;
use crate::domain::write::pinning::Cpus;
use crate::domain::write::spec::{self, Disk, DisplayMode, DomainSpec, Evdev, GpuPassthrough};
use crate::domain::write::spec_xml::{self, Scope};
use crate::domain::write::spice_graphics;
use crate::domain::write::template;
use crate::host::display;
use crate::host::gpu::{CandidateError, guest_candidate};
use crate::host::{Host, HostRoot};
use crate::report::Outcome;

/// Where keyboards and mice have stable names.
const INPUT_BY_ID: &str = "/dev/input/by-id";

/// Runs `vmgpu define`. `--dry-run` prints the XML without libvirt (with `--update` it reads the existing
/// domain from libvirt, and still changes nothing).
pub(crate) fn run(root: &Path, args: &DefineArgs) -> anyhow::Result<Outcome> {
    let host_root = HostRoot::new(root);
    let dirs = template::search_dirs(
        &host_root,
        std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .as_deref(),
        std::env::var_os("HOME").map(PathBuf::from).as_deref(),
    );
    if args.list_templates {
        for t in template::list(&dirs)? {
            println!("{:<12} {}", t.name, t.origin);
        }
        return Ok(Outcome::Ok);
    }
    let template = template::find(&dirs, &args.template)?;
    let name = args.name.clone().unwrap_or_else(|| template.name.clone());
    spec::check_name(&name)?;
    let host = Host::read(&host_root)?;
    let mut spec = build_spec(&host, args, name)?;
    if !args.update {
        check_spice_graphics(
            &template.xml,
            spec.display,
            &format!("template {}", template.name),
        )?;
    }
    if args.dry_run {
        let xml = if args.update {
            bail!(
                "--update reads the existing domain from libvirt; it cannot be combined with --dry-run"
            )
        } else {
            spec_xml::render(&template.xml, &spec, Scope::Define, &[])?
        };
        let xml = spice_graphics::secure(&xml, spice_graphics::DRY_RUN_PASSWORD)?;
        print!("{xml}");
        // On stderr, so the XML on stdout stays usable: a domain without disk or installer is legal but rarely meant.
        for note in missing_media(&spec) {
            eprintln!("note: {note}");
        }
        return Ok(Outcome::Ok);
    }
    define_in_libvirt(args, &template.xml, &mut spec)
}

#[cfg(feature = "libvirt")]
fn define_in_libvirt(
    args: &DefineArgs,
    template_xml: &str,
    spec: &mut DomainSpec,
) -> anyhow::Result<Outcome> {
    use crate::domain::read::metadata::VmgpuConfig;
    let libvirt = crate::libvirt::Libvirt::open(&args.connect)?;
    let xml = if args.update {
        let existing = libvirt.inactive_xml(&spec.name)?.ok_or_else(|| {
            anyhow!(
                "domain {} does not exist; drop --update to create it",
                spec.name
            )
        })?;
        let old = VmgpuConfig::from_domain_xml(&existing)?;
        let old_gpus = old.as_ref().map(|c| c.gpus.clone()).unwrap_or_default();
        spec.clipboard = old.as_ref().is_none_or(|c| c.viewer.clipboard);
        spec.sound &= !old.as_ref().is_some_and(|c| c.sound_off);
        if let Some(old) = &old {
            spec.tuning.governor |= old.tuning.governor;
            spec.tuning.irq_affinity |= old.tuning.irq_affinity;
        }
        let old_display = old.and_then(|c| c.display);
        carry_display(spec, old_display.as_ref())?;
        check_spice_graphics(&existing, spec.display, &format!("domain {}", spec.name))?;
        if let Some(gpu) = spec.gpu.as_mut() {
            let mut known = old_gpus.clone();
            known.extend(gpu.functions.iter().copied());
            gpu.guest_bus = spec_xml::guest_bus_for_update(&existing, &known)?
                .ok_or_else(|| anyhow!("no free PCI bus left in {} for the GPU", spec.name))?;
        }
        let xml = spec_xml::render(&existing, spec, Scope::Update, &old_gpus)?;
        let password = match spice_graphics::existing_password(&existing) {
            Some(p) => p,
            None => new_spice_password()?,
        };
        let xml = spice_graphics::secure(&xml, &password)?;
        if args.dry_run {
            // --update --dry-run reads the domain from libvirt but changes nothing.
            print!("{xml}");
            return Ok(Outcome::Ok);
        }
        xml
    } else {
        if libvirt.domain_exists(&spec.name)? {
            bail!(
                "domain {} already exists; use --update to change its vmgpu parts, or choose another name",
                spec.name
            );
        }
        create_disk(spec.disk.as_ref(), args.disk_size)?;
        let xml = spec_xml::render(template_xml, spec, Scope::Define, &[])?;
        spice_graphics::secure(&xml, &new_spice_password()?)?
    };
    let defined = libvirt.define(&xml)?;
    println!(
        "{} domain {defined}: {}",
        if args.update { "updated" } else { "defined" },
        summary(spec)
    );
    if let Some(mode) = spec.display {
        print!("{}", next_steps(&defined, mode, spec));
    }
    Ok(Outcome::Ok)
}

/// Install and both need the SPICE server that shows the virtual display.
fn check_spice_graphics(
    xml: &str,
    display: Option<DisplayMode>,
    whose: &str,
) -> anyhow::Result<()> {
    if !display.is_some_and(DisplayMode::virtual_display) {
        return Ok(());
    }
    let index = crate::domain::read::xml::Index::parse(xml)?;
    let spice = index
        .at(&["domain", "devices", "graphics"])
        .any(|g| g.attr("type") == Some("spice"));
    if !spice {
        bail!(
            "{whose} has no <graphics type='spice'>, which --display {} needs to show the virtual display: add \
             one (see templates/windows11.xml), or use --display looking-glass",
            display.map(DisplayMode::as_str).unwrap_or_default()
        );
    }
    Ok(())
}

#[cfg(feature = "libvirt")]
/// `--update`: the display phase and ISOs the domain's metadata recorded. Without `--display` they stay; with
/// `--display looking-glass` the recorded ISOs go; with install/both the given ISOs replace them (or they stay
/// when none is given).
fn carry_display(
    spec: &mut DomainSpec,
    old: Option<&crate::domain::read::metadata::DisplayConfig>,
) -> anyhow::Result<()> {
    let old_media: Vec<PathBuf> = old
        .map(|d| d.media.iter().map(PathBuf::from).collect())
        .unwrap_or_default();
    spec.recorded_display = old.and_then(|d| DisplayMode::parse(&d.mode).ok());
    spec.media = match spec.display {
        None => old_media.clone(),
        Some(DisplayMode::LookingGlass) => Vec::new(),
        Some(_) if spec.media.is_empty() => old_media.clone(),
        Some(_) => spec.media.clone(),
    };
    spec.old_media = old_media;
    Ok(())
}

/// The SPICE password of a newly secured domain.
#[cfg(feature = "libvirt")]
fn new_spice_password() -> anyhow::Result<String> {
    spice_graphics::random_password().context("cannot read random bytes for the SPICE password")
}

#[cfg(not(feature = "libvirt"))]
fn define_in_libvirt(_: &DefineArgs, _: &str, _: &mut DomainSpec) -> anyhow::Result<Outcome> {
    bail!("this vmgpu was built without libvirt support; use --dry-run to print the domain XML")
}

/// What a domain defined this way lacks that a new VM usually needs (said, never refused).
fn missing_media(spec: &DomainSpec) -> Vec<&'static str> {
    let mut notes = Vec::new();
    if spec.disk.is_none() {
        notes.push("no --disk: the domain has no disk (--disk PATH creates one with qemu-img)");
    }
    if spec.iso.is_none() {
        notes.push("no --iso: no installer CD-ROM is attached");
    }
    notes
}

/// Everything about the domain, checked against the host.
fn build_spec(host: &Host, args: &DefineArgs, name: String) -> anyhow::Result<DomainSpec> {
    super::check_user(&host.root, args.user.as_deref())?;
    let memory_kib = args.memory.kib;
    if memory_kib > host.memory.total_kib {
        bail!(
            "--memory {} ({} MiB) is more than this host has ({} MiB in total)",
            args.memory,
            memory_kib / 1024,
            host.memory.total_kib / 1024
        );
    }
    let hugepages = args.hugepages;
    hugepages.check(memory_kib)?;
    let looking_glass = args.looking_glass;
    let cpus = Cpus::from_topology(&host.cpu);
    let pins = cpus.plan(&args.pin, args.vcpus)?;
    let gpu = choose_gpu(host, args)?;
    let display = match args.display {
        Some(mode) => Some(mode),
        None if args.update => None,
        None if args.iso.is_some() => Some(DisplayMode::Install),
        // No Looking Glass and no ISO: the template's own video device stays.
        None if looking_glass == LookingGlass::Off => None,
        None => Some(DisplayMode::LookingGlass),
    };
    if display == Some(DisplayMode::LookingGlass) && looking_glass == LookingGlass::Off {
        bail!(
            "--display looking-glass with --looking-glass off leaves the guest without a screen: use --display \
             install, or give Looking Glass a size"
        );
    }
    let iso = args.iso.as_deref().map(absolute).transpose()?;
    let drivers = args
        .drivers
        .as_deref()
        .map(|p| check_iso(p, "--drivers"))
        .transpose()?;
    let media: Vec<PathBuf> = iso.iter().chain(&drivers).cloned().collect();
    Ok(DomainSpec {
        name,
        virt_type: args.virt_type,
        memory_kib,
        pins,
        amd: cpus.amd,
        hugepages,
        gpu,
        looking_glass,
        shm_name: args.shm_name.clone(),
        disk: args.disk.as_deref().map(disk).transpose()?,
        iso,
        drivers,
        display,
        recorded_display: None,
        clipboard: true,
        sound: !args.no_sound,
        tuning: crate::domain::read::metadata::TuningConfig {
            governor: args.performance_governor,
            irq_affinity: args.irq_affinity,
        },
        media,
        old_media: Vec::new(),
        evdev: Evdev {
            keyboard: input_device(&host.root, args.keyboard.as_deref(), "-event-kbd")?,
            mouse: input_device(&host.root, args.mouse.as_deref(), "-event-mouse")?,
            grab_toggle: args.grab_toggle.clone(),
        },
        hide_hypervisor: args.hide_hypervisor,
        single_gpu: args.single_gpu,
        user: args.user.clone(),
        network: args.network.clone(),
    })
}

/// The GPU for `--gpu` (or the one candidate), refused when it is the host's display (without
/// `--single-gpu`) or its IOMMU group holds devices that are not part of the card.
fn choose_gpu(host: &Host, args: &DefineArgs) -> anyhow::Result<Option<GpuPassthrough>> {
    let wanted = match args.gpu {
        Some(GpuChoice::None) => return Ok(None),
        Some(GpuChoice::At(address)) => {
            let device = host.device(address).ok_or_else(|| {
                anyhow!("there is no PCI device {address} on this host (see `vmgpu gpus`)")
            })?;
            if device.class.is_bridge() {
                bail!(
                    "{address} is a {}, not a GPU: pass the GPU itself (see `vmgpu gpus`)",
                    device.class.name()
                );
            }
            Some(address)
        }
        None => None,
    };
    let cards = host.gpus();
    let card = match guest_candidate(&cards, wanted) {
        Ok(card) => card,
        // the only card is the boot VGA: fine when the host does not display on it (headless), or in
        // single-GPU mode
        Err(CandidateError::OnlyBootDisplay { address })
            if args.single_gpu || display::lit_output(&host.root, address)?.is_none() =>
        {
            cards
                .iter()
                .find(|c| c.address() == address)
                .ok_or_else(|| anyhow!("GPU {address} vanished while reading the host"))?
        }
        Err(e) => return Err(e.into()),
    };
    let address = card.address();
    // What the host really shows on, not the boot VGA flag (a boot VGA nobody looks at is passed; the hook
    // releases its firmware framebuffer). The hook applies the same rule.
    if !args.single_gpu
        && let Some(output) = display::host_display_output(&host.root, &card.primary)?
    {
        bail!(
            "{address} is the host's display GPU (its output {output} is lit): pass the other GPU, or use \
             --single-gpu to give the host's only screen to the guest while it runs"
        );
    }
    let Some(group) = card.group else {
        bail!("{address} has no IOMMU group: the IOMMU is off (run `vmgpu check` for the fix)");
    };
    if let Some(foreign) = card.foreign.first() {
        bail!(
            "IOMMU group {group} of {address} also holds {} ({}), which is not part of the card: put the card in a \
             slot whose group holds only its own functions (see `vmgpu gpus`), or pass {} to the guest too",
            foreign.address,
            foreign.class.name(),
            foreign.address
        );
    }
    if !card.is_passable() {
        bail!("{address} cannot be passed through: {}", card.reason);
    }
    let mut functions = vec![address];
    functions.extend(card.passthrough_set().into_iter().filter(|a| *a != address));
    if functions.len() > 8 {
        bail!(
            "{address} has {} functions; one guest slot holds at most 8",
            functions.len()
        );
    }
    let identities = functions
        .iter()
        .filter_map(|a| host.device(*a))
        .map(FunctionIdentity::of)
        .collect();
    Ok(Some(GpuPassthrough {
        functions,
        guest_bus: 1,
        identities,
    }))
}

/// An existing ISO 9660 / UDF image (the "CD001" / "BEA01" volume descriptor at 32 KiB), as an absolute path.
fn check_iso(path: &Path, option: &str) -> anyhow::Result<PathBuf> {
    use std::io::{Read, Seek, SeekFrom};
    let shown = path.display();
    let mut file = std::fs::File::open(path).with_context(|| {
        format!("{option} {shown}: cannot open it (give the path of the ISO file)")
    })?;
    let mut id = [0u8; 6];
    let readable = file.seek(SeekFrom::Start(0x8000)).is_ok() && file.read_exact(&mut id).is_ok();
    if !readable || !(&id[1..6] == b"CD001" || &id[1..6] == b"BEA01") {
        bail!(
            "{option} {shown} is not an ISO image (no ISO 9660 or UDF volume descriptor); give the .iso file \
             itself (for Windows drivers: virtio-win.iso)"
        );
    }
    absolute(path)
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))
}

fn disk(path: &Path) -> anyhow::Result<Disk> {
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("img" | "raw") => "raw",
        _ => "qcow2",
    };
    Ok(Disk {
        path: absolute(path)?,
        format,
    })
}

/// `auto`: the first `…-event-kbd` / `…-event-mouse` in `/dev/input/by-id`; otherwise a path that must exist.
fn input_device(
    root: &HostRoot,
    wanted: Option<&str>,
    suffix: &str,
) -> anyhow::Result<Option<PathBuf>> {
    match wanted {
        None | Some("none") => Ok(None),
        Some("auto") => {
            let found = root
                .list_dir(INPUT_BY_ID)?
                .into_iter()
                .find(|n| n.ends_with(suffix))
                .ok_or_else(|| anyhow!("no device ending in {suffix} in {INPUT_BY_ID}"))?;
            Ok(Some(PathBuf::from(INPUT_BY_ID).join(found)))
        }
        Some(path) => {
            if !root.exists(path) {
                bail!("input device {path} does not exist (look in {INPUT_BY_ID})");
            }
            Ok(Some(PathBuf::from(path)))
        }
    }
}

/// How long `qemu-img create` may take (it writes only metadata, even for a raw image).
#[cfg(feature = "libvirt")]
const QEMU_IMG_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// Creates a missing disk image with `qemu-img`.
#[cfg(feature = "libvirt")]
fn create_disk(disk: Option<&Disk>, size: spec::Size) -> anyhow::Result<()> {
    let Some(disk) = disk else { return Ok(()) };
    if disk.path.exists() {
        return Ok(());
    }
    use crate::ops::process::{Output, Program};
    let kib = size.kib;
    let done = Program::new("qemu-img")
        .args(["create", "-q", "-f", disk.format])
        .arg(&disk.path)
        .arg(format!("{kib}K"))
        .stdout(Output::Capture { max: 4096 })
        .stderr(Output::Capture { max: 4096 })
        .run(QEMU_IMG_DEADLINE)
        .context("cannot run qemu-img (install qemu-utils / qemu-img)")?;
    if !done.status.success() {
        bail!(
            "qemu-img could not create {}: {}",
            disk.path.display(),
            done.stderr.trim()
        );
    }
    Ok(())
}

/// What the user does after defining in a display mode.
#[cfg(feature = "libvirt")]
fn next_steps(vm: &str, mode: DisplayMode, spec: &DomainSpec) -> String {
    match mode {
        DisplayMode::LookingGlass => format!(
            "display: Looking Glass only (no virtual display{}). `vmgpu view {vm}` shows the guest once the Looking \
             Glass host app runs; `vmgpu define {vm} --update --display install` brings the virtual display back.\n",
            if spec.old_media.is_empty() {
                ""
            } else {
                ", install ISOs detached"
            }
        ),
        DisplayMode::Install | DisplayMode::Both => {
            let drivers = spec
                .drivers
                .as_ref()
                .or(spec.media.get(1))
                .map(|d| format!("the driver CD {}", d.display()))
                .unwrap_or_else(|| {
                    "a driver ISO (virtio-win.iso, attach it with --drivers)".into()
                });
            format!(
                "display: {} — `virsh start {vm}` then `vmgpu view {vm}` shows firmware and installer in one window.\n\
                 next: 1. install the guest (the disk needs the viostor/vioscsi driver from {drivers});\n\
                 \x20     2. from the same CD install the virtio drivers, the IVSHMEM driver and the SPICE guest tools;\n\
                 \x20     3. install the Looking Glass host app; the passed GPU needs a connected display (a dummy plug or\n\
                 \x20        a monitor on its output) to render;\n\
                 \x20     4. once `vmgpu view {vm}` switches to Looking Glass: `vmgpu define {vm} --update --display \
                 looking-glass` removes the virtual display and the ISOs (user edits are kept).\n",
                mode.as_str()
            )
        }
    }
}

#[cfg(feature = "libvirt")]
fn summary(spec: &DomainSpec) -> String {
    let mut parts = vec![
        format!("{} MiB", spec.memory_kib / 1024),
        spec.pins.to_string(),
    ];
    if let Some(gpu) = &spec.gpu {
        let list: Vec<String> = gpu.functions.iter().map(|a| a.to_string()).collect();
        parts.push(format!("GPU {}", list.join(" + ")));
    }
    if let Some(r) = spec.looking_glass.resolution() {
        parts.push(format!("Looking Glass {r} ({} MiB)", r.size_mib()));
    }
    parts.join(", ")
}
