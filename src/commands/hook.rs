//! `vmgpu hook` and hook mode (libvirt running us as `hooks/qemu` or `hooks/qemu.d/<name>`).
//!
//! Rules from the field: never call libvirt from here, never write to stdout, time out every blocking write.
use std::ffi::OsString;
use std::path::Path;

use crate::cli::HookArgs;
use crate::report::Outcome;

/// When argv[0] says libvirt runs us as its qemu hook, returns the hook arguments (argv[1..]).
pub fn argv_if_invoked_as_hook(args: &[OsString]) -> Option<Vec<String>> {
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
pub fn run_from_libvirt(args: Vec<String>) -> anyhow::Result<Outcome> {
    run(Path::new("/"), &HookArgs { args })
}

/// Runs the hook for `<vm> <op> <sub-op> <extra>`.
pub fn run(_root: &Path, _args: &HookArgs) -> anyhow::Result<Outcome> {
    // Until the hook lands, leave every domain alone: exit 0, no output, no change.
    Ok(Outcome::Ok)
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
