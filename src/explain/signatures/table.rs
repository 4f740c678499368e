//! The table of known failure signatures, root causes ranked above the symptoms they cause.
use super::detectors::{foreign_hook_failed, journal_left_over, nvidia_code_43, vfio_not_early};
use super::*;

/// Every signature vmgpu knows.
pub static SIGNATURES: &[Signature] = &[
    Signature {
        id: "iommu-off",
        what: "the IOMMU is off, so no device can be passed through",
        why: "VFIO needs the IOMMU (VT-d / AMD-Vi) to isolate the device's DMA; without it the device has no IOMMU group and vfio-pci cannot take it",
        fix: fixes::iommu_on,
        rank: 96,
        detect: Detect::Lines(&[
            any(&["has no iommu group"]),
            any(&["no iommu_group found"]),
            any(&["doesn't support passthrough of host pci devices"]),
            any(&["dmar: iommu disabled"]),
            from(
                Source::Kernel,
                &["vfio-pci", "probe of", "failed with error -22"],
            ),
        ]),
    },
    Signature {
        id: "kvm-unavailable",
        what: "KVM is not available, so QEMU could not start an accelerated guest",
        why: "virtualization is off in the firmware, the kvm_intel/kvm_amd module is not loaded, or /dev/kvm is not accessible",
        fix: fixes::kvm,
        rank: 94,
        detect: Detect::Lines(&[
            any(&["could not access kvm kernel module"]),
            any(&["failed to initialize kvm"]),
            any(&["requires kvm, but it is not available"]),
            any(&["kvm is not available"]),
        ]),
    },
    Signature {
        id: "hook-exec-denied",
        what: "libvirt could not run its qemu hook",
        why: "AppArmor only lets libvirtd/virtqemud run hooks and helpers from /bin, /sbin, /usr/bin and /usr/sbin (not /usr/local), and SELinux needs the virt_hooks_unconfined boolean; the denial often leaves no line in the kernel log",
        fix: |_| {
            "install vmgpu under /usr/bin or /usr/sbin and run `vmgpu install --restart`; on SELinux also `setsebool -P virt_hooks_unconfined 1` and `restorecon -R /etc/libvirt/hooks`".to_string()
        },
        rank: 93,
        detect: Detect::Lines(&[
            any(&["hooks/qemu", "bad interpreter"]),
            any(&["hooks/qemu", "permission denied", "cannot execute"]),
            any(&["hook script execution failed", "permission denied"]),
        ]),
    },
    Signature {
        id: "foreign-hook-failed",
        what: "another qemu hook failed and libvirt aborted the start",
        why: "libvirt runs /etc/libvirt/hooks/qemu and then every executable in hooks/qemu.d/ for every VM; any one exiting non-zero aborts the start, whatever vmgpu did",
        fix: |_| {
            "fix or remove the failing script named in the evidence (it runs for every VM and every operation; old VFIO-Tools dispatchers dropped loose into qemu.d/ do this); vmgpu's own changes were undone by release".to_string()
        },
        rank: 92,
        detect: Detect::Custom(foreign_hook_failed),
    },
    Signature {
        id: "group-not-viable",
        what: "the IOMMU group of the GPU is not viable: another device in it is still on a host driver",
        why: "VFIO hands out whole IOMMU groups; every endpoint in the group (the card's audio, USB and UCSI functions, or a foreign device sharing the group) must be on vfio-pci",
        fix: |c| {
            format!(
                "pass every function of the card: `vmgpu define {} --update` puts the whole group in the domain; if a device that is not part of the card shares the group (`vmgpu gpus` shows it), move the card to another slot; the ACS override patch is a security trade-off",
                c.vm
            )
        },
        rank: 90,
        detect: Detect::Lines(&[
            any(&["group", "is not viable"]),
            any(&["ensure all devices within the iommu_group are bound"]),
        ]),
    },
    Signature {
        id: "gpu-held-by-vm",
        what: "the GPU belongs to another VM",
        why: "a device can only be in one running VM; a VM that crashed can leave vmgpu's hold (its journal) behind",
        fix: fixes::restore,
        rank: 89,
        detect: Detect::Lines(&[
            any(&["is held by vm"]),
            any(&["is in use by driver qemu, domain"]),
        ]),
    },
    Signature {
        id: "device-busy",
        what: "the device is held open on the host, so it could not be handed to the VM",
        why: "a process still uses the GPU or its audio function (the desktop session, nvidia-persistenced, CUDA, a sound server), so the driver unbind waits or the VFIO group is busy",
        fix: |c| {
            format!(
                "stop what holds it (the evidence names it; `fuser -v /dev/dri/* /dev/nvidia* /dev/snd/*` shows the rest, `systemctl stop nvidia-persistenced`), then start the VM again; if a write timed out, `vmgpu restore {}` once the device is free",
                c.vm
            )
        },
        rank: 86,
        detect: Detect::Lines(&[
            any(&["is in use by pid"]),
            any(&["did not finish within", "still in use"]),
            any(&["/dev/vfio/", "device or resource busy"]),
            any(&["vfio", "failed to open", "busy"]),
        ]),
    },
    Signature {
        id: "ovmf-missing",
        what: "the UEFI firmware (OVMF) the domain names is not there",
        why: "the domain points at a firmware file that the distro's OVMF package does not (or no longer) ship, or no firmware descriptor matches `firmware='efi'`",
        fix: fixes::install_ovmf,
        rank: 85,
        detect: Detect::Lines(&[
            any(&["unable to find any firmware to satisfy"]),
            any(&["ovmf", "no such file"]),
            any(&["edk2", "no such file"]),
            any(&["could not load pc bios"]),
        ]),
    },
    Signature {
        id: "nvram-template-missing",
        what: "libvirt found no NVRAM (VARS) template for the firmware",
        why: "the loader path is not listed in qemu.conf's nvram list nor in a firmware descriptor (a custom path, Arch's *.4m.fd rename, or secure-boot CODE with plain VARS)",
        fix: |_| {
            "set the template explicitly (`<nvram template='…/OVMF_VARS_4M.fd'>` matching the CODE file) or use `<os firmware='efi'>`".to_string()
        },
        rank: 84,
        detect: Detect::Lines(&[any(&["unable to find any master var store for loader"])]),
    },
    Signature {
        id: "secure-boot-needs-smm",
        what: "Secure Boot firmware without SMM",
        why: "secure-boot OVMF only works on q35 with System Management Mode on",
        fix: |_| {
            "add `<smm state='on'/>` inside `<features>` (and use machine q35), or pick the non-secure firmware".to_string()
        },
        rank: 83,
        detect: Detect::Lines(&[
            any(&["secure boot requires smm"]),
            any(&["requires smm", "secure"]),
        ]),
    },
    Signature {
        id: "swtpm-missing",
        what: "the domain has an emulated TPM but swtpm is not installed",
        why: "libvirt's TPM emulator backend starts swtpm/swtpm_setup for each VM; Windows 11 templates need it",
        fix: fixes::install_swtpm,
        rank: 82,
        detect: Detect::Lines(&[
            any(&["unable to find 'swtpm"]),
            any(&["swtpm", "no such file or directory"]),
            any(&["swtpm", "not found"]),
            // libvirt's words when it finds no usable swtpm (it probes swtpm for the versions it supports)
            any(&["tpm version", "is not supported"]),
        ]),
    },
    Signature {
        id: "hugepages-short",
        what: "not enough hugepages for the guest's memory",
        why: "guest RAM is backed by hugepages and the kernel could not find enough contiguous free memory when the VM started",
        fix: fixes::hugepages,
        rank: 80,
        detect: Detect::Lines(&[
            any(&["hugepages: got"]),
            any(&[
                "unable to map backing store for guest ram",
                "cannot allocate memory",
            ]),
            any(&["hugepage", "cannot allocate memory"]),
        ]),
    },
    Signature {
        id: "hugetlbfs-not-mounted",
        what: "the domain wants hugepages but no hugetlbfs is mounted for that page size",
        why: "libvirt backs guest RAM with files on a hugetlbfs mount; systemd mounts only the default size at /dev/hugepages (dev-hugepages.mount), and containers or minimal hosts may have none",
        fix: |c| {
            format!(
                "mount it (`systemctl start dev-hugepages.mount`, or `mount -t hugetlbfs -o pagesize=1G none /dev/hugepages1G` plus `hugetlbfs_mount` in /etc/libvirt/qemu.conf for 1 GiB pages) and restart libvirtd; or `vmgpu define {} --update --hugepages off`",
                c.vm
            )
        },
        rank: 81,
        detect: Detect::Lines(&[
            any(&["hugetlbfs filesystem is not mounted"]),
            any(&["unable to find any usable hugetlbfs mount"]),
        ]),
    },
    Signature {
        id: "interrupt-remapping",
        what: "VFIO refused the device: the platform has no interrupt remapping",
        why: "without interrupt remapping a device could inject interrupts into the host, so vfio_iommu_type1 refuses by default",
        fix: fixes::unsafe_interrupts,
        rank: 79,
        detect: Detect::Lines(&[
            any(&[
                "failed to set iommu for container",
                "operation not permitted",
            ]),
            any(&["no interrupt remapping support"]),
        ]),
    },
    Signature {
        id: "shm-permission",
        what: "QEMU could not open the Looking Glass shared-memory file",
        why: "/dev/shm/<name> already exists owned by another user (a viewer or an earlier run) and QEMU's user may not open it, or AppArmor/SELinux refuse the path",
        fix: |_| {
            "remove the stale file (`rm /dev/shm/<name>` while no VM uses it) so vmgpu creates it root:kvm 0660 at the next start; on AppArmor add `/dev/shm/<name> rw,` to /etc/apparmor.d/local/abstractions/libvirt-qemu".to_string()
        },
        rank: 78,
        detect: Detect::Lines(&[
            any(&["/dev/shm/", "permission denied"]),
            any(&["/dev/shm/", "operation not permitted"]),
            any(&["ivshmem /dev/shm/"]),
            any(&["cannot create /dev/shm/"]),
        ]),
    },
    Signature {
        id: "kvmfr-permission",
        what: "QEMU could not open the KVMFR device /dev/kvmfrN",
        why: "the kvmfr device needs a udev rule (owner, group kvm, 0660), an entry in qemu.conf's cgroup_device_acl and, on AppArmor, a rule for the path",
        fix: |_| {
            "run `vmgpu setup --kvmfr` (udev rule, modules-load, AppArmor), add \"/dev/kvmfr0\" to cgroup_device_acl in /etc/libvirt/qemu.conf and restart libvirtd".to_string()
        },
        rank: 78,
        detect: Detect::Lines(&[
            any(&["/dev/kvmfr", "permission denied"]),
            any(&["/dev/kvmfr", "operation not permitted"]),
            any(&["ivshmem /dev/kvmfr"]),
            from(Source::Kernel, &["apparmor=\"denied\"", "kvmfr"]),
        ]),
    },
    Signature {
        id: "spice-port-taken",
        what: "the SPICE server could not listen on its port",
        why: "the domain asks for a fixed SPICE port (autoport off) that another process or VM already listens on",
        fix: |c| {
            format!(
                "free the port (`ss -ltnp` shows who has it) or let libvirt choose: `<graphics type='spice' autoport='yes'>` (`virsh edit {}`)",
                c.vm
            )
        },
        rank: 77,
        detect: Detect::Lines(&[
            any(&["failed to initialize spice server"]),
            any(&["reds_init_socket", "failed"]),
            any(&["spice", "address already in use"]),
        ]),
    },
    Signature {
        id: "evdev-missing",
        what: "an evdev input device of the domain is gone",
        why: "keyboard and mouse are passed by /dev/input path; a replugged, renamed or unplugged device (or an /dev/input/eventN path that changed at boot) makes QEMU fail",
        fix: |c| {
            format!(
                "plug the device in, or point the domain at its stable name: `ls -l /dev/input/by-id/` and `vmgpu define {} --update --keyboard auto --mouse auto`",
                c.vm
            )
        },
        rank: 76,
        detect: Detect::Lines(&[
            any(&["/dev/input/", "no such file"]),
            any(&["/dev/input/", "could not open"]),
            any(&["/dev/input/", "no such device"]),
        ]),
    },
    Signature {
        id: "bar-reserve",
        what: "the kernel could not reserve the GPU's memory BAR",
        why: "the firmware framebuffer (efifb, simplefb or simpledrm) of the boot GPU still maps the BAR, so vfio-pci cannot reserve it and the guest gets a black screen",
        fix: fixes::framebuffer_off,
        rank: 75,
        detect: Detect::Lines(&[any(&["bar ", "can't reserve"])]),
    },
    Signature {
        id: "cpu-affinity",
        what: "libvirt could not pin the QEMU process to its CPUs",
        why: "host CPU isolation restricted the cgroup QEMU runs in (machine.slice or the root) so that it no longer contains the pinned CPUs",
        fix: |_| {
            "restrict only system.slice, user.slice and init.scope (vmgpu's hook does); undo a restriction of machine.slice with `systemctl set-property --runtime machine.slice AllowedCPUs=` and keep `<emulatorpin>` inside the allowed CPUs".to_string()
        },
        rank: 74,
        detect: Detect::Lines(&[
            any(&["cannot set cpu affinity on process"]),
            any(&["cpuset.cpus", "invalid argument"]),
        ]),
    },
    Signature {
        id: "amd-reset-bug",
        what: "the GPU did not come back from a reset (AMD reset bug)",
        why: "many AMD cards (Polaris, Vega, Navi 1x) do not implement a working function-level reset, so after a guest reboot or a second start the card stays dead",
        fix: fixes::vendor_reset,
        rank: 72,
        detect: Detect::Lines(&[
            any(&["reset recovery - restoring bars"]),
            any(&["completion-wait loop timed out"]),
            from(Source::Kernel, &["amdgpu", "gpu reset", "failed"]),
        ]),
    },
    Signature {
        id: "reset-failed",
        what: "resetting the device failed",
        why: "the device has no usable reset (no FLR, and a bus reset would touch other devices), or it did not come back from D3cold",
        fix: |_| {
            "check `cat /sys/bus/pci/devices/<gpu>/reset_method`; pass every function of the card so libvirt may use a slot/bus reset, shut the guest down instead of rebooting it, and on AMD cards see vendor-reset".to_string()
        },
        rank: 70,
        detect: Detect::Lines(&[
            any(&["after flr; giving up"]),
            any(&["after bus reset; giving up"]),
            any(&["cannot reset device", "no available reset mechanism"]),
            any(&["unable to change power state from d3cold to d0"]),
        ]),
    },
    Signature {
        id: "apparmor-denied",
        what: "AppArmor denied QEMU or libvirt a file",
        why: "the domain's AppArmor profile (virt-aa-helper) only allows the paths it knows from the XML; paths added by qemu:commandline or created later are refused",
        fix: fixes::apparmor,
        rank: 69,
        detect: Detect::Lines(&[any(&["apparmor=\"denied\"", "libvirt"])]),
    },
    Signature {
        id: "selinux-denied",
        what: "SELinux denied QEMU, libvirt or the hook an access",
        why: "the file lacks the svirt/virt label, or the hook runs without the virt_hooks_unconfined boolean",
        fix: fixes::selinux,
        rank: 69,
        detect: Detect::Lines(&[
            any(&["avc:", "denied", "svirt"]),
            any(&["avc:", "denied", "virt"]),
            any(&["avc:", "denied", "qemu"]),
        ]),
    },
    Signature {
        id: "vfio-dma-map",
        what: "VFIO could not map the guest's memory for DMA",
        why: "the locked-memory limit of the QEMU process is below the guest RAM (plus BARs), or the host is out of memory",
        fix: |_| {
            "give the domain a `<memtune><hard_limit>` above its RAM plus 1 GiB when it has extra devices in qemu:commandline, lower the guest's memory, or free host memory".to_string()
        },
        rank: 68,
        detect: Detect::Lines(&[
            any(&["vfio_dma_map", "cannot allocate memory"]),
            any(&["vfio_dma_map", "= -12"]),
            any(&["vfio_container_dma_map", "-12"]),
        ]),
    },
    Signature {
        id: "vfio-virqfd",
        what: "the initramfs build or boot asked for vfio_virqfd, which no longer exists",
        why: "vfio_virqfd was merged into vfio in Linux 6.2; guides written before that still list it, and dracut fails (or hangs) on it",
        fix: fixes::drop_vfio_virqfd,
        rank: 65,
        detect: Detect::Lines(&[
            any(&["vfio_virqfd", "not found"]),
            any(&["failed to install module vfio_virqfd"]),
            any(&["vfio_virqfd", "could not insert"]),
        ]),
    },
    Signature {
        id: "vfio-not-early",
        what: "vfio-pci did not claim the GPU first: the host driver had it",
        why: "vfio-pci is set to claim the card (vfio-pci ids), but the GPU driver loaded before it (vfio-pci not in the initramfs, or no softdep), so the host driver bound the card at boot",
        fix: |c| {
            format!(
                "load vfio-pci before the GPU driver: `vmgpu setup` writes the softdep and initramfs entries; rebuild with `{}` and reboot",
                crate::check::fix::initramfs_rebuild(c.distro)
            )
        },
        rank: 60,
        detect: Detect::Custom(vfio_not_early),
    },
    Signature {
        id: "vmgpu-refused",
        what: "vmgpu's hook refused to prepare the host (its reason is in the evidence)",
        why: "the hook checks the host before changing anything and refuses rather than leave a half-prepared host; libvirt then aborts the start",
        fix: |c| {
            format!(
                "do what the refusal says; `vmgpu check` re-checks the host and `vmgpu status` shows what vmgpu holds (`vmgpu restore {}` frees it)",
                c.vm
            )
        },
        rank: 30,
        detect: Detect::Lines(&[
            from(Source::Hook, &["vmgpu:", "prepare begin:"]),
            any(&["hook script execution failed", "vmgpu:"]),
        ]),
    },
    Signature {
        id: "journal-left-over",
        what: "vmgpu still holds host changes for this VM",
        why: "a journal in /run/vmgpu means prepare ran and release has not (the VM runs, or the host or libvirtd died before release)",
        fix: fixes::restore,
        rank: 20,
        detect: Detect::Custom(journal_left_over),
    },
    Signature {
        id: "nvidia-code-43",
        what: "possible cause of a black screen or Code 43: an NVIDIA GPU with the hypervisor visible",
        why: "NVIDIA drivers older than R465 refuse to run in a VM they detect (Code 43); newer ones do not care",
        fix: |c| {
            format!(
                "with an old guest driver, hide the hypervisor: `vmgpu define {} --update --hide-hypervisor` (adds `<kvm><hidden state='on'/>` and a Hyper-V vendor_id); or update the guest driver",
                c.vm
            )
        },
        rank: 10,
        detect: Detect::Custom(nvidia_code_43),
    },
];
