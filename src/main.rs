//! The `vmgpu` binary: hook mode when libvirt runs us as `hooks/qemu` or `hooks/qemu.d/*`, the CLI otherwise.
// Unit tests may write freely (fixtures, temporary trees); the product code may not (clippy.toml).
#![cfg_attr(test, allow(clippy::disallowed_methods))]
use std::process::ExitCode;

use clap::Parser;

use vmgpu::cli::Cli;
use vmgpu::{commands, report};

fn main() -> ExitCode {
    // Internal helper processes of the hook (never started by a user): the deadline-guarded sysfs writer and
    // the detached viewer launcher.
    if std::env::var_os(vmgpu::ops::writer::ENV_WRITER).is_some() {
        return ExitCode::from(vmgpu::ops::writer::serve());
    }
    if std::env::var_os(vmgpu::hook::launch_viewer::ENV_LAUNCHER).is_some() {
        return ExitCode::from(vmgpu::hook::launch_viewer::launcher_main());
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let hook_args = commands::hook::argv_if_invoked_as_hook(&args);
    // The sysfs writer of a hook call that may change the host is forked first thing, while the process is
    // small and single-threaded (see vmgpu::ops::writer).
    let op = match &hook_args {
        Some(hook) => hook.get(1).map(String::as_str),
        // `vmgpu [--root DIR] hook VM OP …`: a stray fork for another command is harmless (it exits with us)
        None => args
            .iter()
            .position(|a| a == "hook")
            .and_then(|i| args.get(i + 2))
            .and_then(|a| a.to_str()),
    };
    if matches!(op, Some("prepare" | "release" | "stopped")) {
        vmgpu::ops::writer::prefork();
    }
    if let Some(hook_args) = hook_args {
        return report::finish_hook(commands::hook::run_from_libvirt(hook_args));
    }
    report::quiet_on_closed_stdout();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return report::refused_command_line(err),
    };
    report::init_logging(cli.verbose);
    report::finish(commands::run(cli))
}
