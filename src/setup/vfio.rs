//! Early vfio binding: `modprobe.d` ids and softdeps (or a bind-by-address udev rule when a host GPU shares the
//! guest's ids), vfio in the initramfs (dracut, mkinitcpio, initramfs-tools) and `modules-load.d`.
use super::boot::initramfs_command;
use super::files::FileSource;
use super::inputs::{CpuVendor, InitramfsTool, SetupInputs};
use super::plan::{Plan, Promise, Result};

/// The modprobe.d file for vfio-pci.
pub(crate) const VFIO_CONF: &str = "/etc/modprobe.d/vfio.conf";
/// The udev rule that binds by address.
pub(crate) const BIND_RULE: &str = "/etc/udev/rules.d/60-vmgpu-vfio-bind.rules";
/// modules-load.d file.
pub(crate) const MODULES_LOAD: &str = "/etc/modules-load.d/vfio-pci.conf";

const HEADER: &str = "# vmgpu setup:";

/// Adds the early-binding part of the plan.
pub(crate) fn plan(inputs: &SetupInputs, files: &dyn FileSource, plan: &mut Plan) -> Result<()> {
    let gpu = inputs
        .guest_address()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let shared = inputs.ids_shared_with_host();
    let mut initramfs_changed = false;

    let modular = !inputs.vfio_pci_builtin();
    if modular || shared {
        let after = modprobe_conf(inputs, files.read(VFIO_CONF).as_deref(), &gpu);
        initramfs_changed |= plan.edit(
            files,
            VFIO_CONF,
            after,
            "vfio-pci claims every function of the guest GPU before its driver does",
        );
    }
    if shared {
        plan.notes.push(format!(
            "a host GPU has the same vendor:device ids as {gpu}: vfio-pci.ids would take the host's card too, \
             so the guest card is bound by address ({BIND_RULE})"
        ));
        initramfs_changed |= plan.edit(
            files,
            BIND_RULE,
            bind_rule(inputs, &gpu),
            "bind the guest GPU to vfio-pci by address (its ids are shared with a host GPU)",
        );
    }
    initramfs_changed |= initramfs(inputs, files, plan, shared);
    if initramfs_changed {
        plan.commands.push(initramfs_command(inputs));
    }

    let modules = boot_modules(inputs);
    let after = modules_load(files.read(MODULES_LOAD).as_deref(), &modules);
    plan.edit(files, MODULES_LOAD, after, "load vfio and KVM at boot");
    for f in &inputs.guest {
        plan.promises.push(Promise::BoundToVfio {
            address: f.address.to_string(),
        });
    }
    for module in ["vfio_pci", kvm_module(inputs.cpu_vendor)] {
        if !module.is_empty() {
            plan.promises.push(Promise::ModuleLoaded {
                module: module.to_string(),
            });
        }
    }
    Ok(())
}

fn kvm_module(vendor: CpuVendor) -> &'static str {
    match vendor {
        CpuVendor::Amd => "kvm_amd",
        CpuVendor::Intel => "kvm_intel",
        CpuVendor::Other => "",
    }
}

/// The vfio modules the initramfs must load, first, on this kernel (`vfio_virqfd` only before 6.2; built-in
/// ones left out).
pub(crate) fn initramfs_modules(inputs: &SetupInputs) -> Vec<&'static str> {
    let mut m = vec!["vfio_pci", "vfio", "vfio_iommu_type1"];
    if inputs.kernel.has_vfio_virqfd() {
        m.push("vfio_virqfd");
    }
    m.retain(|name| !inputs.kernel.is_builtin(name));
    m
}

fn boot_modules(inputs: &SetupInputs) -> Vec<&'static str> {
    let mut m = vec!["vfio", "vfio_iommu_type1", "vfio_pci", "kvm"];
    let kvm = kvm_module(inputs.cpu_vendor);
    if !kvm.is_empty() {
        m.push(kvm);
    }
    m.retain(|name| !inputs.kernel.is_builtin(name));
    m
}

/// Module names of the drivers that would otherwise take the guest card.
fn softdep_modules(inputs: &SetupInputs) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |m: &str| {
        let m = m.replace('-', "_");
        if !out.contains(&m) {
            out.push(m);
        }
    };
    match inputs.guest.first().map(|f| f.vendor) {
        Some(0x10de) => ["nvidia", "nouveau"].iter().for_each(|m| push(m)),
        Some(0x1002) => ["amdgpu", "radeon"].iter().for_each(|m| push(m)),
        Some(0x8086) => ["i915", "xe"].iter().for_each(|m| push(m)),
        _ => {}
    }
    for f in &inputs.guest {
        match f.driver.as_deref() {
            None | Some("vfio-pci") | Some("pci-stub") => {}
            Some("xhci_hcd") => push("xhci_pci"),
            Some("nvidia-gpu") => push("i2c_nvidia_gpu"),
            Some(d) => push(d),
        }
    }
    out
}

/// The new `/etc/modprobe.d/vfio.conf`: the user's other lines kept, vmgpu's lines rewritten.
pub(crate) fn modprobe_conf(inputs: &SetupInputs, current: Option<&str>, gpu: &str) -> String {
    let softdeps = softdep_modules(inputs);
    let mut kept: Vec<String> = Vec::new();
    for line in current.unwrap_or_default().lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            _ if line.starts_with(HEADER) => continue,
            ["options", module, rest @ ..] if module.replace('-', "_") == "vfio_pci" => {
                let rest: Vec<&str> = rest
                    .iter()
                    .filter(|w| !w.starts_with("ids="))
                    .filter(|w| w.contains('='))
                    .copied()
                    .collect();
                if !rest.is_empty() {
                    kept.push(format!("options vfio-pci {}", rest.join(" ")));
                }
            }
            ["softdep", module, ..] if softdeps.contains(&module.replace('-', "_")) => {}
            _ => kept.push(line.to_string()),
        }
    }
    let mut out = String::new();
    if inputs.ids_shared_with_host() {
        out.push_str(&format!(
            "{HEADER} {gpu} shares its ids with a host GPU: bound by address in {BIND_RULE}, no ids here.\n"
        ));
    } else {
        out.push_str(&format!(
            "{HEADER} vfio-pci claims the guest GPU {gpu} (all its functions) before its driver does.\n"
        ));
        out.push_str(&format!(
            "options vfio-pci ids={}\n",
            inputs.guest_ids().join(",")
        ));
    }
    for m in &softdeps {
        out.push_str(&format!("softdep {m} pre: vfio-pci\n"));
    }
    for line in kept {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn bind_rule(inputs: &SetupInputs, gpu: &str) -> String {
    let mut out = format!(
        "{HEADER} bind the guest GPU {gpu} to vfio-pci by address: a host GPU has the same ids.\n\
         # driver_override is set before any driver module is loaded for the device, then vfio-pci probes it.\n"
    );
    for f in &inputs.guest {
        out.push_str(&format!(
            "ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"{}\", ATTR{{driver_override}}=\"vfio-pci\", \
             RUN{{builtin}}+=\"kmod load vfio-pci\", RUN+=\"/bin/sh -c 'echo $kernel > /sys/bus/pci/drivers_probe'\"\n",
            f.address
        ));
    }
    out
}

/// The initramfs drop-ins; true when any changed.
fn initramfs(inputs: &SetupInputs, files: &dyn FileSource, plan: &mut Plan, shared: bool) -> bool {
    let modules = initramfs_modules(inputs);
    let mut changed = false;
    match inputs.initramfs {
        InitramfsTool::Dracut => {
            let path = "/etc/dracut.conf.d/vfio.conf";
            let mut text = format!(
                "{HEADER} vfio in the initramfs, loaded first (the spaces inside the quotes matter).\n"
            );
            if !modules.is_empty() {
                text.push_str(&format!("force_drivers+=\" {} \"\n", modules.join(" ")));
            }
            // Without hostonly mode dracut leaves /etc/modprobe.d out; name the files it needs.
            let mut items: Vec<&str> = Vec::new();
            if !inputs.vfio_pci_builtin() || shared {
                items.push(VFIO_CONF);
            }
            if shared {
                items.push(BIND_RULE);
            }
            if !items.is_empty() {
                text.push_str(&format!("install_items+=\" {} \"\n", items.join(" ")));
            }
            changed |= plan.edit(files, path, text, "vfio modules in the initramfs");
            let drop_virqfd = !inputs.kernel.has_vfio_virqfd();
            changed |= tidy_other_dracut_dropins(files, plan, path, drop_virqfd);
        }
        InitramfsTool::Mkinitcpio => {
            let path = "/etc/mkinitcpio.conf.d/vfio.conf";
            let mut text = format!("{HEADER} vfio modules first in the initramfs.\n");
            if !modules.is_empty() {
                text.push_str(&format!(
                    "MODULES=({} ${{MODULES[@]}})\n",
                    modules.join(" ")
                ));
            }
            if shared {
                text.push_str(&format!("FILES+=({BIND_RULE})\n"));
            }
            changed |= plan.edit(files, path, text, "vfio modules first in the initramfs");
            let hooks_without_modconf = files.read("/etc/mkinitcpio.conf").is_some_and(|t| {
                t.lines()
                    .any(|l| l.trim_start().starts_with("HOOKS=") && !l.contains("modconf"))
            });
            if hooks_without_modconf {
                plan.notes.push(
                    "HOOKS in /etc/mkinitcpio.conf has no `modconf`: /etc/modprobe.d is not copied into the \
                     initramfs, so vfio-pci will not get its ids there; add modconf"
                        .to_string(),
                );
            }
        }
        InitramfsTool::InitramfsTools => {
            let path = "/etc/initramfs-tools/modules";
            let current = files.read(path).unwrap_or_default();
            let mut text = current.clone();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            for m in &modules {
                if !current
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some(m))
                {
                    text.push_str(m);
                    text.push('\n');
                }
            }
            changed |= plan.edit(files, path, text, "vfio modules in the initramfs");
            if shared {
                let hook = "/etc/initramfs-tools/hooks/vmgpu-vfio-bind";
                let script = format!(
                    "#!/bin/sh\n{HEADER} copy the bind-by-address rule into the initramfs.\n\
                     [ \"$1\" = prereqs ] && exit 0\nmkdir -p \"$DESTDIR/etc/udev/rules.d\"\n\
                     cp {BIND_RULE} \"$DESTDIR/etc/udev/rules.d/\"\n"
                );
                if plan.edit(files, hook, script, "put the bind rule into the initramfs") {
                    if let Some(edit) = plan.files.last_mut() {
                        edit.mode = 0o755;
                    }
                    changed = true;
                }
            }
        }
        InitramfsTool::NixOs | InitramfsTool::Unknown => {
            plan.notes.push(format!(
                "initramfs tool not recognised: make sure {} load in the initramfs before the GPU driver",
                modules.join(", ")
            ));
        }
    }
    changed
}

/// Tidies the other dracut drop-ins (the seed guide's `gpu-passthrough.conf`): drops `vfio_virqfd` where the
/// kernel no longer has it (gone since 6.2; dracut fails on it) and puts the spaces dracut needs around `+=`
/// values, so `check vfio.dracut_spaces` passes after setup instead of warning about the guide's own line.
fn tidy_other_dracut_dropins(
    files: &dyn FileSource,
    plan: &mut Plan,
    ours: &str,
    drop_virqfd: bool,
) -> bool {
    let mut changed = false;
    for name in files.list("/etc/dracut.conf.d") {
        let path = format!("/etc/dracut.conf.d/{name}");
        if path == ours || !name.ends_with(".conf") {
            continue;
        }
        let Some(text) = files.read(&path) else {
            continue;
        };
        let after: String = text
            .split_inclusive('\n')
            .map(|line| tidy_dracut_line(line, drop_virqfd))
            .collect();
        let why = if drop_virqfd && text.contains("vfio_virqfd") {
            "vfio_virqfd does not exist on kernels >= 6.2 and breaks dracut"
        } else {
            "dracut glues += values without surrounding spaces to the previous file's value"
        };
        changed |= plan.edit(files, &path, after, why);
    }
    changed
}

/// One drop-in line: `add_drivers+="a b"` becomes `add_drivers+=" a b "` (without `vfio_virqfd` when asked);
/// comments and other keys stay as they are.
fn tidy_dracut_line(line: &str, drop_virqfd: bool) -> String {
    let (body, newline) = match line.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (line, ""),
    };
    let Some((key, value)) = body.split_once("+=") else {
        return line.to_string();
    };
    let key_name = key.trim();
    if key_name.starts_with('#')
        || !["add_drivers", "force_drivers", "add_dracutmodules"].contains(&key_name)
    {
        return line.to_string();
    }
    let value = value.trim();
    let quote = match value.chars().next() {
        Some(q @ ('"' | '\'')) if value.len() >= 2 && value.ends_with(q) => q,
        _ => return line.to_string(),
    };
    let inner = &value[1..value.len() - 1];
    let words: Vec<&str> = inner
        .split_whitespace()
        .filter(|w| !(drop_virqfd && *w == "vfio_virqfd"))
        .collect();
    let padded = format!(" {} ", words.join(" "));
    if padded == inner {
        return line.to_string();
    }
    format!("{key}+={quote}{padded}{quote}{newline}")
}

/// The new modules-load.d file: vmgpu's modules in order, then any other module the user listed.
fn modules_load(current: Option<&str>, modules: &[&str]) -> String {
    let mut out = format!("{HEADER} vfio and KVM at boot\n");
    for m in modules {
        out.push_str(m);
        out.push('\n');
    }
    for line in current.unwrap_or_default().lines() {
        let t = line.trim();
        if t.is_empty() || line.starts_with(HEADER) || modules.contains(&t) {
            continue;
        }
        out.push_str(t);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_modules_load_replaces_guide_lines_with_trailing_spaces() {
        let out = modules_load(Some("vfio \nkvm \nvendor-reset\n"), &["vfio", "kvm"]);
        assert_eq!(
            out,
            "# vmgpu setup: vfio and KVM at boot\nvfio\nkvm\nvendor-reset\n"
        );
    }

    #[test]
    fn test_modules_load_is_idempotent() {
        let once = modules_load(None, &["vfio", "kvm_amd"]);
        assert_eq!(modules_load(Some(&once), &["vfio", "kvm_amd"]), once);
    }

    #[test]
    fn test_tidy_dracut_line_pads_values_and_drops_virqfd() {
        let guide = "add_drivers+=\"vfio vfio_iommu_type1 vfio_pci vfio_virqfd\"\n";

        assert_eq!(
            tidy_dracut_line(guide, true),
            "add_drivers+=\" vfio vfio_iommu_type1 vfio_pci \"\n"
        );
        assert_eq!(
            tidy_dracut_line(guide, false),
            "add_drivers+=\" vfio vfio_iommu_type1 vfio_pci vfio_virqfd \"\n"
        );
        assert_eq!(
            tidy_dracut_line("# add_drivers+=\"x\"\n", true),
            "# add_drivers+=\"x\"\n"
        );
        assert_eq!(
            tidy_dracut_line("hostonly=\"yes\"\n", true),
            "hostonly=\"yes\"\n"
        );
        let good = "force_drivers+=\" vfio_pci \"\n";
        assert_eq!(tidy_dracut_line(good, true), good);
    }
}
