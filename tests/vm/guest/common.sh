# Sourced by every guest /init of the real-kernel harness (busybox sh): mounts, module loading, PASS/FAIL lines.
export PATH=/bin:/sbin
VMTEST_FAILS=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; VMTEST_FAILS=$((VMTEST_FAILS + 1)); }
info() { echo "INFO: $*"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }

# Mount the pseudo file systems and load the "GPU" host drivers, vfio and kvm like a desktop host would have them.
vm_setup() {
  echo "VMTEST: init reached"
  mount -t proc proc /proc
  mount -t sysfs sys /sys
  mount -t devtmpfs dev /dev
  mkdir -p /dev/shm /dev/hugepages /run /tmp
  mount -t tmpfs tmpfs /dev/shm
  mount -t tmpfs tmpfs /run
  mount -t tmpfs tmpfs /tmp
  echo /sbin/modprobe > /proc/sys/kernel/modprobe
  for m in bochs snd_hda_intel vfio_pci vfio_iommu_type1 kvm; do modprobe "$m" 2>/dev/null; done
  modprobe kvm_intel 2>/dev/null || modprobe kvm_amd 2>/dev/null
  modprobe xhci_pci 2>/dev/null
  vm_settle
}

# Wait until the PCI drivers have probed (the HDA codec probe is asynchronous).
vm_settle() {
  i=0
  while [ $i -lt 200 ]; do   # up to 20 s: the HDA codec probe is slow on a loaded TCG host
    ls /dev/snd/controlC* >/dev/null 2>&1 && [ -e /dev/dri/card0 ] && return 0
    sleep 0.1; i=$((i + 1))
  done
}

vm_finish() {
  echo "T+ guest done at uptime $(uptime_s)s"
  if [ "$VMTEST_FAILS" = 0 ]; then echo "RESULT: ALL PASS"; else echo "RESULT: $VMTEST_FAILS FAILED"; fi
  sync
  poweroff -f
}
