#!/usr/bin/env bash
# `vmgpu explain` on failures provoked against a real kernel (issue 15): the static vmgpu runs as the qemu hook
# in a QEMU q35 guest (tests/vm/guest/explain-record.sh). Boot 1 (vIOMMU): the GPU's audio held open, the GPU
# held by another VM, vmgpu killed mid-prepare. Boot 2 (no vIOMMU): IOMMU off. Each failure's hook stderr and
# kernel log become a log set; `vmgpu explain --logs SET` must name the right cause first.
# EXPLAIN_RECORD=DIR: also copy each log set to DIR/<signature>/ (how tests/fixtures/explain/ was recorded).
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/vm/lib.sh
T=${CARGO_TARGET_DIR:-target}
vm_kernel || exit 1
vm_vfio_check || exit 1
vm_build_vmgpu || exit 1
cargo build --quiet --bin vmgpu || exit 1
VMGPU=$(cd "$T/debug" && pwd)/vmgpu
mapfile -t files < <(vm_hook_guest_files)
initrd=$VM_CACHE/explain-record.initrd
vm_initramfs "$initrd" "$VM_DIR/guest/explain-record.sh" "${files[@]}" || exit 1
W=$(mktemp -d /tmp/vmgpu-h25.XXXXXX)
trap 'rm -rf "$W"' EXIT
status=0
boot() { # boot NAME [env...]
  local name=$1 log=$VM_CACHE/last-explain-$1.log
  shift
  rm -f "$log"
  (export "$@"; vm_boot "$log" 280 "$initrd")
  vm_report "$log" || { echo "FAIL: boot $name"; status=1; }
  # EXPLAIN-BEGIN SIG FILE ... EXPLAIN-END blocks -> $W/SIG/FILE
  tr -d '\r' < "$log" | awk -v w="$W" '
    /^EXPLAIN-BEGIN / { f = w "/" $2 "/" $3; system("mkdir -p " w "/" $2); printf "" > f; next }
    /^EXPLAIN-END/ { f = ""; next }
    f != "" && /^EXPLAIN\| / { sub(/^EXPLAIN\| /, ""); print >> f }
    f != "" && /^EXPLAIN\|$/ { print "" >> f }'
}
boot iommu VM_APPEND="vmtest.mode=iommu"
boot noiommu NOIOMMU=1 VM_APPEND="vmtest.mode=noiommu"
for sig in device-busy gpu-held-by-vm journal-left-over iommu-off; do
  [ -d "$W/$sig" ] || { echo "FAIL: $sig: the guest recorded nothing"; status=1; continue; }
  first=$("$VMGPU" explain vmtest-gpu --logs "$W/$sig" --json | python3 -c 'import json,sys; f=json.load(sys.stdin)["findings"]; print(f[0]["id"] if f else "unknown")')
  if [ "$first" = "$sig" ]; then echo "PASS: explain names $sig first"; else echo "FAIL: $sig: explain says $first first"; status=1; fi
  if [ -n "${EXPLAIN_RECORD:-}" ]; then mkdir -p "$EXPLAIN_RECORD/$sig" && cp "$W/$sig"/* "$EXPLAIN_RECORD/$sig/"; fi
done
echo "25-explain-real-kernel: $([ $status = 0 ] && echo PASS || echo FAIL) in $SECONDS s"
exit $status
