//! `vmgpu gpus`: every GPU as a passthrough unit (all functions, IOMMU group, foreign members, drivers, boot
//! display) with a verdict and its reason. `--json` prints the same as a JSON array.
use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Context;

use crate::check::style::Style;
use crate::cli::GpusArgs;
use crate::host::{GpuCard, Host, HostRoot, PciDevice, Verdict};
use crate::report::Outcome;

/// Runs `vmgpu gpus`.
pub(crate) fn run(root: &Path, args: &GpusArgs) -> anyhow::Result<Outcome> {
    let host = Host::read(&HostRoot::new(root)).context("reading the host")?;
    let cards = host.gpus();
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &cards).context("writing JSON")?;
        writeln!(out)?;
    } else {
        let style = Style::new(crate::report::use_colour(std::io::stdout().is_terminal()));
        out.write_all(render(&cards, style).as_bytes())?;
    }
    Ok(Outcome::Ok)
}

/// The human listing (no colour when `style` says so; snapshot tests use that).
pub(crate) fn render(cards: &[GpuCard], style: Style) -> String {
    if cards.is_empty() {
        return "no GPU found (no PCI VGA or 3D controller)\n".to_string();
    }
    let mut s = String::new();
    for card in cards {
        let p = &card.primary;
        s.push_str(&format!(
            "{} {} {} [{}]{}\n",
            style.bold(&format!("GPU {}", p.address)),
            p.vendor_name().unwrap_or("unknown vendor"),
            p.class.name(),
            p.vendor_device(),
            if card.is_boot_display {
                "  (boot display: the host's screen)"
            } else {
                ""
            }
        ));
        let group = card
            .group
            .map_or("none (IOMMU off)".to_string(), |g| g.to_string());
        s.push_str(&format!("  IOMMU group: {group}\n  functions:\n"));
        for f in &card.functions {
            s.push_str(&line(f));
        }
        if !card.foreign.is_empty() {
            s.push_str("  other devices in the group (make it unclean):\n");
            for f in &card.foreign {
                s.push_str(&line(f));
            }
        }
        let verdict = card.verdict.to_string();
        let verdict = match card.verdict {
            Verdict::NotPassable => style.red(&verdict),
            _ => style.green(&verdict),
        };
        s.push_str(&format!("  verdict: {verdict}: {}\n\n", card.reason));
    }
    s
}

fn line(f: &PciDevice) -> String {
    format!(
        "    {}  {:<22} {}  {}\n",
        f.address,
        f.class.name(),
        f.vendor_device(),
        f.driver.as_deref().unwrap_or("(no driver)")
    )
}
