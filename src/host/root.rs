//! [`HostRoot`]: the one path prefix through which every host file is read (`/` live, a fixture dir in tests).
//! Every error carries the full path that failed.
use std::io;
use std::path::{Path, PathBuf};

/// Errors reading host files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The full path (root included).
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file held something we could not parse.
    #[error("{path}: expected {expected}, found {found:?}")]
    Parse {
        /// The full path.
        path: PathBuf,
        /// What the file should hold.
        expected: &'static str,
        /// What it held (trimmed, cut to 64 bytes).
        found: String,
    },
    /// A symlink points to something that does not exist (an incomplete recorded tree, or a race).
    #[error("{path} points to {target}, which does not exist")]
    DanglingLink {
        /// The link.
        path: PathBuf,
        /// Its target as written in the link.
        target: PathBuf,
    },
}

/// Result of reading host files.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// The root every host path is resolved against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoot {
    base: PathBuf,
}

impl Default for HostRoot {
    fn default() -> Self {
        Self::new("/")
    }
}

impl HostRoot {
    /// A root at `base` (`/` for the live host).
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Self { base: base.into() }
    }

    /// The base directory.
    pub(crate) fn base(&self) -> &Path {
        &self.base
    }

    /// True when this is the live host (`/`).
    pub(crate) fn is_live(&self) -> bool {
        self.base == Path::new("/")
    }

    /// The real path of a host path such as `/sys/bus/pci/devices`.
    pub(crate) fn path(&self, host_path: impl AsRef<Path>) -> PathBuf {
        let rel = host_path.as_ref();
        let rel = rel.strip_prefix("/").unwrap_or(rel);
        self.base.join(rel)
    }

    /// True when the host path exists (following symlinks).
    pub(crate) fn exists(&self, host_path: impl AsRef<Path>) -> bool {
        self.path(host_path).exists()
    }

    /// The file's content, as is.
    pub(crate) fn read_raw(&self, host_path: impl AsRef<Path>) -> Result<String> {
        let path = self.path(host_path);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
            Err(source) => Err(Error::Read { path, source }),
        }
    }

    /// The file's content with surrounding whitespace trimmed.
    pub(crate) fn read_string(&self, host_path: impl AsRef<Path>) -> Result<String> {
        self.read_raw(host_path).map(|s| s.trim().to_string())
    }

    /// Like [`read_string`](Self::read_string), but a missing file is `None`.
    pub(crate) fn read_optional(&self, host_path: impl AsRef<Path>) -> Result<Option<String>> {
        match self.read_string(host_path) {
            Ok(s) => Ok(Some(s)),
            Err(Error::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A `0x`-prefixed (or bare) hexadecimal number such as sysfs `vendor` or `class`.
    pub(crate) fn read_hex(&self, host_path: impl AsRef<Path>) -> Result<u32> {
        let host_path = host_path.as_ref();
        let text = self.read_string(host_path)?;
        parse_hex(&text).ok_or_else(|| Error::Parse {
            path: self.path(host_path),
            expected: "a hexadecimal number",
            found: cut(&text),
        })
    }

    /// A decimal number.
    pub(crate) fn read_u64(&self, host_path: impl AsRef<Path>) -> Result<u64> {
        let host_path = host_path.as_ref();
        let text = self.read_string(host_path)?;
        text.parse().map_err(|_| Error::Parse {
            path: self.path(host_path),
            expected: "a decimal number",
            found: cut(&text),
        })
    }

    /// The last component of a symlink's target (`driver -> ../../../bus/pci/drivers/vfio-pci` gives
    /// `vfio-pci`). `None` when the link does not exist; an error when it dangles.
    pub(crate) fn read_link_name(&self, host_path: impl AsRef<Path>) -> Result<Option<String>> {
        let path = self.path(host_path);
        let target = match std::fs::read_link(&path) {
            Ok(t) => t,
            Err(source) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(Error::Read { path, source }),
        };
        if !path.exists() {
            return Err(Error::DanglingLink { path, target });
        }
        Ok(target.file_name().map(|n| n.to_string_lossy().into_owned()))
    }

    /// The names in a directory, sorted. A missing directory is an empty list.
    pub(crate) fn list_dir(&self, host_path: impl AsRef<Path>) -> Result<Vec<String>> {
        let path = self.path(host_path);
        let entries = match std::fs::read_dir(&path) {
            Ok(e) => e,
            Err(source) if source.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(Error::Read { path, source }),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }
}

/// What kind of file a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (only from [`HostRoot::stat`] of a link that dangles).
    Symlink,
    /// A character device (`/dev/kvm`).
    CharDevice,
    /// Anything else (block device, socket, fifo).
    Other,
}

/// Owner, mode, kind and modification time of a host file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FileStat {
    /// The kind (after following symlinks).
    pub kind: FileKind,
    /// Permission bits (`0o666`).
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Group gid.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
}

/// In a recorded tree, the file that records what git cannot keep (device nodes, owners, modes, times):
/// one line per host path, `PATH KIND MODE UID GID MTIME` with KIND one of `f d c l o` and MODE in octal.
pub(crate) const STAT_MANIFEST: &str = "node-stat.txt";

impl HostRoot {
    /// The kind, mode, owner and mtime of a host path (following symlinks), `None` when it does not exist.
    /// For a recorded tree, an entry in [`STAT_MANIFEST`] wins over the fixture file's own metadata.
    pub(crate) fn stat(&self, host_path: impl AsRef<Path>) -> Result<Option<FileStat>> {
        let host_path = host_path.as_ref();
        if !self.is_live()
            && let Some(stat) = self.manifest_stat(host_path)?
        {
            return Ok(Some(stat));
        }
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let path = self.path(host_path);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(source) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(Error::Read { path, source }),
        };
        let ft = meta.file_type();
        let kind = if ft.is_file() {
            FileKind::File
        } else if ft.is_dir() {
            FileKind::Dir
        } else if ft.is_char_device() {
            FileKind::CharDevice
        } else {
            FileKind::Other
        };
        Ok(Some(FileStat {
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: meta.mtime(),
        }))
    }

    fn manifest_stat(&self, host_path: &Path) -> Result<Option<FileStat>> {
        let manifest = self.base.join(STAT_MANIFEST);
        let text = match std::fs::read_to_string(&manifest) {
            Ok(t) => t,
            Err(source) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::Read {
                    path: manifest,
                    source,
                });
            }
        };
        let want = host_path.to_string_lossy();
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [path, kind, mode, uid, gid, mtime] = fields.as_slice() else {
                continue;
            };
            if *path != want {
                continue;
            }
            let bad = || Error::Parse {
                path: manifest.clone(),
                expected: "PATH KIND MODE UID GID MTIME",
                found: cut(line),
            };
            let kind = match *kind {
                "f" => FileKind::File,
                "d" => FileKind::Dir,
                "c" => FileKind::CharDevice,
                "l" => FileKind::Symlink,
                "o" => FileKind::Other,
                _ => return Err(bad()),
            };
            return Ok(Some(FileStat {
                kind,
                mode: u32::from_str_radix(mode, 8).map_err(|_| bad())?,
                uid: uid.parse().map_err(|_| bad())?,
                gid: gid.parse().map_err(|_| bad())?,
                mtime: mtime.parse().map_err(|_| bad())?,
            }));
        }
        Ok(None)
    }
}

/// Parses `0x10de`, `10de` or `0x030000` as hexadecimal.
pub(crate) fn parse_hex(text: &str) -> Option<u32> {
    let t = text.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if t.is_empty() || t.len() > 8 {
        return None;
    }
    u32::from_str_radix(t, 16).ok()
}

fn cut(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_path_joins_absolute_host_path_under_base() {
        let root = HostRoot::new("/fixtures/seed");
        assert_eq!(
            root.path("/sys/bus/pci"),
            PathBuf::from("/fixtures/seed/sys/bus/pci")
        );
    }

    #[test]
    fn test_parse_hex_accepts_sysfs_forms() {
        assert_eq!(parse_hex("0x030000\n"), Some(0x030000));
        assert_eq!(parse_hex("10de"), Some(0x10de));
        assert_eq!(parse_hex("garbage"), None);
        assert_eq!(parse_hex(""), None);
        assert_eq!(parse_hex("0x123456789"), None);
    }

    #[test]
    fn test_read_optional_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        assert_eq!(root.read_optional("/nope").unwrap(), None);
    }

    #[test]
    fn test_stat_manifest_describes_device_node() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(STAT_MANIFEST),
            "/dev/kvm c 0666 0 36 1700000000\n",
        )
        .unwrap();
        let stat = HostRoot::new(dir.path()).stat("/dev/kvm").unwrap().unwrap();
        assert_eq!(
            (stat.kind, stat.mode, stat.gid),
            (FileKind::CharDevice, 0o666, 36)
        );
    }

    #[test]
    fn test_stat_missing_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(HostRoot::new(dir.path()).stat("/dev/kvm").unwrap(), None);
    }

    #[test]
    fn test_read_link_name_dangling_is_error() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("../drivers/nvidia", dir.path().join("driver")).unwrap();
        let root = HostRoot::new(dir.path());
        let err = root.read_link_name("/driver").unwrap_err();
        assert!(matches!(err, Error::DanglingLink { .. }), "{err}");
    }
}
