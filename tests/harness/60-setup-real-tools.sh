#!/usr/bin/env bash
# `vmgpu setup` against real distro tools: builds Debian bookworm roots with mmdebstrap (GRUB + a kernel +
# initramfs-tools in one, dracut in the other; cached under tests/.cache/setup keyed by their inputs), gives each
# a host tree for the GPUs (the seed host's two NVIDIA cards, an AMD CPU; the root's own kernel release), and in a
# private mount namespace runs `vmgpu setup --root <dir> --yes --gpu 0000:04:00.0`, whose update-grub,
# update-initramfs and dracut really run in `chroot <dir>`. Asserts: a read-only /etc is refused with nothing
# written; grub.cfg carries the kernel parameters; lsinitramfs / lsinitrd list the vfio modules and vfio.conf;
# a second run changes nothing; `--undo` leaves every file under etc/ and boot/ byte-identical to before.
# Exits non-zero and says what failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
FAIL=0
ok() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; FAIL=1; }
die() { echo "FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap, chroot, private mount namespace)"
for tool in mmdebstrap unshare chroot tar sha256sum; do
  command -v $tool >/dev/null || die "$tool is not installed (run tests/install-deps.sh)"
done
W=$(mktemp -d "${TMPDIR:-/var/tmp}/vmgpu-h60.XXXXXX")
trap 'rm -rf "$W"' EXIT
T=${CARGO_TARGET_DIR:-target}
cargo build --quiet --bin vmgpu && cp "$T/debug/vmgpu" "$W/vmgpu" || die "cargo build"
VMGPU=$W/vmgpu

CACHE=$REPO/tests/.cache/setup
mkdir -p "$CACHE"
EXT=tar; command -v zstd >/dev/null && EXT=tar.zst
# root_tarball NAME PACKAGES: a cached bookworm root with those packages (rebuilt when the list changes).
root_tarball() {
  local name=$1 pkgs=$2 key tarball
  key=$(echo "bookworm essential $pkgs v1" | sha256sum | cut -c1-12)
  tarball=$CACHE/$name-$key.$EXT
  if [ ! -s "$tarball" ]; then
    echo "building $name root (bookworm: $pkgs) ..." >&2
    rm -f "$CACHE/$name-"*
    mmdebstrap --quiet --variant=essential --include="$pkgs" bookworm "$tarball.part.$EXT" >&2 \
      && mv "$tarball.part.$EXT" "$tarball" || { rm -f "$tarball.part.$EXT"; return 1; }
  fi
  echo "$tarball"
}

# host_tree DIR RELEASE: the sysfs/procfs view vmgpu reads (the seed host's GPUs; files mounted over /proc).
host_tree() {
  local d=$1 release=$2
  w() { mkdir -p "$(dirname "$d/$1")"; printf '%b' "$2" > "$d/$1"; }
  w proc/cmdline 'BOOT_IMAGE=/boot/vmlinuz root=/dev/vda1 ro quiet\n'
  w proc/meminfo 'MemTotal:       32768000 kB\nMemAvailable:   30000000 kB\n'
  w proc/cpuinfo 'processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD Ryzen 9 5900X 12-Core Processor\nflags\t\t: fpu svm\n'
  w proc/sys/kernel/osrelease "$release\n"
  w sys/devices/system/cpu/online '0\n'
  w sys/devices/system/cpu/cpu0/topology/physical_package_id '0\n'
  w sys/devices/system/cpu/cpu0/topology/core_id '0\n'
  mkdir -p "$d/sys/bus/pci/devices"
  local spec a c v dv g b dev
  for spec in 0000:0b:00.0,0x030000,10de,2484,20,1 0000:0b:00.1,0x040300,10de,228b,20,0 \
              0000:04:00.0,0x030000,10de,17c8,15,0 0000:04:00.1,0x040300,10de,0fb0,15,0; do
    IFS=, read -r a c v dv g b <<<"$spec"
    dev=sys/devices/pci0000:00/$a
    mkdir -p "$d/$dev" "$d/sys/kernel/iommu_groups/$g/devices"
    ln -sfn "../../../devices/pci0000:00/$a" "$d/sys/bus/pci/devices/$a"
    ln -sfn "../../../kernel/iommu_groups/$g" "$d/$dev/iommu_group"
    w "$dev/class" "$c\n"; w "$dev/vendor" "0x$v\n"; w "$dev/device" "0x$dv\n"
    [ "$c" = 0x030000 ] && w "$dev/boot_vga" "$b\n"
  done
  return 0
}

# run_case NAME TARBALL LIST-INITRD-COMMAND EXTRA-GRUB-PARAM
run_case() {
  local name=$1 tarball=$2 lsinit=$3 extra=$4
  local R=$W/$name FX=$W/$name-host
  mkdir -p "$R" "$FX"
  tar -C "$R" -xf "$tarball" || { bad "$name: unpacking $tarball"; return; }
  local kver
  kver=$(ls "$R/usr/lib/modules" | head -1)
  host_tree "$FX" "$kver"
  cp -a "$FX/sys" "$R/"
  # the desktop user setup is given (--user alice): setup refuses a user the root does not have
  grep -q '^alice:' "$R/etc/passwd" || {
    echo 'alice:x:1000:1000:alice:/home/alice:/bin/sh' >> "$R/etc/passwd"
    echo 'alice:x:1000:' >> "$R/etc/group"
  }
  # Everything below runs in a private mount namespace: real /proc and /dev for the tools in the chroot, with
  # the host tree's files mounted over the /proc files vmgpu reads.
  cat > "$W/$name.sh" <<EOF
set -uo pipefail
FAIL=0
ok() { echo "PASS: $name: \$*"; }
bad() { echo "FAIL: $name: \$*"; FAIL=1; }
snap() { (cd "$R" && find etc boot -type f -print0 | sort -z | xargs -0 sha256sum; find etc boot -type f -printf '%p %m %u %g\n' | sort); }
mount --bind "$R" "$R"
mount -t proc proc "$R/proc"
for f in cmdline meminfo cpuinfo sys/kernel/osrelease; do mount --bind "$FX/proc/\$f" "$R/proc/\$f"; done
mount --rbind /dev "$R/dev"
# grub-probe must resolve the root's file system to a block device (a plain ext4/xfs/btrfs disk, not tmpfs).
chroot "$R" update-grub > "$W/$name.grub.log" 2>&1 \
  || { bad "baseline update-grub failed (\$(findmnt -no FSTYPE -T "$R") under $R):"; tail -5 "$W/$name.grub.log"; exit 1; }
before=\$(snap)

# A read-only /etc: refused before anything is written.
mount --bind "$R/etc" "$R/etc" && mount -o remount,bind,ro "$R/etc"
out=\$("$VMGPU" --root "$R" setup --gpu 0000:04:00.0 --yes --no-hook --user alice 2>&1); rc=\$?
umount "$R/etc"
if [ \$rc = 2 ] && grep -q "nothing was changed" <<<"\$out" && [ "\$(snap)" = "\$before" ]; then
  ok "read-only /etc refused, nothing written (\$(grep -o 'cannot write [^:]*' <<<"\$out" | head -1))"
else bad "read-only /etc: rc=\$rc: \$out"; fi

t0=\$SECONDS
"$VMGPU" --root "$R" setup --gpu 0000:04:00.0 --yes --no-hook --user alice > "$W/$name.plan" 2> "$W/$name.log" \
  && ok "setup applied in \$((SECONDS - t0)) s" || { bad "setup failed:"; cat "$W/$name.log"; }
line=\$(grep -m1 -o 'linux.*vmlinuz.*' "$R/boot/grub/grub.cfg")
for p in iommu=pt amd_iommu=on $extra; do
  grep -q -- " \$p" <<<"\$line" && ok "grub.cfg boots with \$p" || bad "grub.cfg lacks \$p: \$line"
done
listing=\$(chroot "$R" $lsinit /boot/initrd.img-$kver 2>/dev/null)
for m in vfio-pci.ko vfio.ko vfio_iommu_type1.ko vfio_virqfd.ko modprobe.d/vfio.conf; do
  grep -q "\$m" <<<"\$listing" && ok "initramfs has \$m" || bad "initramfs lacks \$m"
done
grep -q 'options vfio-pci ids=10de:17c8,10de:0fb0' "$R/etc/modprobe.d/vfio.conf" && ok "vfio.conf has both ids" || bad "vfio.conf"
again=\$("$VMGPU" --root "$R" setup --gpu 0000:04:00.0 --yes --no-hook --user alice 2>&1)
grep -q "nothing to change" <<<"\$again" && ok "second run changes nothing" || bad "second run: \$again"

t0=\$SECONDS
"$VMGPU" --root "$R" setup --undo > "$W/$name.undo" 2>&1 && ok "undo in \$((SECONDS - t0)) s" || { bad "undo failed:"; cat "$W/$name.undo"; }
after=\$(snap)
if [ "\$after" = "\$before" ]; then ok "after undo every file under etc/ and boot/ is byte-identical (\$(grep -c ' etc/\| boot/' <<<"\$before") entries)"
else bad "after undo files differ:"; diff <(echo "\$before") <(echo "\$after") | head -20; fi
exit \$FAIL
EOF
  unshare -m --propagation private bash "$W/$name.sh" || FAIL=1
  echo "--- $name plan (first lines):"; head -5 "$W/$name.plan"
}

TB=$(root_tarball initramfs-tools "grub-pc,initramfs-tools,linux-image-cloud-amd64,kmod,zstd,mount") \
  || die "mmdebstrap of the initramfs-tools root failed"
run_case initramfs-tools "$TB" lsinitramfs ""

# dracut is packaged for Debian: the same with dracut (rd.driver.pre=vfio-pci on the command line, the
# force_drivers drop-in).
TB=$(root_tarball dracut "grub-pc,dracut,linux-image-cloud-amd64,kmod,zstd,mount") \
  || die "mmdebstrap of the dracut root failed"
run_case dracut "$TB" lsinitrd "rd.driver.pre=vfio-pci"

[ $FAIL = 0 ] && echo "60-setup-real-tools: all passed" || echo "60-setup-real-tools: FAILED"
exit $FAIL
