//! `vmgpu completions SHELL` and `vmgpu man`: shell completions and the man page, generated from the same
//! clap definitions as `--help` (`clap_complete`, `clap_mangen`), written to stdout for the packager or user
//! to put in place (the README says where).
use std::io::Write;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::report::Outcome;

/// Writes the completion script for `args.shell` to stdout.
pub(crate) fn run_completions(args: &CompletionsArgs) -> anyhow::Result<Outcome> {
    let mut command = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut command, "vmgpu", &mut out);
    out.flush().context("writing the completion script")?;
    Ok(Outcome::Ok)
}

/// Writes the man page `vmgpu(1)` in roff to stdout.
pub(crate) fn run_man() -> anyhow::Result<Outcome> {
    let page = clap_mangen::Man::new(Cli::command());
    let mut out = std::io::stdout().lock();
    page.render(&mut out).context("writing the man page")?;
    out.flush().context("writing the man page")?;
    Ok(Outcome::Ok)
}
