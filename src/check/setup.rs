//! After a reboot: did everything the last applied `vmgpu setup` promised take effect? Reads the record under
//! `/var/lib/vmgpu/backup/` and checks each promise against the host snapshot. No record, no findings.
use super::{Context, Finding};
use crate::host::HostRoot;
use crate::setup::Promise;
use crate::setup::record::{Record, State, Store};

/// Runs the setup checks.
pub fn check(ctx: &Context) -> Vec<Finding> {
    let root = &ctx.host.root;
    let record = match Store::new(root).latest_active() {
        Ok(Some(r)) => r,
        Ok(None) => return Vec::new(),
        Err(e) => {
            return vec![Finding::warn(
                "setup.record",
                format!("cannot read the vmgpu setup record: {e}"),
                "look at /var/lib/vmgpu/backup/*/record.json",
            )];
        }
    };
    if matches!(record.state, State::Writing | State::Written) {
        return vec![Finding::fail(
            "setup.record",
            format!(
                "vmgpu setup {} was interrupted before it finished",
                record.id
            ),
            "vmgpu setup --undo, then run vmgpu setup again",
        )];
    }
    let mut out = vec![Finding::pass(
        "setup.record",
        format!("vmgpu setup {} applied: {}", record.id, record.title),
    )];
    out.extend(kernel_params(ctx, &record));
    out.extend(vfio_bound(ctx, &record));
    out.extend(modules(ctx, &record));
    for p in &record.promises {
        if let Some(f) = single(ctx, p) {
            out.push(f);
        }
    }
    out.extend(groups(root, &record));
    out.extend(units(root, &record));
    out
}

fn kernel_params(ctx: &Context, record: &Record) -> Option<Finding> {
    const ID: &str = "setup.kernel_params";
    let words = crate::host::parse::cmdline_words(&ctx.host.kernel.cmdline.raw);
    let wanted: Vec<&str> = record
        .promises
        .iter()
        .filter_map(|p| match p {
            Promise::KernelParam { param } => Some(param.as_str()),
            _ => None,
        })
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|w| {
            !words
                .iter()
                .any(|t| t.replace('-', "_") == w.replace('-', "_"))
        })
        .collect();
    Some(if missing.is_empty() {
        Finding::pass(ID, format!("the kernel booted with {}", wanted.join(" ")))
    } else {
        Finding::fail(
            ID,
            format!(
                "the running kernel's command line lacks {}",
                missing.join(" ")
            ),
            "reboot; if they are still missing, the bootloader did not take the change: run `vmgpu setup \
             --dry-run` and compare",
        )
    })
}

fn vfio_bound(ctx: &Context, record: &Record) -> Option<Finding> {
    const ID: &str = "setup.vfio_bound";
    let addresses: Vec<&str> = record
        .promises
        .iter()
        .filter_map(|p| match p {
            Promise::BoundToVfio { address } => Some(address.as_str()),
            _ => None,
        })
        .collect();
    if addresses.is_empty() {
        return None;
    }
    let wrong: Vec<String> = addresses
        .iter()
        .map(|a| {
            let driver = ctx
                .host
                .pci
                .iter()
                .find(|d| d.address.to_string() == *a)
                .map(|d| d.driver.clone());
            (a, driver)
        })
        .filter(|(_, d)| d.as_ref().and_then(|d| d.as_deref()) != Some("vfio-pci"))
        .map(|(a, d)| match d {
            None => format!("{a} (gone)"),
            Some(None) => format!("{a} (no driver)"),
            Some(Some(drv)) => format!("{a} ({drv})"),
        })
        .collect();
    Some(if wrong.is_empty() {
        Finding::pass(ID, format!("vfio-pci holds {}", addresses.join(", ")))
    } else {
        Finding::fail(
            ID,
            format!("not on vfio-pci after boot: {}", wrong.join(", ")),
            "reboot if you have not since setup; otherwise the GPU driver won: check that the initramfs was \
             rebuilt and that vfio.conf is in it",
        )
    })
}

fn modules(ctx: &Context, record: &Record) -> Option<Finding> {
    const ID: &str = "setup.modules";
    let wanted: Vec<&str> = record
        .promises
        .iter()
        .filter_map(|p| match p {
            Promise::ModuleLoaded { module } => Some(module.as_str()),
            _ => None,
        })
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|m| !ctx.host.kernel.is_present(m))
        .collect();
    Some(if missing.is_empty() {
        Finding::pass(ID, format!("loaded: {}", wanted.join(", ")))
    } else {
        Finding::fail(
            ID,
            format!("not loaded: {}", missing.join(", ")),
            format!(
                "modprobe {} (and check /etc/modules-load.d)",
                missing.join(" ")
            ),
        )
    })
}

fn single(ctx: &Context, promise: &Promise) -> Option<Finding> {
    let virt = &ctx.host.virt;
    match promise {
        Promise::ModuleParam {
            module,
            param,
            value,
        } => {
            let id = "setup.module_param";
            let now = ctx.host.kernel.module_param(module, param);
            let yes = |v: &str| matches!(v, "Y" | "1");
            Some(match now {
                Some(v) if v == value || (yes(v) && yes(value)) => {
                    Finding::pass(id, format!("{module}.{param} is {v}"))
                }
                Some(v) => Finding::fail(
                    id,
                    format!("{module}.{param} is {v}, setup wrote {value}"),
                    format!("reboot, or: echo {value} > /sys/module/{module}/parameters/{param}"),
                ),
                None => Finding::skip(
                    id,
                    format!("{module} is not loaded, so {param} cannot be read"),
                ),
            })
        }
        Promise::ShmFile { path, user, group } => {
            let id = "setup.shm_file";
            Some(match &virt.shm_file {
                Some(n)
                    if n.owner.as_deref() == Some(user) && n.group.as_deref() == Some(group) =>
                {
                    Finding::pass(id, format!("{path} is {user}:{group}"))
                }
                Some(n) => Finding::fail(
                    id,
                    format!(
                        "{path} is {}:{}, setup asked for {user}:{group}",
                        n.owner.as_deref().unwrap_or("?"),
                        n.group.as_deref().unwrap_or("?")
                    ),
                    format!("chown {user}:{group} {path}"),
                ),
                None => Finding::fail(
                    id,
                    format!("{path} does not exist"),
                    "systemd-tmpfiles --create /etc/tmpfiles.d/10-looking-glass.conf",
                ),
            })
        }
        Promise::SelinuxBoolean { name } => Some(match virt.mac.virt_hooks_unconfined {
            Some(true) => Finding::pass("setup.selinux", format!("{name} is on")),
            _ => Finding::fail(
                "setup.selinux",
                format!("{name} is off: libvirt cannot run the hook"),
                format!("setsebool -P {name} on"),
            ),
        }),
        Promise::HookInstalled => Some(
            if virt.hook.is_vmgpu || virt.hook.qemu_d.iter().any(|n| n.contains("vmgpu")) {
                Finding::pass("setup.hook", "the vmgpu hook is installed")
            } else {
                Finding::fail(
                    "setup.hook",
                    "the vmgpu hook is not installed",
                    "vmgpu install --restart",
                )
            },
        ),
        _ => None,
    }
}

fn groups(root: &HostRoot, record: &Record) -> Option<Finding> {
    let wanted: Vec<(&str, &str)> = record
        .promises
        .iter()
        .filter_map(|p| match p {
            Promise::UserInGroup { user, group } => Some((user.as_str(), group.as_str())),
            _ => None,
        })
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let text = root
        .read_optional("/etc/group")
        .ok()
        .flatten()
        .unwrap_or_default();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|(user, group)| {
            !text.lines().any(|l| {
                let f: Vec<&str> = l.split(':').collect();
                f.first() == Some(group)
                    && f.get(3).is_some_and(|m| m.split(',').any(|u| u == *user))
            })
        })
        .map(|(u, g)| format!("{u} in {g}"))
        .collect();
    Some(if missing.is_empty() {
        Finding::pass("setup.groups", "the user is in the libvirt and kvm groups")
    } else {
        Finding::fail(
            "setup.groups",
            format!("missing: {}", missing.join(", ")),
            "usermod --append --groups libvirt,kvm <user>, then log in again",
        )
    })
}

fn units(root: &HostRoot, record: &Record) -> Option<Finding> {
    let wanted: Vec<&str> = record
        .promises
        .iter()
        .filter_map(|p| match p {
            Promise::UnitEnabled { unit } => Some(unit.as_str()),
            _ => None,
        })
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let enabled = |u: &str| {
        [
            "/etc/systemd/system/multi-user.target.wants",
            "/etc/systemd/system/sockets.target.wants",
        ]
        .iter()
        .any(|d| root.exists(format!("{d}/{u}")))
    };
    let missing: Vec<&str> = wanted.iter().copied().filter(|u| !enabled(u)).collect();
    Some(if missing.is_empty() {
        Finding::pass("setup.units", format!("enabled: {}", wanted.join(", ")))
    } else {
        Finding::fail(
            "setup.units",
            format!("not enabled: {}", missing.join(", ")),
            format!("systemctl enable --now {}", missing.join(" ")),
        )
    })
}
