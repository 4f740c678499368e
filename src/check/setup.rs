//! After a reboot: did everything the last applied `vmgpu setup` promised take effect? Reads the record under
//! `/var/lib/vmgpu/backup/` and checks each promise against the host snapshot. No record, no findings.
use super::{Context, Finding};
use crate::host::HostRoot;
use crate::host::virtstack::Node;
use crate::setup::Promise;
use crate::setup::record::{Record, State, Store};

/// Runs the setup checks.
pub(crate) fn check(ctx: &Context) -> Vec<Finding> {
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

/// The promises of one kind, as `pick` extracts them.
fn promised<'a, T>(record: &'a Record, pick: impl Fn(&'a Promise) -> Option<T>) -> Vec<T> {
    record.promises.iter().filter_map(pick).collect()
}

fn kernel_params(ctx: &Context, record: &Record) -> Option<Finding> {
    let words = crate::host::parse::cmdline_words(&ctx.host.kernel.cmdline.raw);
    let wanted = promised(record, |p| match p {
        Promise::KernelParam { param } => Some(param.as_str()),
        _ => None,
    });
    let booted = |w: &str| {
        words
            .iter()
            .any(|t| t.replace('-', "_") == w.replace('-', "_"))
    };
    all_hold(
        "setup.kernel_params",
        &wanted,
        booted,
        |all| format!("the kernel booted with {}", all.join(" ")),
        |missing| {
            (
                format!("the running kernel's command line lacks {}", missing.join(" ")),
                "reboot; if they are still missing, the bootloader did not take the change: run `vmgpu \
                 setup --dry-run` and compare"
                    .to_string(),
            )
        },
    )
}

fn vfio_bound(ctx: &Context, record: &Record) -> Option<Finding> {
    const ID: &str = "setup.vfio_bound";
    let addresses = promised(record, |p| match p {
        Promise::BoundToVfio { address } => Some(address.as_str()),
        _ => None,
    });
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
    let wanted = promised(record, |p| match p {
        Promise::ModuleLoaded { module } => Some(module.as_str()),
        _ => None,
    });
    all_hold(
        "setup.modules",
        &wanted,
        |m| ctx.host.kernel.is_present(m),
        |all| format!("loaded: {}", all.join(", ")),
        |missing| {
            (
                format!("not loaded: {}", missing.join(", ")),
                format!(
                    "modprobe {} (and check /etc/modules-load.d)",
                    missing.join(" ")
                ),
            )
        },
    )
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
            Some(match &Node::read(&ctx.host.root, path).ok().flatten() {
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
                    format!(
                        "systemd-tmpfiles --create {}",
                        crate::setup::guide::TMPFILES
                    ),
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
    let wanted = promised(record, |p| match p {
        Promise::UserInGroup { user, group } => Some((user.as_str(), group.as_str())),
        _ => None,
    });
    let groups = crate::host::accounts::groups(root).unwrap_or_default();
    let member =
        |(user, group): (&str, &str)| groups.iter().any(|g| g.name == group && g.has_member(user));
    all_hold(
        "setup.groups",
        &wanted,
        member,
        |_| "the user is in the libvirt and kvm groups".to_string(),
        |missing| {
            let names: Vec<String> = missing.iter().map(|(u, g)| format!("{u} in {g}")).collect();
            (
                format!("missing: {}", names.join(", ")),
                "usermod --append --groups libvirt,kvm <user>, then log in again".to_string(),
            )
        },
    )
}

fn units(root: &HostRoot, record: &Record) -> Option<Finding> {
    let wanted = promised(record, |p| match p {
        Promise::UnitEnabled { unit } => Some(unit.as_str()),
        _ => None,
    });
    let enabled = |u: &str| {
        [
            "/etc/systemd/system/multi-user.target.wants",
            "/etc/systemd/system/sockets.target.wants",
        ]
        .iter()
        .any(|d| root.exists(format!("{d}/{u}")))
    };
    all_hold(
        "setup.units",
        &wanted,
        enabled,
        |all| format!("enabled: {}", all.join(", ")),
        |missing| {
            (
                format!("not enabled: {}", missing.join(", ")),
                format!("systemctl enable --now {}", missing.join(" ")),
            )
        },
    )
}

/// One finding for a set of promised items: PASS when every one holds, else FAIL naming the ones that do not,
/// with the fix for those; none when nothing of the kind was promised.
fn all_hold<T: Copy>(
    id: &'static str,
    items: &[T],
    holds: impl Fn(T) -> bool,
    pass: impl FnOnce(&[T]) -> String,
    fail: impl FnOnce(&[T]) -> (String, String),
) -> Option<Finding> {
    if items.is_empty() {
        return None;
    }
    let missing: Vec<T> = items.iter().copied().filter(|t| !holds(*t)).collect();
    Some(if missing.is_empty() {
        Finding::pass(id, pass(items))
    } else {
        let (what, fix) = fail(&missing);
        Finding::fail(id, what, fix)
    })
}
