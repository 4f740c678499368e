//! Module configuration under `/etc`: `modprobe.d` options and softdeps, `modules-load.d`, and the module lists
//! of the initramfs tools (`dracut.conf.d`, `mkinitcpio.conf(.d)`, `initramfs-tools/modules`). Kept as text
//! with its path, so checks can quote the exact file and line.
use serde::Serialize;

use super::parse;
use super::root::{self, HostRoot};

/// What a configuration file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConfKind {
    /// `/etc/modprobe.d/*.conf`.
    Modprobe,
    /// `/etc/modules-load.d/*.conf` or `/etc/modules`.
    ModulesLoad,
    /// `/etc/dracut.conf` and `/etc/dracut.conf.d/*.conf`.
    Dracut,
    /// `/etc/mkinitcpio.conf` and `/etc/mkinitcpio.conf.d/*.conf`.
    Mkinitcpio,
    /// `/etc/initramfs-tools/modules`.
    InitramfsTools,
}

/// One configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfFile {
    /// Its host path.
    pub path: String,
    /// What it configures.
    pub kind: ConfKind,
    /// Its text.
    pub text: String,
}

impl ConfFile {
    /// The lines that are not blank or comments, with their 1-based numbers.
    pub(crate) fn lines(&self) -> impl Iterator<Item = (usize, &str)> {
        self.text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
    }

    /// True when a non-comment line names the module as a word (`vfio_virqfd`, quotes and `=`/`(` around
    /// it allowed; `-` and `_` alike).
    pub(crate) fn mentions_module(&self, module: &str) -> bool {
        let want = parse::module_name(module);
        self.lines().any(|(_, l)| {
            l.split(|c: char| c.is_whitespace() || "\"'()=,+".contains(c))
                .any(|w| parse::module_name(w) == want)
        })
    }
}

/// Every module configuration file found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ModuleConfig {
    /// The files, in the order read (kind, then name).
    pub files: Vec<ConfFile>,
}

const SOURCES: &[(ConfKind, &str, bool)] = &[
    (ConfKind::Modprobe, "/etc/modprobe.d", true),
    (ConfKind::ModulesLoad, "/etc/modules-load.d", true),
    (ConfKind::ModulesLoad, "/etc/modules", false),
    (ConfKind::Dracut, "/etc/dracut.conf", false),
    (ConfKind::Dracut, "/etc/dracut.conf.d", true),
    (ConfKind::Mkinitcpio, "/etc/mkinitcpio.conf", false),
    (ConfKind::Mkinitcpio, "/etc/mkinitcpio.conf.d", true),
    (
        ConfKind::InitramfsTools,
        "/etc/initramfs-tools/modules",
        false,
    ),
];

impl ModuleConfig {
    /// Reads the files that exist; missing ones are skipped.
    pub(crate) fn read(root: &HostRoot) -> root::Result<Self> {
        let mut files = Vec::new();
        for (kind, path, is_dir) in SOURCES {
            let paths: Vec<String> = if *is_dir {
                root.list_dir(path)?
                    .into_iter()
                    .filter(|n| n.ends_with(".conf"))
                    .map(|n| format!("{path}/{n}"))
                    .collect()
            } else {
                vec![(*path).to_string()]
            };
            for p in paths {
                // A directory where a file is expected (or the reverse) is not ours to judge: skip it.
                if !root.path(&p).is_file() {
                    continue;
                }
                files.push(ConfFile {
                    text: root.read_raw(&p)?,
                    path: p,
                    kind: *kind,
                });
            }
        }
        Ok(Self { files })
    }

    /// The files of one kind.
    pub(crate) fn of(&self, kind: ConfKind) -> impl Iterator<Item = &ConfFile> {
        self.files.iter().filter(move |f| f.kind == kind)
    }

    /// `options <module> key=value…` lines in modprobe.d: (path, the options after the module name).
    pub(crate) fn modprobe_options(&self, module: &str) -> Vec<(&str, String)> {
        let want = parse::module_name(module);
        let mut out = Vec::new();
        for f in self.of(ConfKind::Modprobe) {
            for (_, line) in f.lines() {
                let mut words = line.split_whitespace();
                if words.next() == Some("options")
                    && words.next().map(parse::module_name) == Some(want.clone())
                {
                    out.push((f.path.as_str(), words.collect::<Vec<_>>().join(" ")));
                }
            }
        }
        out
    }

    /// The `ids=` of `options vfio-pci ids=…` in modprobe.d.
    pub(crate) fn vfio_pci_ids(&self) -> Vec<String> {
        self.modprobe_options("vfio_pci")
            .iter()
            .flat_map(|(_, opts)| {
                opts.split_whitespace()
                    .filter_map(|o| o.strip_prefix("ids="))
                    .flat_map(|ids| ids.split(','))
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(kind: ConfKind, text: &str) -> ConfFile {
        ConfFile {
            path: "/etc/x.conf".into(),
            kind,
            text: text.into(),
        }
    }

    #[test]
    fn test_mentions_module_in_dracut_add_drivers() {
        let f = file(
            ConfKind::Dracut,
            "add_drivers+=\"vfio vfio_iommu_type1 vfio_pci vfio_virqfd\"\n",
        );
        assert!(f.mentions_module("vfio_virqfd"));
        assert!(!f.mentions_module("kvm"));
    }

    #[test]
    fn test_mentions_module_ignores_comments() {
        let f = file(
            ConfKind::Mkinitcpio,
            "# MODULES=(vfio_virqfd)\nMODULES=(vfio_pci)\n",
        );
        assert!(!f.mentions_module("vfio_virqfd"));
    }

    #[test]
    fn test_vfio_pci_ids_from_options_line() {
        let config = ModuleConfig {
            files: vec![file(
                ConfKind::Modprobe,
                "options vfio-pci ids=10de:17c8,10de:0fb0 disable_vga=1\n",
            )],
        };
        assert_eq!(config.vfio_pci_ids(), ["10de:17c8", "10de:0fb0"]);
    }
}
