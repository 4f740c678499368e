#!/bin/bash
# Runs inside L1 (Debian + systemd + libvirt under QEMU with intel-iommu and a VGA+HDA "GPU" at 01:00.0/.1),
# started by vmtest.service from the host's 9p share: vmgpu's production path, end to end. vmgpu install,
# vmgpu define l2 (TCG: no KVM inside), virsh start l2, then check what vmgpu and libvirt did; virsh destroy l2
# and check that everything is back. Results go to the console and to /mnt/host/out/.
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
      --memory 256M --network none)
vmgpu define "${ARGS[@]}" --dry-run > "$OUT/l2-dry-run.xml" || bad "define --dry-run"
out=$(vmgpu define "${ARGS[@]}" 2>&1) && ok "vmgpu define: $out" || bad "vmgpu define: $out"
virsh dumpxml --inactive l2 > "$OUT/l2-defined.xml"

log "virsh start l2"
t0=$(date +%s.%N); out=$(virsh start l2 2>&1); rc=$?; t1=$(date +%s.%N)
[ $rc = 0 ] && ok "virsh start l2 in $(awk "BEGIN{printf \"%.1f\", $t1-$t0}") s" || bad "virsh start l2: $out"
virsh dumpxml l2 > "$OUT/l2-live.xml" 2>/dev/null
P=$(pgrep -f 'guest=l2,' | head -1)
args=$(tr '\0' ' ' < "/proc/$P/cmdline" 2>/dev/null)
for f in $G $A; do
  echo "$args" | grep -q "\"driver\":\"vfio-pci\",\"host\":\"$f\"" && ok "L2 QEMU has $f through vfio-pci" || bad "no vfio-pci $f in L2's QEMU"
done
[ "$(drv $G) $(drv $A)" = "vfio-pci vfio-pci" ] && ok "both functions on vfio-pci" || bad "drivers while running: $(drv $G) $(drv $A)"
grp=$(basename "$(readlink /sys/bus/pci/devices/$G/iommu_group)")
ls -l "/proc/$P/fd" 2>/dev/null | grep -q "/dev/vfio/$grp" && ok "L2 QEMU holds /dev/vfio/$grp" || bad "L2 QEMU does not hold /dev/vfio/$grp"
echo "$args" | grep -q '"mem-path":"/dev/hugepages' && ok "guest RAM on hugetlbfs" || bad "no hugepage mem-path in L2's QEMU"
tot=$(awk '/HugePages_Total/{print $2}' /proc/meminfo); free=$(awk '/HugePages_Free/{print $2}' /proc/meminfo)
[ "$tot" -ge 128 ] && [ "$free" -lt "$tot" ] && ok "hugepages allocated and used: total=$tot free=$free" || bad "hugepages total=$tot free=$free"
pins=$(virsh vcpupin l2 | awk '/^ *[0-9]+ /{print $2}' | tr '\n' ' ')
C1=$(slices)
log "vCPU pins: [$pins] host slices: $C1"
[ "$C1" = "system.slice=0 user.slice=0 init.scope=0 " ] && [ "$pins" = "1 " ] &&
  ok "vCPU pinned to CPU 1, host slices restricted to CPU 0" || bad "pins [$pins] slices [$C1]"
st=$(stat -c '%U:%G %a %s' /dev/shm/$SHM 2>&1)
[ "$st" = "root:kvm 660 33554432" ] && ok "/dev/shm/$SHM root:kvm 0660 32 MiB" || bad "/dev/shm/$SHM: $st"
sleep 3
[ "$(virsh domstate l2)" = running ] && ok "l2 running" || bad "l2 state: $(virsh domstate l2 --reason)"
vmgpu status > "$OUT/status-running.txt" 2>&1; grep -q l2 "$OUT/status-running.txt" && ok "vmgpu status lists l2" || bad "vmgpu status: $(cat "$OUT/status-running.txt")"

t0=$(date +%s.%N); virsh destroy l2 >/dev/null; t1=$(date +%s.%N)
log "virsh destroy in $(awk "BEGIN{printf \"%.1f\", $t1-$t0}") s"
for _ in $(seq 50); do [ "$(drv $G) $(drv $A)" = "$D0" ] && break; sleep 0.2; done
[ "$(drv $G) $(drv $A)" = "$D0" ] && ok "drivers restored: $D0" || bad "drivers after destroy: $(drv $G) $(drv $A) (before: $D0)"
[ "$(slices)" = "$C0" ] && ok "host CPUs restored: $C0" || bad "slices after destroy: $(slices) (before: $C0)"
[ "$(cat /proc/sys/vm/nr_hugepages)" = "$H0" ] && ok "nr_hugepages restored: $H0" || bad "nr_hugepages after destroy: $(cat /proc/sys/vm/nr_hugepages) (before: $H0)"
[ ! -e /dev/shm/$SHM ] && ok "/dev/shm/$SHM removed" || bad "/dev/shm/$SHM still there"
vmgpu status > "$OUT/status-after.txt" 2>&1 && ! grep -q l2 "$OUT/status-after.txt" && ok "vmgpu status empty" || bad "vmgpu status after: $(cat "$OUT/status-after.txt")"
# --update on the defined domain: Looking Glass to 1440p, the GPU stays in its guest slot, nothing duplicated
ARGS=(l2 --template linux --virt-type qemu --gpu $G --hugepages 2M --looking-glass 2560x1440 --shm-name $SHM
      --memory 256M --network none)
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
