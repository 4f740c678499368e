#!/usr/bin/env bash
# `vmgpu explain` against real libvirtd failures (issue 15). A private libvirtd (own mount namespace, as in
# 30-libvirtd.sh) with vmgpu as its qemu hook starts small TCG domains that fail on purpose: firmware missing,
# no NVRAM template, Secure Boot without SMM, Looking Glass shm owned by another user, SPICE port taken, evdev
# device gone, swtpm missing (hidden in the namespace), hugetlbfs not mounted, hugepages short, a failing foreign hook in qemu.d/.
# For each: save the QEMU log, virsh's error (what libvirt reports, also its journal line) and the XML as a log
# set, and check that `vmgpu explain --logs SET` names the right cause first; for causes that the QEMU log
# shows, also the live `vmgpu explain <vm> --xml` inside the namespace.
# EXPLAIN_RECORD=DIR: copy every log set to DIR/<signature>/ (how tests/fixtures/explain/ was recorded).
set -uo pipefail
cd "$(dirname "$0")/../.."
T=${CARGO_TARGET_DIR:-target}
FAIL=0
ok() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; FAIL=1; }
die() { echo "FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (private mount namespace, libvirtd)"
for tool in libvirtd virtlogd virsh unshare nsenter python3; do
  command -v $tool >/dev/null || die "$tool is not installed (run tests/install-deps.sh)"
done
cargo build --quiet --bin vmgpu || die "cargo build"
VMGPU=$(cd "$T/debug" && pwd)/vmgpu

W=$(mktemp -d /tmp/vmgpu-h35.XXXXXX)
chmod 755 "$W"
B=$W/root
P=vmgpu-h35-$$
SHM=$P-shm
LP=; VL=; LISTENER=
cleanup() {
  if [ -n "$LP" ]; then
    for d in $(virsh -q -c "$URI" list --name 2>/dev/null); do virsh -q -c "$URI" destroy "$d" >/dev/null 2>&1; done
    kill -TERM "$LP" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$LP" 2>/dev/null || break; sleep 0.1; done
  fi
  [ -n "$VL" ] && kill -TERM "$VL" 2>/dev/null
  [ -n "$LISTENER" ] && kill "$LISTENER" 2>/dev/null
  rm -f "/dev/shm/$SHM"
  rm -rf "$W"
}
trap cleanup EXIT

mkdir -p "$B"
cat > "$W/ns.sh" <<NS
set -euo pipefail
for d in run var-lib-libvirt var-log-libvirt var-cache-libvirt; do mkdir -p "$B/\$d"; done
cp -a /etc/libvirt "$B/etc-libvirt"
rm -rf "$B/etc-libvirt/hooks"/* "$B/etc-libvirt/qemu/networks/autostart"/* "$B/etc-libvirt/qemu/autostart"/* 2>/dev/null || true
rm -f "$B/etc-libvirt/qemu/"*.xml
(cd /var/lib/libvirt && find . -type d -print0 | tar --null --no-recursion -cf - -T -) | tar -xpf - -C "$B/var-lib-libvirt"
(cd /var/log/libvirt && find . -type d -print0 | tar --null --no-recursion -cf - -T -) | tar -xpf - -C "$B/var-log-libvirt"
mount --bind "$B/etc-libvirt" /etc/libvirt
mount --bind "$B/run" /run
mount --bind "$B/var-lib-libvirt" /var/lib/libvirt
mount --bind "$B/var-log-libvirt" /var/log/libvirt
mount --bind "$B/var-cache-libvirt" /var/cache/libvirt
if [ -c /dev/kvm ]; then
  mknod "$W/kvm-node" c 10 232 && chown root:kvm "$W/kvm-node" && chmod 0660 "$W/kvm-node" && mount --bind "$W/kvm-node" /dev/kvm
fi
# swtpm "not installed", only in here: libvirt finds no executable regular file
for b in swtpm swtpm_setup swtpm_ioctl; do [ -e /usr/bin/\$b ] && mount --bind /dev/null /usr/bin/\$b; done
# hugetlbfs for 2 MiB pages with none reserved (only when the host has none reserved)
if [ "\$(cat /proc/sys/vm/nr_hugepages)" = 0 ] && mkdir -p "$W/hugepages" && mount -t hugetlbfs -o pagesize=2M none "$W/hugepages"; then
  echo "hugetlbfs_mount = \\"$W/hugepages\\"" >> /etc/libvirt/qemu.conf
  touch "$W/huge-ok"
fi
"$VMGPU" install > "$W/install.log" 2>&1
# a foreign hook that fails prepare for one VM only (libvirt runs qemu.d/ after hooks/qemu, for every VM)
mkdir -p /etc/libvirt/hooks/qemu.d
cat > /etc/libvirt/hooks/qemu.d/10-foreign-hook <<'HOOK'
#!/bin/sh
cat > /dev/null
if [ "\$1" = "$P-foreign-hook-failed" ] && [ "\$2" = prepare ]; then
  echo "foreign-hook: /etc/foreign-hook.conf: no such file; refusing to start \$1" >&2
  exit 1
fi
exit 0
HOOK
chmod 755 /etc/libvirt/hooks/qemu.d/10-foreign-hook
virtlogd -d
libvirtd -d
for _ in \$(seq 100); do [ -S /run/libvirt/libvirt-sock ] && break; sleep 0.1; done
NS
unshare --mount --propagation private bash "$W/ns.sh" || { cat "$W/install.log" 2>/dev/null; die "private libvirtd did not start"; }
LP=$(cat "$B/run/libvirtd.pid"); VL=$(cat "$B/run/virtlogd.pid")
HUGE=no; [ -f "$W/huge-ok" ] && HUGE=yes
URI="qemu:///system?socket=$B/run/libvirt/libvirt-sock"
V() { virsh -q -c "$URI" "$@"; }
INNS() { nsenter -t "$LP" -m "$@"; }

OVMF=/usr/share/OVMF
cp "$OVMF/OVMF_CODE_4M.fd" "$W/custom_CODE.fd"
PORT=$((20000 + $$ % 20000))
python3 -c "import socket,time;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('127.0.0.1',$PORT));s.listen();time.sleep(3600)" &
LISTENER=$!
install -o nobody -g nogroup -m 0600 /dev/null "/dev/shm/$SHM" && truncate -s 4M "/dev/shm/$SHM"

# domain ID OS FEATURES DEVICES [MEMORY-BACKING]: a small q35 TCG domain
domain() {
  cat <<XML
<domain type='qemu'>
  <name>$P-$1</name>
  <memory unit='MiB'>128</memory>
  $5
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type>$2</os>
  <features><acpi/>$3</features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    $4
    <memballoon model='none'/>
  </devices>
</domain>
XML
}
LOADER="<loader readonly='yes' type='pflash'>$OVMF/OVMF_CODE_4M.fd</loader><nvram template='$OVMF/OVMF_VARS_4M.fd'/>"

# scenario SIGNATURE LIVE(yes|no) OS FEATURES DEVICES [MEMORY-BACKING]
scenario() {
  local sig=$1 live=$2 vm=$P-$1 set=$W/sets/$1 first
  mkdir -p "$set"
  domain "$1" "$3" "$4" "$5" "${6:-}" > "$set/domain.xml"
  { V define "$set/domain.xml" >/dev/null && V start "$vm"; } > "$W/virsh.out" 2>&1 && { bad "$sig: $vm started"; V destroy "$vm" >/dev/null 2>&1; }
  # virsh's error is what libvirt reports for the start (libvirtd logs the same line to its journal)
  sed "s/^/$(date -u '+%F %T') virsh start $vm: /" "$W/virsh.out" > "$set/hook.log"
  [ -f "$B/var-log-libvirt/qemu/$vm.log" ] && cp "$B/var-log-libvirt/qemu/$vm.log" "$set/qemu.log"
  first=$("$VMGPU" explain "$vm" --logs "$set" --xml "$set/domain.xml" --json | python3 -c 'import json,sys; f=json.load(sys.stdin)["findings"]; print(f[0]["id"] if f else "unknown")')
  [ "$first" = "$sig" ] && ok "explain --logs names $sig first ($(head -c 160 "$W/virsh.out" | tr '\n' ' '))" ||
    bad "$sig: explain --logs says $first first; virsh said: $(cat "$W/virsh.out")"
  if [ "$live" = yes ]; then
    first=$(INNS "$VMGPU" explain "$vm" --xml "$set/domain.xml" --json | python3 -c 'import json,sys; f=json.load(sys.stdin)["findings"]; print(f[0]["id"] if f else "unknown")')
    [ "$first" = "$sig" ] && ok "live explain $vm names $sig first" || bad "$sig: live explain says $first first"
  fi
  V undefine --nvram "$vm" >/dev/null 2>&1 || V undefine "$vm" >/dev/null 2>&1
  if [ -n "${EXPLAIN_RECORD:-}" ]; then
    mkdir -p "$EXPLAIN_RECORD/$sig"
    for f in qemu.log hook.log domain.xml; do
      [ -f "$set/$f" ] && sed -e "s#$W#/tmp/vmgpu-h35#g" -e "s#$P#vmgpu-h35#g" "$set/$f" > "$EXPLAIN_RECORD/$sig/$f"
    done
  fi
}

scenario ovmf-missing no "<loader readonly='yes' type='pflash'>$OVMF/OVMF_CODE_4M_MISSING.fd</loader><nvram template='$OVMF/OVMF_VARS_4M.fd'/>" "" ""
scenario nvram-template-missing no "<loader readonly='yes' type='pflash'>$W/custom_CODE.fd</loader>" "" ""
scenario secure-boot-needs-smm no "<loader readonly='yes' secure='yes' type='pflash'>$OVMF/OVMF_CODE_4M.secboot.fd</loader><nvram template='$OVMF/OVMF_VARS_4M.fd'/>" "" ""
scenario shm-permission yes "$LOADER" "" "<shmem name='$SHM'><model type='ivshmem-plain'/><size unit='M'>4</size></shmem>"
scenario spice-port-taken yes "$LOADER" "" "<graphics type='spice' port='$PORT' autoport='no' listen='127.0.0.1'/><video><model type='vga'/></video>"
scenario evdev-missing no "$LOADER" "" "<input type='evdev'><source dev='/dev/input/by-id/vmgpu-h35-missing-event-kbd'/></input>"
scenario swtpm-missing no "$LOADER" "" "<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>"
scenario hugetlbfs-not-mounted no "$LOADER" "" "" "<memoryBacking><hugepages><page size='1' unit='G'/></hugepages></memoryBacking>"
# hugetlbfs for 2 MiB pages is mounted (in the namespace only), but no page is reserved: QEMU cannot map guest RAM
if [ "$HUGE" = yes ]; then
  scenario hugepages-short yes "$LOADER" "" "" "<memoryBacking><hugepages/></memoryBacking>"
else
  echo "SKIP: hugepages-short (2 MiB pages are reserved on this host, or hugetlbfs cannot be mounted here)"
fi
scenario foreign-hook-failed no "$LOADER" "" ""

echo "35-explain-libvirtd: $SECONDS s"
[ $FAIL = 0 ] && echo "35-explain-libvirtd: ALL PASS" || echo "35-explain-libvirtd: FAILURES"
exit $FAIL
