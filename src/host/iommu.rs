//! The IOMMU: groups (`/sys/kernel/iommu_groups/N/devices`), hardware units (`/sys/class/iommu`), the ACPI
//! tables that announce one (DMAR for Intel VT-d, IVRS for AMD-Vi) and why it is off when it is.
use std::collections::BTreeMap;

use serde::Serialize;

use super::cpu::CpuVendor;
use super::kernel::Kernel;
use super::pci::PciAddress;
use super::root::{self, HostRoot};

/// Where the kernel lists IOMMU groups.
pub(crate) const GROUPS_DIR: &str = "/sys/kernel/iommu_groups";

/// The IOMMU as the kernel sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Iommu {
    /// Group number → member addresses (sorted).
    pub groups: BTreeMap<u32, Vec<PciAddress>>,
    /// Hardware units in `/sys/class/iommu` (`dmar0`, `ivhd0`).
    pub units: Vec<String>,
    /// `/sys/firmware/acpi/tables/DMAR` exists (Intel VT-d announced by firmware).
    pub dmar_table: bool,
    /// `/sys/firmware/acpi/tables/IVRS` exists (AMD-Vi announced by firmware).
    pub ivrs_table: bool,
}

/// Why the IOMMU is (not) usable: the verdict `check` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum IommuStatus {
    /// Groups exist.
    On {
        /// How many groups.
        groups: usize,
    },
    /// A command-line parameter turns it off (`intel_iommu=off`, `amd_iommu=off`, `iommu=off`).
    OffOnCmdline {
        /// The parameter as written, e.g. `amd_iommu=off`.
        param: String,
    },
    /// Intel with a DMAR table but the kernel did not enable it: `intel_iommu=on` is missing.
    IntelNotEnabled,
    /// No DMAR/IVRS table: off in the firmware setup, or a VM without a virtual IOMMU.
    NoFirmwareTable {
        /// True when `/proc/cpuinfo` has the `hypervisor` flag.
        virtual_machine: bool,
    },
    /// A table exists and nothing on the command line disables it, yet there are no groups.
    NoGroups,
}

impl Iommu {
    /// Reads the groups, units and ACPI tables under `root`. Missing directories mean "none".
    pub(crate) fn read(root: &HostRoot) -> root::Result<Self> {
        let mut groups = BTreeMap::new();
        for name in root.list_dir(GROUPS_DIR)? {
            let Ok(number) = name.parse::<u32>() else {
                continue;
            };
            let mut members: Vec<PciAddress> = root
                .list_dir(format!("{GROUPS_DIR}/{name}/devices"))?
                .iter()
                .filter_map(|d| d.parse().ok())
                .collect();
            members.sort();
            groups.insert(number, members);
        }
        Ok(Self {
            groups,
            units: root.list_dir("/sys/class/iommu")?,
            dmar_table: root.exists("/sys/firmware/acpi/tables/DMAR"),
            ivrs_table: root.exists("/sys/firmware/acpi/tables/IVRS"),
        })
    }

    /// True when the kernel made IOMMU groups.
    pub fn enabled(&self) -> bool {
        !self.groups.is_empty()
    }

    /// Why the IOMMU is on or off, from the groups, the tables and the command line.
    pub(crate) fn status(
        &self,
        kernel: &Kernel,
        vendor: CpuVendor,
        hypervisor: bool,
    ) -> IommuStatus {
        if self.enabled() {
            return IommuStatus::On {
                groups: self.groups.len(),
            };
        }
        let cmdline = &kernel.cmdline;
        for key in ["intel_iommu", "amd_iommu", "iommu"] {
            if let Some(value) = cmdline.get(key)
                && value.split(',').any(|v| v == "off")
            {
                return IommuStatus::OffOnCmdline {
                    param: format!("{key}={value}"),
                };
            }
        }
        if !self.dmar_table && !self.ivrs_table {
            return IommuStatus::NoFirmwareTable {
                virtual_machine: hypervisor,
            };
        }
        let intel_on = cmdline
            .get("intel_iommu")
            .is_some_and(|v| v.split(',').any(|v| v == "on"));
        if vendor == CpuVendor::Intel && self.dmar_table && !intel_on {
            return IommuStatus::IntelNotEnabled;
        }
        IommuStatus::NoGroups
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::kernel::Cmdline;

    fn kernel(cmdline: &str) -> Kernel {
        Kernel {
            cmdline: Cmdline::parse(cmdline),
            ..Kernel::default()
        }
    }

    #[test]
    fn test_status_groups_present_is_on() {
        let iommu = Iommu {
            groups: [(1, vec![])].into_iter().collect(),
            ..Iommu::default()
        };
        assert_eq!(
            iommu.status(&kernel(""), CpuVendor::Amd, false),
            IommuStatus::On { groups: 1 }
        );
    }

    #[test]
    fn test_status_amd_iommu_off_names_param() {
        let iommu = Iommu {
            ivrs_table: true,
            ..Iommu::default()
        };
        assert_eq!(
            iommu.status(&kernel("quiet amd_iommu=off"), CpuVendor::Amd, false),
            IommuStatus::OffOnCmdline {
                param: "amd_iommu=off".into()
            }
        );
    }

    #[test]
    fn test_status_no_tables_in_vm() {
        let iommu = Iommu::default();
        assert_eq!(
            iommu.status(&kernel("console=ttyS0"), CpuVendor::Amd, true),
            IommuStatus::NoFirmwareTable {
                virtual_machine: true
            }
        );
    }

    #[test]
    fn test_status_intel_dmar_without_param() {
        let iommu = Iommu {
            dmar_table: true,
            ..Iommu::default()
        };
        assert_eq!(
            iommu.status(&kernel("quiet"), CpuVendor::Intel, false),
            IommuStatus::IntelNotEnabled
        );
    }
}
