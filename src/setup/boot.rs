//! The kernel command line, per bootloader: GRUB2 (`/etc/default/grub` + the distro's mkconfig), BLS + grubby,
//! sdbootutil and UKI (`/etc/kernel/cmdline`), systemd-boot entries, kernelstub.
use super::cmdline;
use super::files::FileSource;
use super::grub;
use super::inputs::{Bootloader, Family, InitramfsTool, SetupInputs};
use super::plan::{CommandKind, Error, Plan, PlanCommand, Result};

/// Adds the kernel-command-line part of the plan.
pub(crate) fn plan(
    inputs: &SetupInputs,
    files: &dyn FileSource,
    params: &[String],
    plan: &mut Plan,
) -> Result<()> {
    match inputs.bootloader {
        Bootloader::Grub2 => grub2(inputs, files, params, plan),
        Bootloader::BlsGrubby => {
            grubby(files, params, plan);
            Ok(())
        }
        Bootloader::Sdbootutil => {
            if kernel_cmdline_file(files, params, plan) {
                let esp = esp(files);
                let entries = format!("{esp}/loader/entries/*.conf");
                plan.commands.push(
                    PlanCommand::in_root(
                        CommandKind::Regenerate,
                        &["sdbootutil", "update-all-entries"],
                        "write /etc/kernel/cmdline into every boot entry",
                    )
                    .with_outputs(&[&entries])
                    .replayed(),
                );
            }
            Ok(())
        }
        Bootloader::Uki => {
            if kernel_cmdline_file(files, params, plan) {
                plan.commands.push(initramfs_command(inputs));
            }
            Ok(())
        }
        Bootloader::SystemdBoot => {
            systemd_boot_entries(files, params, plan);
            Ok(())
        }
        Bootloader::Kernelstub => {
            kernelstub(files, params, plan);
            Ok(())
        }
        Bootloader::NixOs | Bootloader::Unknown => Ok(()),
    }
}

/// The command that rebuilds the initramfs (and, for UKIs, the image) for every installed kernel.
pub(crate) fn initramfs_command(inputs: &SetupInputs) -> PlanCommand {
    let why = "rebuild the initramfs of every installed kernel";
    match inputs.initramfs {
        InitramfsTool::Mkinitcpio => {
            PlanCommand::in_root(CommandKind::Regenerate, &["mkinitcpio", "-P"], why)
                .with_outputs(&[
                    "/boot/initramfs-*.img",
                    "/efi/EFI/Linux/*.efi",
                    "/boot/efi/EFI/Linux/*.efi",
                ])
                .replayed()
        }
        InitramfsTool::InitramfsTools => PlanCommand::in_root(
            CommandKind::Regenerate,
            &["update-initramfs", "-u", "-k", "all"],
            why,
        )
        .with_outputs(&["/boot/initrd.img-*"])
        .replayed(),
        _ => PlanCommand::in_root(
            CommandKind::Regenerate,
            &["dracut", "--force", "--regenerate-all"],
            why,
        )
        .with_outputs(match inputs.family {
            Family::OpenSuse => &["/boot/initrd-*"],
            _ if inputs.is_debian_like() => &["/boot/initrd.img-*"],
            _ => &["/boot/initramfs-*.img"],
        })
        .replayed(),
    }
}

fn grub2(
    inputs: &SetupInputs,
    files: &dyn FileSource,
    params: &[String],
    plan: &mut Plan,
) -> Result<()> {
    let path = "/etc/default/grub";
    let before = files.read(path).unwrap_or_default();
    let after = grub::edit_default_grub(&before, params).map_err(|source| Error::Edit {
        path: path.to_string(),
        source,
    })?;
    for name in files.list("/etc/default/grub.d") {
        let drop_in = format!("/etc/default/grub.d/{name}");
        if name.ends_with(".cfg")
            && files.read(&drop_in).is_some_and(|t| {
                t.lines()
                    .any(|l| l.trim_start().starts_with("GRUB_CMDLINE_LINUX="))
            })
        {
            plan.notes.push(format!(
                "{drop_in} also sets GRUB_CMDLINE_LINUX and is read after /etc/default/grub: check that it keeps \
                 the parameters"
            ));
        }
    }
    if plan.edit(
        files,
        path,
        after,
        "kernel parameters for the IOMMU and early vfio-pci",
    ) {
        let cmd = match inputs.family {
            _ if inputs.is_debian_like() => PlanCommand::in_root(
                CommandKind::Regenerate,
                &["update-grub"],
                "regenerate grub.cfg",
            )
            .with_outputs(&["/boot/grub/grub.cfg"])
            .replayed(),
            Family::OpenSuse | Family::Fedora => PlanCommand::in_root(
                CommandKind::Regenerate,
                &["grub2-mkconfig", "-o", "/boot/grub2/grub.cfg"],
                "regenerate grub.cfg",
            )
            .with_outputs(&["/boot/grub2/grub.cfg"])
            .replayed(),
            _ => PlanCommand::in_root(
                CommandKind::Regenerate,
                &["grub-mkconfig", "-o", "/boot/grub/grub.cfg"],
                "regenerate grub.cfg",
            )
            .with_outputs(&["/boot/grub/grub.cfg"])
            .replayed(),
        };
        plan.commands.push(cmd);
    }
    Ok(())
}

/// The running command line without the parts a bootloader adds itself.
fn proc_cmdline(files: &dyn FileSource) -> Vec<String> {
    cmdline::split(&files.read("/proc/cmdline").unwrap_or_default())
        .into_iter()
        .filter(|t| !t.starts_with("BOOT_IMAGE=") && !t.starts_with("initrd="))
        .collect()
}

/// The EFI system partition's mount point (where `loader/entries` or `EFI` is).
fn esp(files: &dyn FileSource) -> String {
    ["/efi", "/boot/efi", "/boot"]
        .iter()
        .find(|d| files.exists(&format!("{d}/loader/entries")))
        .or_else(|| {
            ["/efi", "/boot/efi"]
                .iter()
                .find(|d| files.exists(&format!("{d}/EFI")))
        })
        .unwrap_or(&"/boot/efi")
        .to_string()
}

fn bls_options(files: &dyn FileSource) -> Vec<Vec<String>> {
    let dir = "/boot/loader/entries";
    files
        .list(dir)
        .iter()
        .filter(|n| n.ends_with(".conf"))
        .filter_map(|n| files.read(&format!("{dir}/{n}")))
        .map(|text| {
            text.lines()
                .filter_map(|l| l.trim_start().strip_prefix("options"))
                .flat_map(cmdline::split)
                .collect()
        })
        .collect()
}

fn grubby(files: &dyn FileSource, params: &[String], plan: &mut Plan) {
    let entries = bls_options(files);
    let current = if entries.is_empty() {
        vec![proc_cmdline(files)]
    } else {
        entries
    };
    let mut add: Vec<String> = Vec::new();
    let mut remove: Vec<String> = Vec::new();
    for tokens in &current {
        for p in cmdline::missing(tokens, params) {
            if !add.contains(&p) {
                add.push(p);
            }
        }
        for s in cmdline::stale(tokens, params) {
            if !remove.contains(&s) && !params.contains(&s) {
                remove.push(s);
            }
        }
    }
    if add.is_empty() && remove.is_empty() {
        return;
    }
    let mut argv = vec!["grubby".to_string(), "--update-kernel=ALL".to_string()];
    if !remove.is_empty() {
        argv.push(format!("--remove-args={}", remove.join(" ")));
    }
    argv.push(format!("--args={}", params.join(" ")));
    let mut cmd = PlanCommand::in_root(
        CommandKind::Regenerate,
        &[],
        "set the kernel parameters in every boot entry",
    )
    .with_outputs(&[
        "/boot/loader/entries/*.conf",
        "/etc/default/grub",
        "/etc/kernel/cmdline",
        "/boot/grub2/grubenv",
    ]);
    cmd.argv = argv;
    plan.commands.push(cmd);
}

/// Merges the parameters into `/etc/kernel/cmdline` (seeded from the running command line); true if it changed.
fn kernel_cmdline_file(files: &dyn FileSource, params: &[String], plan: &mut Plan) -> bool {
    let path = "/etc/kernel/cmdline";
    let current = match files.read(path) {
        Some(text) => cmdline::split(&text),
        None => proc_cmdline(files),
    };
    let after = format!("{}\n", cmdline::merge(&current, params).join(" "));
    plan.edit(
        files,
        path,
        after,
        "kernel parameters for the IOMMU and early vfio-pci",
    )
}

fn systemd_boot_entries(files: &dyn FileSource, params: &[String], plan: &mut Plan) {
    let dir = format!("{}/loader/entries", esp(files));
    let names: Vec<String> = files
        .list(&dir)
        .into_iter()
        .filter(|n| n.ends_with(".conf"))
        .collect();
    if names.is_empty() {
        plan.notes.push(format!(
            "no systemd-boot entries in {dir}: add these kernel parameters to your entries by hand: {}",
            params.join(" ")
        ));
    }
    for name in names {
        let path = format!("{dir}/{name}");
        let Some(text) = files.read(&path) else {
            continue;
        };
        let after = edit_entry_options(&text, params);
        plan.edit(files, &path, after, "kernel parameters in this boot entry");
    }
}

/// Merges the parameters into a boot entry's `options` lines: the first line gets them, later lines lose
/// anything in the same role.
pub(crate) fn edit_entry_options(text: &str, params: &[String]) -> String {
    let mut seen_first = false;
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        match line.trim_start().strip_prefix("options") {
            Some(rest) if rest.starts_with(char::is_whitespace) || rest.is_empty() => {
                let tokens = cmdline::split(rest);
                let new = if seen_first {
                    cmdline::remove_roles(&tokens, params)
                } else {
                    cmdline::merge(&tokens, params)
                };
                seen_first = true;
                lines.push(format!("options {}", new.join(" ")).trim_end().to_string());
            }
            _ => lines.push(line.to_string()),
        }
    }
    if !seen_first {
        lines.push(format!("options {}", params.join(" ")));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

fn kernelstub(files: &dyn FileSource, params: &[String], plan: &mut Plan) {
    let current: Vec<String> = files
        .read("/etc/kernelstub/configuration")
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| {
            v.get("user")?.get("kernel_options")?.as_array().map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
        })
        .unwrap_or_else(|| proc_cmdline(files));
    let remove: Vec<String> = cmdline::stale(&current, params)
        .into_iter()
        .filter(|s| !params.contains(s))
        .collect();
    let add = cmdline::missing(&current, params);
    let outputs = [
        "/etc/kernelstub/configuration",
        "/boot/efi/loader/entries/*.conf",
    ];
    if !remove.is_empty() {
        plan.commands.push(
            PlanCommand::in_root(
                CommandKind::Regenerate,
                &["kernelstub", "-d", &remove.join(" ")],
                "remove stale kernel parameters",
            )
            .with_outputs(&outputs),
        );
    }
    if !add.is_empty() {
        plan.commands.push(
            PlanCommand::in_root(
                CommandKind::Regenerate,
                &["kernelstub", "-a", &add.join(" ")],
                "add the kernel parameters",
            )
            .with_outputs(&outputs),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_edit_entry_options_merges_first_line_only() {
        let text = "title Arch\nlinux /vmlinuz-linux\noptions root=UUID=x rw amd_iommu=off\noptions iommu=soft\n";
        let params = cmdline::split("iommu=pt amd_iommu=on");
        let out = edit_entry_options(text, &params);
        assert_eq!(
            out,
            "title Arch\nlinux /vmlinuz-linux\noptions root=UUID=x rw amd_iommu=on iommu=pt\noptions\n"
        );
    }

    #[test]
    fn test_edit_entry_options_adds_missing_line() {
        let out = edit_entry_options("title x\n", &cmdline::split("iommu=pt"));
        assert_eq!(out, "title x\noptions iommu=pt\n");
    }
}
