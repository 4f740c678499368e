#!/bin/sh
# /init of the hook benchmark guest: times prepare+release of the GPU (both functions to vfio-pci and back) by
# the real vmgpu hook against a plain shell doing only the same sysfs writes. Kernel arguments:
# vmtest.rounds=N x vmtest.blocks=N rounds (default 10 x 5), vmtest.domain=FILE (default bench-gpu.xml). Each
# round times one vmgpu prepare+release and one shell prepare+release back to back, the order alternating.
# /proc/uptime has 10 ms resolution (a round takes ~300 ms under TCG): the totals average that out.
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
check_back() {
  for f in $FUNCS; do
    d=$(drv_of $f); case $d in bochs-drm|snd_hda_intel) ;; *) fail "$1: $f on $d after a round"; esac
  done
}

modprobe vfio-pci
vm_settle
info "benchmark: $BLOCKS blocks x $ROUNDS rounds, domain $DOMAIN (writes: $FULL)"
vmgpu_round; shell_round; vm_settle; check_back warm-up   # warm-up: page cache, module loading
n=$((ROUNDS * BLOCKS))
now() { read -r NOW _ < /proc/uptime; }   # a builtin read: no process start inside the timed spans
: > /tmp/samples
i=0
while [ $i -lt $n ]; do
  # pairs, the order alternating, so both sides see the same load and the same leftovers of the other
  if [ $((i % 2)) = 0 ]; then first=vmgpu second=shell; else first=shell second=vmgpu; fi
  now; t0=$NOW; ${first}_round; now; t1=$NOW; ${second}_round; now; t2=$NOW
  echo "$i $first $t0 $t1" >> /tmp/samples
  echo "$i $second $t1 $t2" >> /tmp/samples
  i=$((i + 1))
done
check_back rounds
# totals, and the median of the per-pair ratios (robust against load spikes of the shared host)
awk -v n=$n '
  { d = $4 - $3; t[$2] += d; if ($2 == "vmgpu") v[$1] = d; else sh[$1] = d }
  END {
    m = 0; for (k in v) if (sh[k] > 0) r[++m] = v[k] / sh[k]
    for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++) if (r[b] < r[a]) { x = r[a]; r[a] = r[b]; r[b] = x }
    med = (m % 2) ? r[(m + 1) / 2] : (r[m / 2] + r[m / 2 + 1]) / 2
    printf "BENCH rounds=%d vmgpu_total_s=%.2f vmgpu_ms_per_round=%.1f shell_total_s=%.2f shell_ms_per_round=%.1f ratio=%.2f median_pair_ratio=%.2f\n",
      n, t["vmgpu"], 1000 * t["vmgpu"] / n, t["shell"], 1000 * t["shell"] / n, t["vmgpu"] / t["shell"], med
  }' /tmp/samples
vm_finish
