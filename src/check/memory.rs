//! Memory: hugepage support (2 MiB at runtime; 1 GiB needs the boot command line) and what is reserved.
use super::{Context, Finding, fix};

/// Runs the memory checks.
pub(crate) fn check(ctx: &Context) -> Vec<Finding> {
    vec![hugepages(ctx)]
}

fn hugepages(ctx: &Context) -> Finding {
    const ID: &str = "memory.hugepages";
    let m = &ctx.host.memory;
    if m.hugepages.is_empty() {
        return Finding::warn(
            ID,
            "the kernel offers no hugepages (no /sys/kernel/mm/hugepages): guest RAM uses 4 KiB pages",
            "boot a kernel with CONFIG_HUGETLBFS (every standard distribution kernel has it)",
        );
    }
    let sizes: Vec<String> = m
        .hugepages
        .iter()
        .map(|(kib, pool)| {
            let size = if *kib >= 1 << 20 {
                format!("{} GiB", kib >> 20)
            } else {
                format!("{} MiB", kib >> 10)
            };
            format!("{size} ({} reserved, {} free)", pool.total, pool.free)
        })
        .collect();
    let total_gib = m.total_kib as f64 / (1 << 20) as f64;
    if m.supports(1 << 20) || m.supports(2048) {
        Finding::pass(
            ID,
            format!(
                "hugepages: {}; {:.1} GiB RAM, {:.1} GiB available",
                sizes.join(", "),
                total_gib,
                m.available_kib as f64 / (1 << 20) as f64
            ),
        )
    } else {
        Finding::warn(
            ID,
            format!("only unusual hugepage sizes: {}", sizes.join(", ")),
            fix::kernel_args(&ctx.host.distro, &["hugepagesz=2M"], &[]),
        )
    }
}
