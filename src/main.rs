//! The `vmgpu` binary: hook mode when libvirt runs us as `hooks/qemu` or `hooks/qemu.d/*`, the CLI otherwise.
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
    if std::env::var_os(vmgpu::hook::viewer::ENV_LAUNCHER).is_some() {
        return ExitCode::from(vmgpu::hook::viewer::launcher_main());
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(hook_args) = commands::hook::argv_if_invoked_as_hook(&args) {
        return report::finish_hook(commands::hook::run_from_libvirt(hook_args));
    }
    let cli = Cli::parse();
    report::init_logging(cli.verbose);
    report::finish(commands::run(cli))
}
