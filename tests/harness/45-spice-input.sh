#!/usr/bin/env bash
# `vmgpu view` drives a real VM through QEMU's SPICE server with a password (issue 12): the real-kernel
# harness's Debian kernel + busybox guest prints every evdev event (tests/vm/evdev-print.c) on its serial
# console; the real viewer runs on Xvfb and xdotool types and clicks into it. Details:
# tests/integration/spice_live.rs. Env: VM_ACCEL=tcg|kvm as in tests/vm/lib.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
for tool in qemu-system-x86_64 Xvfb xdotool xmessage gcc; do
  command -v "$tool" >/dev/null || { echo "45-spice-input: $tool is missing (tests/install-deps.sh installs it)" >&2; exit 1; }
done
. tests/vm/lib.sh
t0=$SECONDS
VM_MODULES="evdev xhci_pci usbhid hid_generic"
vm_kernel || exit 1
mkdir -p "$VM_CACHE"
if [ ! -x "$VM_CACHE/evdev-print" ] || [ tests/vm/evdev-print.c -nt "$VM_CACHE/evdev-print" ]; then
  gcc -O2 -Wall -static -o "$VM_CACHE/evdev-print" tests/vm/evdev-print.c || exit 1
fi
initrd=$VM_CACHE/spice-input.initrd
vm_initramfs "$initrd" tests/vm/guest/evdev-test.sh "$VM_CACHE/evdev-print:bin/evdev-print" || exit 1
export VMGPU_SPICE_KERNEL=$VM_VMLINUZ VMGPU_SPICE_INITRD=$initrd
VMGPU_SPICE_ACCEL=$(vm_accel_args)
export VMGPU_SPICE_ACCEL
echo "45-spice-input: kernel $VM_KVER, accelerator: $VMGPU_SPICE_ACCEL"
cargo test --test integration spice_live -- --ignored --test-threads=1
status=$?
echo "45-spice-input: $([ $status = 0 ] && echo PASS || echo FAIL) in $((SECONDS - t0)) s"
exit $status
