#!/usr/bin/env bash
# SPICE end to end on the real-kernel harness guests, vmgpu view vs remote-viewer alternating (issues 12, 13):
# xdotool key → guest evdev event (the guest of tests/harness/45-spice-input.sh), the viewer's idle CPU with and
# without a SPICE session, and CPU per full 1920×1080 SPICE display update (tests/vm/guest/paint-test.sh).
# Measures, never asserts; details in benches/spice_e2e.py. Env: VM_ACCEL=tcg|kvm (tests/vm/lib.sh), PHASES,
# ROUNDS, KEYS_PER_ROUND, IDLE_S, DISPLAY_ROUNDS, PAINTS.
#   bash benches/spice_e2e.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in qemu-system-x86_64 Xvfb xdotool remote-viewer gcc python3 ss; do
  command -v "$tool" >/dev/null || { echo "spice_e2e: $tool is missing (tests/install-deps.sh installs it)" >&2; exit 1; }
done
. tests/vm/lib.sh
vm_kernel
mkdir -p "$VM_CACHE"
if [ ! -x "$VM_CACHE/evdev-print" ] || [ tests/vm/evdev-print.c -nt "$VM_CACHE/evdev-print" ]; then
  gcc -O2 -Wall -static -o "$VM_CACHE/evdev-print" tests/vm/evdev-print.c
fi
VM_MODULES="evdev xhci_pci usbhid hid_generic"
VMGPU_SPICE_INITRD=$VM_CACHE/spice-input.initrd
vm_initramfs "$VMGPU_SPICE_INITRD" tests/vm/guest/evdev-test.sh "$VM_CACHE/evdev-print:bin/evdev-print"
VM_MODULES=""
VMGPU_PAINT_INITRD=$VM_CACHE/spice-paint.initrd
vm_initramfs "$VMGPU_PAINT_INITRD" tests/vm/guest/paint-test.sh
cargo build --quiet --release --bin vmgpu
VMGPU_BIN=${CARGO_TARGET_DIR:-target}/release/vmgpu
VMGPU_SPICE_KERNEL=$VM_VMLINUZ VMGPU_SPICE_ACCEL=$(vm_accel_args)
export VMGPU_BIN VMGPU_SPICE_KERNEL VMGPU_SPICE_INITRD VMGPU_PAINT_INITRD VMGPU_SPICE_ACCEL
exec python3 benches/spice_e2e.py
