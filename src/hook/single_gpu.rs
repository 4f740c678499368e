//! Single-GPU mode (opt-in): the host's only GPU goes to the guest, so before it is unbound the display
//! manager stops (`systemctl stop` waits for it), the virtual consoles let go of the framebuffer console and
//! the firmware framebuffer (efi/simple/vesa) is unbound; after it is on vfio-pci its driver modules are
//! unloaded, in dependency order. Release reverses all of it: modules back before the device is rebound,
//! the display manager last.
use super::error::{Error, Result};
use super::step::Step;
use crate::host::{HostRoot, PciDevice};

/// Platform framebuffer devices that can hold the boot GPU's memory.
pub(crate) const FRAMEBUFFERS: [&str; 3] = [
    "efi-framebuffer.0",
    "simple-framebuffer.0",
    "vesa-framebuffer.0",
];

/// The steps before the GPU is unbound: display manager, vtconsoles, framebuffer.
pub(crate) fn plan_before(root: &HostRoot) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    // The alias link names the unit; its target may be absolute (outside a --root tree), so it is not followed.
    let alias = std::fs::read_link(root.path("/etc/systemd/system/display-manager.service")).ok();
    let unit = alias
        .as_deref()
        .and_then(|t| t.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    if let Some(unit) = unit {
        let procs = root
            .read_optional(format!("/sys/fs/cgroup/system.slice/{unit}/cgroup.procs"))?
            .unwrap_or_default();
        if !procs.is_empty() {
            if !super::cpus::systemd_booted(root) {
                return Err(Error::SingleGpu(format!(
                    "{unit} runs but systemd is not PID 1: stop the display manager by hand"
                )));
            }
            steps.push(Step::StopUnit { unit });
        }
    }
    for vtcon in root.list_dir("/sys/class/vtconsole")? {
        let path = format!("/sys/class/vtconsole/{vtcon}/bind");
        if root.read_optional(&path)?.as_deref() == Some("1") {
            steps.push(Step::UnbindVtconsole { path });
        }
    }
    steps.extend(release_firmware_framebuffer(root)?);
    Ok(steps)
}

/// Unbinds the firmware framebuffer (efi/simple/vesa), which holds the boot VGA's memory: in single-GPU
/// mode, and for a boot VGA the host does not display on (without it vfio-pci cannot claim the BARs).
pub(crate) fn release_firmware_framebuffer(root: &HostRoot) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    for device in FRAMEBUFFERS {
        if let Some(driver) =
            root.read_link_name(format!("/sys/bus/platform/devices/{device}/driver"))?
        {
            steps.push(Step::UnbindPlatform {
                driver,
                device: device.to_string(),
            });
        }
    }
    Ok(steps)
}

/// The steps after the GPU is on vfio-pci: unload the modules of its original driver.
pub(crate) fn plan_after(root: &HostRoot, endpoints: &[PciDevice]) -> Vec<Step> {
    let mut modules: Vec<&str> = Vec::new();
    for device in endpoints.iter().filter(|d| d.is_gpu()) {
        let order: &[&str] = match device.driver.as_deref() {
            Some("nvidia") => &["nvidia_uvm", "nvidia_drm", "nvidia_modeset", "nvidia"],
            Some("amdgpu") => &["amdgpu"],
            Some("nouveau") => &["nouveau"],
            Some("radeon") => &["radeon"],
            Some("i915") => &["i915"],
            Some("xe") => &["xe"],
            _ => &[],
        };
        for module in order {
            if !modules.contains(module) && root.exists(format!("/sys/module/{module}")) {
                modules.push(module);
            }
        }
    }
    modules
        .into_iter()
        .map(|m| Step::UnloadModule {
            module: m.to_string(),
        })
        .collect()
}
