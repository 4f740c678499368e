//! The GPU part of prepare/release: the endpoints of a GPU's IOMMU group(s), the processes holding them,
//! binding to vfio-pci (`driver_override`, `unbind`, `drivers_probe`, verify) and giving them back.
use std::time::Duration;

use super::error::{Error, Result};
use crate::domain::VmgpuConfig;
use crate::host::pci::PCI_DEVICES;
use crate::host::{HostRoot, PciAddress, PciDevice};
use crate::ops::HostOps;

/// The driver every endpoint of a passed-through group must be on.
pub(crate) const VFIO: &str = "vfio-pci";
/// How long to wait for a driver to appear after `drivers_probe` (drivers may probe asynchronously).
pub(crate) const PROBE_WAIT: Duration = Duration::from_secs(5);

/// Reads a device, mapping "no such directory" to [`Error::NoSuchDevice`].
pub(crate) fn read_device(root: &HostRoot, address: PciAddress) -> Result<PciDevice> {
    if !root.exists(format!("{PCI_DEVICES}/{address}")) {
        return Err(Error::NoSuchDevice(address));
    }
    Ok(PciDevice::read(root, address)?)
}

/// Refuses, before anything changes, when an address recorded in the metadata now holds another device
/// (vendor:device, subsystem or class differ, or nothing is there). Metadata from a vmgpu that recorded no
/// identities is accepted with a warning.
pub(crate) fn check_identity(root: &HostRoot, vm: &str, config: &VmgpuConfig) -> Result<()> {
    for gpu in &config.gpus {
        if !config.functions.iter().any(|f| f.address.same_slot(gpu)) {
            tracing::warn!(
                "{vm}: the metadata records no device identity for GPU {gpu} (defined by an older vmgpu): \
                 a different device at that address would not be noticed; run `vmgpu define {vm} --update \
                 --gpu {gpu}` to record it"
            );
        }
    }
    for recorded in &config.functions {
        let found = if root.exists(format!("{PCI_DEVICES}/{}", recorded.address)) {
            let device = PciDevice::read(root, recorded.address)?;
            recorded.mismatch(&device)
        } else {
            Some(format!(
                "no device, not the {recorded} recorded at define time"
            ))
        };
        if let Some(found) = found {
            return Err(Error::DeviceChanged {
                vm: vm.to_string(),
                address: recorded.address,
                found,
            });
        }
    }
    Ok(())
}

/// Every endpoint (non-bridge) in the IOMMU groups of `gpus`, each once, functions other than display
/// first (HDMI audio `.1` before the GPU `.0`, as the kernel and the guides prefer). Errors for a missing
/// device, a bridge, or no IOMMU group.
pub(crate) fn group_endpoints(
    root: &HostRoot,
    gpus: &[PciAddress],
) -> Result<Vec<(PciDevice, u32)>> {
    let mut out: Vec<(PciDevice, u32)> = Vec::new();
    for &gpu in gpus {
        let device = read_device(root, gpu)?;
        if device.class.is_bridge() {
            return Err(Error::Bridge {
                address: gpu,
                class: device.class.name(),
            });
        }
        let group = device.iommu_group.ok_or(Error::NoIommu(gpu))?;
        for name in root.list_dir(format!("/sys/kernel/iommu_groups/{group}/devices"))? {
            let Ok(address) = name.parse::<PciAddress>() else {
                continue;
            };
            if out.iter().any(|(d, _)| d.address == address) {
                continue;
            }
            let member = read_device(root, address)?;
            if !member.class.is_bridge() {
                out.push((member, group));
            }
        }
    }
    out.sort_by_key(|(d, _)| (d.class.is_display(), d.address));
    Ok(out)
}

/// Moves one device to vfio-pci: `driver_override`, unbind from its driver (under a deadline), probe,
/// then verify (waiting for an asynchronous probe).
pub(crate) fn bind_vfio(ops: &dyn HostOps, address: &PciAddress) -> Result<()> {
    let root = ops.root();
    let dir = format!("{PCI_DEVICES}/{address}");
    let current = root.read_link_name(format!("{dir}/driver"))?;
    if current.as_deref() == Some(VFIO) {
        return Ok(());
    }
    ops.write(&format!("{dir}/driver_override"), VFIO)?;
    if let Some(driver) = current {
        ops.write(
            &format!("/sys/bus/pci/drivers/{driver}/unbind"),
            &address.to_string(),
        )?;
    }
    ops.write("/sys/bus/pci/drivers_probe", &address.to_string())?;
    let found = wait_for_driver(ops, address, Some(VFIO))?;
    if found.as_deref() != Some(VFIO) {
        return Err(Error::BindFailed {
            address: *address,
            expected: VFIO.into(),
            found: found.unwrap_or_else(|| "no driver".into()),
        });
    }
    Ok(())
}

/// Gives a device back to its original driver (idempotent). "Already on the original driver" is success:
/// libvirt's own reattach may have done it.
pub(crate) fn restore_driver(
    ops: &dyn HostOps,
    address: &PciAddress,
    original: Option<&str>,
    original_override: Option<&str>,
) -> Result<()> {
    let root = ops.root();
    let dir = format!("{PCI_DEVICES}/{address}");
    if !root.exists(&dir) {
        tracing::warn!("{address} is gone (hot-unplugged?): nothing to restore");
        return Ok(());
    }
    let override_path = format!("{dir}/driver_override");
    let wanted_override = original_override.unwrap_or("");
    let current_override = root
        .read_optional(&override_path)?
        .filter(|v| v != "(null)")
        .unwrap_or_default();
    if current_override != wanted_override {
        let value = if wanted_override.is_empty() {
            "\n"
        } else {
            wanted_override
        };
        ops.write(&override_path, value)?;
    }
    let current = root.read_link_name(format!("{dir}/driver"))?;
    if current.as_deref() == original {
        return Ok(());
    }
    if let Some(driver) = &current {
        ops.write(
            &format!("/sys/bus/pci/drivers/{driver}/unbind"),
            &address.to_string(),
        )?;
    }
    let Some(original) = original else {
        return Ok(());
    };
    ops.write("/sys/bus/pci/drivers_probe", &address.to_string())?;
    let mut found = wait_for_driver(ops, address, Some(original))?;
    if found.is_none() && root.exists(format!("/sys/bus/pci/drivers/{original}")) {
        // drivers_probe found no match (e.g. the id was added with new_id): bind by name.
        ops.write(
            &format!("/sys/bus/pci/drivers/{original}/bind"),
            &address.to_string(),
        )?;
        found = wait_for_driver(ops, address, Some(original))?;
    }
    if found.as_deref() != Some(original) {
        return Err(Error::BindFailed {
            address: *address,
            expected: original.to_string(),
            found: found.unwrap_or_else(|| "no driver".into()),
        });
    }
    Ok(())
}

/// Polls the `driver` link until it names `wanted` or [`PROBE_WAIT`] passes; returns what it found.
fn wait_for_driver(
    ops: &dyn HostOps,
    address: &PciAddress,
    wanted: Option<&str>,
) -> Result<Option<String>> {
    let link = format!("{PCI_DEVICES}/{address}/driver");
    let deadline = ops.now() + PROBE_WAIT;
    let mut pause = Duration::from_micros(500);
    loop {
        let found = ops.root().read_link_name(&link)?;
        if found.as_deref() == wanted || ops.now() >= deadline {
            tracing::debug!("{address}: driver {found:?}");
            return Ok(found);
        }
        ops.pause(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// After binding: every endpoint of each group must be on vfio-pci.
pub(crate) fn verify_groups_viable(root: &HostRoot, endpoints: &[(PciDevice, u32)]) -> Result<()> {
    for (device, group) in endpoints {
        let driver = root.read_link_name(format!("{PCI_DEVICES}/{}/driver", device.address))?;
        if driver.as_deref() != Some(VFIO) {
            return Err(Error::GroupNotViable {
                group: *group,
                address: device.address,
                driver: driver.unwrap_or_else(|| "no driver".into()),
            });
        }
    }
    Ok(())
}
