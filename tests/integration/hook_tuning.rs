//! Host tuning while the VM runs (`<vmgpu:tuning governor="performance" irq-affinity="yes"/>`) with the real
//! binary on the simulated host: the governor (or EPP) on the pinned CPUs, host IRQs off them and the GPU's
//! MSI vectors onto them; release, a crash after each step + restore, and two VMs in every stop order give
//! the host back exactly.
use crate::fakehost::{FakeHost, GPU, REFUSING_IRQS, Snapshot, assert_same, domain, irqs, stderr};

const PREPARE: [&str; 4] = ["gpu-vm", "prepare", "begin", "-"];
const RELEASE: [&str; 4] = ["gpu-vm", "release", "end", "destroyed"];
/// The GPU's MSI-X vector in these tests.
const VECTOR: u32 = 40;

fn tuned(xml: &str) -> String {
    let tuning = r#"<vmgpu:tuning governor="performance" irq-affinity="yes"/>"#;
    let out = xml.replace("</vmgpu:config>", &format!("{tuning}</vmgpu:config>"));
    assert_ne!(out, xml);
    out
}

fn affinity(host: &FakeHost, irq: u32) -> String {
    host.read(&format!("/proc/irq/{irq}/smp_affinity_list"))
}

fn governor(host: &FakeHost, cpu: u32, file: &str) -> String {
    host.read(&format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq/{file}"))
}

/// Where each fake-host IRQ must be while VMs pinned to `pinned` run.
fn assert_irqs(host: &FakeHost, pinned: &[u32], what: &str) {
    let pinned: vmgpu::host::CpuSet = pinned.iter().copied().collect();
    let online: vmgpu::host::CpuSet = (0..4).collect();
    for (irq, original) in irqs() {
        let original: vmgpu::host::CpuSet = original.parse().unwrap();
        let want = if REFUSING_IRQS.contains(&irq) {
            original
        } else {
            let kept = original.difference(&pinned);
            if kept.is_empty() {
                online.difference(&pinned)
            } else {
                kept
            }
        };
        assert_eq!(affinity(host, irq), want.to_string(), "{what}: IRQ {irq}");
    }
}

#[test]
fn test_tuning_sets_governor_moves_irqs_and_release_restores() {
    let host = FakeHost::new();
    host.cpufreq("acpi-cpufreq", "schedutil");
    host.msi_vector(GPU, VECTOR);
    let before = host.snapshot();
    let xml = tuned(&domain("gpu-vm.xml"));
    let out = host.hook(&PREPARE, &xml);
    assert!(out.status.success(), "{}", stderr(&out));
    // vCPUs on 2-3, the emulator on 0-1
    for (cpu, want) in [
        (0, "schedutil"),
        (1, "schedutil"),
        (2, "performance"),
        (3, "performance"),
    ] {
        assert_eq!(governor(&host, cpu, "scaling_governor"), want, "CPU {cpu}");
    }
    assert_irqs(&host, &[2, 3], "prepared");
    assert_eq!(
        affinity(&host, VECTOR),
        "2-3",
        "the GPU's vector on the pins"
    );
    let out = host.hook(&RELEASE, &xml);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&before, &host.snapshot(), "after release");
}

#[test]
fn test_intel_pstate_active_sets_energy_performance_preference() {
    let host = FakeHost::new();
    host.cpufreq("intel_pstate", "powersave");
    let before = host.snapshot();
    let xml = tuned(&domain("gpu-vm.xml"));
    assert!(host.hook(&PREPARE, &xml).status.success());
    let epp = "energy_performance_preference";
    assert_eq!(governor(&host, 2, epp), "performance");
    assert_eq!(governor(&host, 1, epp), "balance_performance");
    assert_eq!(governor(&host, 2, "scaling_governor"), "powersave");
    assert!(host.hook(&RELEASE, &xml).status.success());
    assert_same(&before, &host.snapshot(), "after release");
}

#[test]
fn test_cpus_without_cpufreq_are_skipped_with_one_info_line() {
    let host = FakeHost::new();
    let xml = tuned(&domain("gpu-vm.xml"));
    let out = host.vmgpu(
        &["-v", "hook", "gpu-vm", "prepare", "begin", "-"],
        &xml,
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.matches("have no cpufreq").count(), 1, "{err}");
    let status = host.vmgpu(&["status", "--json"], "", &[]);
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let steps = doc["vms"][0]["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["step"] != "performance-governor"));
    assert!(steps.iter().any(|s| s["step"] == "move-irqs"));
}

#[test]
fn test_crash_after_every_tuning_step_then_restore_gives_original_host() {
    let xml = tuned(&domain("gpu-vm.xml"));
    let new_host = || {
        let host = FakeHost::new();
        host.cpufreq("acpi-cpufreq", "schedutil");
        host.msi_vector(GPU, VECTOR);
        host
    };
    let host = new_host();
    assert!(host.hook(&PREPARE, &xml).status.success());
    let status = host.vmgpu(&["status", "--json"], "", &[]);
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let kinds: Vec<String> = doc["vms"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap().to_string())
        .collect();
    let first = kinds
        .iter()
        .position(|k| k == "performance-governor")
        .unwrap();
    let irqs = kinds.iter().position(|k| k == "move-irqs").unwrap();
    for step in [first + 1, irqs + 1, kinds.len()] {
        let host = new_host();
        let before = host.snapshot();
        let n = step.to_string();
        let out = host.vmgpu(
            &["hook", "gpu-vm", "prepare", "begin", "-"],
            &xml,
            &[("VMGPU_CRASH_AFTER_STEP", &n)],
        );
        assert_eq!(out.status.code(), None, "step {step}: {}", stderr(&out));
        let out = host.vmgpu(&["restore", "gpu-vm"], "", &[]);
        assert!(out.status.success(), "step {step}: {}", stderr(&out));
        assert_same(
            &before,
            &host.snapshot(),
            &format!("crash after step {step} ({}) + restore", kinds[step - 1]),
        );
    }
}

/// A VM without a GPU whose vCPU is pinned to `cpu` (the emulator on CPU 0).
fn small_vm(name: &str, cpu: u32) -> String {
    format!(
        r#"<domain type='kvm'>
  <name>{name}</name>
  <metadata>
    <vmgpu:config xmlns:vmgpu="https://vmgpu.dev/xmlns/config/1" version="1">
      <vmgpu:tuning governor="performance" irq-affinity="yes"/>
    </vmgpu:config>
  </metadata>
  <memory unit='KiB'>65536</memory>
  <vcpu placement='static'>1</vcpu>
  <cputune><vcpupin vcpu='0' cpuset='{cpu}'/><emulatorpin cpuset='0'/></cputune>
</domain>"#
    )
}

fn two_vms(cpus: [u32; 2], stop_first: usize) {
    let host = FakeHost::new();
    host.cpufreq("acpi-cpufreq", "schedutil");
    let before: Snapshot = host.snapshot();
    let vms = [("a", cpus[0]), ("b", cpus[1])];
    for (name, cpu) in vms {
        let out = host.hook(&[name, "prepare", "begin", "-"], &small_vm(name, cpu));
        assert!(out.status.success(), "{name}: {}", stderr(&out));
    }
    let what = format!("pins {cpus:?}, {} stops first", vms[stop_first].0);
    assert_irqs(&host, &cpus, &format!("{what}: both running"));
    let order = [stop_first, 1 - stop_first];
    let (name, _) = vms[order[0]];
    let out = host.hook(&[name, "release", "end", "destroyed"], &small_vm(name, 0));
    assert!(out.status.success(), "{name}: {}", stderr(&out));
    let (_, left_cpu) = vms[order[1]];
    assert_irqs(&host, &[left_cpu], &format!("{what}: one left"));
    for cpu in 1..4 {
        let want = if cpu == left_cpu {
            "performance"
        } else {
            "schedutil"
        };
        assert_eq!(
            governor(&host, cpu, "scaling_governor"),
            want,
            "{what}: CPU {cpu}"
        );
    }
    let (name, _) = vms[order[1]];
    let out = host.hook(&[name, "release", "end", "destroyed"], &small_vm(name, 0));
    assert!(out.status.success(), "{name}: {}", stderr(&out));
    assert_same(&before, &host.snapshot(), &format!("{what}: both stopped"));
}

#[test]
fn test_two_vms_share_the_tuning_in_every_stop_order() {
    for cpus in [[3, 2], [3, 3]] {
        for first in 0..2 {
            two_vms(cpus, first);
        }
    }
}

#[test]
fn test_vectors_the_guest_enables_later_move_when_another_vm_starts() {
    // The kernel creates a VFIO device's MSI vectors only when the guest driver enables MSI, after every
    // hook call of that VM's start; the next vmgpu VM to start or stop moves them onto their VM's pins.
    let host = FakeHost::new();
    let before = host.snapshot();
    let xml = tuned(&domain("gpu-vm.xml"));
    assert!(host.hook(&PREPARE, &xml).status.success());
    host.msi_vector(GPU, VECTOR);
    let other = small_vm("other", 1);
    let out = host.hook(&["other", "prepare", "begin", "-"], &other);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        affinity(&host, VECTOR),
        "2-3",
        "gpu-vm's vector on its pins"
    );
    assert_irqs(&host, &[1, 2, 3], "both running");
    let out = host.hook(&["other", "release", "end", "destroyed"], &other);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(affinity(&host, VECTOR), "2-3", "still gpu-vm's");
    assert_irqs(&host, &[2, 3], "gpu-vm left");
    // QEMU closes the device at stop: the kernel frees the vectors before `release end`
    std::fs::remove_dir_all(host.path(&format!("/proc/irq/{VECTOR}"))).unwrap();
    std::fs::remove_dir_all(host.path(&format!("/sys/bus/pci/devices/{GPU}/msi_irqs"))).unwrap();
    assert!(host.hook(&RELEASE, &xml).status.success());
    assert_same(&before, &host.snapshot(), "after both");
}
