#!/usr/bin/env bash
# Real-kernel test of the libvirt hook: the real static vmgpu binary runs as the qemu
# hook inside a QEMU q35 guest with the Debian kernel, a real intel-iommu and a two-function "GPU" behind a root
# port. Boot 1 (vIOMMU): foreign domain, prepare/release with every assertion, second VM refused, busy audio
# refused, stopped-end vs release-end, a stale journal, 1 TiB of hugepages, device identity (issue 9: 1, 10, 11, 15),
# crash after every journaled step + `vmgpu restore`, host tuning (the performance governor on the pinned CPUs
# and IRQs off them, both put back at release and by `vmgpu restore` after a crash at each step). Boot 1 also
# gives the guest a real cpufreq driver: QEMU gets an SSDT with ACPI P-states, acpi-cpufreq drives every vCPU
# (tests/vm/lib.sh vm_cpufreq_ssdt, VM_CPUFREQ). Boot 2 (no vIOMMU): prepare fails, nothing changes. Boot 3
# (the console lit on the GPU): the boot VGA is the host's display, prepare refused (issue 9 item 4).
# Scenario details: tests/vm/guest/hook-test.sh. Guest consoles are kept in tests/.cache/vm/last-*.log.
# Env: VM_ACCEL=tcg|kvm (default: KVM only where a probe boot works), VM_SCENARIOS=crash,busy_audio,tuning,crash_tuning (subset).
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/vm/lib.sh
t0=$SECONDS
vm_kernel || exit 1
vm_vfio_check || exit 1
vm_build_vmgpu || exit 1
mapfile -t files < <(vm_hook_guest_files)
initrd=$VM_CACHE/hook-test.initrd
vm_initramfs "$initrd" "$VM_DIR/guest/hook-test.sh" "${files[@]}" || exit 1
echo "real-kernel: kernel $VM_KVER, accelerator: $(vm_accel_args) (boot 'iommu', with cpufreq: $(VM_CPUFREQ=1 vm_accel_args))"
status=0
run_boot() { # run_boot NAME [env...]
  local name=$1 log=$VM_CACHE/last-$1.log t=$SECONDS
  shift
  rm -f "$log"
  (export "$@"; vm_boot "$log" 280 "$initrd")
  echo "--- boot '$name' ($((SECONDS - t)) s, console: $log)"
  if vm_report "$log"; then echo "--- boot '$name': ALL PASS"
  else echo "--- boot '$name': FAILED"; status=1; fi
}
run_boot iommu VM_CPUFREQ=1 VM_APPEND="vmtest.mode=iommu vmtest.cpufreq=1 ${VM_SCENARIOS:+vmtest.scenarios=$VM_SCENARIOS}"
run_boot noiommu NOIOMMU=1 VM_APPEND="vmtest.mode=noiommu"
# the console lit on the test GPU (no video=Virtual-1:d): the boot VGA is the host's display and is refused
[ -z "${VM_SCENARIOS:-}" ] && run_boot lit VM_VIDEO= VM_APPEND="vmtest.mode=iommu vmtest.scenarios=host_display vmtest.expect_lit=1"
echo "real-kernel: $([ $status = 0 ] && echo PASS || echo FAIL) in $((SECONDS - t0)) s"
exit $status
