//! IVSHMEM: every `ivshmem-plain` `<shmem>` gets `/dev/shm/<name>` created before QEMU starts, with the
//! size from the XML, owner `<user>:<group>` (group `kvm` by default: QEMU opens it through that
//! supplementary group) and mode 0660; a stale file QEMU cannot write would block the start. kvmfr devices
//! (`/dev/kvmfrN`, named in `<qemu:commandline>`) are checked: a character device, the module's size,
//! and readable/writable by the group or the configured user.
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::error::{Error, Result};
use super::step::Step;
use crate::domain::ShmemConfig;
use crate::domain::read::hook_view::HookView;
use crate::host::HostRoot;
use crate::host::accounts;

/// Where POSIX shared memory lives.
pub(crate) const SHM_DIR: &str = "/dev/shm";
/// QEMU's ivshmem default size when `<size>` is absent.
pub(crate) const DEFAULT_SIZE: u64 = 4 << 20;
/// Sizes above this are refused (Looking Glass needs 32–256 MiB; 8K HDR fits in 512 MiB).
pub(crate) const MAX_SIZE: u64 = 16 << 30;

/// A name that can become a file directly in /dev/shm.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0'])
        && !name.contains("..")
}

/// Looks a user (`/etc/passwd`) or group (`/etc/group`) up under the root; returns its id.
pub(crate) fn lookup_id(root: &HostRoot, kind: &'static str, name: &str) -> Result<u32> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok(id);
    }
    let (file, id) = if kind == "user" {
        let users = accounts::users(root)?;
        let id = users.iter().find(|u| u.name == name).map(|u| u.uid);
        ("/etc/passwd", id)
    } else {
        let groups = accounts::groups(root)?;
        let id = groups.iter().find(|g| g.name == name).map(|g| g.gid);
        ("/etc/group", id)
    };
    id.ok_or_else(|| Error::NoAccount {
        kind,
        name: name.to_string(),
        path: root.path(file),
    })
}

/// The steps that create the shm files.
pub(crate) fn plan(root: &HostRoot, view: &HookView, config: &ShmemConfig) -> Result<Vec<Step>> {
    let plain: Vec<_> = view
        .shmems
        .iter()
        .filter(|s| s.model == "ivshmem-plain" && !s.has_server)
        .collect();
    if plain.is_empty() {
        return Ok(Vec::new());
    }
    let uid = match &config.user {
        Some(user) => lookup_id(root, "user", user)?,
        None => 0,
    };
    let gid = lookup_id(root, "group", &config.group)?;
    let mut steps = Vec::new();
    let mut total = 0u64;
    for shmem in plain {
        if !valid_name(&shmem.name) {
            return Err(Error::BadShmName(shmem.name.chars().take(64).collect()));
        }
        let path = format!("{SHM_DIR}/{}", shmem.name);
        let size = shmem.size.unwrap_or(DEFAULT_SIZE);
        let problem = |problem: String| Error::Shm {
            path: root.path(&path),
            problem,
        };
        if size > MAX_SIZE {
            return Err(problem(format!(
                "size {size} bytes is too big: at most {} GiB",
                MAX_SIZE >> 30
            )));
        }
        if !size.is_power_of_two() {
            return Err(problem(format!(
                "size {size} bytes is not a power of two (IVSHMEM needs one, e.g. 32 MiB)"
            )));
        }
        if let Ok(meta) = std::fs::symlink_metadata(root.path(&path))
            && !meta.file_type().is_file()
        {
            return Err(problem(
                "exists and is not a regular file (a symlink or device); remove it".into(),
            ));
        }
        total += size;
        steps.push(Step::ShmFile {
            path,
            size,
            uid,
            gid,
            remove_on_stop: config.remove_on_stop,
        });
    }
    if let Ok(stat) = nix::sys::statvfs::statvfs(&root.path(SHM_DIR)) {
        let free = stat.blocks_available().saturating_mul(stat.fragment_size());
        if free < total {
            return Err(Error::Shm {
                path: root.path(SHM_DIR),
                problem: format!("needs {total} bytes but only {free} are free"),
            });
        }
    }
    Ok(steps)
}

/// Checks every kvmfr device the domain names (nothing is changed for them).
pub(crate) fn check_kvmfr(
    root: &HostRoot,
    view: &HookView,
    config: Option<&ShmemConfig>,
) -> Result<()> {
    for path in &view.kvmfr_paths {
        let full = root.path(path);
        let problem = |problem: String| Error::Shm {
            path: full.clone(),
            problem,
        };
        let meta = std::fs::metadata(&full).map_err(|_| {
            problem(
                "does not exist: load the kvmfr module (`modprobe kvmfr static_size_mb=32`)".into(),
            )
        })?;
        if !meta.file_type().is_char_device() {
            return Err(problem(
                "is not a character device (QEMU created a plain file because kvmfr was not loaded): \
                 delete it and load kvmfr"
                    .into(),
            ));
        }
        let index: usize = path.trim_start_matches("/dev/kvmfr").parse().unwrap_or(0);
        let sizes = root
            .read_optional("/sys/module/kvmfr/parameters/static_size_mb")?
            .unwrap_or_default();
        let size_mb = sizes
            .split(',')
            .nth(index)
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if size_mb == 0 {
            return Err(problem(
                "has no static size: load kvmfr with static_size_mb=<MiB> (e.g. 32)".into(),
            ));
        }
        if let Some(want) = view.shmems.first().and_then(|s| s.size)
            && want != size_mb << 20
        {
            tracing::warn!("{path} is {size_mb} MiB but the domain's shmem is {want} bytes");
        }
        let group_rw = meta.mode() & 0o060 == 0o060;
        let owner_ok = config
            .and_then(|c| c.user.as_deref())
            .and_then(|u| lookup_id(root, "user", u).ok())
            .is_some_and(|uid| uid == meta.uid() && meta.mode() & 0o600 == 0o600);
        if !group_rw && !owner_ok {
            return Err(problem(format!(
                "mode {:o} lets neither its group nor the viewer's user read and write it (add a udev \
                 rule: SUBSYSTEM==\"kvmfr\", OWNER=\"<user>\", GROUP=\"kvm\", MODE=\"0660\")",
                meta.mode() & 0o777
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_valid_name_refuses_hostile_names() {
        assert!(valid_name("looking-glass"));
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../etc/passwd",
            "a\0b",
            &"x".repeat(256),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn test_lookup_id_reads_passwd_under_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
        )
        .unwrap();
        let root = HostRoot::new(dir.path());
        assert_eq!(lookup_id(&root, "user", "alice").unwrap(), 1000);
        assert!(lookup_id(&root, "user", "bob").is_err());
    }
}
