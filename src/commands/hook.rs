//! `vmgpu hook` and hook mode (libvirt running us as `hooks/qemu` or `hooks/qemu.d/<name>`).
//!
//! Rules from the field: never call libvirt from here, never write to stdout, time out every blocking write.
//! The contract (argv, exit codes, journal, environment) is at the top of `src/hook/mod.rs`.
use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use crate::cli::HookArgs;
use crate::host::HostRoot;
use crate::report::{EXIT_ERROR, EXIT_FINDINGS, ExitError, Outcome};

/// What every vmgpu binary (`vmgpu` and the hook-only `vmgpu-hook`) does before its own command line: the two
/// internal helper processes the hook starts (the deadline-guarded sysfs writer, [`crate::ops::writer`]; the
/// detached viewer launcher, [`crate::hook::launch_viewer`]) and hook mode (argv\[0\] is libvirt's `hooks/qemu`
/// or `hooks/qemu.d/*`). `None`: none of these; the caller goes on with its own command line.
pub fn entry(args: &[OsString]) -> Option<ExitCode> {
    if std::env::var_os(crate::ops::writer::ENV_WRITER).is_some() {
        return Some(ExitCode::from(crate::ops::writer::serve()));
    }
    if std::env::var_os(crate::hook::launch_viewer::ENV_LAUNCHER).is_some() {
        return Some(ExitCode::from(crate::hook::launch_viewer::launcher_main()));
    }
    let hook = argv_if_invoked_as_hook(args)?;
    prefork_if_changing(hook.get(1).map(String::as_str));
    Some(crate::report::finish_hook(run_from_libvirt(hook)))
}

/// Forks the sysfs writer of a hook call that may change the host first thing, while the process is small and
/// single-threaded (see [`crate::ops::writer`]); other operations never write sysfs.
pub fn prefork_if_changing(op: Option<&str>) {
    if matches!(op, Some("prepare" | "release" | "stopped")) {
        crate::ops::writer::prefork();
    }
}

/// When argv[0] says libvirt runs us as its qemu hook, returns the hook arguments (argv[1..]).
pub(crate) fn argv_if_invoked_as_hook(args: &[OsString]) -> Option<Vec<String>> {
    let argv0 = Path::new(args.first()?);
    let name = argv0.file_name()?.to_str()?;
    let parent = argv0
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str());
    let is_hook = name == "qemu" || parent == Some("qemu.d");
    is_hook.then(|| {
        args[1..]
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    })
}

/// Entry point for hook mode: the root is always `/`.
pub(crate) fn run_from_libvirt(args: Vec<String>) -> anyhow::Result<Outcome> {
    // Into journald (`journalctl -t vmgpu`) every change is logged, step by step; on stderr (no journald)
    // only warnings, since libvirt shows stderr to the user.
    let journald = Path::new("/run/systemd/journal/socket").exists();
    crate::report::init_logging(u8::from(journald));
    run(Path::new("/"), &HookArgs { args })
}

/// Runs the hook for `<vm> <op> <sub-op> <extra>`, the domain XML on stdin.
pub(crate) fn run(root: &Path, args: &HookArgs) -> anyhow::Result<Outcome> {
    let root = HostRoot::new(root);
    match crate::hook::run(&root, &args.args, &mut std::io::stdin().lock()) {
        Ok(()) => Ok(Outcome::Ok),
        Err(err) => {
            let code = match err {
                crate::hook::Error::Usage(_) => EXIT_ERROR,
                _ => EXIT_FINDINGS,
            };
            let what = args
                .args
                .iter()
                .take(3)
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(" ");
            // The whole cause chain on one line (libvirt shows stderr to the user), with the exit code; a failed
            // start points to `explain`, which reads this line back from libvirt's log with the others.
            let chain = crate::report::chain_one_line(&anyhow::Error::new(err));
            let starting = matches!(
                args.args.get(1).map(String::as_str),
                Some("prepare" | "start" | "started")
            );
            let hint = match args.args.first() {
                Some(vm) if code == EXIT_FINDINGS && starting => {
                    format!("; run `vmgpu explain {vm}`")
                }
                _ => String::new(),
            };
            // Without arguments there is nothing to name, so no `vmgpu: : …` with an empty prefix.
            let message = if what.is_empty() {
                format!("{chain}{hint}")
            } else {
                format!("{what}: {chain}{hint}")
            };
            Err(ExitError::new(code, message).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_argv0_qemu_is_hook_mode() {
        let args: Vec<OsString> = ["/etc/libvirt/hooks/qemu", "vm", "prepare", "begin", "-"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(
            argv_if_invoked_as_hook(&args),
            Some(vec![
                "vm".into(),
                "prepare".into(),
                "begin".into(),
                "-".into()
            ])
        );
    }

    #[test]
    fn test_argv0_in_qemu_d_is_hook_mode() {
        let args: Vec<OsString> = [
            "/etc/libvirt/hooks/qemu.d/vmgpu",
            "vm",
            "release",
            "end",
            "from snapshot",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        assert_eq!(argv_if_invoked_as_hook(&args).map(|a| a.len()), Some(4));
    }

    #[test]
    fn test_argv0_vmgpu_is_cli_mode() {
        let args: Vec<OsString> = ["/usr/bin/vmgpu", "check"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(argv_if_invoked_as_hook(&args), None);
    }
}
