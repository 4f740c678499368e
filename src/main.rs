//! The `vmgpu` binary: hook mode when libvirt runs us as `hooks/qemu` or `hooks/qemu.d/*`, the CLI otherwise
//! (`src/bin/vmgpu-hook.rs` is the hook alone, the binary `vmgpu install` prefers).
// Unit tests may write freely (fixtures, temporary trees); the product code may not (clippy.toml).
#![cfg_attr(test, allow(clippy::disallowed_methods))]
use std::process::ExitCode;

use clap::Parser;

use vmgpu::cli::Cli;
use vmgpu::{commands, report};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The hook's helper processes and hook mode, shared with the hook-only `vmgpu-hook` binary.
    if let Some(code) = commands::hook::entry(&args) {
        return code;
    }
    // `vmgpu [--root DIR] hook VM OP …` from a shell forks its writer first thing too (a stray fork for
    // another command is harmless: it exits with us).
    commands::hook::prefork_if_changing(
        args.iter()
            .position(|a| a == "hook")
            .and_then(|i| args.get(i + 2))
            .and_then(|a| a.to_str()),
    );
    report::quiet_on_closed_stdout();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return report::refused_command_line(err),
    };
    report::init_logging(cli.verbose);
    report::finish(commands::run(cli))
}
