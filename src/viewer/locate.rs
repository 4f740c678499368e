//! Where a domain's Looking Glass memory is: `<shmem name='N'>` with an `ivshmem-plain` model is
//! `/dev/shm/N`; a `memory-backend-file` with `mem-path=/dev/kvmfrK` on the QEMU command line is the kvmfr device.
use std::path::PathBuf;

use crate::domain::Element;

/// Lookup errors.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The XML could not be read.
    #[error("cannot read the domain XML")]
    Xml(#[from] crate::domain::read::xml::Error),
    /// No Looking Glass memory in the domain.
    #[error(
        "the domain has no ivshmem-plain <shmem> device and no /dev/kvmfr memory backend (run `vmgpu define --looking-glass ...`, or pass --shm PATH)"
    )]
    NoShmem,
    /// A shmem name that is not a plain file name.
    #[error("the <shmem> name {0:?} is not a plain file name")]
    BadName(String),
}

/// The shared memory of a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShmLocation {
    /// The file or device.
    pub path: PathBuf,
    /// The size the domain declares, in bytes, when it declares one.
    pub size: Option<u64>,
}

fn size_bytes(shmem: &Element) -> Option<u64> {
    let size = shmem.child("size")?;
    let n: u64 = size.trimmed_text().parse().ok()?;
    let unit = match size.attr("unit").unwrap_or("M") {
        "b" | "bytes" => 1,
        "k" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(unit)
}

/// Finds the Looking Glass memory of a domain XML.
pub(crate) fn from_domain_xml(xml: &str) -> Result<ShmLocation, Error> {
    let root = Element::parse(xml)?;
    if let Some(devices) = root.child("devices") {
        for shmem in devices.children_named("shmem") {
            let plain = shmem.child("model").and_then(|m| m.attr("type")) == Some("ivshmem-plain");
            let Some(name) = shmem.attr("name").filter(|_| plain) else {
                continue;
            };
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(Error::BadName(name.to_string()));
            }
            return Ok(ShmLocation {
                path: PathBuf::from("/dev/shm").join(name),
                size: size_bytes(shmem),
            });
        }
    }
    kvmfr_from_text(xml).ok_or(Error::NoShmem)
}

/// `mem-path=/dev/kvmfrN` anywhere (the qemu:commandline arguments).
fn kvmfr_from_text(xml: &str) -> Option<ShmLocation> {
    let at = xml.find("mem-path=/dev/kvmfr")? + "mem-path=".len();
    let path: String = xml[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '/')
        .collect();
    Some(ShmLocation {
        path: PathBuf::from(path),
        size: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_ivshmem_plain_shmem_is_dev_shm_file() {
        let xml = "<domain><devices><shmem name='looking-glass-win11'><model type='ivshmem-plain'/><size unit='M'>64</size></shmem></devices></domain>";
        let loc = from_domain_xml(xml).unwrap();
        assert_eq!(
            loc,
            ShmLocation {
                path: "/dev/shm/looking-glass-win11".into(),
                size: Some(64 << 20)
            }
        );
    }

    #[test]
    fn test_kvmfr_backend_is_the_device() {
        let xml = "<domain xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><devices/><qemu:commandline><qemu:arg value='memory-backend-file,id=lg,mem-path=/dev/kvmfr0,size=32M,share=yes'/></qemu:commandline></domain>";
        assert_eq!(
            from_domain_xml(xml).unwrap().path,
            PathBuf::from("/dev/kvmfr0")
        );
    }

    #[test]
    fn test_shmem_name_with_slash_is_refused() {
        let xml = "<domain><devices><shmem name='../etc'><model type='ivshmem-plain'/></shmem></devices></domain>";
        assert!(matches!(from_domain_xml(xml), Err(Error::BadName(_))));
    }

    #[test]
    fn test_domain_without_shmem_says_so() {
        assert!(matches!(
            from_domain_xml("<domain><devices/></domain>"),
            Err(Error::NoShmem)
        ));
    }
}
