#!/bin/sh
# The benchmark's baseline: a plain shell hook doing only the sysfs writes vmgpu makes for the bench domains
# (no checks, no journal, no waiting). gpu-writes.sh prepare|release [full]; `full` adds the hugepage count,
# the host cgroups' cpuset and the IVSHMEM file.
P=/sys/bus/pci
FUNCS="0000:01:00.1 0000:01:00.0"
CG=/sys/fs/cgroup
case $1 in
prepare)
  for f in $FUNCS; do
    echo vfio-pci > $P/devices/$f/driver_override
    echo $f > $P/devices/$f/driver/unbind
    echo $f > $P/drivers_probe
  done
  if [ "$2" = full ]; then
    for s in system.slice user.slice init.scope; do echo 0-1 > $CG/$s/cpuset.cpus; done
    # vmgpu drops caches and compacts only when the plain allocation comes up short (not in this guest)
    echo 128 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
    : > /dev/shm/looking-glass
    chown alice:kvm /dev/shm/looking-glass
    chmod 0660 /dev/shm/looking-glass
    truncate -s 32M /dev/shm/looking-glass
  fi
  ;;
release)
  if [ "$2" = full ]; then
    rm -f /dev/shm/looking-glass
    echo 0 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
    for s in system.slice user.slice init.scope; do
      # Linux 6.1 refuses to empty the cpuset of a cgroup with processes: move them out and back, as vmgpu does
      echo 0-3 > $CG/$s/cpuset.cpus
      procs=$(cat $CG/$s/cgroup.procs)
      for p in $procs; do echo $p > $CG/cgroup.procs; done
      echo > $CG/$s/cpuset.cpus
      for p in $procs; do echo $p > $CG/$s/cgroup.procs 2>/dev/null; done
    done
  fi
  for f in 0000:01:00.0 0000:01:00.1; do
    echo > $P/devices/$f/driver_override
    echo $f > $P/drivers/vfio-pci/unbind
    echo $f > $P/drivers_probe
  done
  ;;
esac
