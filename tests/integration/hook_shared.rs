//! Several vmgpu VMs at once on the simulated host (4 CPUs, 2 MiB pool): CPU isolation and hugepage pools are
//! shared host state. The host keeps every online CPU except the union of the running VMs' vCPU pins, the
//! pool holds the sum of their pages, a stop takes away only that VM's share, and after the last stop the
//! host is exactly as before. Every start and stop order of two and three VMs, with cgroup v2 and systemd.
use crate::fakehost::{FakeHost, Snapshot, assert_same, domain, stderr};

const POOL: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
const UNITS: [&str; 3] = ["system.slice", "user.slice", "init.scope"];

/// A VM without a GPU: vCPU pinned to `cpu`, the emulator on CPU 0, `pages` 2 MiB pages.
struct Vm {
    name: &'static str,
    cpu: u32,
    pages: u64,
}

const VMS: [Vm; 3] = [
    Vm {
        name: "a",
        cpu: 3,
        pages: 16,
    },
    Vm {
        name: "b",
        cpu: 2,
        pages: 8,
    },
    Vm {
        name: "c",
        cpu: 1,
        pages: 4,
    },
];

fn xml(vm: &Vm) -> String {
    format!(
        r#"<domain type='kvm'>
  <name>{name}</name>
  <metadata>
    <vmgpu:config xmlns:vmgpu="https://vmgpu.dev/xmlns/config/1" version="1">
      <vmgpu:isolate-cpus enabled="yes"/>
      <vmgpu:hugepages enabled="yes"/>
    </vmgpu:config>
  </metadata>
  <memory unit='KiB'>{kib}</memory>
  <memoryBacking><hugepages><page size='2048' unit='KiB'/></hugepages></memoryBacking>
  <vcpu placement='static'>1</vcpu>
  <cputune><vcpupin vcpu='0' cpuset='{cpu}'/><emulatorpin cpuset='0'/></cputune>
</domain>"#,
        name = vm.name,
        kib = vm.pages * 2048,
        cpu = vm.cpu
    )
}

fn start(host: &FakeHost, vm: &Vm) {
    let out = host.hook(&[vm.name, "prepare", "begin", "-"], &xml(vm));
    assert!(
        out.status.success(),
        "prepare {}: {}",
        vm.name,
        stderr(&out)
    );
}

fn stop(host: &FakeHost, vm: &Vm) {
    for (op, sub, extra) in [("stopped", "end", "-"), ("release", "end", "destroyed")] {
        let out = host.hook(&[vm.name, op, sub, extra], &xml(vm));
        assert!(out.status.success(), "{op} {}: {}", vm.name, stderr(&out));
    }
}

fn systemd_host() -> FakeHost {
    let host = FakeHost::new();
    std::fs::create_dir_all(host.path("/run/systemd/system")).unwrap();
    for unit in UNITS {
        host.file(&format!("/sys/fs/cgroup/{unit}/cpuset.cpus"), "\n");
    }
    host
}

/// What the host must look like while `running` VMs run.
fn assert_shared(host: &FakeHost, running: &[&Vm], before: &Snapshot, what: &str) {
    if running.is_empty() {
        assert_same(before, &host.snapshot(), what);
        return;
    }
    let keep: vmgpu::host::CpuSet = (0..4)
        .filter(|c| !running.iter().any(|vm| vm.cpu == *c))
        .collect();
    for unit in UNITS {
        assert_eq!(
            host.read(&format!("/sys/fs/cgroup/{unit}/cpuset.cpus")),
            keep.to_string(),
            "{what}: {unit}"
        );
    }
    let pages: u64 = running.iter().map(|vm| vm.pages).sum();
    assert_eq!(host.read(POOL), pages.to_string(), "{what}: pool");
}

/// Every permutation of `0..n`.
fn orders(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for rest in orders(n - 1) {
        for at in 0..=rest.len() {
            let mut order = rest.clone();
            order.insert(at, n - 1);
            out.push(order);
        }
    }
    out
}

fn every_stop_order(count: usize, new_host: fn() -> FakeHost) {
    for order in orders(count) {
        let host = new_host();
        let before = host.snapshot();
        let mut running: Vec<&Vm> = Vec::new();
        for vm in &VMS[..count] {
            start(&host, vm);
            running.push(vm);
            assert_shared(
                &host,
                &running,
                &before,
                &format!("after start {}", vm.name),
            );
        }
        for &index in &order {
            let vm = &VMS[index];
            stop(&host, vm);
            running.retain(|r| r.name != vm.name);
            let names: Vec<&str> = order.iter().map(|i| VMS[*i].name).collect();
            assert_shared(
                &host,
                &running,
                &before,
                &format!("stop order {names:?}, after stopping {}", vm.name),
            );
        }
    }
}

#[test]
fn test_two_vms_every_stop_order_cgroup() {
    every_stop_order(2, FakeHost::new);
}

#[test]
fn test_three_vms_every_stop_order_cgroup() {
    every_stop_order(3, FakeHost::new);
}

#[test]
fn test_two_vms_every_stop_order_systemd() {
    every_stop_order(2, systemd_host);
}

#[test]
fn test_three_vms_every_stop_order_systemd() {
    every_stop_order(3, systemd_host);
}

#[test]
fn test_boot_pool_is_used_first_and_kept() {
    // 20 pages reserved at boot and free: the VMs use them before the pool grows, and they stay after.
    let host = FakeHost::new();
    host.file(POOL, "20\n");
    host.file(
        "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
        "20\n",
    );
    let before = host.snapshot();
    start(&host, &VMS[0]); // 16 pages: fits in the free 20
    assert_eq!(host.read(POOL), "20");
    start(&host, &VMS[1]); // 16 + 8 = 24: 4 more
    assert_eq!(host.read(POOL), "24");
    stop(&host, &VMS[0]);
    assert_eq!(host.read(POOL), "20");
    stop(&host, &VMS[1]);
    assert_same(&before, &host.snapshot(), "after both");
}

#[test]
fn test_vms_taking_every_cpu_together_are_refused_naming_the_other() {
    let host = FakeHost::new();
    start(&host, &VMS[0]);
    let greedy = xml(&VMS[1]).replace("cpuset='2'/><emulatorpin cpuset='0'/>", "cpuset='0-2'/>");
    let running = host.snapshot();
    let out = host.hook(&["b", "prepare", "begin", "-"], &greedy);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("a (3)") && err.contains("none left"), "{err}");
    assert_same(&running, &host.snapshot(), "after the refusal");
}

#[test]
fn test_second_prepare_over_stale_journal_restores_first() {
    // a start after a crash (or a double start): the old journal is undone first, then the plan sees the
    // original host, so one release leaves nothing behind.
    let host = FakeHost::new();
    let before = host.snapshot();
    let vm = domain("gpu-vm.xml");
    for _ in 0..2 {
        let out = host.hook(&["gpu-vm", "prepare", "begin", "-"], &vm);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(host.read(POOL), "32");
    let journal = host.read("/run/vmgpu/gpu-vm.json");
    assert!(
        journal.contains("\"original_driver\": \"bochs-drm\""),
        "{journal}"
    );
    let out = host.hook(&["gpu-vm", "release", "end", "destroyed"], &vm);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&before, &host.snapshot(), "after release");
}

#[test]
fn test_hugepages_beyond_the_host_are_refused_at_plan_time() {
    let host = FakeHost::new();
    let before = host.snapshot();
    let huge = domain("gpu-vm.xml").replace(
        "<memory unit='KiB'>65536</memory>",
        "<memory unit='TiB'>1</memory>",
    );
    let out = host.hook(&["gpu-vm", "prepare", "begin", "-"], &huge);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("can give at most") && err.contains("lower <memory>"),
        "{err}"
    );
    assert_same(&before, &host.snapshot(), "after the refusal");
}

#[test]
fn test_shared_pool_beyond_the_host_is_refused() {
    // each VM alone fits (MemTotal 2000 MiB minus 512 MiB for the host); together they do not
    let host = FakeHost::new();
    let big = |name: &'static str, cpu: u32| Vm {
        name,
        cpu,
        pages: 400,
    };
    start(&host, &big("a", 3));
    let running = host.snapshot();
    let out = host.hook(&["b", "prepare", "begin", "-"], &xml(&big("b", 2)));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("other running VMs"),
        "{}",
        stderr(&out)
    );
    assert_same(&running, &host.snapshot(), "after the refusal");
}
