#!/usr/bin/env bash
# Real libvirtd: `vmgpu define` a TCG domain with a Looking Glass shmem into a private libvirtd (own mount
# namespace: private /etc/libvirt, /run, /var/lib|log|cache/libvirt; the host's libvirt state is never touched)
# that runs the real vmgpu as its qemu hook, then `virsh start` / `virsh destroy` it and check what the hook did:
# prepare created /dev/shm/<name> as root:kvm 0660 with the formula's size before QEMU started, started ran,
# the domain ran, release removed the file, `vmgpu status` is empty. The domain is defined in the install phase
# (--iso/--drivers): the real viewer on Xvfb shows its firmware through SPICE, pixel-identical to `virsh
# screenshot`; `--update --display looking-glass` then removes the virtual display and the ISOs, keeping a user
# edit. The hook's viewer launch at `started`, for real: a second domain for a test user with an Xvfb "desktop
# session" gets `vmgpu view` started by the hook as that user, connected to the VM's SPICE server. Also runs
# virt-xml-validate on every XML define produces here. Exits non-zero and says what failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
T=${CARGO_TARGET_DIR:-target}
FAIL=0
ok() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; FAIL=1; }
die() { echo "FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (private mount namespace, libvirtd)"
for tool in libvirtd virtlogd virsh unshare nsenter virt-xml-validate xmllint; do
  command -v $tool >/dev/null || die "$tool is not installed (run tests/install-deps.sh)"
done
# both binaries: `vmgpu install` copies the hook-only vmgpu-hook beside it, so the real daemon runs that one
cargo build --quiet --bins || die "cargo build"
VMGPU=$(cd "$T/debug" && pwd)/vmgpu

W=$(mktemp -d /tmp/vmgpu-h30.XXXXXX)
chmod 755 "$W"   # QEMU (libvirt-qemu) opens the disk image and the ISO in here
NAME=vmgpu-h30-$$
SHM=vmgpu-h30-$$
B=$W/root
LP=; VL=; HUSER=; XL=
# the desktop user of the viewer-launch phase (6): in kvm for the shm file and the private libvirtd's socket
if command -v useradd >/dev/null && ! id vmgpuh30 >/dev/null 2>&1 &&
   useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin -G kvm vmgpuh30; then
  HUSER=vmgpuh30
fi
cleanup() {
  if [ -n "$LP" ]; then
    virsh -q -c "$URI" destroy "$NAME" >/dev/null 2>&1
    kill -TERM "$LP" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$LP" 2>/dev/null || break; sleep 0.1; done
  fi
  [ -n "$VL" ] && kill -TERM "$VL" 2>/dev/null
  if [ -n "$HUSER" ]; then pkill -u "$HUSER" 2>/dev/null; sleep 0.3; userdel "$HUSER" 2>/dev/null; fi
  [ -n "$XL" ] && kill "$XL" 2>/dev/null
  rm -f "/dev/shm/$SHM" "/dev/shm/$SHM-launch"
  rm -rf "$W"
}
trap cleanup EXIT

# 1) the private namespace: copies of /etc/libvirt (no hooks, no autostarted networks), empty state dirs with the
#    packaged owners/modes; vmgpu installs itself as the hook there before the daemons start (libvirt only looks
#    for hooks at start-up); then virtlogd + libvirtd (daemonized, they keep the namespace).
mkdir -p "$B"
cat > "$W/ns.sh" <<NS
set -euo pipefail
for d in run var-lib-libvirt var-log-libvirt var-cache-libvirt; do mkdir -p "$B/\$d"; done
cp -a /etc/libvirt "$B/etc-libvirt"
rm -rf "$B/etc-libvirt/hooks"/* "$B/etc-libvirt/qemu/networks/autostart"/* "$B/etc-libvirt/qemu/autostart"/* 2>/dev/null || true
rm -f "$B/etc-libvirt/qemu/"*.xml
# only this private daemon: the kvm group may use its read-write socket without polkit (the launched viewer runs
# as a desktop user and reads the domain's SPICE password)
printf 'unix_sock_group = "kvm"\nunix_sock_rw_perms = "0770"\nauth_unix_rw = "none"\n' >> "$B/etc-libvirt/libvirtd.conf"
(cd /var/lib/libvirt && find . -type d -print0 | tar --null --no-recursion -cf - -T -) | tar -xpf - -C "$B/var-lib-libvirt"
(cd /var/log/libvirt && find . -type d -print0 | tar --null --no-recursion -cf - -T -) | tar -xpf - -C "$B/var-log-libvirt"
mount --bind "$B/etc-libvirt" /etc/libvirt
mount --bind "$B/run" /run
mount --bind "$B/var-lib-libvirt" /var/lib/libvirt
mount --bind "$B/var-log-libvirt" /var/log/libvirt
mount --bind "$B/var-cache-libvirt" /var/cache/libvirt
# /dev/kvm as libvirt expects it (0660 root:kvm), only in here: else libvirt re-probes QEMU on every start.
if [ -c /dev/kvm ]; then
  mknod "$W/kvm-node" c 10 232 && chown root:kvm "$W/kvm-node" && chmod 0660 "$W/kvm-node" && mount --bind "$W/kvm-node" /dev/kvm
fi
"$VMGPU" install > "$W/install.log" 2>&1
# a logger that libvirt runs after vmgpu for every event (hooks/qemu.d/ runs after hooks/qemu): what vmgpu left
mkdir -p /etc/libvirt/hooks/qemu.d
cat > /etc/libvirt/hooks/qemu.d/zz-h30-log <<'LOG'
#!/bin/sh
cat > /dev/null
echo "\$2 \$3 shm=\$(stat -c '%U:%G:%a:%s' /dev/shm/$SHM 2>/dev/null || echo absent) qemu=\$(pgrep -f "guest=$NAME," | head -1)" >> $W/hook-calls.log
LOG
chmod 755 /etc/libvirt/hooks/qemu.d/zz-h30-log
virtlogd -d
libvirtd -d
for _ in \$(seq 100); do [ -S /run/libvirt/libvirt-sock ] && break; sleep 0.1; done
NS
unshare --mount --propagation private bash "$W/ns.sh" || { cat "$W/install.log" 2>/dev/null; die "private libvirtd did not start"; }
LP=$(cat "$B/run/libvirtd.pid"); VL=$(cat "$B/run/virtlogd.pid")
URI="qemu:///system?socket=$B/run/libvirt/libvirt-sock"
V() { virsh -q -c "$URI" "$@"; }
INNS() { nsenter -t "$LP" -m "$@"; }
[ -s "$W/install.log" ] && sed 's/^/  install: /' "$W/install.log"
INNS test -x /etc/libvirt/hooks/qemu && ok "vmgpu install put the hook in place" || bad "no /etc/libvirt/hooks/qemu after vmgpu install"
INNS cmp -s /etc/libvirt/hooks/qemu "${VMGPU%/vmgpu}/vmgpu-hook" && ok "the installed hook is the hook-only vmgpu-hook" ||
  bad "the installed hook is not vmgpu-hook: $(cat "$W/install.log")"

# 2) define through the virt crate, exactly as a user would (but TCG, no hostdev: this machine has no IOMMU)
ARGS=(--virt-type qemu --pin off --vcpus 1 --hugepages off --network none --shm-name "$SHM")
truncate -s 1M "$W/installer.iso"
# the driver ISO must look like one: an ISO 9660 volume descriptor at 32 KiB
truncate -s 64K "$W/virtio-win.iso" && printf '\001CD001' | dd of="$W/virtio-win.iso" bs=1 seek=32768 conv=notrunc status=none
GOOD=(--template linux --gpu none --memory 256M --disk "$W/disk.qcow2" --disk-size 64M --iso "$W/installer.iso"
      --drivers "$W/virtio-win.iso")
# refused input: one line each, and nothing defined in the daemon
before=$(V list --all --name | sort)
while IFS='|' read -r what extra; do
  # shellcheck disable=SC2086
  out=$("$VMGPU" define "$NAME" "${ARGS[@]}" $extra --connect "$URI" 2>&1) && bad "$what was accepted" ||
    { [ "$(echo "$out" | wc -l)" = 1 ] && ok "$what refused: $out" || bad "$what: not one line: $out"; }
done <<'BAD'
unknown template|--template windows95 --gpu none --memory 256M
resolution 0x0|--template linux --gpu none --memory 256M --looking-glass 0x0
resolution 99999x99999|--template linux --gpu none --memory 256M --looking-glass 99999x99999
memory beyond the host|--template linux --gpu none --memory 64T
GPU that does not exist|--template linux --gpu 0000:7f:1f.7 --memory 256M
--drivers that is not an ISO|--template linux --gpu none --memory 256M --drivers /etc/hostname
--drivers that does not exist|--template linux --gpu none --memory 256M --drivers /no/such/virtio-win.iso
an unknown --display|--template linux --gpu none --memory 256M --display vga
BAD
[ "$(V list --all --name | sort)" = "$before" ] && [ ! -e "$W/disk.qcow2" ] && ok "refused input defined and created nothing" ||
  bad "refused input changed the domain list or created the disk"
"$VMGPU" define "$NAME" "${ARGS[@]}" "${GOOD[@]}" --looking-glass 1920x1080 --dry-run > "$W/dry-run.xml" || bad "define --dry-run"
out=$("$VMGPU" define "$NAME" "${ARGS[@]}" "${GOOD[@]}" --looking-glass 1920x1080 --connect "$URI" 2>&1) && ok "defined: $out" || die "vmgpu define: $out"
out=$("$VMGPU" define "$NAME" "${ARGS[@]}" "${GOOD[@]}" --connect "$URI" 2>&1) && bad "defining $NAME twice succeeded" ||
  { [ "$(echo "$out" | wc -l)" = 1 ] && echo "$out" | grep -q "already exists" && ok "second define refused in one line: $out" ||
    bad "second define: unexpected message: $out"; }
V dumpxml --inactive "$NAME" > "$W/defined.xml"
info=$(qemu-img info "$W/disk.qcow2" 2>&1)
echo "$info" | grep -q "file format: qcow2" && echo "$info" | grep -q "virtual size: 64 MiB" && ok "qemu-img created the 64 MiB qcow2 disk" ||
  bad "disk image: $info"
grep -q "<source file='$W/installer.iso'/>" "$W/defined.xml" && ok "installer ISO attached" || bad "no ISO in the defined domain"
grep -q "https://vmgpu.dev/xmlns/config/1" "$W/defined.xml" && ok "vmgpu metadata stored in the domain" || bad "no vmgpu metadata in the defined domain"
# --iso: the install phase — a std VGA virtual display with SPICE, both ISOs as SATA CD-ROMs, the ISO boots first
grep -q "<model type='vga'" "$W/defined.xml" && ok "install phase: std VGA virtual display" || bad "install phase: $(grep -A2 '<video>' "$W/defined.xml")"
grep -q "<source file='$W/virtio-win.iso'/>" "$W/defined.xml" && ok "driver ISO attached" || bad "no driver ISO in the defined domain"
grep -A4 "<source file='$W/installer.iso'/>" "$W/defined.xml" | grep -q "<boot order='1'/>" && ok "the installer ISO boots first" ||
  bad "boot order: $(grep -B1 -A4 'device=.cdrom' "$W/defined.xml")"
grep -q 'display mode="install"' "$W/defined.xml" && ok "metadata records the install phase" || bad "no display phase in the metadata"

# 3) start: prepare creates the shm file before QEMU, started runs, the domain runs
out=$(V start "$NAME" 2>&1) && ok "virsh start" || bad "virsh start: $out"
V dumpxml "$NAME" > "$W/live.xml" 2>/dev/null
want=$((32 * 1024 * 1024))
grep -q "^prepare begin shm=root:kvm:660:" "$W/hook-calls.log" && ok "prepare created /dev/shm/$SHM root:kvm 0660 before QEMU" ||
  bad "prepare: $(grep '^prepare' "$W/hook-calls.log")"
grep -q "^started begin shm=root:kvm:660:$want qemu=[0-9]" "$W/hook-calls.log" && ok "started ran with QEMU up, shm $want bytes" ||
  bad "started: $(grep '^started' "$W/hook-calls.log")"
st=$(stat -c '%U:%G %a %s' "/dev/shm/$SHM" 2>&1)
[ "$st" = "root:kvm 660 $want" ] && ok "/dev/shm/$SHM is root:kvm 0660, $want bytes (1080p formula: 32 MiB)" || bad "/dev/shm/$SHM: $st"
[ "$(V domstate "$NAME" 2>&1)" = running ] && ok "domain running" || bad "domain state: $(V domstate "$NAME" 2>&1)"
# the real viewer on Xvfb finds the running domain's SPICE server (127.0.0.1, password) and shows its virtual
# display (the firmware); the window and `virsh screenshot` of the same moment must not differ in any pixel
if command -v Xvfb >/dev/null && command -v compare >/dev/null && command -v import >/dev/null; then
  D=$((300 + $$ % 300)); Xvfb ":$D" -screen 0 1280x1024x24 -nolisten tcp >/dev/null 2>&1 & XV=$!
  sleep 1
  DISPLAY=":$D" VMGPU_VIEW_TEST=1 "$VMGPU" view "$NAME" --connect "$URI" > "$W/view.out" 2> "$W/view.err" & VP=$!
  size=
  for _ in $(seq 600); do
    size=$(grep -o 'size=[0-9]*x[0-9]* .*source=spice' "$W/view.out" | tail -1 | sed 's/size=\([0-9x]*\) .*/\1/')
    [ -n "$size" ] && break; sleep 0.1
  done
  if [ -n "$size" ]; then
    ok "vmgpu view shows the domain's virtual display through SPICE (${size})"
    diff=none
    for _ in $(seq 40); do
      sleep 0.5
      V screenshot "$NAME" "$W/virsh-shot" >/dev/null 2>&1 || continue
      DISPLAY=":$D" import -window root -crop "${size}+0+0" +repage "$W/window.png" 2>/dev/null || continue
      diff=$(compare -metric AE "$W/virsh-shot" "$W/window.png" null: 2>&1 | cut -d' ' -f1)
      [ "$diff" = 0 ] && break
    done
    colours=$(identify -format '%k' "$W/virsh-shot" 2>/dev/null)
    [ "${colours:-0}" -ge 2 ] && ok "the guest's screen is not blank ($colours colours)" || bad "the guest's screen is blank: nothing compared"
    [ "$diff" = 0 ] && ok "window = virsh screenshot, 0 differing pixels ($size)" ||
      bad "window vs virsh screenshot: $diff pixels differ"
  else
    bad "vmgpu view never showed the SPICE display: $(tail -3 "$W/view.err")"
  fi
  kill "$VP" 2>/dev/null; wait "$VP" 2>/dev/null; kill "$XV" 2>/dev/null; wait "$XV" 2>/dev/null
else
  echo "SKIP: no Xvfb/ImageMagick for the viewer comparison"
fi
INNS "$VMGPU" status > "$W/status-running.txt" 2>&1 && grep -q "$NAME" "$W/status-running.txt" && ok "vmgpu status shows $NAME while it runs" || bad "vmgpu status while running: $(cat "$W/status-running.txt")"

# 4) destroy: release ran, the shm file is gone, vmgpu holds nothing
V destroy "$NAME" >/dev/null 2>&1 || bad "virsh destroy"
grep -q "^release end" "$W/hook-calls.log" && ok "release ran" || bad "release did not run"
[ ! -e "/dev/shm/$SHM" ] && ok "/dev/shm/$SHM removed" || bad "/dev/shm/$SHM still there after destroy"
if INNS "$VMGPU" status > "$W/status-after.txt" 2>&1 && ! grep -q "$NAME" "$W/status-after.txt"; then
  ok "vmgpu status empty after destroy"
else
  bad "vmgpu status after destroy: $(cat "$W/status-after.txt")"
fi
echo "hook calls:"; sed 's/^/  /' "$W/hook-calls.log"

# 5) --update: a user edit (made with virsh) survives, only vmgpu's parts change (1440p: 64 MiB)
sed -e "s#<on_crash>destroy</on_crash>#<on_crash>restart</on_crash>#" "$W/defined.xml" > "$W/user-edit.xml"
V define "$W/user-edit.xml" >/dev/null || bad "virsh define of the user's edit"
out=$("$VMGPU" define "$NAME" "${ARGS[@]}" "${GOOD[@]}" --looking-glass 2560x1440 --update --irq-affinity --connect "$URI" 2>&1) && ok "updated: $out" || bad "define --update: $out"
V dumpxml --inactive "$NAME" > "$W/updated.xml"
grep -q "<on_crash>restart</on_crash>" "$W/updated.xml" && ok "--update kept the user's edit" || bad "--update lost the user's edit"
grep -A3 "<shmem name='$SHM'>" "$W/updated.xml" | grep -q "<size unit='M'>64</size>" && ok "--update resized Looking Glass to 64 MiB" ||
  bad "--update shmem: $(grep -A3 '<shmem' "$W/updated.xml")"
[ "$(grep -c '<shmem' "$W/updated.xml")" = 1 ] && ok "--update left one shmem" || bad "--update duplicated the shmem"
grep -q "<model type='vga'" "$W/updated.xml" && ok "--update without --display kept the install phase" || bad "--update dropped the virtual display"
grep -q '<vmgpu:tuning governor="no" irq-affinity="yes"/>' "$W/updated.xml" && ok "--update --irq-affinity turned IRQ tuning on" ||
  bad "no IRQ tuning in the metadata: $(grep 'vmgpu:tuning' "$W/updated.xml")"
# finishing the install phase: the virtual display and exactly vmgpu's ISOs go, everything else stays
out=$("$VMGPU" define "$NAME" "${ARGS[@]}" "${GOOD[@]}" --looking-glass 2560x1440 --update --display looking-glass --connect "$URI" 2>&1) && ok "finished the install phase: $(echo "$out" | head -1)" ||
  bad "define --update --display looking-glass: $out"
V dumpxml --inactive "$NAME" > "$W/updated-lg.xml"
! grep -q "<model type='vga'" "$W/updated-lg.xml" && grep -A1 "<video>" "$W/updated-lg.xml" | grep -q "<model type='none'/>" &&
  ok "virtual display removed" || bad "video after --display looking-glass: $(grep -A2 '<video>' "$W/updated-lg.xml")"
! grep -q "installer.iso\|virtio-win.iso" "$W/updated-lg.xml" && ok "ISOs detached" || bad "ISOs still attached"
grep -q "<on_crash>restart</on_crash>" "$W/updated-lg.xml" && grep -q "<source file='$W/disk.qcow2'/>" "$W/updated-lg.xml" &&
  ok "the user's edit and the disk stayed" || bad "--display looking-glass lost the user's edit or the disk"
grep -q 'display mode="looking-glass"' "$W/updated-lg.xml" && ok "metadata records the looking-glass phase" || bad "phase not recorded"
# the domain is not started again: the tuning would move this machine's own IRQs
grep -q 'irq-affinity="yes"' "$W/updated-lg.xml" && ok "a later --update without the flag kept the IRQ tuning" ||
  bad "--update dropped the IRQ tuning"
V undefine --nvram "$NAME" >/dev/null 2>&1 || bad "virsh undefine"

# 6) the hook's viewer launch at `started`, for real: a domain whose metadata names a desktop user (define --user)
#    and an X "desktop session" of that user (/run/user/<uid> in libvirtd's namespace, an X socket); the hook starts
#    `vmgpu view` detached as that user, and its window shows the VM's SPICE display. The lowest free X display
#    number is taken because the hook picks the lowest X socket of the session.
if [ -n "$HUSER" ] && command -v Xvfb >/dev/null && command -v xwininfo >/dev/null; then
  N2=$NAME-launch
  huid=$(id -u "$HUSER")
  XD=0; while [ -e "/tmp/.X11-unix/X$XD" ] || [ -e "/tmp/.X$XD-lock" ]; do XD=$((XD + 1)); done
  Xvfb ":$XD" -screen 0 1024x768x24 -nolisten tcp -ac >/dev/null 2>&1 & XL=$!
  for _ in $(seq 50); do [ -S "/tmp/.X11-unix/X$XD" ] && break; sleep 0.1; done
  INNS install -d -o "$HUSER" -m 0700 "/run/user/$huid"
  out=$("$VMGPU" define "$N2" --virt-type qemu --pin off --vcpus 1 --hugepages off --network none \
        --shm-name "$SHM-launch" --template linux --gpu none --memory 256M --disk "$W/disk-launch.qcow2" \
        --disk-size 64M --iso "$W/installer.iso" --drivers "$W/virtio-win.iso" --user "$HUSER" --connect "$URI" 2>&1) ||
    bad "define $N2 --user $HUSER: $out"
  V dumpxml --inactive "$N2" | grep -q "<vmgpu:viewer launch=\"yes\" user=\"$HUSER\"/>" &&
    ok "define --user $HUSER turned the viewer launch on" || bad "no viewer launch in $N2's metadata"
  out=$(V start "$N2" 2>&1) && ok "virsh start $N2" || bad "virsh start $N2: $out"
  vpid=; title=
  for _ in $(seq 300); do
    vpid=$(pgrep -u "$HUSER" -f "view $N2" | head -1)
    title=$(DISPLAY=":$XD" xwininfo -root -tree 2>/dev/null | grep -o "\"$N2 — [^\"]*\"" | head -1)
    [ -n "$vpid" ] && echo "$title" | grep -q "SPICE display" && break
    sleep 0.2
  done
  if [ -n "$vpid" ]; then
    ok "the hook started \`vmgpu view $N2\` as $HUSER (pid $vpid, $(ps -o user=,args= -p "$vpid"))"
  else
    # what the same command says when run by hand as that user, in libvirtd's namespace
    why=$(INNS runuser -u "$HUSER" -- env DISPLAY=":$XD" XDG_RUNTIME_DIR="/run/user/$huid" timeout 5 \
          bash -c 'exec -a vmgpu /etc/libvirt/hooks/qemu view "$0"' "$N2" 2>&1 | tail -3)
    V dumpxml "$N2" > "$W/launch-live.xml" 2>/dev/null
    hook=$(INNS env VMGPU_LOG=debug /etc/libvirt/hooks/qemu "$N2" started begin - < "$W/launch-live.xml" 2>&1 | tail -3)
    bad "no viewer running as $HUSER after start; by hand: $why; the hook's started by hand: $hook"
  fi
  echo "$title" | grep -q "SPICE display" && ok "its window is on $HUSER's display :$XD, showing the SPICE display: $title" ||
    bad "the launched viewer's window: ${title:-none} ($(DISPLAY=":$XD" xwininfo -root -tree 2>/dev/null | grep -c vmgpu) vmgpu windows)"
  kvm_gid=$(getent group kvm | cut -d: -f3)
  [ -n "$vpid" ] && [ "$(stat -c %U "/proc/$vpid")" = "$HUSER" ] && ! grep -qw "^Groups:.*\b0\b" "/proc/$vpid/status" &&
    grep "^Groups:" "/proc/$vpid/status" | grep -qw "$kvm_gid" &&
    ok "the viewer runs with $HUSER's ids and groups (kvm, none of root's)" || bad "viewer ids: $(grep -E '^(Uid|Gid|Groups)' "/proc/$vpid/status" 2>/dev/null | tr '\n' ' ')"
  V destroy "$N2" >/dev/null 2>&1 || bad "virsh destroy $N2"
  sleep 3
  if [ -n "$vpid" ] && kill -0 "$vpid" 2>/dev/null; then
    t2=$(DISPLAY=":$XD" xwininfo -root -tree 2>/dev/null | grep -o "\"$N2 — [^\"]*\"" | head -1)
    # parked: the process runs on with its window up, no longer showing the VM
    [ -n "$t2" ] && ! echo "$t2" | grep -q "SPICE display (" && ok "after destroy the viewer is parked, window up: $t2" ||
      bad "after destroy the viewer runs but its window is ${t2:-gone}"
  else
    ok "after destroy the viewer closed"
  fi
  pkill -u "$HUSER" 2>/dev/null
  V undefine --nvram "$N2" >/dev/null 2>&1 || bad "virsh undefine $N2"
  kill "$XL" 2>/dev/null; wait "$XL" 2>/dev/null; XL=
else
  echo "SKIP: viewer launch (needs useradd, Xvfb and xwininfo, and no user vmgpuh30 left from an earlier run)"
fi

# 7) each Windows template starts in real libvirt (TCG): Secure Boot firmware with enrolled keys, SMM, Hyper-V
#    enlightenments, and for windows11 the TPM 2.0 emulator (swtpm)
for t in windows11 windows10; do
  n=$NAME-$t
  out=$("$VMGPU" define "$n" --template $t --virt-type qemu --gpu none --pin off --vcpus 1 --memory 512M \
        --hugepages off --looking-glass off --network none --connect "$URI" 2>&1) || bad "define $t: $out"
  V dumpxml --inactive "$n" > "$W/$t.xml" 2>/dev/null
  out=$(V start "$n" 2>&1) && ok "$t template starts in libvirt" || bad "$t template does not start: $out"
  V dumpxml "$n" > "$W/$t-live.xml" 2>/dev/null
  [ $t = windows11 ] && { grep -q "<tpm model='tpm-crb'>" "$W/$t-live.xml" && pgrep -f "swtpm.*$n" >/dev/null &&
    ok "windows11 runs with its swtpm TPM 2.0" || bad "windows11: no running swtpm"; }
  grep -q "secure='yes'" "$W/$t-live.xml" && ok "$t got Secure Boot firmware: $(grep -o "<loader[^>]*>[^<]*" "$W/$t-live.xml")" ||
    bad "$t firmware: $(grep -A2 '<loader' "$W/$t-live.xml")"
  V destroy "$n" >/dev/null 2>&1
  V undefine --nvram --tpm "$n" >/dev/null 2>&1 || V undefine --nvram "$n" >/dev/null 2>&1
done

# 8) schema: every XML define produced here
for f in dry-run defined live updated updated-lg windows11 windows11-live windows10 windows10-live; do
  [ -s "$W/$f.xml" ] || continue
  virt-xml-validate "$W/$f.xml" domain >/dev/null 2>&1 && ok "virt-xml-validate $f.xml" || bad "virt-xml-validate $f.xml: $(virt-xml-validate "$W/$f.xml" domain 2>&1 | tail -3)"
done

echo "30-libvirtd: $SECONDS s"
[ $FAIL = 0 ] && echo "30-libvirtd: ALL PASS" || echo "30-libvirtd: FAILURES"
exit $FAIL
