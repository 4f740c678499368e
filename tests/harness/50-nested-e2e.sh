#!/usr/bin/env bash
# Nested end to end, the production path: an L1 Debian (systemd, udev, libvirt, QEMU, OVMF; built with
# mmdebstrap by tests/nested/build-l1.sh and cached under tests/.cache/l1/<hash of the build script>) boots under
# QEMU q35 + intel-iommu with a two-function "GPU" (VGA + HDA) behind a root port (tests/vm/lib.sh). Inside,
# tests/nested/l1-test.sh runs `vmgpu install`, `vmgpu define l2 --gpu 0000:01:00.0 --hugepages 2M
# --looking-glass 1920x1080 ...`, `virsh start l2` and checks VFIO, hugepages, CPU isolation and the shm file,
# then `virsh destroy l2` and checks that all of it is back. The vmgpu binary and the test script reach L1 over
# 9p, so the cached image is reused across code changes. Exits non-zero and says what failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
T=${CARGO_TARGET_DIR:-target}
START=$SECONDS
die() { echo "FAIL: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap, 9p as root)"
for tool in mmdebstrap mkfs.ext4 qemu-system-x86_64 virt-xml-validate; do
  command -v $tool >/dev/null || die "$tool is not installed (run tests/install-deps.sh)"
done
cargo build --quiet --bin vmgpu || die "cargo build"
VMGPU=$T/debug/vmgpu

# 1) the L1 image, cached by the hash of what builds it
KEY=$(sha256sum tests/nested/build-l1.sh | cut -c1-16)
CACHE=tests/.cache/l1/$KEY
if [ ! -f "$CACHE/rootfs.img" ]; then
  echo "building the L1 image (mmdebstrap, about 90 s plus the download) into $CACHE"
  t=$SECONDS
  rm -rf tests/.cache/l1; mkdir -p "$CACHE"
  bash tests/nested/build-l1.sh "$CACHE" > "$CACHE.build.log" 2>&1 || { tail -20 "$CACHE.build.log"; die "L1 image build"; }
  echo "L1 image built in $((SECONDS - t)) s"
fi

# 2) the share L1 mounts over 9p: vmgpu and the test script in, results out
W=$(mktemp -d /tmp/vmgpu-h50.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/share/out"
install -m755 "$VMGPU" "$W/share/vmgpu"
install -m755 tests/nested/l1-test.sh "$W/share/l1-test.sh"

# 3) boot L1 (TCG where KVM cannot boot a stock kernel); the rootfs stays pristine (snapshot=on)
# shellcheck source=../vm/lib.sh
. tests/vm/lib.sh
mkdir -p "$VM_CACHE"   # vm_accel_args caches its KVM probe there
# TCG on 2 cores: an idle machine runs the whole test in a few minutes; leave room for a loaded one
LIMIT=${VMGPU_NESTED_TIMEOUT:-540}
# no_timer_check: on a loaded host TCG is too slow for the kernel's IO-APIC timer check, which then panics
boot_l1() {
  VM_VMLINUZ=$CACHE/vmlinuz VM_KVER=l1-$KEY VM_SMP=3 VM_MEM=2048 \
  VM_APPEND="root=/dev/vda rw no_timer_check systemd.show_status=0 systemd.unit=multi-user.target" \
    vm_qemu "$W/serial.log" "$LIMIT" "$CACHE/initrd.img" \
      -drive "file=$CACHE/rootfs.img,format=raw,if=virtio,cache=unsafe,snapshot=on" \
      -fsdev "local,id=fs0,path=$W/share,security_model=none" -device virtio-9p-pci,fsdev=fs0,mount_tag=hostshare \
      -device VGA,bus=pcie.0,addr=02.0
}
boot_l1; rc=$?
if grep -q "Kernel panic" "$W/serial.log" && ! grep -q "L1\[" "$W/serial.log"; then
  echo "L1 kernel panicked before the test started; booting once more"; grep -m1 "Kernel panic" "$W/serial.log"
  boot_l1; rc=$?
fi
grep -E "L1\[|RESULT" "$W/serial.log" | sed 's/^/  /'
[ $rc = 124 ] && echo "FAIL: L1 did not finish within $LIMIT s"

# 4) results: the test's verdict, and every XML define produced inside validates here too
FAIL=0
if [ "$(cat "$W/share/out/result" 2>/dev/null)" != "RESULT: ALL PASS" ]; then
  FAIL=1
  echo "--- L1 serial console (tail)"; tail -40 "$W/serial.log"
fi
for f in l2-dry-run l2-defined l2-live l2-updated; do
  if [ -s "$W/share/out/$f.xml" ]; then
    virt-xml-validate "$W/share/out/$f.xml" domain >/dev/null 2>&1 && echo "PASS: virt-xml-validate $f.xml" ||
      { echo "FAIL: virt-xml-validate $f.xml"; FAIL=1; }
  else
    echo "FAIL: no $f.xml from L1"; FAIL=1
  fi
done
# keep the last run's L1 output (test log, vmgpu's journal, XMLs) for a look after the fact
rm -rf tests/.cache/l1-last-run; cp -r "$W/share/out" tests/.cache/l1-last-run 2>/dev/null
cp "$W/serial.log" tests/.cache/l1-last-run/ 2>/dev/null
echo "50-nested-e2e: $((SECONDS - START)) s (L1 output kept in tests/.cache/l1-last-run/)"
[ $FAIL = 0 ] && echo "50-nested-e2e: ALL PASS" || echo "50-nested-e2e: FAILURES"
exit $FAIL
