//! The hook's whole state machine with the real binary on a simulated host tree (`--root`): prepare binds
//! the GPU's IOMMU group to vfio-pci, restricts the host cgroups, allocates hugepages, creates the shm file;
//! release puts everything back; refusals change nothing.
use std::os::unix::fs::{MetadataExt, symlink};

use crate::fakehost::{AUDIO, FakeHost, GPU, assert_same, domain, stderr};

const PREPARE: [&str; 4] = ["gpu-vm", "prepare", "begin", "-"];
const RELEASE: [&str; 4] = ["gpu-vm", "release", "end", "destroyed"];

#[test]
fn test_prepare_binds_group_isolates_cpus_allocates_pages_creates_shm() {
    let host = FakeHost::new();
    let out = host.hook(&PREPARE, &domain("gpu-vm.xml"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(host.driver_of(GPU).as_deref(), Some("vfio-pci"));
    assert_eq!(host.driver_of(AUDIO).as_deref(), Some("vfio-pci"));
    for unit in ["system.slice", "user.slice", "init.scope"] {
        assert_eq!(
            host.read(&format!("/sys/fs/cgroup/{unit}/cpuset.cpus")),
            "0-1"
        );
    }
    assert_eq!(
        host.read("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"),
        "32"
    );
    let shm = std::fs::metadata(host.path("/dev/shm/looking-glass")).unwrap();
    assert_eq!((shm.len(), shm.mode() & 0o777), (32 << 20, 0o660));
    if nix::unistd::geteuid().is_root() {
        assert_eq!((shm.uid(), shm.gid()), (1000, 992));
    }
}

#[test]
fn test_release_after_prepare_restores_tree_exactly() {
    let host = FakeHost::new();
    let before = host.snapshot();
    assert!(host.hook(&PREPARE, &domain("gpu-vm.xml")).status.success());
    let out = host.hook(&RELEASE, &domain("gpu-vm.xml"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&before, &host.snapshot(), "after");
    assert!(!host.path("/run/vmgpu/gpu-vm.json").exists());
}

#[test]
fn test_stopped_changes_nothing_release_restores() {
    // libvirt runs `stopped end` before it reattaches and resets its managed hostdevs: vmgpu must still hold
    // everything then, and give it back only at `release end` (docs/hook.md).
    let host = FakeHost::new();
    let before = host.snapshot();
    assert!(host.hook(&PREPARE, &domain("gpu-vm.xml")).status.success());
    let prepared = host.snapshot();
    let stopped = host.hook(&["gpu-vm", "stopped", "end", "-"], &domain("gpu-vm.xml"));
    assert!(
        stopped.status.success() && stopped.stderr.is_empty(),
        "{}",
        stderr(&stopped)
    );
    assert_same(&prepared, &host.snapshot(), "after stopped end");
    assert_eq!(host.driver_of(GPU).as_deref(), Some("vfio-pci"));
    let release = host.hook(
        &["gpu-vm", "release", "end", "from snapshot"],
        &domain("gpu-vm.xml"),
    );
    assert!(release.status.success(), "{}", stderr(&release));
    assert_same(&before, &host.snapshot(), "after release end");
}

#[test]
fn test_release_without_journal_is_ok_and_silent() {
    let host = FakeHost::new();
    let before = host.snapshot();
    let out = host.hook(&RELEASE, &domain("gpu-vm.xml"));
    assert!(out.status.success());
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        stderr(&out)
    );
    assert_same(&before, &host.snapshot(), "after");
}

#[test]
fn test_release_after_libvirt_reattached_is_success() {
    let host = FakeHost::new();
    let before = host.snapshot();
    assert!(host.hook(&PREPARE, &domain("gpu-vm.xml")).status.success());
    // libvirt's reattach (or a user) already gave the GPU back to bochs-drm
    let gpu = host.path(&format!("/sys/bus/pci/devices/{GPU}"));
    std::fs::remove_file(gpu.join("driver")).unwrap();
    std::fs::remove_file(host.path(&format!("/sys/bus/pci/drivers/vfio-pci/{GPU}"))).unwrap();
    symlink(
        host.path("/sys/bus/pci/drivers/bochs-drm"),
        gpu.join("driver"),
    )
    .unwrap();
    symlink(
        &gpu,
        host.path(&format!("/sys/bus/pci/drivers/bochs-drm/{GPU}")),
    )
    .unwrap();
    let out = host.hook(&RELEASE, &domain("gpu-vm.xml"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&before, &host.snapshot(), "after");
}

#[test]
fn test_foreign_domain_changes_nothing_prints_nothing() {
    let host = FakeHost::new();
    let before = host.snapshot();
    let out = host.hook(
        &["foreign", "prepare", "begin", "-"],
        &domain("foreign.xml"),
    );
    assert!(out.status.success());
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    assert_same(&before, &host.snapshot(), "after");
}

#[test]
fn test_noop_ops_change_nothing_print_nothing() {
    let host = FakeHost::new();
    let before = host.snapshot();
    for op in ["reconnect", "attach", "migrate", "restore", "start"] {
        let out = host.hook(&["gpu-vm", op, "begin", "-"], &domain("gpu-vm.xml"));
        assert!(out.status.success(), "{op}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{op} wrote to stdout");
    }
    assert_same(&before, &host.snapshot(), "after");
}

#[test]
fn test_second_vm_for_held_gpu_is_refused_naming_both() {
    let host = FakeHost::new();
    assert!(host.hook(&PREPARE, &domain("gpu-vm.xml")).status.success());
    let other = domain("gpu-vm.xml").replace("<name>gpu-vm</name>", "<name>other-vm</name>");
    let before = host.snapshot();
    let out = host.hook(&["other-vm", "prepare", "begin", "-"], &other);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("\"gpu-vm\"") && err.contains("\"other-vm\""),
        "{err}"
    );
    assert_same(&before, &host.snapshot(), "after");
}

#[test]
fn test_audio_held_open_is_refused_naming_holder() {
    let host = FakeHost::new();
    let fd = host.path("/proc/4242/fd");
    std::fs::create_dir_all(&fd).unwrap();
    symlink("/dev/snd/controlC0", fd.join("9")).unwrap();
    host.file("/proc/4242/comm", "pipewire\n");
    let before = host.snapshot();
    let out = host.hook(&PREPARE, &domain("gpu-vm.xml"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("pid 4242 (pipewire)"),
        "{}",
        stderr(&out)
    );
    assert_same(&before, &host.snapshot(), "after");
}

#[test]
fn test_blocked_unbind_times_out_and_rolls_back() {
    let host = FakeHost::new();
    host.file(&format!("/sys/bus/pci/devices/{GPU}/sim_busy"), "");
    let before = host.snapshot();
    let out = host.hook(&PREPARE, &domain("gpu-vm.xml"));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("did not finish") && err.contains("undone"),
        "{err}"
    );
    assert_same(&before, &host.snapshot(), "after");
}

#[test]
fn test_hugepages_short_says_got_n_of_m_and_rolls_back() {
    let host = FakeHost::new();
    host.file("/sys/kernel/mm/hugepages/hugepages-2048kB/sim_max", "10\n");
    let before = host.snapshot();
    let out = host.hook(&PREPARE, &domain("gpu-vm.xml"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("got 10 of 32 pages"),
        "{}",
        stderr(&out)
    );
    assert_same(&before, &host.snapshot(), "after");
}

#[test]
fn test_one_gib_pages_short_points_at_boot_parameter() {
    let host = FakeHost::new();
    // 16 GB, so that 2 GiB is within what the pools can reach
    host.file(
        "/proc/meminfo",
        "MemTotal:  16384000 kB\nHugepagesize:       2048 kB\n",
    );
    let xml = domain("gpu-vm.xml")
        .replace(
            "<page size='2048' unit='KiB'/>",
            "<page size='1' unit='G'/>",
        )
        .replace(
            "<memory unit='KiB'>65536</memory>",
            "<memory unit='GiB'>2</memory>",
        );
    let out = host.hook(&PREPARE, &xml);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("got 0 of 2 pages") && err.contains("hugepagesz=1G"),
        "{err}"
    );
}

#[test]
fn test_no_iommu_is_refused_clearly() {
    let host = FakeHost::new();
    for dev in [GPU, AUDIO] {
        std::fs::remove_file(host.path(&format!("/sys/bus/pci/devices/{dev}/iommu_group")))
            .unwrap();
    }
    let before = host.snapshot();
    let out = host.hook(&PREPARE, &domain("gpu-vm.xml"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("IOMMU is off"), "{}", stderr(&out));
    assert_same(&before, &host.snapshot(), "after");
}

#[test]
fn test_prepare_loads_vfio_pci_when_missing() {
    let host = FakeHost::new();
    std::fs::remove_dir_all(host.path("/sys/bus/pci/drivers/vfio-pci")).unwrap();
    std::fs::remove_dir_all(host.path("/sys/module/vfio_pci")).unwrap();
    let out = host.hook(&PREPARE, &domain("gpu-vm.xml"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(host.driver_of(GPU).as_deref(), Some("vfio-pci"));
}

#[test]
fn test_systemd_host_restricts_units_with_set_property() {
    let host = FakeHost::new();
    std::fs::create_dir_all(host.path("/run/systemd/system")).unwrap();
    for unit in ["system.slice", "user.slice", "init.scope"] {
        host.file(&format!("/sys/fs/cgroup/{unit}/cpuset.cpus"), "\n");
    }
    let before = host.snapshot();
    assert!(host.hook(&PREPARE, &domain("gpu-vm.xml")).status.success());
    assert_eq!(host.read("/sys/fs/cgroup/user.slice/cpuset.cpus"), "0-1");
    assert!(host.hook(&RELEASE, &domain("gpu-vm.xml")).status.success());
    assert_same(&before, &host.snapshot(), "after");
}

#[test]
fn test_status_json_lists_vm_holds_and_steps() {
    let host = FakeHost::new();
    assert!(host.hook(&PREPARE, &domain("gpu-vm.xml")).status.success());
    let out = host.vmgpu(&["status", "--json"], "", &[]);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let vm = &doc["vms"][0];
    assert_eq!(vm["vm"], "gpu-vm");
    assert_eq!(vm["phase"], "prepared");
    assert_eq!(vm["holds"], serde_json::json!([AUDIO, GPU]));
    // two functions to vfio-pci, the CPU share, the hugepage share, the shm file
    assert_eq!(vm["steps"].as_array().unwrap().len(), 5);
}

#[test]
fn test_single_gpu_mode_stops_dm_unbinds_consoles_unloads_driver_and_restores() {
    let host = FakeHost::new();
    // an amdgpu card as the only GPU, a running display manager, a bound vtconsole and efi framebuffer
    std::fs::remove_file(host.path(&format!("/sys/bus/pci/devices/{GPU}/driver"))).unwrap();
    std::fs::remove_file(host.path(&format!("/sys/bus/pci/drivers/bochs-drm/{GPU}"))).unwrap();
    host.file(
        &format!("/sys/bus/pci/devices/{GPU}/sim_native_driver"),
        "amdgpu\n",
    );
    host.driver("amdgpu");
    std::fs::create_dir_all(host.path("/sys/module/amdgpu")).unwrap();
    let gpu_dir = host.path(&format!("/sys/bus/pci/devices/{GPU}"));
    symlink(
        host.path("/sys/bus/pci/drivers/amdgpu"),
        gpu_dir.join("driver"),
    )
    .unwrap();
    symlink(
        &gpu_dir,
        host.path(&format!("/sys/bus/pci/drivers/amdgpu/{GPU}")),
    )
    .unwrap();
    std::fs::create_dir_all(host.path("/run/systemd/system")).unwrap();
    std::fs::create_dir_all(host.path("/etc/systemd/system")).unwrap();
    symlink(
        "/lib/systemd/system/gdm.service",
        host.path("/etc/systemd/system/display-manager.service"),
    )
    .unwrap();
    host.file(
        "/sys/fs/cgroup/system.slice/gdm.service/cgroup.procs",
        "812\n",
    );
    for unit in ["system.slice", "user.slice", "init.scope"] {
        host.file(&format!("/sys/fs/cgroup/{unit}/cpuset.cpus"), "\n");
    }
    host.file("/sys/class/vtconsole/vtcon1/bind", "1\n");
    let fb = host.path("/sys/bus/platform/devices/efi-framebuffer.0");
    std::fs::create_dir_all(&fb).unwrap();
    let fb_driver = host.path("/sys/bus/platform/drivers/efi-framebuffer");
    std::fs::create_dir_all(&fb_driver).unwrap();
    host.file("/sys/bus/platform/drivers/efi-framebuffer/bind", "");
    host.file("/sys/bus/platform/drivers/efi-framebuffer/unbind", "");
    symlink(&fb_driver, fb.join("driver")).unwrap();
    symlink(&fb, fb_driver.join("efi-framebuffer.0")).unwrap();
    let xml =
        domain("gpu-vm.xml").replace("single-gpu enabled=\"no\"", "single-gpu enabled=\"yes\"");
    let before = host.snapshot();

    let out = host.hook(&PREPARE, &xml);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(host.read("/run/vmgpu-sim/units/gdm.service"), "inactive");
    assert_eq!(host.read("/sys/class/vtconsole/vtcon1/bind"), "0");
    assert!(!fb.join("driver").exists());
    assert!(!host.path("/sys/module/amdgpu").exists());
    assert_eq!(host.driver_of(GPU).as_deref(), Some("vfio-pci"));

    let out = host.hook(&RELEASE, &xml);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(host.read("/run/vmgpu-sim/units/gdm.service"), "active");
    assert_same(&before, &host.snapshot(), "after release");
}

#[test]
fn test_started_without_user_session_warns_and_succeeds() {
    let host = FakeHost::new();
    let xml = domain("gpu-vm.xml").replace(
        "<vmgpu:viewer launch=\"no\"/>",
        "<vmgpu:viewer launch=\"yes\" user=\"alice\"/>",
    );
    let before = host.snapshot();
    let out = host.hook(&["gpu-vm", "started", "begin", "-"], &xml);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no graphical session"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
    assert_same(&before, &host.snapshot(), "after started");
}

/// gpu-vm.xml with the identities `vmgpu define` records for the fake host's card.
fn with_identities(xml: &str) -> String {
    xml.replace(
        "<vmgpu:gpu address=\"0000:01:00.0\"/>",
        "<vmgpu:gpu address=\"0000:01:00.0\">\n\
         <vmgpu:function address=\"0000:01:00.0\" id=\"1234:1111\" subsystem=\"none\" class=\"0x030000\"/>\n\
         <vmgpu:function address=\"0000:01:00.1\" id=\"8086:293e\" subsystem=\"none\" class=\"0x040300\"/>\n\
         </vmgpu:gpu>",
    )
}

#[test]
fn test_recorded_identity_matching_prepares_silently() {
    let host = FakeHost::new();
    let out = host.hook(&PREPARE, &with_identities(&domain("gpu-vm.xml")));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("identity"), "{}", stderr(&out));
    assert_eq!(host.driver_of(GPU).as_deref(), Some("vfio-pci"));
}

#[test]
fn test_other_device_at_recorded_address_is_refused_before_any_change() {
    // an NVMe controller where the GPU's audio function was (renumbered buses after a firmware update)
    let host = FakeHost::new();
    let dir = format!("/sys/bus/pci/devices/{AUDIO}");
    host.file(&format!("{dir}/class"), "0x010802\n");
    host.file(&format!("{dir}/vendor"), "0x144d\n");
    host.file(&format!("{dir}/device"), "0xa808\n");
    let before = host.snapshot();
    let out = host.hook(&PREPARE, &with_identities(&domain("gpu-vm.xml")));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("0000:01:00.1 now holds")
            && err.contains("[144d:a808]")
            && err.contains("[8086:293e]")
            && err.contains("vmgpu define gpu-vm --update --gpu ADDR"),
        "{err}"
    );
    assert_same(&before, &host.snapshot(), "after the refusal");
    assert!(!host.path("/run/vmgpu/gpu-vm.json").exists());
}

#[test]
fn test_other_subsystem_at_recorded_address_is_refused() {
    // the same chip on another vendor's board is another card
    let host = FakeHost::new();
    host.file(
        &format!("/sys/bus/pci/devices/{GPU}/subsystem_vendor"),
        "0x1af4\n",
    );
    host.file(
        &format!("/sys/bus/pci/devices/{GPU}/subsystem_device"),
        "0x1100\n",
    );
    let out = host.hook(&PREPARE, &with_identities(&domain("gpu-vm.xml")));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("subsystem 1af4:1100"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn test_metadata_without_identity_prepares_with_a_warning() {
    let host = FakeHost::new();
    let out = host.hook(&PREPARE, &domain("gpu-vm.xml"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("records no device identity"),
        "{}",
        stderr(&out)
    );
}

/// An efi framebuffer bound on the fake host (the firmware's console on the boot VGA).
fn efi_framebuffer(host: &FakeHost) -> std::path::PathBuf {
    let fb = host.path("/sys/bus/platform/devices/efi-framebuffer.0");
    std::fs::create_dir_all(&fb).unwrap();
    let fb_driver = host.path("/sys/bus/platform/drivers/efi-framebuffer");
    std::fs::create_dir_all(&fb_driver).unwrap();
    host.file("/sys/bus/platform/drivers/efi-framebuffer/bind", "");
    host.file("/sys/bus/platform/drivers/efi-framebuffer/unbind", "");
    symlink(&fb_driver, fb.join("driver")).unwrap();
    symlink(&fb, fb_driver.join("efi-framebuffer.0")).unwrap();
    fb
}

#[test]
fn test_boot_vga_the_host_does_not_display_on_releases_the_firmware_framebuffer() {
    // a headless host: the guest's card is the boot VGA, its output dark; no single-GPU mode
    let host = FakeHost::new();
    host.file(&format!("/sys/bus/pci/devices/{GPU}/boot_vga"), "1\n");
    host.file(
        &format!("/sys/bus/pci/devices/{GPU}/drm/card0/card0-Virtual-1/status"),
        "disconnected\n",
    );
    host.file(
        &format!("/sys/bus/pci/devices/{GPU}/drm/card0/card0-Virtual-1/enabled"),
        "disabled\n",
    );
    let fb = efi_framebuffer(&host);
    let before = host.snapshot();
    let out = host.hook(&PREPARE, &domain("gpu-vm.xml"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!fb.join("driver").exists(), "efi framebuffer still bound");
    assert_eq!(host.driver_of(GPU).as_deref(), Some("vfio-pci"));
    let out = host.hook(&RELEASE, &domain("gpu-vm.xml"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&before, &host.snapshot(), "after release");
}

#[test]
fn test_boot_vga_the_host_displays_on_is_refused_without_single_gpu() {
    let host = FakeHost::new();
    host.file(&format!("/sys/bus/pci/devices/{GPU}/boot_vga"), "1\n");
    host.file(
        &format!("/sys/bus/pci/devices/{GPU}/drm/card0/card0-Virtual-1/status"),
        "connected\n",
    );
    host.file(
        &format!("/sys/bus/pci/devices/{GPU}/drm/card0/card0-Virtual-1/enabled"),
        "enabled\n",
    );
    let fb = efi_framebuffer(&host);
    let before = host.snapshot();
    let out = host.hook(&PREPARE, &domain("gpu-vm.xml"));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("0000:01:00.0 is the host's display GPU (its output card0-Virtual-1 is lit)")
            && err.contains("single-GPU mode"),
        "{err}"
    );
    assert!(fb.join("driver").exists());
    assert_same(&before, &host.snapshot(), "after the refusal");
}

#[test]
fn test_lit_output_of_a_card_that_is_not_boot_vga_is_not_refused() {
    // a second card with a monitor on it: judged as before (only a process holding its nodes stops the hook)
    let host = FakeHost::new();
    host.file(&format!("/sys/bus/pci/devices/{GPU}/boot_vga"), "0\n");
    host.file(
        &format!("/sys/bus/pci/devices/{GPU}/drm/card0/card0-Virtual-1/status"),
        "connected\n",
    );
    host.file(
        &format!("/sys/bus/pci/devices/{GPU}/drm/card0/card0-Virtual-1/enabled"),
        "enabled\n",
    );
    let out = host.hook(&PREPARE, &domain("gpu-vm.xml"));
    assert!(out.status.success(), "{}", stderr(&out));
}
