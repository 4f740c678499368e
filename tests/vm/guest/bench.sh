#!/bin/sh
# /init of the hook benchmark guest: times prepare+release of the GPU (both functions to vfio-pci and back) by
# the real vmgpu hook against a plain shell doing only the same sysfs writes. Kernel arguments:
# vmtest.rounds=N (rounds per block, default 10), vmtest.blocks=N (default 5), vmtest.domain=FILE (default
# bench-gpu.xml). Blocks alternate vmgpu and shell so both see the same background noise. /proc/uptime has 10 ms
# resolution, so each block is timed as a whole.
. /lib/vmtest/common.sh
vm_setup
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^vmtest.$1=//p"; }
ROUNDS=$(arg rounds); BLOCKS=$(arg blocks); DOMAIN=$(arg domain)
: "${ROUNDS:=10}" "${BLOCKS:=5}" "${DOMAIN:=bench-gpu.xml}"
XML=/etc/vmtest/$DOMAIN
VM=vmtest-bench
FUNCS="0000:01:00.0 0000:01:00.1"
P=/sys/bus/pci
drv_of() { if [ -e "$P/devices/$1/driver" ]; then basename "$(readlink "$P/devices/$1/driver")"; else echo none; fi; }
# the host cgroups as in the hook test (no systemd: vmgpu writes cpuset.cpus itself)
mkdir -p /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && echo +cpuset > /sys/fs/cgroup/cgroup.subtree_control
for s in system.slice user.slice init.scope machine.slice; do mkdir -p /sys/fs/cgroup/$s; done
echo 1 > /sys/fs/cgroup/init.scope/cgroup.procs
FULL=gpu; grep -q '<hugepages' "$XML" && FULL=full

# both sides run as a hook would: one process per call, the domain XML on stdin
vmgpu_round() {
  vmgpu hook $VM prepare begin - < "$XML" || fail "vmgpu prepare rc=$?"
  vmgpu hook $VM release end - < "$XML" || fail "vmgpu release rc=$?"
}
shell_round() {
  sh /bin/gpu-writes.sh prepare $FULL < "$XML" || fail "shell prepare rc=$?"
  sh /bin/gpu-writes.sh release $FULL < "$XML" || fail "shell release rc=$?"
}
block() { # block KIND: runs ROUNDS rounds, adds the elapsed centiseconds to T_KIND
  t0=$(cut -d' ' -f1 /proc/uptime)
  i=0; while [ $i -lt "$ROUNDS" ]; do "${1}_round"; i=$((i + 1)); done
  t1=$(cut -d' ' -f1 /proc/uptime)
  eval "T_$1=\$(awk -v s=\"\$T_$1\" -v a=$t0 -v b=$t1 'BEGIN{print s + b - a}')"
}
check_back() {
  for f in $FUNCS; do
    d=$(drv_of $f); case $d in bochs-drm|snd_hda_intel) ;; *) fail "$1: $f on $d after a round"; esac
  done
}

modprobe vfio-pci
vm_settle
info "benchmark: $BLOCKS blocks x $ROUNDS rounds, domain $DOMAIN (writes: $FULL)"
vmgpu_round; shell_round; vm_settle; check_back warm-up   # warm-up: page cache, module loading
T_vmgpu=0; T_shell=0
b=0
while [ $b -lt "$BLOCKS" ]; do
  block vmgpu; check_back vmgpu
  block shell; check_back shell
  b=$((b + 1))
done
n=$((ROUNDS * BLOCKS))
awk -v v="$T_vmgpu" -v s="$T_shell" -v n=$n 'BEGIN{
  printf "BENCH rounds=%d vmgpu_total_s=%.2f vmgpu_ms_per_round=%.1f shell_total_s=%.2f shell_ms_per_round=%.1f ratio=%.2f\n",
    n, v, 1000*v/n, s, 1000*s/n, (s > 0 ? v/s : 0) }'
vm_finish
