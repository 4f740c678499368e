//! vmgpu's per-VM configuration: the `<vmgpu:config>` element in a domain's `<metadata>` (schema version 1,
//! see docs/metadata.md): the types and how they are read; `write::metadata` writes them.
//!
//! Matching is by namespace URI ([`NAMESPACE`]), never by prefix. Unknown elements and attributes are
//! ignored (a newer vmgpu may add some); an unknown `version` is refused.

use serde::Serialize;

use super::element::Element;
use super::identity::FunctionIdentity;
use super::xml;
use crate::host::PciAddress;

/// vmgpu's XML namespace (schema version 1).
pub(crate) const NAMESPACE: &str = "https://vmgpu.dev/xmlns/config/1";
/// The schema version this build reads and writes.
pub(crate) const VERSION: u32 = 1;
/// The prefix `to_xml` writes (readers must not rely on it).
pub(crate) const PREFIX: &str = "vmgpu";
/// The group the shared-memory file gets when `<vmgpu:shmem>` names none.
pub(crate) const DEFAULT_SHM_GROUP: &str = "kvm";

/// Why the metadata could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The domain XML itself is malformed.
    #[error("cannot read the domain XML")]
    Xml(#[source] xml::Error),
    /// More than one `<vmgpu:config>` in the domain.
    #[error("the domain has more than one <vmgpu:config> element")]
    Duplicate,
    /// `version` is missing.
    #[error("<vmgpu:config> has no version attribute (this vmgpu reads version {VERSION})")]
    MissingVersion,
    /// `version` is not one this build knows.
    #[error("<vmgpu:config> version {0:?} is not supported (this vmgpu reads version {VERSION})")]
    UnknownVersion(String),
    /// A required attribute is missing.
    #[error("<vmgpu:{element}> needs the attribute {attribute}")]
    MissingAttribute {
        /// The element's local name.
        element: &'static str,
        /// The attribute.
        attribute: &'static str,
    },
    /// An attribute has a value that is not allowed.
    #[error("<vmgpu:{element} {attribute}={value:?}>: {expected}")]
    BadValue {
        /// The element's local name.
        element: &'static str,
        /// The attribute.
        attribute: &'static str,
        /// The value found (cut to 64 characters).
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// The same GPU is listed twice.
    #[error("GPU {0} is listed twice in <vmgpu:config>")]
    DuplicateGpu(PciAddress),
}

/// Result of reading the metadata.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// Who owns the IVSHMEM files vmgpu pre-creates, and whether they go at stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShmemConfig {
    /// Owner (a user name); `None` keeps root as owner (the group still gives QEMU access).
    pub user: Option<String>,
    /// Group (default `kvm`: QEMU runs with it as a supplementary group).
    pub group: String,
    /// Remove the file in `release` (default yes).
    pub remove_on_stop: bool,
}

impl Default for ShmemConfig {
    fn default() -> Self {
        Self {
            user: None,
            group: DEFAULT_SHM_GROUP.to_string(),
            remove_on_stop: true,
        }
    }
}

/// Whether and for whom the viewer starts when the guest is up, and what it shares with the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ViewerConfig {
    /// Launch `vmgpu view <vm>` at `started`.
    pub launch: bool,
    /// The desktop user whose session gets the viewer.
    pub user: Option<String>,
    /// Copy and paste between host and guest (`clipboard="no"` turns it off; absent means on).
    pub clipboard: bool,
}

impl Default for ViewerConfig {
    fn default() -> Self {
        Self {
            launch: false,
            user: None,
            clipboard: true,
        }
    }
}

/// The display phase (`<vmgpu:display mode=…>`) and the install ISOs vmgpu attached (`<vmgpu:media path=…>`),
/// so `--update --display looking-glass` removes exactly those and `check`/`status` can show the phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DisplayConfig {
    /// `install`, `looking-glass` or `both`.
    pub mode: String,
    /// Absolute paths of the attached ISOs.
    pub media: Vec<String>,
}

/// Host tuning while the VM runs (`<vmgpu:tuning governor="performance" irq-affinity="yes"/>`; absent: both
/// off). Undone at release like every hook step (docs/hook-contract.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TuningConfig {
    /// The `performance` cpufreq governor (or energy-performance preference) on the pinned vCPU CPUs.
    pub governor: bool,
    /// Host device IRQs off the pinned CPUs, the VFIO device's MSI vectors onto them.
    pub irq_affinity: bool,
}

impl TuningConfig {
    /// True when any switch is on.
    pub(crate) fn any(&self) -> bool {
        self.governor || self.irq_affinity
    }
}

/// The `<vmgpu:config>` of one domain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VmgpuConfig {
    /// The GPUs (any function); every endpoint of their IOMMU groups goes to vfio-pci.
    pub gpus: Vec<PciAddress>,
    /// What each GPU function was at define time (`<vmgpu:function>` inside `<vmgpu:gpu>`; empty in
    /// metadata written by a vmgpu before 0.2, which the hook accepts with a warning).
    pub functions: Vec<FunctionIdentity>,
    /// Keep host processes off the CPUs pinned in `<cputune><vcpupin>` while the VM runs.
    pub isolate_cpus: bool,
    /// Allocate the hugepages `<memoryBacking><hugepages>` needs in prepare and free them in release.
    pub hugepages: bool,
    /// Pre-create the IVSHMEM files (absent element: vmgpu leaves them to QEMU).
    pub shmem: Option<ShmemConfig>,
    /// Single-GPU mode: stop the display manager and unload the GPU driver while the VM runs.
    pub single_gpu: bool,
    /// Viewer launch.
    pub viewer: ViewerConfig,
    /// Display phase (absent in domains defined before it existed).
    pub display: Option<DisplayConfig>,
    /// Host tuning while the VM runs.
    pub tuning: TuningConfig,
    /// The user left the sound card out (`<vmgpu:sound enabled="no"/>`, from `define --no-sound`): `--update`
    /// then adds none. Absent: vmgpu keeps the guest's sound card (`<sound model='ich9'>` on the SPICE audio).
    pub sound_off: bool,
}

impl VmgpuConfig {
    /// Reads the configuration from a whole domain XML. `Ok(None)` when the domain has no vmgpu metadata.
    ///
    /// Fast path: a document that does not mention [`NAMESPACE`] at all is not parsed (so a malformed
    /// foreign domain is `Ok(None)` too: it is none of vmgpu's business).
    pub fn from_domain_xml(xml: &str) -> Result<Option<VmgpuConfig>> {
        if !mentions_namespace(xml) {
            return Ok(None);
        }
        let root = Element::parse(xml).map_err(Error::Xml)?;
        Self::from_domain(&root)
    }

    /// Reads the configuration from a parsed `<domain>`: the `<vmgpu:config>` child of `<metadata>`.
    pub(crate) fn from_domain(domain: &Element) -> Result<Option<VmgpuConfig>> {
        let Some(metadata) = domain.child("metadata") else {
            return Ok(None);
        };
        let mut configs = metadata
            .children
            .iter()
            .filter(|c| c.namespace.as_deref() == Some(NAMESPACE) && c.name == "config");
        let Some(config) = configs.next() else {
            return Ok(None);
        };
        if configs.next().is_some() {
            return Err(Error::Duplicate);
        }
        Self::from_config_element(config, true).map(Some)
    }

    /// Reads a standalone config element: `<vmgpu:config xmlns:vmgpu=…>` as [`to_xml`](Self::to_xml)
    /// writes it, or the unprefixed `<config>` libvirt's `virDomainGetMetadata` returns.
    #[cfg(test)]
    pub(crate) fn from_metadata_xml(xml: &str) -> Result<VmgpuConfig> {
        let root = Element::parse(xml).map_err(Error::Xml)?;
        let ours = root.namespace.as_deref() == Some(NAMESPACE);
        Self::from_config_element(&root, ours)
    }

    fn from_config_element(config: &Element, namespaced: bool) -> Result<VmgpuConfig> {
        match config.attr("version").map(str::trim) {
            None => return Err(Error::MissingVersion),
            Some(v) if v == VERSION.to_string() => {}
            Some(v) => return Err(Error::UnknownVersion(cut(v))),
        }
        let ns = config.namespace.as_deref();
        let ours = |c: &&Element| !namespaced || c.namespace.as_deref() == ns;
        let mut out = VmgpuConfig::default();
        for child in config.children.iter().filter(ours) {
            match child.name.as_str() {
                "gpu" => {
                    let address = required_address(child, "gpu")?;
                    if out.gpus.contains(&address) {
                        return Err(Error::DuplicateGpu(address));
                    }
                    out.gpus.push(address);
                    for function in child.children.iter().filter(ours) {
                        if function.name == "function" {
                            out.functions.push(function_identity(function)?);
                        }
                    }
                }
                "isolate-cpus" => out.isolate_cpus = enabled(child, "isolate-cpus")?,
                "hugepages" => out.hugepages = enabled(child, "hugepages")?,
                "single-gpu" => out.single_gpu = enabled(child, "single-gpu")?,
                "sound" => out.sound_off = !enabled(child, "sound")?,
                "shmem" => {
                    let mut shmem = ShmemConfig::default();
                    if let Some(user) = child.attr("user") {
                        shmem.user = Some(account_name("shmem", "user", user)?);
                    }
                    if let Some(group) = child.attr("group") {
                        shmem.group = account_name("shmem", "group", group)?;
                    }
                    if let Some(v) = child.attr("remove-on-stop") {
                        shmem.remove_on_stop = yes_no("shmem", "remove-on-stop", v)?;
                    }
                    out.shmem = Some(shmem);
                }
                "viewer" => {
                    if let Some(v) = child.attr("launch") {
                        out.viewer.launch = yes_no("viewer", "launch", v)?;
                    }
                    if let Some(user) = child.attr("user") {
                        out.viewer.user = Some(account_name("viewer", "user", user)?);
                    }
                    if let Some(v) = child.attr("clipboard") {
                        out.viewer.clipboard = yes_no("viewer", "clipboard", v)?;
                    }
                }
                "tuning" => {
                    if let Some(v) = child.attr("governor") {
                        out.tuning.governor = match v.trim() {
                            "performance" => true,
                            "no" => false,
                            other => {
                                return Err(Error::BadValue {
                                    element: "tuning",
                                    attribute: "governor",
                                    value: cut(other),
                                    expected: "expected performance or no",
                                });
                            }
                        };
                    }
                    if let Some(v) = child.attr("irq-affinity") {
                        out.tuning.irq_affinity = yes_no("tuning", "irq-affinity", v)?;
                    }
                }
                "display" => {
                    let mode = required(child, "display", "mode")?;
                    if !["install", "looking-glass", "both"].contains(&mode) {
                        return Err(Error::BadValue {
                            element: "display",
                            attribute: "mode",
                            value: cut(mode),
                            expected: "expected install, looking-glass or both",
                        });
                    }
                    let media = out.display.take().map(|d| d.media).unwrap_or_default();
                    out.display = Some(DisplayConfig {
                        mode: mode.to_string(),
                        media,
                    });
                }
                "media" => {
                    let path = required(child, "media", "path")?;
                    let display = out.display.get_or_insert_with(|| DisplayConfig {
                        mode: "looking-glass".into(),
                        media: Vec::new(),
                    });
                    display.media.push(path.to_string());
                }
                _ => {} // a newer vmgpu's element: ignored
            }
        }
        Ok(out)
    }
}

/// Cheap test whether a document can hold vmgpu metadata at all (no parsing).
pub(crate) fn mentions_namespace(xml: &str) -> bool {
    xml.contains(NAMESPACE)
}

fn required<'a>(
    el: &'a Element,
    element: &'static str,
    attribute: &'static str,
) -> Result<&'a str> {
    el.attr(attribute)
        .ok_or(Error::MissingAttribute { element, attribute })
}

/// The `address` attribute of `element`, a PCI address.
fn required_address(el: &Element, element: &'static str) -> Result<PciAddress> {
    let text = required(el, element, "address")?;
    text.parse().map_err(|_| Error::BadValue {
        element,
        attribute: "address",
        value: cut(text),
        expected: "expected a PCI address such as 0000:04:00.0",
    })
}

/// A `<vmgpu:function address id subsystem class>`.
fn function_identity(el: &Element) -> Result<FunctionIdentity> {
    let address = required_address(el, "function")?;
    let id = required(el, "function", "id")?;
    let subsystem = el.attr("subsystem").unwrap_or("none");
    let class = required(el, "function", "class")?;
    FunctionIdentity::parse(address, id, subsystem, class).ok_or_else(|| Error::BadValue {
        element: "function",
        attribute: "id",
        value: cut(&format!("id={id} subsystem={subsystem} class={class}")),
        expected: "expected id=\"vvvv:dddd\" subsystem=\"vvvv:dddd\" (or none) class=\"0xcccccc\"",
    })
}

fn enabled(el: &Element, element: &'static str) -> Result<bool> {
    yes_no(element, "enabled", required(el, element, "enabled")?)
}

fn yes_no(element: &'static str, attribute: &'static str, value: &str) -> Result<bool> {
    match value.trim() {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => Err(Error::BadValue {
            element,
            attribute,
            value: cut(other),
            expected: "expected yes or no",
        }),
    }
}

/// A user or group name as `useradd` allows it (portable subset): 1–32 characters of letters, digits,
/// `_`, `-` and `.`, not starting with `-`; a trailing `$` is allowed (Samba machine accounts).
fn account_name(element: &'static str, attribute: &'static str, value: &str) -> Result<String> {
    let body = value.strip_suffix('$').unwrap_or(value);
    let ok = !body.is_empty()
        && value.len() <= 32
        && !body.starts_with('-')
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(value.to_string())
    } else {
        Err(Error::BadValue {
            element,
            attribute,
            value: cut(value),
            expected: "expected a user or group name (letters, digits, _ - ., at most 32)",
        })
    }
}

fn cut(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
#[path = "metadata_tests.rs"]
mod tests;
