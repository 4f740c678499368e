//! vfio: the modules available (loaded, built in or loadable), `vfio_virqfd` not listed on kernels ≥ 6.2,
//! dracut `+=` values with their surrounding spaces, and modprobe.d vfio-pci options that a built-in vfio-pci
//! ignores.
use super::{Context, Finding, fix};
use crate::host::modconf::ConfKind;

/// Runs the vfio checks.
pub(crate) fn check(ctx: &Context) -> Vec<Finding> {
    let mut out = vec![modules(ctx), virqfd(ctx)];
    out.extend(dracut_spaces(ctx));
    out.push(builtin_options(ctx));
    out.extend(ids_syntax(ctx));
    out
}

const VFIO: &[&str] = &["vfio", "vfio_iommu_type1", "vfio_pci"];

fn modules(ctx: &Context) -> Finding {
    const ID: &str = "vfio.modules";
    let kernel = &ctx.host.kernel;
    let missing: Vec<&str> = VFIO
        .iter()
        .copied()
        .filter(|m| !kernel.is_available(m))
        .collect();
    if !missing.is_empty() {
        return Finding::fail(
            ID,
            format!(
                "kernel {} has no {} (not loaded, not built in, not in modules.dep)",
                kernel.release,
                missing.join(", ")
            ),
            "boot your distribution's standard kernel (built with CONFIG_VFIO, CONFIG_VFIO_IOMMU_TYPE1 and \
             CONFIG_VFIO_PCI)",
        );
    }
    let how = if kernel.vfio_pci_builtin() {
        "built into the kernel (use vfio-pci.ids= on the command line; modprobe.d options are ignored)"
    } else if kernel.is_loaded("vfio_pci") {
        "loaded"
    } else {
        "available as modules"
    };
    Finding::pass(ID, format!("vfio, vfio_iommu_type1 and vfio_pci are {how}"))
}

fn virqfd(ctx: &Context) -> Finding {
    const ID: &str = "vfio.virqfd";
    let kernel = &ctx.host.kernel;
    if !kernel.vfio_virqfd_merged() {
        return Finding::pass(
            ID,
            format!(
                "kernel {} is older than 6.2: vfio_virqfd is a module of its own",
                kernel.release
            ),
        );
    }
    let listed: Vec<&str> = ctx
        .host
        .modconf
        .files
        .iter()
        .filter(|f| f.kind != ConfKind::Modprobe && f.mentions_module("vfio_virqfd"))
        .map(|f| f.path.as_str())
        .collect();
    if listed.is_empty() {
        return Finding::pass(
            ID,
            "vfio_virqfd is not listed (it is part of vfio since 6.2)",
        );
    }
    Finding::fail(
        ID,
        format!(
            "{} list{} vfio_virqfd, which is part of vfio since kernel 6.2: the initramfs build fails \
             (\"Failed to find module vfio_virqfd\")",
            listed.join(", "),
            if listed.len() == 1 { "s" } else { "" }
        ),
        format!(
            "sed -i 's/ *vfio_virqfd//' {}, then run `{}`",
            listed.join(" "),
            fix::initramfs_rebuild(&ctx.host.distro)
        ),
    )
}

/// dracut concatenates `+=` values as written: `add_drivers+="vfio"` glued to a previous value breaks both.
fn dracut_spaces(ctx: &Context) -> Vec<Finding> {
    const ID: &str = "vfio.dracut_spaces";
    let mut out = Vec::new();
    for f in ctx.host.modconf.of(ConfKind::Dracut) {
        for (n, line) in f.lines() {
            let Some((key, value)) = line.split_once("+=") else {
                continue;
            };
            let key = key.trim();
            if !["add_drivers", "force_drivers", "add_dracutmodules"].contains(&key) {
                continue;
            }
            let inner = crate::host::parse::unquote(value.trim());
            if inner.starts_with(' ') && inner.ends_with(' ') {
                continue;
            }
            out.push(Finding::warn(
                ID,
                format!(
                    "{}:{n}: {key}+= value has no leading and trailing space, so dracut may glue it to \
                     another file's value",
                    f.path
                ),
                format!(
                    "write it as {key}+=\" {} \" in {}, then run `{}`",
                    inner.trim(),
                    f.path,
                    fix::initramfs_rebuild(&ctx.host.distro)
                ),
            ));
        }
    }
    out
}

fn builtin_options(ctx: &Context) -> Finding {
    const ID: &str = "vfio.builtin_options";
    let kernel = &ctx.host.kernel;
    let ids = ctx.host.modconf.vfio_pci_ids();
    if !kernel.vfio_pci_builtin() {
        return Finding::pass(ID, "vfio-pci is a module: modprobe.d options apply");
    }
    if ids.is_empty() {
        return Finding::pass(ID, "vfio-pci is built in and modprobe.d sets no ids for it");
    }
    let files: Vec<&str> = ctx
        .host
        .modconf
        .modprobe_options("vfio_pci")
        .iter()
        .map(|(path, _)| *path)
        .collect();
    if !kernel.cmdline.list("vfio-pci.ids").is_empty() {
        return Finding::warn(
            ID,
            format!(
                "vfio-pci is built in, so the ids in {} are ignored (vfio-pci.ids= on the command line binds)",
                files.join(", ")
            ),
            format!(
                "remove the `options vfio-pci` line from {}",
                files.join(", ")
            ),
        );
    }
    let arg = format!("vfio-pci.ids={}", ids.join(","));
    Finding::fail(
        ID,
        format!(
            "vfio-pci is built into kernel {}, so `options vfio-pci ids={}` in modprobe.d is ignored",
            kernel.release,
            ids.join(",")
        ),
        fix::kernel_args(&ctx.host.distro, &[&arg], &[]),
    )
}

/// `options vfio-pci ids=a b` (the seed guide's form) passes only `a`: module options are separated by spaces,
/// ids by commas, so `b` becomes an unknown parameter the kernel ignores.
fn ids_syntax(ctx: &Context) -> Vec<Finding> {
    const ID: &str = "vfio.ids_syntax";
    let mut out = Vec::new();
    for (path, opts) in ctx.host.modconf.modprobe_options("vfio_pci") {
        let words: Vec<&str> = opts.split_whitespace().collect();
        let mut rest = words.iter().copied().skip_while(|w| !w.starts_with("ids="));
        let Some(first) = rest.next().map(|w| w.trim_start_matches("ids=")) else {
            continue;
        };
        let stray: Vec<&str> = rest.take_while(|w| !w.contains('=')).collect();
        if stray.is_empty() {
            continue;
        }
        let all = std::iter::once(first)
            .chain(stray.iter().copied())
            .collect::<Vec<_>>()
            .join(",");
        out.push(Finding::warn(
            ID,
            format!(
                "{path}: `{}` binds only {first}; {} is not part of ids= (ids are separated by commas)",
                format_args!("options vfio-pci {opts}"),
                stray.join(" ")
            ),
            format!(
                "write `options vfio-pci ids={all}` in {path}, then run `{}`",
                fix::initramfs_rebuild(&ctx.host.distro)
            ),
        ));
    }
    out
}
