#!/usr/bin/env bash
# Records a real kernel's view of a host into OUTDIR, for the host-model fixtures (tests/fixtures/hosts/*).
#
#   tests/vm/record-host-tree.sh OUTDIR [EXTRA QEMU ARGS...]
#   NOIOMMU=1 tests/vm/record-host-tree.sh OUTDIR ...      # no vIOMMU device: no DMAR table, no IOMMU groups
#
# The guest is the harness's standard one: Debian kernel, q35 + intel-iommu, a root port holding the "GPU"
# (01:00.0 VGA -> bochs-drm, 01:00.1 ich9-intel-hda -> snd_hda_intel), vfio-pci and kvm loaded. Extra args are
# passed to QEMU, e.g. a second GPU and a USB controller:
#   tests/vm/record-host-tree.sh /tmp/two-gpus -device VGA,bus=pcie.0,addr=03.0 -device qemu-xhci,addr=04.0
# Other knobs: VM_SMP (4), VM_MEM (MiB, 2048), VM_APPEND (extra kernel args, e.g. "hugepages=16 isolcpus=3"),
# VM_IOMMU_CMDLINE (default "intel_iommu=on iommu=pt"). OUTDIR then holds sys/..., proc/..., lib/modules/...
# with the kernel's own relative symlinks (see tests/vm/guest/record.sh for the exact list). Takes ~20-40 s (TCG).
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,13p' "$0" >&2; exit 2; }
OUT=$1; shift
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
vm_kernel
W=$(mktemp -d "${TMPDIR:-/tmp}/vmgpu-record.XXXXXX")
trap 'rm -rf "$W"' EXIT
vm_initramfs "$W/initrd" "$VM_DIR/guest/record.sh" "$VM_DIR/guest/record-tree.sh:/lib/vmtest/record-tree.sh"
vm_boot "$W/console.log" 300 "$W/initrd" -serial "file:$W/tree.b64" "$@" || true
grep -q 'RESULT: ALL PASS' "$W/console.log" || { cat "$W/console.log" >&2; echo "record: guest failed" >&2; exit 1; }
want=$(sed -n 's/^REC-MD5 \([0-9a-f]*\).*/\1/p' "$W/console.log" | tr -d '\r')
tr -d '\r' < "$W/tree.b64" | sed '/^REC-END/,$d' | base64 -d > "$W/tree.tgz"
got=$(md5sum < "$W/tree.tgz" | cut -d' ' -f1)
[ "$want" = "$got" ] || { echo "record: transfer corrupted (md5 $got, guest said $want)" >&2; exit 1; }
rm -rf "$OUT"; mkdir -p "$OUT"
tar -C "$OUT" -xzf "$W/tree.tgz"
grep -a '^INFO: recorded' "$W/console.log" | tr -d '\r' >&2
echo "record: wrote $OUT" >&2
