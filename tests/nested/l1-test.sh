#!/bin/bash
# Runs inside L1 (Debian + systemd + libvirt under QEMU with intel-iommu, 3 CPUs and a VGA+HDA "GPU" at
# 01:00.0/.1), started by vmtest.service from the host's 9p share: vmgpu's production path, end to end. vmgpu
# install, vmgpu define l2 (the GPU, vCPU on CPU 1, 128 hugepages; TCG: no KVM inside) and l3 (no GPU, vCPU on
# CPU 2, 64 hugepages). Three start/stop cycles of l2 (l3 running alongside in two of them, stopped before and
# after l2): while running, check what vmgpu and libvirt did, the host CPUs being online minus both VMs' pins
# and the pool holding both VMs' pages; after each stop, that every function is back on its driver and really
# works (the HDA codec in /proc/asound, the DRM card node), the kernel log has none of the errors a too-early
# rebind causes, and the CPUs and pool hold exactly the VMs still running. Results go to the console and to
# /mnt/host/out/.
S=/mnt/host; OUT=$S/out; mkdir -p "$OUT"
exec > >(tee "$OUT/l1.log") 2>&1
log() { echo "L1[$(cut -d' ' -f1 /proc/uptime)] $*"; }
FAIL=0; ok() { log "PASS: $*"; }; bad() { log "FAIL: $*"; FAIL=1; }
drv() { [ -e "/sys/bus/pci/devices/$1/driver" ] && basename "$(readlink "/sys/bus/pci/devices/$1/driver")" || echo none; }
slices() { for s in system.slice user.slice init.scope; do printf '%s=%s ' $s "$(cat /sys/fs/cgroup/$s/cpuset.cpus.effective 2>/dev/null)"; done; }
G=0000:01:00.0; A=0000:01:00.1; SHM=looking-glass-l2
log "systemd: $(systemctl is-system-running); CPUs online $(cat /sys/devices/system/cpu/online)"
for g in /sys/kernel/iommu_groups/*; do log "iommu group $(basename "$g"): $(ls "$g/devices" | tr '\n' ' ')"; done
install -m755 "$S/vmgpu" /usr/bin/vmgpu
# L1 has no network: without its own name in /etc/hosts libvirt's getaddrinfo('l1') at domain start waits for
# DNS timeouts (about two minutes)
grep -qw l1 /etc/hosts || echo "127.0.1.1 l1" >> /etc/hosts
D0="$(drv $G) $(drv $A)"; C0=$(slices); H0=$(cat /proc/sys/vm/nr_hugepages)
log "before: drivers=[$D0] $C0 nr_hugepages=$H0 boot_vga(01:00.0)=$(cat /sys/bus/pci/devices/$G/boot_vga 2>&1)"

vmgpu install --restart && ok "vmgpu install --restart" || bad "vmgpu install"
for _ in $(seq 100); do virsh -q version >/dev/null 2>&1 && break; sleep 0.2; done
ARGS=(l2 --template linux --virt-type qemu --gpu $G --hugepages 2M --looking-glass 1920x1080 --shm-name $SHM
      --memory 256M --network none --pin 1)
vmgpu define "${ARGS[@]}" --dry-run > "$OUT/l2-dry-run.xml" || bad "define --dry-run"
out=$(vmgpu define "${ARGS[@]}" 2>&1) && ok "vmgpu define: $out" || bad "vmgpu define: $out"
virsh dumpxml --inactive l2 > "$OUT/l2-defined.xml"
out=$(vmgpu define l3 --template linux --virt-type qemu --gpu none --hugepages 2M --looking-glass off --memory 128M \
      --network none --pin 2 2>&1) && ok "vmgpu define l3: $out" || bad "vmgpu define l3: $out"


# The host while the VMs in "$@" run: CPUs online minus their pins, the pool their pages on top of H0.
expect_shared() {
  local tag=$1; shift
  local keep=0-2 pages=$H0 l2=0 l3=0
  case " $* " in *" l2 "*) l2=1 pages=$((pages + 128)) ;; esac
  case " $* " in *" l3 "*) l3=1 pages=$((pages + 64)) ;; esac
  case $l2$l3 in 11) keep=0 ;; 10) keep=0,2 ;; 01) keep=0-1 ;; esac
  if [ $# = 0 ]; then
    [ "$(slices)" = "$C0" ] && ok "$tag: host CPUs back to $C0" || bad "$tag: slices $(slices) (before: $C0)"
  else
    local want="system.slice=$keep user.slice=$keep init.scope=$keep "
    [ "$(slices)" = "$want" ] && ok "$tag: host CPUs $keep with [$*] running" || bad "$tag: slices [$(slices)], want [$want]"
  fi
  [ "$(cat /proc/sys/vm/nr_hugepages)" = "$pages" ] && ok "$tag: nr_hugepages $pages with [$*] running" ||
    bad "$tag: nr_hugepages $(cat /proc/sys/vm/nr_hugepages), want $pages"
}

# After l2 stopped: both functions back on their drivers and working, the kernel log clean.
health() {
  local tag=$1 n="" codec="" drm=""
  for _ in $(seq 50); do [ "$(drv $G) $(drv $A)" = "$D0" ] && break; sleep 0.2; done
  [ "$(drv $G) $(drv $A)" = "$D0" ] && ok "$tag: drivers restored: $D0" || bad "$tag: drivers $(drv $G) $(drv $A) (before: $D0)"
  # snd_hda_intel probes the codec asynchronously: wait for it
  for _ in $(seq 100); do
    n=$(ls -d /sys/bus/pci/devices/$A/sound/card* 2>/dev/null | head -1); n=${n##*card}
    [ -n "$n" ] && [ -e "/proc/asound/card$n/codec#0" ] && codec=$(head -1 "/proc/asound/card$n/codec#0") && break
    sleep 0.2
  done
  [ -n "$codec" ] && grep -q "^ *$n \[" /proc/asound/cards && ok "$tag: HDA card $n in /proc/asound/cards with its codec ($codec)" ||
    bad "$tag: no working HDA codec on $A (card '${n}'; /proc/asound/cards: $(tr '\n' ' ' < /proc/asound/cards 2>&1))"
  for _ in $(seq 50); do
    drm=$(ls "/sys/bus/pci/devices/$G/drm" 2>/dev/null | grep -m1 -x 'card[0-9]*')
    [ -n "$drm" ] && [ -c "/dev/dri/$drm" ] && break; sleep 0.2
  done
  [ -n "$drm" ] && [ -c "/dev/dri/$drm" ] && ok "$tag: DRM node /dev/dri/$drm" || bad "$tag: no DRM card node for $G ('$drm')"
  local klog; klog=$(dmesg | grep -E 'spurious response|Cannot probe codecs|ID mismatch|azx_get_response timeout')
  [ -z "$klog" ] && ok "$tag: kernel log free of codec/ID errors" || bad "$tag: kernel log: $(echo "$klog" | head -3 | tr '\n' '|')"
}

start_vm() {
  local t0 t1 out rc; t0=$(date +%s.%N); out=$(virsh start "$1" 2>&1); rc=$?; t1=$(date +%s.%N)
  [ $rc = 0 ] && ok "$2: virsh start $1 in $(awk "BEGIN{printf \"%.1f\", $t1-$t0}") s" || bad "$2: virsh start $1: $out"
}
stop_vm() {
  local t0 t1; t0=$(date +%s.%N); virsh destroy "$1" >/dev/null; t1=$(date +%s.%N)
  log "$2: virsh destroy $1 in $(awk "BEGIN{printf \"%.1f\", $t1-$t0}") s"
}

# l2 running: what vmgpu and libvirt did (checked in depth in the first cycle)
check_l2_running() {
  local tag=$1 P args grp tot free pins
  P=$(pgrep -f 'guest=l2,' | head -1)
  [ "$(drv $G) $(drv $A)" = "vfio-pci vfio-pci" ] && ok "$tag: both functions on vfio-pci" || bad "$tag: drivers while running: $(drv $G) $(drv $A)"
  grp=$(basename "$(readlink /sys/bus/pci/devices/$G/iommu_group)")
  ls -l "/proc/$P/fd" 2>/dev/null | grep -q "/dev/vfio/$grp" && ok "$tag: L2 QEMU holds /dev/vfio/$grp" || bad "$tag: L2 QEMU does not hold /dev/vfio/$grp"
  [ "$tag" = "cycle 1" ] || return 0
  virsh dumpxml l2 > "$OUT/l2-live.xml" 2>/dev/null
  args=$(tr '\0' ' ' < "/proc/$P/cmdline" 2>/dev/null)
  for f in $G $A; do
    echo "$args" | grep -q "\"driver\":\"vfio-pci\",\"host\":\"$f\"" && ok "L2 QEMU has $f through vfio-pci" || bad "no vfio-pci $f in L2's QEMU"
  done
  echo "$args" | grep -q '"mem-path":"/dev/hugepages' && ok "guest RAM on hugetlbfs" || bad "no hugepage mem-path in L2's QEMU"
  tot=$(awk '/HugePages_Total/{print $2}' /proc/meminfo); free=$(awk '/HugePages_Free/{print $2}' /proc/meminfo)
  [ "$tot" -ge 128 ] && [ "$free" -lt "$tot" ] && ok "hugepages allocated and used: total=$tot free=$free" || bad "hugepages total=$tot free=$free"
  pins=$(virsh vcpupin l2 | awk '/^ *[0-9]+ /{print $2}' | tr '\n' ' ')
  [ "$pins" = "1 " ] && ok "l2's vCPU pinned to CPU 1" || bad "l2 pins [$pins]"
  local st; st=$(stat -c '%U:%G %a %s' /dev/shm/$SHM 2>&1)
  [ "$st" = "root:kvm 660 33554432" ] && ok "/dev/shm/$SHM root:kvm 0660 32 MiB" || bad "/dev/shm/$SHM: $st"
  sleep 3
  [ "$(virsh domstate l2)" = running ] && ok "l2 running" || bad "l2 state: $(virsh domstate l2 --reason)"
  vmgpu status > "$OUT/status-running.txt" 2>&1; grep -q l2 "$OUT/status-running.txt" && ok "vmgpu status lists l2" || bad "vmgpu status: $(cat "$OUT/status-running.txt")"
}

# cycle 1: l2, then l3 alongside; l2 stops first (out of order), then l3
# cycle 2: l3, then l2; l3 stops first, then l2
# cycle 3: l2 alone
for cycle in 1 2 3; do
  tag="cycle $cycle"
  case $cycle in
    1) start_vm l2 "$tag"; check_l2_running "$tag"; expect_shared "$tag" l2
       start_vm l3 "$tag"; expect_shared "$tag" l2 l3
       stop_vm l2 "$tag"; health "$tag"; expect_shared "$tag, l2 stopped" l3
       stop_vm l3 "$tag"; expect_shared "$tag, both stopped" ;;
    2) start_vm l3 "$tag"; expect_shared "$tag" l3
       start_vm l2 "$tag"; check_l2_running "$tag"; expect_shared "$tag" l3 l2
       stop_vm l3 "$tag"; expect_shared "$tag, l3 stopped" l2
       stop_vm l2 "$tag"; health "$tag"; expect_shared "$tag, both stopped" ;;
    3) start_vm l2 "$tag"; check_l2_running "$tag"; expect_shared "$tag" l2
       stop_vm l2 "$tag"; health "$tag"; expect_shared "$tag, stopped" ;;
  esac
  [ ! -e /dev/shm/$SHM ] && ok "$tag: /dev/shm/$SHM removed" || bad "$tag: /dev/shm/$SHM still there"
done
vmgpu status > "$OUT/status-after.txt" 2>&1 && ! grep -qE 'l2|l3' "$OUT/status-after.txt" && ok "vmgpu status empty" || bad "vmgpu status after: $(cat "$OUT/status-after.txt")"
n=$(journalctl -b --no-pager -t vmgpu | grep -c 'step [0-9]*:')
[ "$n" -gt 0 ] && ok "journalctl -t vmgpu has the hook's steps ($n lines)" || bad "journalctl -t vmgpu: no step lines"
n=$(journalctl -b --no-pager -u libvirtd | grep -c 'unable to stat: /dev/vfio')
[ "$n" = 0 ] && ok "libvirtd never found a device gone from vfio-pci at its reattach" || bad "libvirtd: $n x 'unable to stat: /dev/vfio'"
# --update on the defined domain: Looking Glass to 1440p, the GPU stays in its guest slot, nothing duplicated
ARGS=(l2 --template linux --virt-type qemu --gpu $G --hugepages 2M --looking-glass 2560x1440 --shm-name $SHM
      --memory 256M --network none --pin 1)
out=$(vmgpu define "${ARGS[@]}" --update 2>&1) && ok "vmgpu define --update: $out" || bad "define --update: $out"
virsh dumpxml --inactive l2 > "$OUT/l2-updated.xml"
bus() { grep -o "<address type='pci' domain='0x0000' bus='0x[0-9a-f]*' slot='0x00' function='0x0' multifunction='on'/>" "$1"; }
[ "$(grep -c '<hostdev ' "$OUT/l2-updated.xml")" = 2 ] && [ -n "$(bus "$OUT/l2-defined.xml")" ] &&
  [ "$(bus "$OUT/l2-updated.xml")" = "$(bus "$OUT/l2-defined.xml")" ] && ok "--update kept both hostdevs in their guest slot" ||
  bad "--update hostdevs: $(grep -A4 '<hostdev ' "$OUT/l2-updated.xml" | grep address)"
grep -q "<size unit='M'>64</size>" "$OUT/l2-updated.xml" && ok "--update: Looking Glass 64 MiB" || bad "--update shmem size"
journalctl -b --no-pager -o short-monotonic -t vmgpu > "$OUT/vmgpu-journal.txt" 2>/dev/null
journalctl -b --no-pager -o short-monotonic -u libvirtd > "$OUT/libvirtd-journal.txt" 2>/dev/null
journalctl -b --no-pager -o short-monotonic > "$OUT/journal.txt" 2>/dev/null
cp /var/log/libvirt/qemu/l2.log "$OUT/l2-qemu.log" 2>/dev/null
[ $FAIL = 0 ] && R="RESULT: ALL PASS" || R="RESULT: FAILURES"
log "$R"; echo "$R" > "$OUT/result"; sync
