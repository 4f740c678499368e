//! Domain templates: the three built into the binary (`templates/*.xml`) and the user's own from
//! `/etc/vmgpu/templates/` and `$XDG_CONFIG_HOME/vmgpu/templates/` (later directories override earlier ones
//! by file name, so a user may replace `windows11` or add `gaming`).
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::host::HostRoot;

/// The system-wide template directory (read through the host root).
pub(crate) const SYSTEM_DIR: &str = "/etc/vmgpu/templates";

/// The templates compiled into vmgpu.
pub const BUILTIN: [(&str, &str); 3] = [
    ("linux", include_str!("../../../templates/linux.xml")),
    (
        "windows10",
        include_str!("../../../templates/windows10.xml"),
    ),
    (
        "windows11",
        include_str!("../../../templates/windows11.xml"),
    ),
];

/// Template lookup errors.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// No template has this name.
    #[error("unknown template {name:?} (known: {})", known.join(", "))]
    Unknown {
        /// The name asked for.
        name: String,
        /// The names there are.
        known: Vec<String>,
    },
    /// A template file or directory could not be read.
    #[error("cannot read template {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Result of template lookups.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// Where a template came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Compiled into vmgpu.
    Builtin,
    /// A user's file.
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Builtin => f.write_str("built in"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// One template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    /// Its name (the file name without `.xml`).
    pub name: String,
    /// Where it came from.
    pub origin: Origin,
    /// The domain XML.
    pub xml: String,
}

/// The directories searched for user templates, in override order: the system one (under `root`), then the
/// user's (`$XDG_CONFIG_HOME/vmgpu/templates`, else `$HOME/.config/vmgpu/templates`).
pub(crate) fn search_dirs(
    root: &HostRoot,
    xdg_config_home: Option<&Path>,
    home: Option<&Path>,
) -> Vec<PathBuf> {
    let mut dirs = vec![root.path(SYSTEM_DIR)];
    let user = match (xdg_config_home, home) {
        (Some(xdg), _) if xdg.is_absolute() => Some(xdg.to_path_buf()),
        (_, Some(home)) => Some(home.join(".config")),
        _ => None,
    };
    dirs.extend(user.map(|d| d.join("vmgpu/templates")));
    dirs
}

/// Every template: built-in ones overridden by same-named files in `dirs` (later wins), sorted by name.
pub(crate) fn list(dirs: &[PathBuf]) -> Result<Vec<Template>> {
    let mut templates: Vec<Template> = BUILTIN
        .iter()
        .map(|(name, xml)| Template {
            name: (*name).to_string(),
            origin: Origin::Builtin,
            xml: (*xml).to_string(),
        })
        .collect();
    for dir in dirs {
        for (name, path) in files_in(dir)? {
            let xml = std::fs::read_to_string(&path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            let template = Template {
                name,
                origin: Origin::File(path),
                xml,
            };
            match templates.iter_mut().find(|t| t.name == template.name) {
                Some(existing) => *existing = template,
                None => templates.push(template),
            }
        }
    }
    templates.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(templates)
}

/// The template called `name`.
pub(crate) fn find(dirs: &[PathBuf], name: &str) -> Result<Template> {
    let templates = list(dirs)?;
    let known = templates.iter().map(|t| t.name.clone()).collect();
    templates
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| Error::Unknown {
            name: name.chars().take(64).collect(),
            known,
        })
}

/// `(name, path)` of every `NAME.xml` in `dir`; a missing directory has none.
fn files_in(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(source) if source.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Read {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".xml"))
        else {
            continue;
        };
        if is_template_name(name) {
            files.push((name.to_string(), path.clone()));
        }
    }
    files.sort();
    Ok(files)
}

fn is_template_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_list_has_the_three_builtins() {
        let names: Vec<String> = list(&[]).unwrap().into_iter().map(|t| t.name).collect();
        assert_eq!(names, ["linux", "windows10", "windows11"]);
    }

    #[test]
    fn test_user_file_overrides_builtin_and_adds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("windows11.xml"), "<domain/>").unwrap();
        std::fs::write(dir.path().join("gaming.xml"), "<domain/>").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let templates = list(&[dir.path().to_path_buf()]).unwrap();
        let win11 = templates.iter().find(|t| t.name == "windows11").unwrap();
        assert_eq!(win11.xml, "<domain/>");
        assert!(templates.iter().any(|t| t.name == "gaming"));
        assert_eq!(templates.len(), 4);
    }

    #[test]
    fn test_find_unknown_names_the_known_ones() {
        let err = find(&[], "windows95").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown template \"windows95\" (known: linux, windows10, windows11)"
        );
    }

    #[test]
    fn test_search_dirs_prefers_xdg_config_home() {
        let root = HostRoot::new("/fx");
        let dirs = search_dirs(&root, Some(Path::new("/cfg")), Some(Path::new("/home/a")));
        assert_eq!(
            dirs,
            [
                PathBuf::from("/fx/etc/vmgpu/templates"),
                PathBuf::from("/cfg/vmgpu/templates")
            ]
        );
    }
}
