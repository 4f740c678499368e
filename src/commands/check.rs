//! `vmgpu check`: every step of a passthrough host as PASS/WARN/FAIL/SKIP with a one-line explanation and the
//! exact fix for this distro. Exit 0 when nothing FAILs, 1 when something does, 2 on usage or read errors.
use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Context as _;

use crate::check::style::Style;
use crate::check::{Context, Report, Severity};
use crate::cli::CheckArgs;
use crate::host::{Host, HostRoot};
use crate::report::Outcome;

/// Runs `vmgpu check`.
pub(crate) fn run(root: &Path, args: &CheckArgs) -> anyhow::Result<Outcome> {
    let wanted = args.gpu;
    let host = Host::read(&HostRoot::new(root)).context("reading the host")?;
    let ctx = Context::new(&host, wanted);
    let report = Report::build(&ctx);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report).context("writing JSON")?;
        writeln!(out)?;
    } else {
        let style = Style::new(crate::report::use_colour(std::io::stdout().is_terminal()));
        out.write_all(render(&report, style).as_bytes())?;
    }
    Ok(if report.failed() {
        Outcome::Findings
    } else {
        Outcome::Ok
    })
}

/// The human report: a header, one line per finding (its fix indented below), a summary.
pub(crate) fn render(report: &Report, style: Style) -> String {
    let mut s = format!("{}\n", style.bold(&format!("vmgpu check: {}", report.host)));
    match (&report.guest_gpu, &report.guest_gpu_error) {
        (Some(g), _) => {
            let functions: Vec<String> = g.functions.iter().map(ToString::to_string).collect();
            s.push_str(&format!(
                "guest GPU: {} [{}], functions {}\n\n",
                g.address,
                g.id,
                functions.join(" ")
            ));
        }
        (None, Some(e)) => s.push_str(&format!("guest GPU: none: {e}\n\n")),
        (None, None) => s.push('\n'),
    }
    for f in &report.findings {
        let tag = f.severity.to_string();
        let tag = match f.severity {
            Severity::Pass => style.green(&tag),
            Severity::Warn => style.yellow(&tag),
            Severity::Fail => style.red(&tag),
            Severity::Skip => style.dim(&tag),
        };
        s.push_str(&format!("{tag}  {:<24} {}\n", f.id, f.what));
        if let Some(fix) = &f.fix {
            s.push_str(&format!("      {:<24} fix: {fix}\n", ""));
        }
    }
    let sum = report.summary;
    s.push_str(&format!(
        "\n{} FAIL, {} WARN, {} PASS, {} SKIP\n",
        sum.fail, sum.warn, sum.pass, sum.skip
    ));
    s.push_str("a VM that does not start or shows a black screen: `vmgpu explain <vm>` says why\n");
    s
}
