#!/bin/sh
# /init of the hook benchmark guest: times prepare+release of the GPU (both functions to vfio-pci and back) by
# the real vmgpu hook against a plain shell doing only the same sysfs writes (and vmgpu with its writer
# helper exec'd, the design before the fork). Kernel arguments:
# vmtest.rounds=N x vmtest.blocks=N rounds (default 10 x 5), vmtest.domain=FILE (default bench-gpu.xml). Each
# round times one prepare+release of each side back to back, the order rotating.
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

# every side runs as a hook would: one process per call, the domain XML on stdin. `exec` is vmgpu with its
# sysfs-writer helper started as a second program (VMGPU_WRITER_START=exec, the design before the fork), so the
# gain of the fork shows side by side in one run.
vmgpu_round() {
  vmgpu hook $VM prepare begin - < "$XML" || fail "vmgpu prepare rc=$?"
  vmgpu hook $VM release end - < "$XML" || fail "vmgpu release rc=$?"
}
exec_round() {
  VMGPU_WRITER_START=exec vmgpu hook $VM prepare begin - < "$XML" || fail "vmgpu (exec) prepare rc=$?"
  VMGPU_WRITER_START=exec vmgpu hook $VM release end - < "$XML" || fail "vmgpu (exec) release rc=$?"
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
vmgpu_round; exec_round; shell_round; vm_settle; check_back warm-up   # warm-up: page cache, module loading
n=$((ROUNDS * BLOCKS))
now() { read -r NOW _ < /proc/uptime; }   # a builtin read: no process start inside the timed spans
: > /tmp/samples
i=0
while [ $i -lt $n ]; do
  # the order rotates, so every side sees the same load and the same leftovers of the others
  case $((i % 3)) in
  0) order="vmgpu exec shell" ;;
  1) order="shell vmgpu exec" ;;
  *) order="exec shell vmgpu" ;;
  esac
  for side in $order; do
    now; t0=$NOW; ${side}_round; now
    echo "$i $side $t0 $NOW" >> /tmp/samples
  done
  i=$((i + 1))
done
check_back rounds
# totals, and the median of the per-round ratios against the shell (robust against load spikes of the host)
awk -v n=$n '
  function median(r, m,   a, b, x) {
    for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++) if (r[b] < r[a]) { x = r[a]; r[a] = r[b]; r[b] = x }
    return (m % 2) ? r[(m + 1) / 2] : (r[m / 2] + r[m / 2 + 1]) / 2
  }
  { d = $4 - $3; t[$2] += d; per[$2, $1] = d }
  END {
    m = 0; for (k = 0; k < n; k++) if (per["shell", k] > 0) { m++; rv[m] = per["vmgpu", k] / per["shell", k]; re[m] = per["exec", k] / per["shell", k] }
    printf "BENCH rounds=%d vmgpu_total_s=%.2f vmgpu_ms_per_round=%.1f shell_total_s=%.2f shell_ms_per_round=%.1f ratio=%.2f median_pair_ratio=%.2f\n",
      n, t["vmgpu"], 1000 * t["vmgpu"] / n, t["shell"], 1000 * t["shell"] / n, t["vmgpu"] / t["shell"], median(rv, m)
    printf "BENCH exec_helper_ms_per_round=%.1f exec_ratio=%.2f exec_median_pair_ratio=%.2f fork_saves_ms_per_round=%.1f\n",
      1000 * t["exec"] / n, t["exec"] / t["shell"], median(re, m), 1000 * (t["exec"] - t["vmgpu"]) / n
  }' /tmp/samples
# the fixed cost of one hook call: a call that changes nothing (process start, the XML, the decision), 20 of
# each side alternating, against the shell starting and doing nothing
: > /tmp/noop
i=0
while [ $i -lt 20 ]; do
  now; t0=$NOW; vmgpu hook $VM reconnect begin - < "$XML" || fail "vmgpu reconnect rc=$?"; now; t1=$NOW
  sh /bin/gpu-writes.sh noop < "$XML"; now; t2=$NOW
  echo "$t0 $t1 $t2" >> /tmp/noop
  i=$((i + 1))
done
awk '{ v += $2 - $1; s += $3 - $2 } END {
  printf "BENCH noop_calls=%d vmgpu_noop_ms=%.1f shell_noop_ms=%.1f\n", NR, 1000 * v / NR, 1000 * s / NR }' /tmp/noop
# where one call's time goes: a prepare and a release with VMGPU_LOG=debug (timestamped phases, not timed above)
VMGPU_LOG=debug vmgpu hook $VM prepare begin - < "$XML" 2>&1 | sed 's/^/TRACE prepare: /'
VMGPU_LOG=debug vmgpu hook $VM release end - < "$XML" 2>&1 | sed 's/^/TRACE release: /'
vm_finish
