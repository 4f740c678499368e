#!/bin/sh
# /init of the SPICE display benchmark (benches/spice_e2e.py): vesafb on the std VGA's linear framebuffer in the
# VESA mode the kernel command line set at boot (vga=0x392: 1920x1080x32), two full-screen random patterns in RAM,
# then one full-screen paint per line read on the serial console ("paint"), alternating the patterns so every
# pixel changes: "PAINTED N" after each. Random bytes, so no compression could shrink an update.
. /lib/vmtest/common.sh
echo "VMTEST: init reached"
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp && mount -t tmpfs -o size=64m tmpfs /tmp
# Not the bochs DRM driver: its fbdev emulation writes to a shadow buffer, and a write() to /dev/fb0 never
# reached the VGA memory QEMU shows (a screendump stayed the same). vesafb writes straight into it.
i=0
while [ ! -e /dev/fb0 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
[ -e /dev/fb0 ] || { echo "PAINT-FAIL no /dev/fb0"; poweroff -f; }
# No blinking console cursor or console text on the picture: only our paints change it.
echo 0 > /sys/class/graphics/fbcon/cursor_blink 2>/dev/null
size=$(cat /sys/class/graphics/fb0/virtual_size)
stride=$(cat /sys/class/graphics/fb0/stride)
h=${size#*,}
bytes=$((stride * h))
head -c "$bytes" /dev/urandom > /tmp/p0
head -c "$bytes" /dev/urandom > /tmp/p1
echo "PAINT-READY $size stride $stride bytes $bytes"
n=0
while read -r cmd; do
  case $cmd in
    paint)
      dd if=/tmp/p$((n % 2)) of=/dev/fb0 bs="$stride" 2>/dev/null
      n=$((n + 1))
      echo "PAINTED $n"
      ;;
  esac
done
poweroff -f
