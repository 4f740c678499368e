//! Packages: QEMU, UEFI firmware (OVMF descriptors and the files they name), the libvirt daemon and swtpm,
//! with this distro's install command.
use super::{Context, Finding, fix};

/// Runs the package checks.
pub(crate) fn check(ctx: &Context) -> Vec<Finding> {
    vec![
        qemu(ctx),
        ovmf(ctx),
        secure_boot(ctx),
        libvirt(ctx),
        swtpm(ctx),
    ]
}

fn qemu(ctx: &Context) -> Finding {
    const ID: &str = "packages.qemu";
    match &ctx.host.virt.qemu {
        Some(path) => Finding::pass(ID, format!("QEMU is installed ({path})")),
        None => Finding::fail(
            ID,
            "QEMU is not installed",
            fix::install_virt(&ctx.host.distro),
        ),
    }
}

fn ovmf(ctx: &Context) -> Finding {
    const ID: &str = "packages.ovmf";
    let virt = &ctx.host.virt;
    let usable: Vec<_> = virt.usable_uefi().collect();
    if let Some(best) = usable.iter().find(|f| f.secure_boot()).or(usable.first()) {
        return Finding::pass(
            ID,
            format!(
                "{} UEFI firmware descriptor{} with files present (e.g. {}: {})",
                usable.len(),
                if usable.len() == 1 { "" } else { "s" },
                best.descriptor,
                best.executable.as_deref().unwrap_or("?")
            ),
        );
    }
    let what = if virt.firmware.is_empty() {
        "no QEMU firmware descriptors in /usr/share/qemu/firmware: OVMF (UEFI for the guest) is not installed"
            .to_string()
    } else {
        format!(
            "{} firmware descriptor(s) but none is UEFI with its files present",
            virt.firmware.len()
        )
    };
    Finding::fail(ID, what, fix::install_virt(&ctx.host.distro))
}

fn libvirt(ctx: &Context) -> Finding {
    const ID: &str = "packages.libvirt";
    let daemon = &ctx.host.virt.daemon;
    if daemon.installed.is_empty() {
        return Finding::fail(
            ID,
            "libvirt is not installed (no libvirtd or virtqemud)",
            fix::install_virt(&ctx.host.distro),
        );
    }
    let names: Vec<&str> = daemon.installed.iter().map(|k| k.name()).collect();
    Finding::pass(ID, format!("libvirt is installed ({})", names.join(", ")))
}

fn swtpm(ctx: &Context) -> Finding {
    const ID: &str = "packages.swtpm";
    if ctx.host.virt.swtpm {
        Finding::pass(ID, "swtpm is installed (TPM 2.0 for Windows 11)")
    } else {
        Finding::warn(
            ID,
            "swtpm is not installed: Windows 11 needs a TPM 2.0",
            fix::install(&ctx.host.distro, &["swtpm"]),
        )
    }
}

fn secure_boot(ctx: &Context) -> Finding {
    const ID: &str = "packages.secure_boot";
    let usable: Vec<_> = ctx.host.virt.usable_uefi().collect();
    if usable.is_empty() {
        return Finding::skip(ID, "no UEFI firmware (see packages.ovmf)");
    }
    let enrolled = usable
        .iter()
        .find(|f| f.secure_boot() && f.features.iter().any(|x| x == "enrolled-keys"));
    match (enrolled, usable.iter().find(|f| f.secure_boot())) {
        (Some(f), _) => Finding::pass(
            ID,
            format!(
                "Secure Boot firmware with enrolled keys (Windows 11): {}",
                f.descriptor
            ),
        ),
        (None, Some(f)) => Finding::pass(
            ID,
            format!(
                "Secure Boot firmware (keys not enrolled; Windows 11 installs, enroll keys for Secure Boot \
                 on): {}",
                f.descriptor
            ),
        ),
        (None, None) => Finding::warn(
            ID,
            "no UEFI firmware with Secure Boot: Windows 11 setup refuses the machine",
            fix::install_virt(&ctx.host.distro),
        ),
    }
}
