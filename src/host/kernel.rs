//! The running kernel: release (`/proc/sys/kernel/osrelease`), command line (`/proc/cmdline`), loaded modules
//! (`/proc/modules`), built-in modules (`/lib/modules/<release>/modules.builtin`) and the parameters of the
//! modules vmgpu cares about (`/sys/module/<m>/parameters/*`).
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::parse;
use super::root::{self, HostRoot};

/// Modules whose parameters are recorded in [`Kernel::module_params`]. (Reading every parameter of every
/// module costs thousands of reads on a desktop; add a name here when a check needs one.)
pub(crate) const WATCHED_MODULES: &[&str] = &[
    "kvm",
    "kvm_amd",
    "kvm_intel",
    "vfio",
    "vfio_pci",
    "vfio_iommu_type1",
    "kvmfr",
    "vendor_reset",
    "nvidia",
    "nvidia_drm",
    "amdgpu",
    "i915",
];

/// One kernel command-line word: `key` or `key=value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CmdlineParam {
    /// The name as written (`vfio-pci.ids`).
    pub key: String,
    /// The value after the first `=`, if any.
    pub value: Option<String>,
}

/// The kernel command line, parsed as the kernel does (quotes group, words after `--` belong to init).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Cmdline {
    /// The raw text as read (trimmed).
    pub raw: String,
    /// The words in order.
    pub params: Vec<CmdlineParam>,
}

impl Cmdline {
    /// Parses command-line text.
    pub(crate) fn parse(text: &str) -> Self {
        let params = parse::cmdline_words(text)
            .into_iter()
            .map(|w| match w.split_once('=') {
                Some((k, v)) => CmdlineParam {
                    key: k.to_string(),
                    value: Some(v.to_string()),
                },
                None => CmdlineParam {
                    key: w,
                    value: None,
                },
            })
            .collect();
        Self {
            raw: text.trim().to_string(),
            params,
        }
    }

    /// Every value of `key` in order. Keys compare as the kernel does: `-` and `_` are the same.
    pub(crate) fn values<'a>(
        &'a self,
        key: &str,
    ) -> impl Iterator<Item = Option<&'a str>> + use<'a> {
        let want = parse::module_name(key);
        self.params
            .iter()
            .filter(move |p| parse::module_name(&p.key) == want)
            .map(|p| p.value.as_deref())
    }

    /// The last value of `key` (the one the kernel uses); `Some("")` for a bare `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.values(key).last().map(|v| v.unwrap_or(""))
    }

    /// The comma-separated list values of `key` over all its occurrences (`vfio-pci.ids=a,b`).
    pub(crate) fn list(&self, key: &str) -> Vec<String> {
        self.values(key)
            .flatten()
            .flat_map(|v| v.split(','))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// The running kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Kernel {
    /// `uname -r`, e.g. `6.13.7-1-default`.
    pub release: String,
    /// `/proc/cmdline`.
    pub cmdline: Cmdline,
    /// Loaded modules (`/proc/modules`), names with `_`.
    pub modules_loaded: BTreeSet<String>,
    /// Built-in modules (`modules.builtin` of this release), names with `_`. Empty when the file is missing.
    pub modules_builtin: BTreeSet<String>,
    /// True when `/lib/modules/<release>` exists (modules can be loaded at all).
    pub has_module_tree: bool,
    /// Loadable modules of this release (`modules.dep`), names with `_`. Empty when the file is missing.
    pub modules_available: BTreeSet<String>,
    /// Every entry of `/sys/module` (loaded and built-in modules that have parameters or a version).
    pub sys_modules: BTreeSet<String>,
    /// Parameters of [`WATCHED_MODULES`]: module → parameter → value (readable ones only).
    pub module_params: BTreeMap<String, BTreeMap<String, String>>,
}

impl Kernel {
    /// Reads the kernel facts under `root`. `/proc/sys/kernel/osrelease` and `/proc/cmdline` must exist;
    /// the module files may not (a kernel without module support).
    pub(crate) fn read(root: &HostRoot) -> root::Result<Self> {
        let release = root.read_string("/proc/sys/kernel/osrelease")?;
        let cmdline = Cmdline::parse(&root.read_raw("/proc/cmdline")?);
        let modules_loaded = root
            .read_optional("/proc/modules")?
            .map(|t| parse::proc_modules(&t).into_iter().collect())
            .unwrap_or_default();
        let module_dir = format!("/lib/modules/{release}");
        let modules_builtin = if release.contains('/') {
            BTreeSet::new()
        } else {
            root.read_optional(format!("{module_dir}/modules.builtin"))?
                .map(|t| parse::modules_builtin(&t).into_iter().collect())
                .unwrap_or_default()
        };
        let modules_available = if release.contains('/') {
            BTreeSet::new()
        } else {
            root.read_optional(format!("{module_dir}/modules.dep"))?
                .map(|t| parse::modules_dep(&t).into_iter().collect())
                .unwrap_or_default()
        };
        let sys_modules: BTreeSet<String> = root.list_dir("/sys/module")?.into_iter().collect();
        let mut module_params = BTreeMap::new();
        for module in WATCHED_MODULES {
            if !sys_modules.contains(*module) {
                continue;
            }
            let dir = format!("/sys/module/{module}/parameters");
            let mut params = BTreeMap::new();
            for name in root.list_dir(&dir)? {
                // Some parameters are write-only (mode 0200); skip what cannot be read.
                if let Ok(value) = root.read_string(format!("{dir}/{name}")) {
                    params.insert(name, value);
                }
            }
            module_params.insert((*module).to_string(), params);
        }
        Ok(Self {
            has_module_tree: !release.contains('/') && root.exists(&module_dir),
            release,
            cmdline,
            modules_loaded,
            modules_builtin,
            modules_available,
            sys_modules,
            module_params,
        })
    }

    /// `(major, minor)` of the release; `(0, 0)` when it does not start with numbers. Compare as
    /// `kernel.version() >= (6, 2)`.
    pub fn version(&self) -> (u32, u32) {
        parse::kernel_version(&self.release).map_or((0, 0), |(a, b, _)| (a, b))
    }

    /// True when vfio-pci is compiled into the kernel (Ubuntu, Pop!_OS): `options vfio-pci …` in
    /// modprobe.d is then ignored and `vfio-pci.ids=` must go on the command line.
    pub fn vfio_pci_builtin(&self) -> bool {
        self.is_builtin("vfio_pci")
    }

    /// True when the module is built in.
    pub(crate) fn is_builtin(&self, module: &str) -> bool {
        self.modules_builtin.contains(&parse::module_name(module))
    }

    /// True when the module is loaded.
    pub(crate) fn is_loaded(&self, module: &str) -> bool {
        self.modules_loaded.contains(&parse::module_name(module))
    }

    /// True when the module is usable right now: loaded, built in, or present in `/sys/module`.
    pub(crate) fn is_present(&self, module: &str) -> bool {
        let m = parse::module_name(module);
        self.is_loaded(&m) || self.is_builtin(&m) || self.sys_modules.contains(&m)
    }

    /// True when the module is present or can be loaded (`modules.dep` lists it).
    pub(crate) fn is_available(&self, module: &str) -> bool {
        self.is_present(module) || self.modules_available.contains(&parse::module_name(module))
    }

    /// A watched module's parameter value (see [`WATCHED_MODULES`]).
    pub(crate) fn module_param(&self, module: &str, param: &str) -> Option<&str> {
        self.module_params
            .get(&parse::module_name(module))?
            .get(param)
            .map(String::as_str)
    }

    /// True when `vfio_virqfd` is part of `vfio` (kernel ≥ 6.2), so it must not be listed for the initramfs.
    pub(crate) fn vfio_virqfd_merged(&self) -> bool {
        self.version() >= (6, 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cmdline_get_treats_dash_and_underscore_alike() {
        let c = Cmdline::parse("quiet vfio_pci.ids=10de:17c8,10de:0fb0 iommu=pt\n");
        assert_eq!(c.get("vfio-pci.ids"), Some("10de:17c8,10de:0fb0"));
        assert_eq!(c.list("vfio-pci.ids"), ["10de:17c8", "10de:0fb0"]);
    }

    #[test]
    fn test_cmdline_last_value_wins_and_bare_key_is_empty() {
        let c = Cmdline::parse("iommu=off iommu=pt quiet");
        assert_eq!(c.get("iommu"), Some("pt"));
        assert_eq!(c.get("quiet"), Some(""));
        assert_eq!(c.get("splash"), None);
    }

    use crate::host::test_tree::write;

    #[test]
    fn test_kernel_read_builtin_vfio_and_kvm_params() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "proc/sys/kernel/osrelease", "6.8.0-45-generic\n");
        write(d, "proc/cmdline", "BOOT_IMAGE=/vmlinuz quiet\n");
        write(
            d,
            "proc/modules",
            "kvm_amd 1 0 - Live 0x0\nkvm 1 1 kvm_amd, Live 0x0\n",
        );
        write(
            d,
            "lib/modules/6.8.0-45-generic/modules.builtin",
            "kernel/drivers/vfio/pci/vfio-pci.ko\n",
        );
        write(d, "sys/module/kvm/parameters/ignore_msrs", "Y\n");
        let kernel = Kernel::read(&HostRoot::new(d)).unwrap();
        assert!(kernel.vfio_pci_builtin());
        assert_eq!(kernel.version(), (6, 8));
        assert_eq!(kernel.module_param("kvm", "ignore_msrs"), Some("Y"));
        assert!(kernel.is_loaded("kvm-amd"));
    }

    #[test]
    fn test_kernel_without_modules_reads() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "proc/sys/kernel/osrelease", "6.18.44\n");
        write(dir.path(), "proc/cmdline", "console=ttyS0\n");
        let kernel = Kernel::read(&HostRoot::new(dir.path())).unwrap();
        assert!(kernel.modules_loaded.is_empty());
        assert!(!kernel.has_module_tree);
        assert!(kernel.vfio_virqfd_merged());
    }
}
