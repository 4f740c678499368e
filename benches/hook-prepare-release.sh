#!/usr/bin/env bash
# Benchmark (measures, never asserts a timing): prepare+release of a GPU by the real vmgpu hook vs a plain shell
# doing only the same sysfs writes, inside the real-kernel harness guest (tests/vm/, QEMU q35 + intel-iommu,
# Debian kernel, VGA + HDA "GPU"). Prints per-round times and the ratio vmgpu/shell.
#
#   benches/hook-prepare-release.sh [gpu|full]     # gpu (default): only the GPU binding;
#                                                 # full: + hugepages, host-CPU cpuset, IVSHMEM file
# Env: ROUNDS (per block, 10), BLOCKS (5), VM_ACCEL=tcg|kvm. Numbers under TCG are ~10x slower than bare metal
# for both sides; the ratio is the figure of merit (goal <= 1.2).
set -uo pipefail
cd "$(dirname "$0")/.."
. tests/vm/lib.sh
variant=${1:-gpu}
case $variant in gpu | full) ;; *) echo "usage: $0 [gpu|full]" >&2; exit 2 ;; esac
vm_kernel || exit 1
vm_vfio_check || exit 1
vm_build_vmgpu || exit 1
mapfile -t files < <(vm_hook_guest_files)
initrd=$VM_CACHE/bench.initrd
vm_initramfs "$initrd" "$VM_DIR/guest/bench.sh" "${files[@]}" || exit 1
log=$VM_CACHE/last-bench-$variant.log
export VM_APPEND="vmtest.rounds=${ROUNDS:-10} vmtest.blocks=${BLOCKS:-5} vmtest.domain=bench-$variant.xml"
vm_boot "$log" 580 "$initrd" || true
tr -d '\r' < "$log" | grep -a -E '^(INFO|FAIL|BENCH|RESULT|TRACE)'
tr -d '\r' < "$log" | grep -aq '^RESULT: ALL PASS' || { echo "bench: the guest reported failures ($log)" >&2; exit 1; }
echo "bench: kernel $VM_KVER, $(vm_accel_args), host: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
