//! [`FileSource`]: the current text of the files a plan edits, read through the host root (or from a map in
//! tests), so the plan stays a pure function of its inputs.
use crate::host::HostRoot;

/// Read access to the host's configuration files, by host path (`/etc/default/grub`).
pub(crate) trait FileSource {
    /// The file's text; `None` when it does not exist or cannot be read as a file.
    fn read(&self, path: &str) -> Option<String>;
    /// The names in a directory, sorted; empty when it does not exist.
    fn list(&self, dir: &str) -> Vec<String>;
    /// True when the path exists (file, directory or a link to one).
    fn exists(&self, path: &str) -> bool;
}

impl FileSource for HostRoot {
    fn read(&self, path: &str) -> Option<String> {
        let real = self.path(path);
        if !real.is_file() {
            return None;
        }
        std::fs::read(&real)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    fn list(&self, dir: &str) -> Vec<String> {
        self.list_dir(dir).unwrap_or_default()
    }

    fn exists(&self, path: &str) -> bool {
        HostRoot::exists(self, path)
    }
}

/// An in-memory set of files for tests: path → text. Directories exist implicitly.
#[cfg(test)]
#[derive(Debug, Clone, Default)]
pub(crate) struct MemoryFiles(pub std::collections::BTreeMap<String, String>);

#[cfg(test)]
impl MemoryFiles {
    /// Adds a file.
    pub(crate) fn with(mut self, path: &str, text: &str) -> Self {
        self.0.insert(path.to_string(), text.to_string());
        self
    }
}

#[cfg(test)]
impl FileSource for MemoryFiles {
    fn read(&self, path: &str) -> Option<String> {
        self.0.get(path).cloned()
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let mut names: Vec<String> = self
            .0
            .keys()
            .filter_map(|p| p.strip_prefix(&prefix))
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    fn exists(&self, path: &str) -> bool {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        self.0.contains_key(path) || self.0.keys().any(|p| p.starts_with(&prefix))
    }
}

/// The first of `candidates` (program names) found in the usual binary directories, as a host path.
pub(crate) fn find_program(files: &dyn FileSource, name: &str) -> Option<String> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|dir| format!("{dir}/{name}"))
        .find(|p| files.exists(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_memory_files_list_gives_direct_children_once() {
        let files = MemoryFiles::default()
            .with("/boot/loader/entries/a.conf", "x")
            .with("/boot/loader/entries/b.conf", "y")
            .with("/boot/loader/x/c", "z");
        assert_eq!(files.list("/boot/loader/entries"), vec!["a.conf", "b.conf"]);
        assert_eq!(files.list("/boot/loader"), vec!["entries", "x"]);
        assert!(files.exists("/boot/loader"));
    }
}
