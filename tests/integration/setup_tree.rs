//! A small host tree for `vmgpu setup` tests: os-release, `/proc`, CPUs, PCI GPUs laid out as the kernel does,
//! and (for apply tests) a busybox userland so `chroot <tree> update-grub` really runs a script.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// One PCI function: address, class, `vendor:device`, IOMMU group, boot_vga.
pub struct Function(
    pub &'static str,
    pub u32,
    pub &'static str,
    pub u32,
    pub bool,
);

/// The seed host's GPUs: RTX 3070 (boot display) and the GTX 980 Ti guest at 04:00.
pub const SEED_GPUS: &[Function] = &[
    Function("0000:0b:00.0", 0x030000, "10de:2484", 20, true),
    Function("0000:0b:00.1", 0x040300, "10de:228b", 20, false),
    Function("0000:04:00.0", 0x030000, "10de:17c8", 15, false),
    Function("0000:04:00.1", 0x040300, "10de:0fb0", 15, false),
];

/// A host tree in a temporary directory.
pub struct Tree {
    pub dir: tempfile::TempDir,
}

impl Tree {
    /// A tree with `os-release`, an AMD CPU, kernel `release` and the given PCI functions.
    pub fn new(os_release: &str, release: &str, functions: &[Function]) -> Self {
        let tree = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        tree.write("etc/os-release", os_release);
        tree.write("proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/sda1 quiet\n");
        tree.write(
            "proc/meminfo",
            "MemTotal: 32000000 kB\nMemAvailable: 30000000 kB\n",
        );
        tree.write("proc/sys/kernel/osrelease", &format!("{release}\n"));
        tree.write(
            "proc/cpuinfo",
            "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu svm\n",
        );
        tree.write("sys/devices/system/cpu/online", "0\n");
        tree.write(
            "sys/devices/system/cpu/cpu0/topology/physical_package_id",
            "0\n",
        );
        tree.write("sys/devices/system/cpu/cpu0/topology/core_id", "0\n");
        tree.write(
            "etc/group",
            "root:x:0:\nkvm:x:36:\nlibvirt:x:970:\nalice:x:1000:\n",
        );
        tree.write(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\n",
        );
        std::fs::create_dir_all(tree.path("sys/bus/pci/devices")).unwrap();
        for Function(addr, class, ids, group, boot) in functions {
            let dev = format!("sys/devices/pci0000:00/{addr}");
            std::fs::create_dir_all(tree.path(&dev)).unwrap();
            std::os::unix::fs::symlink(
                format!("../../../devices/pci0000:00/{addr}"),
                tree.path(&format!("sys/bus/pci/devices/{addr}")),
            )
            .unwrap();
            let (v, d) = ids.split_once(':').unwrap();
            tree.write(&format!("{dev}/class"), &format!("0x{class:06x}\n"));
            tree.write(&format!("{dev}/vendor"), &format!("0x{v}\n"));
            tree.write(&format!("{dev}/device"), &format!("0x{d}\n"));
            if class >> 8 == 0x0300 {
                tree.write(
                    &format!("{dev}/boot_vga"),
                    if *boot { "1\n" } else { "0\n" },
                );
            }
            std::fs::create_dir_all(tree.path(&format!("sys/kernel/iommu_groups/{group}/devices")))
                .unwrap();
            std::os::unix::fs::symlink(
                format!("../../../kernel/iommu_groups/{group}"),
                tree.path(&format!("{dev}/iommu_group")),
            )
            .unwrap();
        }
        tree
    }

    /// The seed host: openSUSE Tumbleweed, GRUB2 + dracut, kernel 6.12.
    pub fn seed() -> Self {
        let t = Self::new(
            "NAME=\"openSUSE Tumbleweed\"\nID=\"opensuse-tumbleweed\"\nID_LIKE=\"opensuse suse\"\n\
             PRETTY_NAME=\"openSUSE Tumbleweed\"\n",
            "6.12.8-1-default",
            SEED_GPUS,
        );
        t.write(
            "etc/default/grub",
            "GRUB_DISTRIBUTOR=\nGRUB_DEFAULT=saved\nGRUB_TIMEOUT=8\n\
             GRUB_CMDLINE_LINUX_DEFAULT=\"splash=silent mitigations=auto quiet security=selinux selinux=1\"\n\
             GRUB_CMDLINE_LINUX=\"\"\n",
        );
        t.write("etc/dracut.conf.d/.keep", "");
        t.write("boot/grub2/grub.cfg", "# generated\n");
        t
    }

    /// A Debian host (GRUB2 + initramfs-tools, kernel 6.1) with a busybox userland whose `update-grub` and
    /// `update-initramfs` are scripts that write `grub.cfg` and the "initrd" from the configuration, so
    /// `chroot` really runs them.
    pub fn debian_with_tools() -> Self {
        let t = Self::new(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n",
            "6.1.0-13-amd64",
            SEED_GPUS,
        );
        t.write(
            "etc/default/grub",
            "GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"\"\n",
        );
        t.write("etc/initramfs-tools/modules", "# List of modules\n");
        t.write(
            "etc/group",
            "root:x:0:\nkvm:x:36:alice\nlibvirt:x:970:alice\nalice:x:1000:\n",
        );
        t.write(
            "boot/grub/grub.cfg",
            "linux /vmlinuz root=/dev/sda1 quiet\n",
        );
        t.write("boot/initrd.img-6.1.0-13-amd64", "initrd without vfio\n");
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .iter()
            .map(Path::new)
            .find(|p| p.exists())
            .expect("busybox-static is installed (tests/install-deps.sh)");
        std::fs::create_dir_all(t.path("bin")).unwrap();
        std::fs::copy(busybox, t.path("bin/busybox")).unwrap();
        for applet in ["sh", "cat", "mkdir", "grep", "echo", "env"] {
            std::os::unix::fs::symlink("busybox", t.path(&format!("bin/{applet}"))).unwrap();
        }
        std::fs::create_dir_all(t.path("usr/bin")).unwrap();
        std::os::unix::fs::symlink("../../bin/busybox", t.path("usr/bin/env")).unwrap();
        t.script(
            "usr/sbin/update-grub",
            "#!/bin/sh\n. /etc/default/grub\nmkdir -p /boot/grub\n\
             echo \"linux /vmlinuz root=/dev/sda1 $GRUB_CMDLINE_LINUX $GRUB_CMDLINE_LINUX_DEFAULT\" > /boot/grub/grub.cfg\n",
        );
        t.script(
            "usr/sbin/update-initramfs",
            "#!/bin/sh\nfor f in /etc/initramfs-tools/modules /etc/modprobe.d/*.conf; do\n\
             [ -f \"$f\" ] && cat \"$f\"\ndone > /boot/initrd.img-6.1.0-13-amd64\nexit 0\n",
        );
        t
    }

    /// The real path of a tree path.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel.trim_start_matches('/'))
    }

    /// Writes a file (creating directories).
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Writes an executable script.
    pub fn script(&self, rel: &str, text: &str) {
        self.write(rel, text);
        std::fs::set_permissions(self.path(rel), std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Reads a file.
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    /// Every regular file under `etc/` and `boot/` with its bytes and mode, for before/after comparisons.
    pub fn snapshot(&self) -> Vec<(String, Vec<u8>, u32)> {
        let mut out = Vec::new();
        for top in ["etc", "boot"] {
            walk(&self.path(top), self.dir.path(), &mut out);
        }
        out.sort();
        out
    }
}

fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, Vec<u8>, u32)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            walk(&p, base, out);
        } else if meta.is_file() {
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            out.push((rel, std::fs::read(&p).unwrap(), meta.permissions().mode()));
        }
    }
}
