#!/bin/sh
# Copies the parts of sysfs/procfs that vmgpu's host model reads into the directory $R (set by the caller), keeping
# the kernel's layout and symlinks (exact relative targets). Sourced by the recorder guest's /init (record.sh) and
# by tests/vm/record-live-host.sh on a real machine. POSIX sh: runs under busybox and bash alike.
# busybox cp -a / tar cannot copy sysfs (every file claims 4096 bytes): one `cat` per file, one `readlink` per link.
PCI_ATTRS="class vendor device subsystem_vendor subsystem_device boot_vga reset_method driver_override revision
  numa_node enable irq local_cpulist"
PARAM_MODULES="kvm kvm_intel kvm_amd vfio vfio_pci vfio_iommu_type1 vfio_virqfd snd_hda_intel bochs drm
  nvidia nvidia_drm amdgpu i915 nouveau kvmfr"

rec_file() { # a regular, readable file; an unreadable one (write-only, EIO) is left out
  [ -f "$1" ] || return 0
  mkdir -p "$R${1%/*}"
  cat "$1" > "$R$1" 2>/dev/null || rm -f "$R$1"
}
rec_link() {
  [ -L "$1" ] || return 0
  mkdir -p "$R${1%/*}"
  ln -sfn "$(readlink "$1")" "$R$1"
}
rec_dir() { mkdir -p "$R$1"; }

# PCI devices: the bus links, the device dirs they point to, attributes, driver + iommu_group links
for l in /sys/bus/pci/devices/*; do
  rec_link "$l"
  d=$(readlink -f "$l")
  rec_dir "$d"
  for a in $PCI_ATTRS; do rec_file "$d/$a"; done
  rec_link "$d/driver"
  rec_link "$d/iommu_group"
  for v in "$d"/msi_irqs/*; do rec_file "$v"; done
done
for d in /sys/bus/pci/drivers/*; do
  rec_dir "$d"
  for l in "$d"/????:??:??.?; do rec_link "$l"; done
done
for g in /sys/kernel/iommu_groups/*; do
  [ -d "$g" ] || continue
  rec_dir "$g/devices"
  rec_file "$g/type"
  for l in "$g"/devices/*; do rec_link "$l"; done
done
rec_dir /sys/kernel/iommu_groups
rec_dir /sys/class/iommu
for l in /sys/class/iommu/*; do rec_link "$l"; done
rec_dir /sys/firmware/acpi/tables
for t in DMAR IVRS; do rec_file "/sys/firmware/acpi/tables/$t"; done

# CPUs, NUMA nodes, hugepages
C=/sys/devices/system/cpu
for f in online present possible isolated; do rec_file "$C/$f"; done
for c in $C/cpu[0-9]*; do
  rec_file "$c/online"
  for f in "$c"/topology/*; do rec_file "$f"; done
  for i in "$c"/cache/index*; do
    for f in level type shared_cpu_list id size; do rec_file "$i/$f"; done
  done
done
N=/sys/devices/system/node
for f in online possible has_cpu has_memory; do rec_file "$N/$f"; done
for n in $N/node[0-9]*; do
  [ -d "$n" ] || continue
  rec_file "$n/cpulist"; rec_file "$n/meminfo"
  for h in "$n"/hugepages/*; do rec_file "$h/nr_hugepages"; rec_file "$h/free_hugepages"; done
done
for h in /sys/kernel/mm/hugepages/*; do rec_file "$h/nr_hugepages"; rec_file "$h/free_hugepages"; done
rec_file /proc/sys/vm/nr_hugepages

# modules and the kernel
for m in $PARAM_MODULES; do
  [ -d "/sys/module/$m" ] || continue
  rec_dir "/sys/module/$m"
  for p in "/sys/module/$m"/parameters/*; do rec_file "$p"; done
done
for f in cmdline cpuinfo meminfo modules sys/kernel/osrelease; do rec_file "/proc/$f"; done
# IRQs (the hook's IRQ affinity step): each one's affinity list and the default mask
rec_file /proc/irq/default_smp_affinity
for i in /proc/irq/[0-9]*; do rec_file "$i/smp_affinity_list"; done
rec_file "/lib/modules/$(uname -r)/modules.builtin"

# dangling links (e.g. /sys/class/iommu/dmar0 -> ../../devices/virtual/iommu/dmar0): create their target dir
find "$R" -type l | while read -r l; do
  t=$(readlink "$l"); case $t in /*) continue ;; esac
  [ -e "$l" ] || mkdir -p "${l%/*}/$t"
done

