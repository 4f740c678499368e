//! `vmgpu-hook`: vmgpu's libvirt qemu hook alone, the binary `vmgpu install` copies to `hooks/qemu` when it
//! sits beside `vmgpu`. Its code reaches only the hook (and the hook's writer and viewer-launcher processes),
//! so the linker's `--as-needed` drops libvirt and libpulse, which the hook never calls: loading them and the
//! ~80 libraries behind them was 94 % of a hook call's instructions (docs/benchmarks.md, section 1).
use std::process::ExitCode;

use vmgpu::commands::{hook, install};

fn main() -> ExitCode {
    // The stamp `vmgpu install` looks for: this file is vmgpu's hook, of the same build as the installer.
    std::hint::black_box(install::HOOK_STAMP);
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = hook::entry(&args) {
        return code;
    }
    eprintln!(
        "vmgpu-hook: this is vmgpu's libvirt qemu hook, which libvirt runs as hooks/qemu: put it in place with \
         `vmgpu install`, and use `vmgpu` for everything else"
    );
    ExitCode::from(2)
}
