#!/bin/sh
# /init of the real-kernel `vmgpu explain` harness (tests/harness/25-explain-real-kernel.sh): provokes failures
# with the real static vmgpu as the hook against a real kernel and prints, per failure, the hook's stderr (what
# libvirt reports) and the kernel log of that moment between EXPLAIN-BEGIN <signature> <file> / EXPLAIN-END
# markers; the host side turns them into log sets and runs `vmgpu explain` on them.
# vmtest.mode=iommu (vIOMMU): device held open, GPU held by another VM, journal left by a crash.
# vmtest.mode=noiommu: no IOMMU.
. /lib/vmtest/common.sh
vm_setup
MODE=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^vmtest.mode=//p')
D=/etc/vmtest
GPU=0000:01:00.0
CG=/sys/fs/cgroup
mkdir -p $CG && mount -t cgroup2 none $CG && echo +cpuset > $CG/cgroup.subtree_control
for s in system.slice user.slice init.scope machine.slice; do mkdir -p $CG/$s; done
echo 1 > $CG/init.scope/cgroup.procs
mkdir -p /etc/libvirt/hooks/qemu.d
ln -s /bin/vmgpu /etc/libvirt/hooks/qemu

# emit SIGNATURE FILE SRC: the file between markers
emit() {
  echo "EXPLAIN-BEGIN $1 $2"
  sed 's/^/EXPLAIN| /' "$3"
  echo "EXPLAIN-END"
}
# prepare NAME VM XML [VAR=VALUE]: the hook as libvirt runs it (argv0 hooks/qemu), stderr in /tmp/err.NAME
prepare() {
  dmesg -c > /dev/null
  if [ -n "${4:-}" ]; then env "$4" timeout 60 /etc/libvirt/hooks/qemu "$2" prepare begin - < "$3" 2> "/tmp/err.$1"
  else timeout 60 /etc/libvirt/hooks/qemu "$2" prepare begin - < "$3" 2> "/tmp/err.$1"; fi
  RC=$?
  dmesg > "/tmp/dmesg.$1"
  info "prepare $2 ($1): rc=$RC $(head -c 300 "/tmp/err.$1")"
}
release() { timeout 60 /etc/libvirt/hooks/qemu "$1" release end - < "$2" 2>/dev/null; }

if [ "$MODE" = noiommu ]; then
  prepare noiommu vmtest-gpu $D/gpu-vm.xml
  [ "$RC" != 0 ] && pass "prepare refused without an IOMMU" || fail "prepare without an IOMMU exited 0"
  # what a user's manual bind (or libvirt's managed one) gets from the kernel without an IOMMU
  dmesg -c > /dev/null
  echo vfio-pci > /sys/bus/pci/devices/$GPU/driver_override
  echo $GPU > /sys/bus/pci/drivers/bochs-drm/unbind
  echo $GPU > /sys/bus/pci/drivers_probe
  dmesg > /tmp/dmesg.bind
  echo > /sys/bus/pci/devices/$GPU/driver_override
  echo $GPU > /sys/bus/pci/drivers_probe
  cat /tmp/dmesg.noiommu /tmp/dmesg.bind > /tmp/kernel.noiommu
  emit iommu-off hook.log /tmp/err.noiommu
  emit iommu-off kernel.log /tmp/kernel.noiommu
  release vmtest-gpu $D/gpu-vm.xml
else
  # the GPU's audio function held open by a process
  ctl=$(ls /dev/snd/controlC* 2>/dev/null | head -1)
  sleep 600 < "$ctl" &
  holder=$!
  (sleep 40; kill $holder 2>/dev/null) &
  prepare busy vmtest-gpu $D/gpu-vm.xml
  kill $holder 2>/dev/null
  [ "$RC" != 0 ] && pass "prepare refused while $ctl is open" || fail "prepare with the audio held open exited 0"
  emit device-busy hook.log /tmp/err.busy
  emit device-busy kernel.log /tmp/dmesg.busy
  release vmtest-gpu $D/gpu-vm.xml
  # a second VM asking for the GPU another VM holds
  prepare first vmtest-gpu $D/gpu-vm.xml
  [ "$RC" = 0 ] && pass "first VM prepared" || fail "first VM: rc=$RC"
  prepare second vmtest-second $D/second-vm.xml
  [ "$RC" != 0 ] && pass "second VM refused" || fail "second VM prepared"
  emit gpu-held-by-vm hook.log /tmp/err.second
  release vmtest-second $D/second-vm.xml
  release vmtest-gpu $D/gpu-vm.xml
  # vmgpu killed in the middle of prepare: its journal stays
  prepare crash vmtest-gpu $D/gpu-vm.xml VMGPU_CRASH_AFTER_STEP=3
  [ "$RC" = 137 ] && pass "prepare killed after step 3" || fail "crash injection: rc=$RC"
  emit journal-left-over journal.json /run/vmgpu/vmtest-gpu.json
  vmgpu restore vmtest-gpu > /dev/null 2>&1 && pass "vmgpu restore" || fail "vmgpu restore"
fi
vm_finish
