#!/bin/sh
# /init of the SPICE input harness: the guest's input drivers (PS/2 keyboard built in; evdev, USB HID tablet
# as modules), then every evdev event printed on the serial console by /bin/evdev-print until poweroff.
. /lib/vmtest/common.sh
echo "VMTEST: init reached"
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo /sbin/modprobe > /proc/sys/kernel/modprobe
for m in evdev xhci_pci usbhid hid_generic; do modprobe "$m" 2>/dev/null; done
# Wait for the keyboard and the tablet (USB enumeration is slow under TCG).
i=0
while [ $i -lt 600 ]; do
  grep -q "QEMU USB Tablet" /proc/bus/input/devices 2>/dev/null && grep -q "AT Translated" /proc/bus/input/devices && break
  sleep 0.1; i=$((i + 1))
done
exec /bin/evdev-print
