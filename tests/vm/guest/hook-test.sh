#!/bin/sh
# /init of the real-kernel hook test: runs the real (static) vmgpu as libvirt's qemu hook against a real kernel
# with a real IOMMU and a two-function "GPU" (01:00.0 VGA/bochs-drm + 01:00.1 HDA/snd_hda_intel), and checks the
# host state before/after every step. Kernel argument vmtest.mode=iommu (default) runs every scenario;
# vmtest.mode=noiommu (booted without the vIOMMU device) runs the "no IOMMU" negative scenario only.
. /lib/vmtest/common.sh
vm_setup
MODE=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^vmtest.mode=//p')
CRASH_VAR=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^vmtest.crashvar=//p')
: "${MODE:=iommu}" "${CRASH_VAR:=VMGPU_CRASH_AFTER_STEP}"
SCENARIOS=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^vmtest.scenarios=//p' | tr ',' ' ')
EXPECT_LIT=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^vmtest.expect_lit=//p')
CPUFREQ=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^vmtest.cpufreq=//p')   # 1: booted with VM_CPUFREQ=1
D=/etc/vmtest        # domain XMLs
GPU=0000:01:00.0
AUD=0000:01:00.1
FUNCS="$GPU $AUD"
CG=/sys/fs/cgroup
HOST_SLICES="system.slice user.slice init.scope"
SHM=/dev/shm/looking-glass
HOOK_LIMIT=60        # a hook call that takes longer than this counts as hanging

drv_of() { if [ -e "/sys/bus/pci/devices/$1/driver" ]; then basename "$(readlink "/sys/bus/pci/devices/$1/driver")"; else echo none; fi; }
group_of() { basename "$(readlink "/sys/bus/pci/devices/$1/iommu_group" 2>/dev/null)" 2>/dev/null; }

# A systemd-like cgroup v2 tree (no systemd here, so vmgpu must write cpuset.cpus itself): PID 1 in init.scope,
# a "host daemon" in system.slice, machine.slice that must never be restricted.
cgroup_setup() {
  mkdir -p $CG
  mount -t cgroup2 none $CG || { fail "mount cgroup2"; return; }
  echo +cpuset > $CG/cgroup.subtree_control
  for s in $HOST_SLICES machine.slice; do mkdir -p $CG/$s; done
  echo 1 > $CG/init.scope/cgroup.procs
  sleep 100000 &
  DAEMON=$!
  echo $DAEMON > $CG/system.slice/cgroup.procs
}

# The host state vmgpu may touch, one line per item: what "nothing changed" and "everything as before" compare.
snapshot() {
  for f in $FUNCS; do
    echo "driver $f $(drv_of "$f") override=$(cat "/sys/bus/pci/devices/$f/driver_override")"
  done
  echo "cgroup controllers [$(cat $CG/cgroup.subtree_control 2>/dev/null)]"
  echo "cgroups [$(cd $CG && ls -d */ 2>/dev/null | tr '\n' ' ')]"
  # cpuset.cpus as written and the effective set (Linux 6.1 refuses to empty cpuset.cpus of a cgroup with
  # processes, ENOSPC, so restoring an empty one needs care), and which cgroup the "host daemon" is in
  for s in $HOST_SLICES machine.slice; do
    echo "cpuset $s [$(cat $CG/$s/cpuset.cpus 2>/dev/null)] effective [$(cat $CG/$s/cpuset.cpus.effective 2>/dev/null)]"
  done
  echo "daemon cgroup $(cat /proc/$DAEMON/cgroup 2>/dev/null)"
  for h in /sys/kernel/mm/hugepages/*; do echo "hugepages ${h##*/} $(cat "$h/nr_hugepages")"; done
  echo "shm [$(ls /dev/shm | tr '\n' ' ')]"
  echo "vfio [$(ls /dev/vfio 2>/dev/null | grep -v '^vfio$' | tr '\n' ' ')]"
  for g in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor; do
    [ -e "$g" ] || continue
    c=${g%/cpufreq/*}; echo "governor ${c##*/} $(cat "$g")"
  done
  [ -n "${WITH_IRQS:-}" ] && irq_snapshot
}

# The guest's cpufreq (boot 'iommu': QEMU gets an SSDT with P-states, tests/vm/lib.sh vm_cpufreq_ssdt):
# acpi-cpufreq drives every CPU with its own policy; CPU 3 is set to powersave, so the two pinned CPUs of the
# tuned VM start from different governors (schedutil, the kernel's default, and powersave) and each must get
# its own back.
cpufreq_setup() {
  modprobe acpi_cpufreq || { fail "acpi_cpufreq does not load: $(dmesg | grep -i cpufreq | tail -3 | tr '\n' ' ')"; return; }
  modprobe cpufreq_powersave
  for c in 0 1 2 3; do
    d=/sys/devices/system/cpu/cpu$c/cpufreq
    drv=$(cat $d/scaling_driver 2>/dev/null)
    [ "$drv" = acpi-cpufreq ] || { fail "CPU $c: cpufreq driver [$drv], want acpi-cpufreq"; return; }
  done
  echo powersave > /sys/devices/system/cpu/cpu3/cpufreq/scaling_governor || { fail "CPU 3 refuses powersave"; return; }
  pass "acpi-cpufreq drives CPUs 0-3 (governors: $(cat /sys/devices/system/cpu/cpu[0-3]/cpufreq/scaling_governor | tr '\n' ' '))"
}

governor_of() { cat "/sys/devices/system/cpu/cpu$1/cpufreq/scaling_governor" 2>/dev/null || echo none; }

# The IRQs' smp_affinity_list, one "irq N CPUS" line each, without the GPU functions' own IRQs: unbinding
# frees a function's vectors and rebinding allocates new ones (numbers and affinity are the kernel's choice).
irq_snapshot() {
  own=" "
  for f in $FUNCS; do
    own="$own$(ls /sys/bus/pci/devices/$f/msi_irqs 2>/dev/null | tr '\n' ' ')"
  done
  for d in /proc/irq/[0-9]*; do
    n=${d##*/}
    case "$own" in *" $n "*) continue ;; esac
    echo "irq $n $(cat $d/smp_affinity_list)"
  done
}

# same_as FILE WHAT: PASS when the current snapshot equals FILE, else FAIL with the difference
same_as() {
  snapshot > /tmp/snap.now
  if cmp -s "$1" /tmp/snap.now; then pass "$2"
  else fail "$2"; diff "$1" /tmp/snap.now | sed 's/^/    /'; return 1; fi
}

# hook NAME VM OP SUB XML [VAR=VALUE]: runs `vmgpu hook` as libvirt would (XML on stdin, argv VM OP SUB -),
# sets RC, DT (seconds), leaves stdout in /tmp/out.NAME and stderr in /tmp/err.NAME
hook() {
  name=$1 vm=$2 op=$3 sub=$4 xml=$5 envset=${6:-}
  t0=$(uptime_s)
  cmd="vmgpu hook"; [ -n "${HOOK_CMD:-}" ] && cmd=$HOOK_CMD   # HOOK_CMD: libvirt's hook path (argv0 mode)
  if [ -n "$envset" ]; then
    env "$envset" timeout $HOOK_LIMIT $cmd "$vm" "$op" "$sub" - < "$xml" > "/tmp/out.$name" 2> "/tmp/err.$name"
  else
    timeout $HOOK_LIMIT $cmd "$vm" "$op" "$sub" - < "$xml" > "/tmp/out.$name" 2> "/tmp/err.$name"
  fi
  RC=$?
  DT=$(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN{printf "%.2f", b-a}')
  info "$cmd $vm $op $sub -> rc=$RC in ${DT}s"
  sed 's/^/    stderr: /' "/tmp/err.$name" | head -20
  [ -s "/tmp/out.$name" ] && fail "$name: the hook wrote to stdout: $(head -c 200 "/tmp/out.$name")"
  [ "$RC" = 124 ] && fail "$name: the hook hung for ${HOOK_LIMIT}s"
}

expect_rc0() { if [ "$RC" = 0 ]; then pass "$1"; else fail "$1 (rc=$RC)"; fi; }
expect_refusal() { # expect_refusal NAME WHAT PATTERN: non-zero exit, stderr matching PATTERN (grep -iE)
  if [ "$RC" != 0 ] && [ "$RC" != 124 ] && grep -qiE "$3" "/tmp/err.$1"; then pass "$2"
  else fail "$2 (rc=$RC, stderr does not match /$3/)"; fi
}

# ---------------------------------------------------------------------------------------------------------------
scenario_prepare_release() {
  echo "== scenario: prepare begin + release end of a GPU VM"
  snapshot > /tmp/snap.before
  hook prep vmtest-gpu prepare begin $D/gpu-vm.xml
  expect_rc0 "prepare begin exits 0"
  for f in $FUNCS; do
    [ "$(drv_of $f)" = vfio-pci ] && pass "$f on vfio-pci" || fail "$f on $(drv_of $f), not vfio-pci"
  done
  grp=$(group_of $GPU)
  [ -c /dev/vfio/$grp ] && pass "/dev/vfio/$grp present" || fail "/dev/vfio/$grp missing"
  if vfio-check "$grp" $GPU > /tmp/vfio.out 2>&1; then pass "group $grp viable: container + TYPE1 + device fd"
  else fail "vfio-check group $grp: $(tr '\n' ' ' < /tmp/vfio.out)"; fi
  for s in $HOST_SLICES; do
    c=$(cat $CG/$s/cpuset.cpus.effective)
    [ "$c" = 0-1 ] && pass "$s restricted to CPUs 0-1" || fail "$s cpuset.cpus.effective=[$c], want 0-1"
  done
  a=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/$DAEMON/status)
  [ "$a" = 0-1 ] && pass "a system.slice process may run on CPUs 0-1 only" || fail "system.slice process: Cpus_allowed_list=$a"
  m=$(cat $CG/machine.slice/cpuset.cpus.effective)
  [ "$m" = 0-3 ] && pass "machine.slice keeps CPUs 0-3" || fail "machine.slice cpuset.cpus.effective=[$m]"
  n=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages)
  fr=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages)
  [ "$n" -ge 128 ] && [ "$fr" -ge 128 ] && pass "128 2 MiB hugepages allocated (nr=$n free=$fr)" || fail "hugepages nr=$n free=$fr, want >= 128"
  if [ -f $SHM ]; then
    st=$(stat -c '%a %U:%G %s' $SHM)
    [ "$st" = "660 alice:kvm 33554432" ] && pass "$SHM is $st" || fail "$SHM is $st, want 660 alice:kvm 33554432"
  else fail "$SHM missing"; fi
  [ -f /run/vmgpu/vmtest-gpu.json ] && pass "journal /run/vmgpu/vmtest-gpu.json written" || fail "no journal in /run/vmgpu"
  hook status-during vmtest-gpu started begin $D/gpu-vm.xml
  expect_rc0 "started begin exits 0"
  if vmgpu status > /tmp/status.out 2>&1 && grep -q vmtest-gpu /tmp/status.out; then pass "vmgpu status lists vmtest-gpu"
  else fail "vmgpu status: $(head -c 300 /tmp/status.out)"; fi

  echo "== scenario: libvirt calls that must change nothing while the VM runs"
  snapshot > /tmp/snap.prepared
  for step in "reconnect begin" "attach begin" "migrate begin" "restore begin"; do
    set -- $step
    hook "noop-$1" vmtest-gpu "$1" "$2" $D/gpu-vm.xml
    expect_rc0 "$1 $2 exits 0"
  done
  same_as /tmp/snap.prepared "reconnect/attach/migrate/restore change nothing"

  echo "== scenario: a second VM asking for the same GPU"
  hook second vmtest-second prepare begin $D/second-vm.xml
  expect_refusal second "second VM refused, naming both VMs" "vmtest-gpu"
  grep -q vmtest-second /tmp/err.second && pass "refusal names vmtest-second too" || fail "refusal does not name vmtest-second"
  hook second-release vmtest-second release end $D/second-vm.xml
  expect_rc0 "release of the refused VM exits 0"
  same_as /tmp/snap.prepared "the refused VM's release leaves the first VM's GPU alone"

  hook stopped vmtest-gpu stopped end $D/gpu-vm.xml
  expect_rc0 "stopped end exits 0"
  HOOK_CMD=/etc/libvirt/hooks/qemu hook release vmtest-gpu release end $D/gpu-vm.xml
  unset HOOK_CMD
  expect_rc0 "release end exits 0 (run as /etc/libvirt/hooks/qemu, argv0 decides the hook mode)"
  same_as /tmp/snap.before "after release everything is as before (drivers, cpuset, hugepages, shm, /dev/vfio)"
  [ -e /dev/dri/card0 ] && pass "/dev/dri/card0 back" || fail "/dev/dri/card0 not back"
  HOOK_CMD=/etc/libvirt/hooks/qemu.d/vmgpu hook release-again vmtest-gpu release end $D/gpu-vm.xml
  unset HOOK_CMD
  expect_rc0 "a second release (no journal left) exits 0"
  same_as /tmp/snap.before "a second release changes nothing"
}

scenario_foreign() {
  echo "== scenario: a domain without vmgpu metadata"
  snapshot > /tmp/snap.before
  for step in "prepare begin" "start begin" "started begin" "stopped end" "release end"; do
    set -- $step
    hook "foreign-$1" vmtest-foreign "$1" "$2" $D/foreign-vm.xml
    expect_rc0 "foreign domain: $1 $2 exits 0"
  done
  same_as /tmp/snap.before "foreign domain: nothing changed"
  [ -e /run/vmgpu/vmtest-foreign.json ] && fail "foreign domain got a journal" || pass "foreign domain: no journal"
}

scenario_busy_audio() {
  echo "== scenario: the audio function is held open"
  snapshot > /tmp/snap.before
  ctl=$(ls /dev/snd/controlC* 2>/dev/null | head -1)
  [ -n "$ctl" ] || { fail "no /dev/snd/controlC*: snd_hda_intel did not bind the codec"; return; }
  sleep 600 < "$ctl" &
  holder=$!
  # an unbind of a held HDA function blocks in D state until the holder closes it (timeout cannot kill that):
  # a watchdog ends the holder after 40 s so a hanging hook shows up as a slow FAIL, not a stuck guest
  (sleep 40; kill $holder 2>/dev/null) &
  watchdog=$!
  hook busy vmtest-gpu prepare begin $D/gpu-vm.xml
  kill $watchdog 2>/dev/null
  expect_refusal busy "prepare refused while $ctl is open" "sleep|pid $holder|$holder"
  awk -v t="$DT" 'BEGIN{exit !(t < 30)}' && pass "refusal within 30 s (${DT}s)" || fail "refusal took ${DT}s"
  hook busy-release vmtest-gpu release end $D/gpu-vm.xml
  expect_rc0 "release after the refused prepare exits 0"
  same_as /tmp/snap.before "busy audio: nothing changed"
  kill $holder 2>/dev/null; wait $holder 2>/dev/null
}

# 4: the boot VGA is the host's display only while an output of it is lit. Boot 'iommu' forces the output off
# (video=Virtual-1:d, a headless host): the GPU passes (every other scenario). Boot 'lit' keeps the console on it:
# refused without single-GPU mode, nothing changed.
scenario_host_display() {
  echo "== scenario: a boot VGA with a lit output is the host's display"
  out=$(ls -d /sys/bus/pci/devices/$GPU/drm/card*/card*-Virtual-1 2>/dev/null | head -1)
  [ -n "$out" ] || { fail "no DRM output of $GPU"; return; }
  info "$out: boot_vga=$(cat /sys/bus/pci/devices/$GPU/boot_vga) status=$(cat $out/status) enabled=$(cat $out/enabled)"
  snapshot > /tmp/snap.before
  # boot 'lit' says the console must be lit on it: a dark output there would turn the refusal check into a pass
  if [ "$EXPECT_LIT" = 1 ] && [ "$(cat "$out/enabled")" != enabled ]; then
    fail "boot 'lit': the output of $GPU is not lit, nothing to refuse"; return
  fi
  hook lit vmtest-gpu prepare begin $D/gpu-vm.xml
  if [ "$(cat "$out/enabled")" = enabled ]; then
    expect_refusal lit "with its output lit, the boot VGA is the host's display: refused" "host's display GPU .*is lit"
  else
    expect_rc0 "with its output dark, the boot VGA is not the host's display: prepare exits 0"
  fi
  hook lit-release vmtest-gpu release end $D/gpu-vm.xml
  expect_rc0 "release exits 0"
  same_as /tmp/snap.before "the host is as before"
}

# Issue 9, items 1, 10, 11, 15 on the real kernel.
# 1: `stopped end` changes nothing (libvirt reattaches its managed hostdevs after it); `release end` restores.
scenario_stop_order() {
  echo "== scenario: stopped end changes nothing, release end gives the devices back"
  snapshot > /tmp/snap.before
  hook so-prep vmtest-gpu prepare begin $D/gpu-vm.xml
  expect_rc0 "prepare begin exits 0"
  snapshot > /tmp/snap.prepared
  hook so-stopped vmtest-gpu stopped end $D/gpu-vm.xml
  expect_rc0 "stopped end exits 0"
  same_as /tmp/snap.prepared "stopped end changed nothing (the functions stay on vfio-pci until release)"
  [ -e /run/vmgpu/vmtest-gpu.json ] && pass "the journal is still there after stopped end" || fail "stopped end removed the journal"
  hook so-release vmtest-gpu release end $D/gpu-vm.xml
  expect_rc0 "release end exits 0"
  same_as /tmp/snap.before "release end restored everything"
}

# 10: a prepare that finds its own VM's journal (a crash, a double start) undoes it first, then plans.
scenario_stale_journal() {
  echo "== scenario: a second prepare over this VM's own journal"
  snapshot > /tmp/snap.before
  hook sj-prep1 vmtest-gpu prepare begin $D/gpu-vm.xml
  expect_rc0 "first prepare exits 0"
  snapshot > /tmp/snap.prepared
  hook sj-prep2 vmtest-gpu prepare begin $D/gpu-vm.xml
  expect_rc0 "second prepare over the stale journal exits 0"
  same_as /tmp/snap.prepared "the second prepare left the same state as one prepare (no pages or CPUs counted twice)"
  hook sj-release vmtest-gpu release end $D/gpu-vm.xml
  expect_rc0 "release end exits 0"
  same_as /tmp/snap.before "one release restores everything (hugepages included)"
}

# 11: hugepages beyond what the host can reach are refused when planning, before any change.
scenario_huge_request() {
  echo "== scenario: <memory> of 1 TiB with hugepages"
  snapshot > /tmp/snap.before
  sed "s#<memory unit='KiB'>262144</memory>#<memory unit='KiB'>1073741824</memory>#;s#<currentMemory unit='KiB'>262144#<currentMemory unit='KiB'>1073741824#" \
    $D/gpu-vm.xml > /tmp/huge-vm.xml
  hook huge vmtest-gpu prepare begin /tmp/huge-vm.xml
  expect_refusal huge "1 TiB of hugepages refused" "can give at most .* MiB to hugepages"
  same_as /tmp/snap.before "the refused request changed nothing (nr_hugepages untouched)"
  hook huge-release vmtest-gpu release end /tmp/huge-vm.xml
  expect_rc0 "release after the refusal exits 0"
}

# 15: the device identity recorded at define time: the real ids pass without a warning, others are refused.
scenario_identity() {
  echo "== scenario: device identity in the metadata"
  snapshot > /tmp/snap.before
  dev=/sys/bus/pci/devices/$GPU
  id="$(sed 's/^0x//' $dev/vendor):$(sed 's/^0x//' $dev/device)"
  subsys="$(sed 's/^0x//' $dev/subsystem_vendor):$(sed 's/^0x//' $dev/subsystem_device)"
  class=$(cat $dev/class)
  fn="<vmgpu:function address=\"$GPU\" id=\"$id\" subsystem=\"$subsys\" class=\"$class\"/>"
  sed "s#<vmgpu:gpu address=\"$GPU\"/>#<vmgpu:gpu address=\"$GPU\">$fn</vmgpu:gpu>#" $D/gpu-vm.xml > /tmp/id-ok.xml
  grep -q "vmgpu:function" /tmp/id-ok.xml || { fail "could not write the identity into the domain"; return; }
  hook id-ok vmtest-gpu prepare begin /tmp/id-ok.xml
  expect_rc0 "prepare with the recorded ids of $GPU ($id, $subsys, $class) exits 0"
  grep -qi "no device identity" /tmp/err.id-ok && fail "a warning about missing ids although they are recorded" ||
    pass "no identity warning when the ids are recorded"
  hook id-ok-release vmtest-gpu release end /tmp/id-ok.xml
  expect_rc0 "release exits 0"
  sed "s#id=\"$id\"#id=\"8086:10d3\"#;s#class=\"$class\"#class=\"0x020000\"#" /tmp/id-ok.xml > /tmp/id-moved.xml
  hook id-moved vmtest-gpu prepare begin /tmp/id-moved.xml
  expect_refusal id-moved "another device at $GPU than recorded: refused" "now holds .*vmgpu define vmtest-gpu --update --gpu"
  same_as /tmp/snap.before "the refused prepare changed nothing"
  hook id-moved-release vmtest-gpu release end /tmp/id-moved.xml
  expect_rc0 "release after the refusal exits 0"
}

scenario_crash() {
  echo "== scenario: vmgpu killed after each journaled step of prepare, then vmgpu restore"
  crash_loop
}

# The same on a host whose cgroup v2 root has no cpuset controller enabled and no slices: vmgpu then also
# journals enabling the controller and creating the cgroups, and restore must take both back.
scenario_crash_bare_cgroups() {
  echo "== scenario: crash safety on a cgroup v2 host without slices (vmgpu enables cpuset and creates them)"
  for s in $HOST_SLICES machine.slice; do
    for p in $(cat $CG/$s/cgroup.procs); do echo "$p" > $CG/cgroup.procs; done
    rmdir $CG/$s
  done
  echo -cpuset > $CG/cgroup.subtree_control || { fail "cannot disable the cpuset controller"; return; }
  crash_loop
}

crash_loop() {
  xml=${CRASH_XML:-$D/gpu-vm.xml}
  snapshot > /tmp/snap.before
  step=1
  while [ $step -le 40 ]; do
    hook "crash$step" vmtest-gpu prepare begin "$xml" "$CRASH_VAR=$step"
    if [ "$RC" = 0 ]; then
      info "prepare completed with $CRASH_VAR=$step: it has $((step - 1)) journaled steps"
      hook crash-done vmtest-gpu release end "$xml"
      same_as /tmp/snap.before "release after the last crash step restores everything"
      break
    fi
    [ "$RC" = 137 ] || { fail "crash step $step: expected a SIGKILL exit (137), got rc=$RC"; break; }
    [ -n "${WITH_GOV:-}" ] && [ "$(governor_of 2)" = performance ] && gov_steps="${gov_steps:-}$step "
    if timeout $HOOK_LIMIT vmgpu restore vmtest-gpu > /tmp/out.restore 2> /tmp/err.restore; then
      pass "vmgpu restore after a crash at step $step exits 0"
    else fail "vmgpu restore after a crash at step $step: rc=$? $(head -c 300 /tmp/err.restore)"; break; fi
    sed 's/^/    restore: /' /tmp/out.restore | head -5
    same_as /tmp/snap.before "crash after step $step + restore: state equals the one before prepare" || break
    step=$((step + 1))
  done
  [ $step -gt 1 ] || fail "$CRASH_VAR=1 did not crash: crash injection is missing"
}

# Host tuning (<vmgpu:tuning governor="performance" irq-affinity="yes"/>, vCPUs on 2-3, emulator on 0): CPUs 2-3
# run the performance governor while the VM runs, CPUs 0-1 keep theirs, and release puts back each CPU's own
# governor; every IRQ the kernel lets vmgpu move leaves CPUs 2-3 while the VM runs, and every one is back at
# release.
# on_pinned LIST: true when the CPU list holds CPU 2 or 3 (the tuned VM's vCPU pins)
on_pinned() {
  echo "$1" | awk -F, '{ for (i = 1; i <= NF; i++) { n = split($i, r, "-"); lo = r[1] + 0; hi = (n > 1 ? r[2] : r[1]) + 0
                         if (lo <= 3 && hi >= 2) f = 1 } } END { exit !f }'
}

scenario_tuning() {
  echo "== scenario: host tuning (performance governor, IRQ affinity)"
  WITH_IRQS=1
  snapshot > /tmp/snap.before
  irq_snapshot > /tmp/irq.before
  gov_before=""
  for c in 0 1 2 3; do gov_before="$gov_before $(governor_of $c)"; done
  hook tuning vmtest-gpu prepare begin $D/tuned-vm.xml VMGPU_LOG=info
  expect_rc0 "prepare begin with tuning exits 0"
  for s in performance-governor move-irqs; do
    grep -q "\"$s\"" /run/vmgpu/vmtest-gpu.json && pass "the journal holds the $s step" || fail "no $s step in the journal"
  done
  if [ -e /sys/devices/system/cpu/cpu2/cpufreq ]; then
    for c in 0 1 2 3; do
      g=$(governor_of $c) was=$(echo "$gov_before" | awk -v i=$((c + 1)) '{ print $i }')
      case $c in
        2 | 3) [ "$g" = performance ] && pass "pinned CPU $c: governor performance (was $was)" ||
          fail "pinned CPU $c: governor $g, want performance" ;;
        *) [ "$g" = "$was" ] && pass "CPU $c (not pinned) keeps governor $g" || fail "CPU $c: governor $was -> $g" ;;
      esac
    done
  else fail "no cpufreq in this guest (boot it with VM_CPUFREQ=1 and vmtest.cpufreq=1)"; fi
  irq_snapshot > /tmp/irq.prepared
  moved=0 stuck=0 bad=0
  while read -r _ n cpus; do
    was=$(sed -n "s/^irq $n //p" /tmp/irq.before)
    [ -n "$was" ] || continue
    [ "$cpus" != "$was" ] && moved=$((moved + 1))
    if on_pinned "$cpus"; then
      # still on a pinned CPU: only allowed for an IRQ the kernel refused to move (unchanged)
      if [ "$cpus" = "$was" ]; then stuck=$((stuck + 1)); else bad=$((bad + 1)); info "IRQ $n: $was -> $cpus"; fi
    fi
  done < /tmp/irq.prepared
  info "IRQs moved off CPUs 2-3: $moved, left by the kernel's refusal: $stuck"
  [ $moved -gt 0 ] && pass "$moved IRQs' smp_affinity_list changed" || fail "no IRQ's smp_affinity_list changed"
  [ $bad = 0 ] && pass "no moved IRQ is on a pinned CPU" || fail "$bad moved IRQs still on CPUs 2-3"
  hook tuning-release vmtest-gpu release end $D/tuned-vm.xml
  expect_rc0 "release end exits 0"
  same_as /tmp/snap.before "after release every CPU's governor and IRQ's smp_affinity_list (and the rest) is as before"
  unset WITH_IRQS
}

# kill -9 after each step of a tuned prepare (the performance-governor and move-irqs steps included), then
# vmgpu restore: governors and IRQs as before
scenario_crash_tuning() {
  echo "== scenario: crash safety with host tuning on"
  WITH_IRQS=1 WITH_GOV=1 CRASH_XML=$D/tuned-vm.xml gov_steps=
  crash_loop
  # the snapshot holds every CPU's governor, so each restore above checked them; this proves some crash
  # really came after the governor step
  [ -n "$gov_steps" ] && pass "killed with CPU 2 on performance after steps: ${gov_steps% } (restored each time)" ||
    fail "no crash step left the performance governor set: the governor step never ran"
  unset WITH_IRQS WITH_GOV CRASH_XML
}

scenario_noiommu() {
  echo "== scenario: no IOMMU"
  [ -z "$(ls /sys/kernel/iommu_groups)" ] && pass "no IOMMU groups (no vIOMMU)" || fail "IOMMU groups exist in the no-IOMMU boot"
  snapshot > /tmp/snap.before
  hook noiommu vmtest-gpu prepare begin $D/gpu-vm.xml
  expect_refusal noiommu "prepare fails clearly without an IOMMU" "iommu"
  same_as /tmp/snap.before "no IOMMU: nothing changed"
  hook noiommu-release vmtest-gpu release end $D/gpu-vm.xml
  expect_rc0 "release after the failed prepare exits 0"
  same_as /tmp/snap.before "no IOMMU: release changes nothing"
}

# ---------------------------------------------------------------------------------------------------------------
echo "T+ tests start at uptime $(uptime_s)s, kernel $(uname -r), mode $MODE"
cgroup_setup
mkdir -p /etc/libvirt/hooks/qemu.d            # libvirt's hook paths, for the argv0 hook mode
ln -s /bin/vmgpu /etc/libvirt/hooks/qemu
ln -s /bin/vmgpu /etc/libvirt/hooks/qemu.d/vmgpu
info "GPU $GPU=$(drv_of $GPU) $AUD=$(drv_of $AUD) iommu_group=$(group_of $GPU)"
[ "$CPUFREQ" = 1 ] && cpufreq_setup
if [ "$MODE" = noiommu ]; then
  scenario_noiommu
else
  [ "$(drv_of $GPU)" = bochs-drm ] && [ "$(drv_of $AUD)" = snd_hda_intel ] && pass "host drivers bound" ||
    fail "host drivers: $GPU=$(drv_of $GPU) $AUD=$(drv_of $AUD)"
  for s in ${SCENARIOS:-foreign host_display prepare_release stop_order stale_journal huge_request identity busy_audio crash tuning crash_tuning crash_bare_cgroups}; do
    "scenario_$s"
  done
fi
vm_finish
