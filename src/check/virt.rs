//! CPU virtualization and KVM: the vmx/svm flag, `/dev/kvm` (present, a character device, usable by
//! libvirt's QEMU user), kvm `ignore_msrs` (the seed guide sets it for Windows guests), and the device nodes
//! `virt-host-validate` checks besides: `/dev/net/tun` (FAIL) and `/dev/vhost-net` (WARN).
use super::{Context, Finding};
use crate::host::CpuVendor;
use crate::host::root::FileKind;

/// Runs the CPU and KVM checks.
pub(crate) fn check(ctx: &Context) -> Vec<Finding> {
    vec![
        flags(ctx),
        dev_kvm(ctx),
        ignore_msrs(ctx),
        tun(ctx),
        vhost_net(ctx),
    ]
}

fn kvm_module(vendor: CpuVendor) -> &'static str {
    match vendor {
        CpuVendor::Intel => "kvm_intel",
        _ => "kvm_amd",
    }
}

fn flags(ctx: &Context) -> Finding {
    let cpu = &ctx.host.cpu;
    const ID: &str = "cpu.virtualization";
    match (cpu.vmx, cpu.svm) {
        (true, _) => Finding::pass(ID, "Intel VT-x (vmx) is available"),
        (_, true) => Finding::pass(ID, "AMD-V (svm) is available"),
        _ if cpu.hypervisor => Finding::fail(
            ID,
            "no vmx/svm flag in /proc/cpuinfo: this host is itself a VM without nested virtualization",
            "enable nested virtualization for this VM on its hypervisor (or run vmgpu on the physical host)",
        ),
        _ => Finding::fail(
            ID,
            "no vmx/svm flag in /proc/cpuinfo: virtualization is off in the firmware setup",
            match cpu.vendor {
                CpuVendor::Intel => {
                    "enable Intel Virtualization Technology (VT-x) in the firmware setup"
                }
                _ => "enable SVM Mode (AMD-V) in the firmware setup",
            },
        ),
    }
}

fn dev_kvm(ctx: &Context) -> Finding {
    const ID: &str = "kvm.device";
    let module = kvm_module(ctx.host.cpu.vendor);
    let Some(kvm) = &ctx.host.virt.kvm else {
        return Finding::fail(
            ID,
            "/dev/kvm does not exist: the kvm module is not loaded",
            format!("modprobe {module}"),
        );
    };
    let st = kvm.stat;
    if st.kind != FileKind::CharDevice {
        return Finding::fail(
            ID,
            "/dev/kvm is not a character device",
            format!("rm /dev/kvm && modprobe -r {module} && modprobe {module}"),
        );
    }
    let group = kvm.group.as_deref().unwrap_or("?");
    let owner = kvm.owner.as_deref().unwrap_or("?");
    let desc = format!("/dev/kvm is {owner}:{group} {:04o}", st.mode);
    if st.mode & 0o006 == 0o006 || (st.mode & 0o060 == 0o060 && group == "kvm") {
        Finding::pass(ID, desc)
    } else {
        Finding::warn(
            ID,
            format!("{desc}: libvirt's QEMU user (group kvm) cannot open it"),
            "chown root:kvm /dev/kvm && chmod 0660 /dev/kvm (udev's 50-udev-default.rules sets this at boot)",
        )
    }
}

fn ignore_msrs(ctx: &Context) -> Finding {
    const ID: &str = "kvm.ignore_msrs";
    let Some(value) = ctx.host.kernel.module_param("kvm", "ignore_msrs") else {
        return Finding::skip(ID, "the kvm module is not loaded");
    };
    if value == "Y" || value == "1" {
        Finding::pass(ID, "kvm ignore_msrs is on")
    } else {
        Finding::warn(
            ID,
            "kvm ignore_msrs is off: Windows guests can crash on MSRs KVM does not emulate",
            "echo 'options kvm ignore_msrs=1 report_ignored_msrs=0' > /etc/modprobe.d/kvm.conf; \
             echo 1 > /sys/module/kvm/parameters/ignore_msrs",
        )
    }
}

fn tun(ctx: &Context) -> Finding {
    const ID: &str = "kvm.tun";
    match &ctx.host.virt.tun {
        Some(n) if n.stat.kind == FileKind::CharDevice => {
            Finding::pass(ID, "/dev/net/tun exists (guest networking)")
        }
        _ => Finding::fail(
            ID,
            "/dev/net/tun is missing: libvirt cannot create the guest's network device",
            "modprobe tun (and add `tun` to /etc/modules-load.d/tun.conf)",
        ),
    }
}

fn vhost_net(ctx: &Context) -> Finding {
    const ID: &str = "kvm.vhost_net";
    match &ctx.host.virt.vhost_net {
        Some(n) if n.stat.kind == FileKind::CharDevice => {
            Finding::pass(ID, "/dev/vhost-net exists (in-kernel virtio-net)")
        }
        _ => Finding::warn(
            ID,
            "/dev/vhost-net is missing: guest networking runs in QEMU's userspace (slower)",
            "modprobe vhost_net (and add `vhost_net` to /etc/modules-load.d/vhost-net.conf)",
        ),
    }
}
