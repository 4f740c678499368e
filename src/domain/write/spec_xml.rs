//! Turns a [`DomainSpec`] into rewrite rules: the parts of a domain vmgpu owns (name, memory, vCPUs and pins,
//! CPU model, hugepages, hide-the-hypervisor features, its metadata, the GPU hostdevs, Looking Glass, evdev
//! input, disks; the sound card through `sound.rs`). The same rules fill a template (`define`) and edit an existing domain (`define --update`).
use quick_xml::escape::escape;

use super::looking_glass::{DEFAULT_SHM_NAME, LookingGlass, Resolution};
use super::metadata;
use super::pinning::format_cpu_list;
use super::rewrite::{self, Rule};
use super::spec::{DisplayMode, DomainSpec, Hugepages, Network, VirtType};
use crate::domain::read::xml::{Index, Node};
use crate::host::PciAddress;

/// libvirt's namespace for `<qemu:commandline>`.
pub(crate) const QEMU_NS: &str = "http://libvirt.org/schemas/domain/qemu/1.0";
/// The Hyper-V vendor id written with `--hide-hypervisor` (12 characters at most).
pub(crate) const VENDOR_ID: &str = "0123456789ab";

/// New devices go before these (libvirt lists them last).
const DEVICES_TAIL: &[&str] = &["watchdog", "memballoon", "rng", "panic"];

/// Whether the rules build a new domain or edit an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A new domain from a template: also the name and the disks.
    Define,
    /// `--update`: leave the name and the disks alone.
    Update,
}

/// Renders `spec` into `xml` (a template or the existing domain). `old_gpus` are the GPUs the previous vmgpu
/// metadata named, whose hostdevs are replaced too.
pub fn render(
    xml: &str,
    spec: &DomainSpec,
    scope: Scope,
    old_gpus: &[PciAddress],
) -> rewrite::Result<String> {
    // The root's attributes first: the reader refuses a `qemu:` element before its prefix is declared.
    let xml = rewrite::set_root_attribute(xml, "type", spec.virt_type.as_str())?;
    let xml = match spec.looking_glass {
        LookingGlass::Kvmfr(_) => rewrite::set_root_attribute(&xml, "xmlns:qemu", QEMU_NS)?,
        _ => xml,
    };
    let xml = rewrite::apply(&xml, &rules(spec, scope, old_gpus))?;
    super::sound::apply(&xml, spec.sound)
}

/// The rules for `spec`.
pub(crate) fn rules(spec: &DomainSpec, scope: Scope, old_gpus: &[PciAddress]) -> Vec<Rule> {
    let mut rules = Vec::new();
    if scope == Scope::Define {
        rules.push(Rule::replace(
            &["domain"],
            "name",
            vec![format!("<name>{}</name>", escape(&spec.name))],
        ));
    }
    rules.push(Rule::replace(
        &["domain"],
        "memory",
        vec![format!("<memory unit='KiB'>{}</memory>", spec.memory_kib)],
    ));
    rules.push(Rule::replace(
        &["domain"],
        "currentMemory",
        vec![format!(
            "<currentMemory unit='KiB'>{}</currentMemory>",
            spec.memory_kib
        )],
    ));
    rules.push(Rule::replace(
        &["domain"],
        "vcpu",
        vec![format!(
            "<vcpu placement='static'>{}</vcpu>",
            spec.pins.topology.vcpus()
        )],
    ));
    rules.extend(cputune_rules(spec));
    rules.push(Rule::replace(&["domain"], "cpu", vec![cpu(spec)]));
    rules.extend(hugepages_rules(spec.hugepages));
    if spec.virt_type == VirtType::Qemu {
        // Hyper-V enlightenments and the KVM signature exist only with KVM; QEMU refuses them under TCG
        // ("kernel doesn't allow setting HyperV VP_INDEX").
        rules.push(Rule::replace(&["domain", "features"], "hyperv", Vec::new()));
        rules.push(Rule::replace(&["domain", "features"], "kvm", Vec::new()));
        rules.push(Rule::replace_where(
            &["domain", "clock"],
            "timer",
            |_, n| n.attr("name") == Some("hypervclock"),
            Vec::new(),
        ));
    } else {
        rules.extend(hide_rules(spec.hide_hypervisor));
    }
    rules.extend(metadata_rules(spec));
    if scope == Scope::Define {
        rules.push(Rule::replace(&["domain", "devices"], "disk", disks(spec)));
        if let Some(items) = interface(&spec.network) {
            rules.push(Rule::replace(&["domain", "devices"], "interface", items));
        }
    }
    if let Some(mode) = spec.display {
        rules.push(
            Rule::replace(&["domain", "devices"], "video", vec![video(mode)]).before(DEVICES_TAIL),
        );
        if scope == Scope::Update {
            rules.push(update_media_rule(spec, mode));
        }
    }
    rules.extend(gpu_rules(spec, old_gpus));
    rules.extend(looking_glass_rules(spec));
    rules.push(
        Rule::replace_where(
            &["domain", "devices"],
            "input",
            |_, n| n.attr("type") == Some("evdev"),
            evdev(spec),
        )
        .before(DEVICES_TAIL),
    );
    rules
}

/// `container` is created whole when missing; when present only its owned `children` are replaced.
fn nested(
    parent: &[&'static str],
    container: &'static str,
    whole: Option<String>,
    children: Vec<(&'static str, Vec<String>)>,
) -> Vec<Rule> {
    let mut path = parent.to_vec();
    path.push(container);
    let mut rules = Vec::new();
    if let Some(whole) = whole {
        let ensure = Rule::ensure(parent, container, None, vec![whole]);
        rules.push(match container {
            "memoryBacking" => ensure.before(&["vcpu", "iothreads", "cputune", "os"]),
            "cputune" => ensure.before(&["resource", "sysinfo", "os"]),
            _ => ensure,
        });
    }
    for (name, items) in children {
        rules.push(Rule::replace(&path, name, items));
    }
    rules
}

fn block(open: &str, lines: &[String], close: &str) -> String {
    let mut out = String::from(open);
    for line in lines {
        for l in line.lines() {
            out.push_str("\n  ");
            out.push_str(l);
        }
    }
    out.push('\n');
    out.push_str(close);
    out
}

fn cputune_rules(spec: &DomainSpec) -> Vec<Rule> {
    let pins: Vec<String> = spec
        .pins
        .vcpu_pins
        .iter()
        .enumerate()
        .map(|(vcpu, cpu)| format!("<vcpupin vcpu='{vcpu}' cpuset='{cpu}'/>"))
        .collect();
    let emulator: Vec<String> = if spec.pins.emulator.is_empty() || !spec.pins.is_pinned() {
        Vec::new()
    } else {
        vec![format!(
            "<emulatorpin cpuset='{}'/>",
            format_cpu_list(&spec.pins.emulator)
        )]
    };
    let whole = spec.pins.is_pinned().then(|| {
        let all: Vec<String> = pins.iter().chain(&emulator).cloned().collect();
        block("<cputune>", &all, "</cputune>")
    });
    nested(
        &["domain"],
        "cputune",
        whole,
        vec![("vcpupin", pins), ("emulatorpin", emulator)],
    )
}

fn cpu(spec: &DomainSpec) -> String {
    let t = spec.pins.topology;
    let mut lines = vec![format!(
        "<topology sockets='1' dies='1' cores='{}' threads='{}'/>",
        t.cores, t.threads
    )];
    let open = match spec.virt_type {
        VirtType::Kvm => {
            lines.push("<cache mode='passthrough'/>".to_string());
            if spec.amd {
                lines.push("<feature policy='require' name='topoext'/>".to_string());
            }
            "<cpu mode='host-passthrough' check='none' migratable='off'>"
        }
        // TCG cannot pass the host CPU through; `maximum` is QEMU's `-cpu max`.
        VirtType::Qemu => "<cpu mode='maximum' check='none'>",
    };
    block(open, &lines, "</cpu>")
}

fn hugepages_rules(hugepages: Hugepages) -> Vec<Rule> {
    let page = match hugepages {
        Hugepages::Off => None,
        other => Some(block(
            "<hugepages>",
            &[format!("<page size='{}' unit='KiB'/>", other.page_kib())],
            "</hugepages>",
        )),
    };
    let whole = page.as_ref().map(|p| {
        block(
            "<memoryBacking>",
            std::slice::from_ref(p),
            "</memoryBacking>",
        )
    });
    nested(
        &["domain"],
        "memoryBacking",
        whole,
        vec![("hugepages", page.into_iter().collect())],
    )
}

fn hide_rules(hide: bool) -> Vec<Rule> {
    let hidden: Vec<String> = if hide {
        vec!["<hidden state='on'/>".to_string()]
    } else {
        Vec::new()
    };
    let whole = hide.then(|| block("<kvm>", &hidden, "</kvm>"));
    let mut rules = nested(
        &["domain", "features"],
        "kvm",
        whole,
        vec![("hidden", hidden)],
    );
    let vendor = if hide {
        vec![format!("<vendor_id state='on' value='{VENDOR_ID}'/>")]
    } else {
        Vec::new()
    };
    rules.push(Rule::replace(
        &["domain", "features", "hyperv"],
        "vendor_id",
        vendor,
    ));
    rules
}

fn metadata_rules(spec: &DomainSpec) -> Vec<Rule> {
    let config = metadata::config_xml(spec);
    vec![
        Rule::ensure(
            &["domain"],
            "metadata",
            None,
            vec![block(
                "<metadata>",
                std::slice::from_ref(&config),
                "</metadata>",
            )],
        )
        .before(&["maxMemory", "memory", "currentMemory"]),
        Rule::replace_where(
            &["domain", "metadata"],
            "config",
            |_, n| metadata::is_vmgpu_config(n),
            vec![config],
        ),
    ]
}

/// The video device of a display mode: std VGA (the only SPICE path of plain bitmap copies, and driven by
/// Windows' basic display driver through the firmware's framebuffer) or none.
fn video(mode: DisplayMode) -> String {
    let model = if mode.virtual_display() {
        "<model type='vga' vram='16384' heads='1' primary='yes'/>"
    } else {
        "<model type='none'/>"
    };
    block("<video>", &[model.to_string()], "</video>")
}

/// A read-only SATA CD-ROM.
fn cdrom(path: &std::path::Path, dev: &str, boot: Option<u32>) -> String {
    let mut lines = vec![
        "<driver name='qemu' type='raw'/>".to_string(),
        format!(
            "<source file='{}'/>",
            escape(path.to_string_lossy().as_ref())
        ),
        format!("<target dev='{dev}' bus='sata'/>"),
        "<readonly/>".to_string(),
    ];
    if let Some(order) = boot {
        lines.push(format!("<boot order='{order}'/>"));
    }
    block("<disk type='file' device='cdrom'>", &lines, "</disk>")
}

/// `--update --display …`: the CD-ROMs vmgpu attached before (or attaches now) are replaced by this run's
/// media: none for looking-glass. Any other disk, a CD-ROM the user added included, is left alone. No boot
/// order: the installed disk keeps booting first.
fn update_media_rule(spec: &DomainSpec, mode: DisplayMode) -> Rule {
    let owned: Vec<String> = spec
        .old_media
        .iter()
        .chain(&spec.media)
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let items: Vec<String> = if mode.virtual_display() {
        spec.media
            .iter()
            .enumerate()
            .map(|(i, p)| cdrom(p, &format!("sd{}", (b'x' + i as u8 % 3) as char), None))
            .collect()
    } else {
        Vec::new()
    };
    Rule::replace_where(
        &["domain", "devices"],
        "disk",
        move |index, node| {
            node.attr("device") == Some("cdrom")
                && index
                    .children(node)
                    .find(|c| c.local_name() == "source")
                    .and_then(|c| c.attr("file"))
                    .is_some_and(|f| owned.iter().any(|o| o == f))
        },
        items,
    )
    .before(&[
        "controller",
        "interface",
        "input",
        "graphics",
        "video",
        "hostdev",
    ])
}

fn disks(spec: &DomainSpec) -> Vec<String> {
    // Installing: the ISO boots first (an empty disk would fall through anyway; a Windows ISO waits for a
    // key and then hands over to the disk after setup's reboot).
    let installing = spec.display.is_some_and(DisplayMode::virtual_display) && spec.iso.is_some();
    let (disk_boot, iso_boot) = if installing { (2, 1) } else { (1, 2) };
    let mut out = Vec::new();
    if let Some(disk) = &spec.disk {
        out.push(block(
            "<disk type='file' device='disk'>",
            &[
                format!(
                    "<driver name='qemu' type='{}' discard='unmap'/>",
                    disk.format
                ),
                format!(
                    "<source file='{}'/>",
                    escape(disk.path.to_string_lossy().as_ref())
                ),
                "<target dev='vda' bus='virtio'/>".to_string(),
                format!("<boot order='{disk_boot}'/>"),
            ],
            "</disk>",
        ));
    }
    if let Some(iso) = &spec.iso {
        out.push(cdrom(iso, "sda", Some(iso_boot)));
    }
    if let Some(drivers) = &spec.drivers {
        out.push(cdrom(drivers, "sdb", None));
    }
    out
}

/// The interface for `--network`; `None` keeps the template's.
fn interface(network: &Network) -> Option<Vec<String>> {
    let (kind, attr, name) = match network {
        Network::Template => return None,
        Network::None => return Some(Vec::new()),
        Network::Network(name) => ("network", "network", name),
        Network::Bridge(name) => ("bridge", "bridge", name),
    };
    Some(vec![block(
        &format!("<interface type='{kind}'>"),
        &[
            format!("<source {attr}='{}'/>", escape(name.as_str())),
            "<model type='virtio'/>".to_string(),
        ],
        "</interface>",
    )])
}

fn gpu_rules(spec: &DomainSpec, old_gpus: &[PciAddress]) -> Vec<Rule> {
    let mut owned: Vec<PciAddress> = old_gpus.to_vec();
    let mut items = Vec::new();
    let mut rules = Vec::new();
    if let Some(gpu) = &spec.gpu {
        owned.extend(gpu.functions.iter().copied());
        for (guest_fn, host) in gpu.functions.iter().enumerate() {
            let multifunction = if guest_fn == 0 && gpu.functions.len() > 1 {
                " multifunction='on'"
            } else {
                ""
            };
            items.push(block(
                "<hostdev mode='subsystem' type='pci' managed='yes'>",
                &[
                    block("<source>", &[address_xml(host)], "</source>"),
                    format!(
                        "<address type='pci' domain='0x0000' bus='0x{:02x}' slot='0x00' function='0x{guest_fn:x}'{multifunction}/>",
                        gpu.guest_bus
                    ),
                ],
                "</hostdev>",
            ));
        }
        let bus = u32::from(gpu.guest_bus);
        rules.push(
            Rule::ensure(
                &["domain", "devices"],
                "controller",
                Some(Box::new(move |_: &Index<'_>, n: &Node| {
                    n.attr("type") == Some("pci")
                        && n.attr("index").and_then(|i| i.parse::<u32>().ok()) == Some(bus)
                })),
                vec![format!(
                    "<controller type='pci' index='{bus}' model='pcie-root-port'/>"
                )],
            )
            .before(DEVICES_TAIL),
        );
    }
    rules.insert(
        0,
        Rule::replace_where(
            &["domain", "devices"],
            "hostdev",
            move |index, n| {
                n.attr("type") == Some("pci")
                    && hostdev_source(index, n)
                        .is_some_and(|a| owned.iter().any(|o| o.same_slot(&a)))
            },
            items,
        )
        .before(DEVICES_TAIL),
    );
    rules
}

fn address_xml(a: &PciAddress) -> String {
    format!(
        "<address domain='0x{:04x}' bus='0x{:02x}' slot='0x{:02x}' function='0x{:x}'/>",
        a.domain, a.bus, a.device, a.function
    )
}

/// The guest PCI bus for the GPU when updating `xml`: where a hostdev of one of `gpus` (any function of their
/// slots) already sits, else a new root port after the highest PCI controller index; `None` when no bus is left.
pub fn guest_bus_for_update(xml: &str, gpus: &[PciAddress]) -> rewrite::Result<Option<u8>> {
    let index = Index::parse(xml).map_err(rewrite::Error::Index)?;
    let current = index
        .at(&["domain", "devices", "hostdev"])
        .filter(|h| hostdev_source(&index, h).is_some_and(|a| gpus.iter().any(|g| g.same_slot(&a))))
        .flat_map(|h| index.children(h))
        .find(|n| n.name() == "address" && n.attr("type") == Some("pci"))
        .and_then(|a| crate::host::root::parse_hex(a.attr("bus")?))
        .and_then(|b| u8::try_from(b).ok());
    if current.is_some() {
        return Ok(current);
    }
    let highest = index
        .at(&["domain", "devices", "controller"])
        .filter(|c| c.attr("type") == Some("pci"))
        .filter_map(|c| c.attr("index")?.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    Ok(u8::try_from(highest + 1).ok())
}

/// The host address in a `<hostdev>`'s `<source><address/>`.
pub(crate) fn hostdev_source(index: &Index<'_>, hostdev: &Node) -> Option<PciAddress> {
    let address = index.descendants(hostdev).find(|d| {
        d.name() == "address" && d.path.iter().rev().nth(1).is_some_and(|p| p == "source")
    })?;
    let hex = |name: &str| -> Option<u32> { crate::host::root::parse_hex(address.attr(name)?) };
    Some(PciAddress {
        domain: u16::try_from(hex("domain")?).ok()?,
        bus: u8::try_from(hex("bus")?).ok()?,
        device: u8::try_from(hex("slot")?).ok().filter(|d| *d <= 0x1f)?,
        function: u8::try_from(hex("function")?).ok().filter(|f| *f <= 7)?,
    })
}

fn looking_glass_rules(spec: &DomainSpec) -> Vec<Rule> {
    let shm_name = spec.shm_name.clone();
    let shmem = match spec.looking_glass {
        LookingGlass::Shmem(r) => vec![block(
            &format!("<shmem name='{}'>", escape(&spec.shm_name)),
            &[
                "<model type='ivshmem-plain'/>".to_string(),
                format!("<size unit='M'>{}</size>", r.size_mib()),
            ],
            "</shmem>",
        )],
        _ => Vec::new(),
    };
    let kvmfr = match spec.looking_glass {
        LookingGlass::Kvmfr(r) => vec![kvmfr_commandline(r)],
        _ => Vec::new(),
    };
    vec![
        Rule::replace_where(
            &["domain", "devices"],
            "shmem",
            move |_, n| {
                n.attr("name")
                    .is_some_and(|name| name == shm_name || name.starts_with(DEFAULT_SHM_NAME))
            },
            shmem,
        )
        .before(DEVICES_TAIL),
        Rule::replace_where(
            &["domain"],
            "commandline",
            |index, n| index.source(n).contains("/dev/kvmfr"),
            kvmfr,
        ),
    ]
}

fn kvmfr_commandline(r: Resolution) -> String {
    // JSON syntax: QEMU ≥ 6.2 with libvirt ≥ 7.9 needs it (the legacy syntax can clash on PCI slots).
    let device = "{&quot;driver&quot;:&quot;ivshmem-plain&quot;,&quot;id&quot;:&quot;shmem-vmgpu&quot;,&quot;memdev&quot;:&quot;looking-glass&quot;}";
    let object = format!(
        "{{&quot;qom-type&quot;:&quot;memory-backend-file&quot;,&quot;id&quot;:&quot;looking-glass&quot;,&quot;mem-path&quot;:&quot;/dev/kvmfr0&quot;,&quot;size&quot;:{},&quot;share&quot;:true}}",
        r.size_bytes()
    );
    block(
        "<qemu:commandline>",
        &[
            "<qemu:arg value='-device'/>".to_string(),
            format!("<qemu:arg value='{device}'/>"),
            "<qemu:arg value='-object'/>".to_string(),
            format!("<qemu:arg value='{object}'/>"),
        ],
        "</qemu:commandline>",
    )
}

fn evdev(spec: &DomainSpec) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(kbd) = &spec.evdev.keyboard {
        out.push(block(
            "<input type='evdev'>",
            &[format!(
                "<source dev='{}' grab='all' grabToggle='{}' repeat='on'/>",
                escape(kbd.to_string_lossy().as_ref()),
                escape(&spec.evdev.grab_toggle)
            )],
            "</input>",
        ));
    }
    if let Some(mouse) = &spec.evdev.mouse {
        out.push(block(
            "<input type='evdev'>",
            &[format!(
                "<source dev='{}'/>",
                escape(mouse.to_string_lossy().as_ref())
            )],
            "</input>",
        ));
    }
    out
}
