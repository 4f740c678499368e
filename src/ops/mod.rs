//! The only code that changes the host. [`HostOps`] is what the hook's steps call; [`real::RealOps`] does it
//! on the live machine (every write that can block runs under a deadline in a helper process, see
//! [`writer`]), [`sim::SimOps`] simulates the kernel's side on a directory tree (driver links, module
//! loading, hugepage counts) so the whole state machine runs in tests against a copy of a fixture tree.
//!
//! Below the trait sit the primitives every other writer in vmgpu uses: [`files`] (atomic replace, exclusive
//! create, lock files, removal) and [`process`] (starting programs with a deadline and a fixed stdio
//! policy). `clippy.toml` rejects the std writers and `Command::new` everywhere else.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::host::HostRoot;
use process::Program;

pub(crate) mod files;
mod fork;
pub(crate) mod process;
pub(crate) mod real;
pub(crate) mod sim;
pub mod writer;

/// Why a host change failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing a sysfs/proc attribute failed.
    #[error("cannot write {value:?} to {path}")]
    Write {
        /// The full path.
        path: PathBuf,
        /// What was written.
        value: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A write did not return in time (the kernel is waiting for a user of the device).
    #[error("writing {value:?} to {path} did not finish within {} ms (the device is still in use; the write may complete later)", .timeout.as_millis())]
    Timeout {
        /// The full path.
        path: PathBuf,
        /// What was written.
        value: String,
        /// The deadline.
        timeout: Duration,
    },
    /// A helper program failed or could not run.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and stderr, or why it could not start.
        detail: String,
    },
    /// A file or directory operation failed.
    #[error("cannot {action} {path}")]
    File {
        /// What was being done (create, remove, chown).
        action: &'static str,
        /// The full path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Result of a host change.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// A file vmgpu creates for a VM (the IVSHMEM backing file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewFile {
    /// Host path (under the root).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Permission bits.
    pub mode: u32,
}

/// Every change vmgpu makes to the host goes through this trait. Paths are host paths (`/sys/...`),
/// resolved under [`HostOps::root`].
pub(crate) trait HostOps {
    /// The root every path is resolved against (reads go through it too).
    fn root(&self) -> &HostRoot;
    /// Writes a sysfs/proc/cgroup attribute. Writes that can block (driver `unbind`/`bind`,
    /// `drivers_probe`) return [`Error::Timeout`] instead of hanging.
    fn write(&self, path: &str, value: &str) -> Result<()>;
    /// Loads a kernel module (`modprobe NAME`).
    fn load_module(&self, module: &str) -> Result<()>;
    /// Unloads a kernel module (`modprobe -r NAME`).
    fn unload_module(&self, module: &str) -> Result<()>;
    /// Runs `systemctl ARGS...` (only called when systemd is PID 1).
    fn systemctl(&self, args: &[&str]) -> Result<()>;
    /// Creates a directory (one level).
    fn create_dir(&self, path: &str) -> Result<()>;
    /// Removes an empty directory.
    fn remove_dir(&self, path: &str) -> Result<()>;
    /// Creates a new file (never follows a symlink, never reuses an existing file).
    fn create_file(&self, file: &NewFile) -> Result<()>;
    /// Removes a file (not a directory); a missing file is not an error.
    fn remove_file(&self, path: &str) -> Result<()>;
    /// Runs one of the host's programs (a `vmgpu setup` command, the viewer launcher) under `deadline`,
    /// with the stdio `program` was given; a non-zero exit is an error.
    fn run(&self, program: Program, deadline: Duration) -> Result<()>;
    /// Replaces (or creates) a regular file atomically and durably: a temporary beside it, fsync, rename.
    /// Missing parent directories are created.
    fn replace_file(&self, path: &str, bytes: &[u8], mode: u32) -> Result<()> {
        let full = self.root().path(path);
        let dir = full.parent().unwrap_or(std::path::Path::new("/"));
        files::create_dir_all(dir, 0o777).map_err(|source| Error::File {
            action: "create directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let name = full.file_name().map(|n| n.to_string_lossy().into_owned());
        let how = files::Replace {
            temp: dir.join(format!(".{}.vmgpu-new", name.unwrap_or_default())),
            mode,
            owner: None,
        };
        files::replace(&full, bytes, &how)
    }
    /// Waits (a real sleep live; the simulation only moves its clock).
    fn pause(&self, duration: Duration);
    /// The time deadlines are measured on: the real clock live, the simulation's own clock (which
    /// [`HostOps::pause`] advances) in tests, so waiting for the kernel takes no real time there.
    fn now(&self) -> Instant;
}

/// The operations for a root: the real ones for `/`, the simulation for any other directory.
pub(crate) fn for_root(root: &HostRoot) -> Box<dyn HostOps> {
    if root.is_live() {
        Box::new(real::RealOps::new(root.clone()))
    } else {
        Box::new(sim::SimOps::new(root.clone()))
    }
}

/// True for the sysfs writes the kernel can block on (driver unbind waits for every user of the device).
pub(crate) fn can_block(path: &str) -> bool {
    path.ends_with("/unbind")
        || path.ends_with("/bind") && path.contains("/drivers/")
        || path.ends_with("/drivers_probe")
        || path.ends_with("/remove")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_can_block_covers_driver_writes_only() {
        assert!(can_block("/sys/bus/pci/drivers/snd_hda_intel/unbind"));
        assert!(can_block("/sys/bus/pci/drivers/amdgpu/bind"));
        assert!(can_block("/sys/bus/pci/drivers_probe"));
        assert!(!can_block(
            "/sys/bus/pci/devices/0000:01:00.0/driver_override"
        ));
        assert!(!can_block("/sys/class/vtconsole/vtcon1/bind"));
        assert!(!can_block(
            "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
        ));
    }

    #[test]
    fn test_for_root_simulates_any_root_but_slash() {
        let dir = tempfile::tempdir().unwrap();
        let ops = for_root(&HostRoot::new(dir.path()));
        std::fs::write(dir.path().join("attr"), "0\n").unwrap();
        ops.write("/attr", "5").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("attr")).unwrap(),
            "5\n"
        );
    }
}
