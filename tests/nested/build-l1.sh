#!/usr/bin/env bash
# Builds the nested end-to-end test's L1 image: Debian bookworm with systemd, udev, the Debian kernel, libvirt,
# QEMU and OVMF, plus a oneshot vmtest.service that mounts the host's 9p share and runs its l1-test.sh (the test
# script and the vmgpu binary come through 9p at run time, so the image only changes with this file).
# Usage: build-l1.sh OUTDIR   -> OUTDIR/{rootfs.img,vmlinuz,initrd.img}   (about 90 s plus the download)
set -euo pipefail
OUT=$1
# libpulse0: the default vmgpu build links libpulse-simple (the viewer's guest audio), as a desktop host has it.
# spice-vdagent, xvfb, xclip, x11-utils, alsa-utils: the real SPICE guest agent in an Xvfb session, its clipboard
# and the guest's sound card (harness 55-spice-guest); no sox/python: the host generates and analyses the audio.
PKGS=systemd-sysv,udev,kmod,linux-image-amd64,libvirt-daemon-system,libvirt-clients,qemu-system-x86,ovmf,pciutils,procps,iproute2,libpulse0
PKGS=$PKGS,spice-vdagent,xvfb,xclip,x11-utils,alsa-utils
W=$(mktemp -d "${TMPDIR:-/tmp}/vmgpu-l1.XXXXXX")
trap 'rm -rf "$W"' EXIT
R=$W/rootfs
# no mirror argument: mmdebstrap uses the host's apt sources
mmdebstrap --quiet --variant=minbase --include="$PKGS" bookworm "$R"
echo l1 > "$R/etc/hostname"
echo '/dev/vda / ext4 rw,relatime 0 1' > "$R/etc/fstab"
chroot "$R" passwd -d root >/dev/null
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer dpkg-db-backup.timer \
         libvirt-guests.service serial-getty@ttyS0.service getty@tty1.service systemd-timesyncd.service \
         spice-vdagentd.service spice-vdagentd.socket; do
  ln -sf /dev/null "$R/etc/systemd/system/$u"
done
# (spice-vdagentd is masked above: harness 55 starts it by hand with -X, there is no desktop login to follow)
# the private default network would start dnsmasq for nothing
rm -f "$R/etc/libvirt/qemu/networks/autostart/"*
cat > "$R/etc/systemd/system/vmtest.service" <<'UNIT'
[Unit]
Description=vmgpu nested end-to-end test (script from the host's 9p share)
After=libvirtd.service multi-user.target
Wants=libvirtd.service
[Service]
Type=oneshot
ExecStartPre=/bin/mkdir -p /mnt/host
ExecStartPre=/bin/mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 hostshare /mnt/host
ExecStart=/bin/bash /mnt/host/l1-test.sh
ExecStopPost=/bin/systemctl --no-block poweroff
StandardOutput=journal+console
StandardError=journal+console
[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/vmtest.service "$R/etc/systemd/system/multi-user.target.wants/vmtest.service"
mkdir -p "$OUT"
cp "$(ls "$R"/boot/vmlinuz-* | tail -1)" "$OUT/vmlinuz.tmp"
cp "$(ls "$R"/boot/initrd.img-* | tail -1)" "$OUT/initrd.img.tmp"
du -sh "$R" | sed "s/^/rootfs: /"
mkfs.ext4 -q -F -L root -d "$R" "$OUT/rootfs.img.tmp" 3G
mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"; mv "$OUT/initrd.img.tmp" "$OUT/initrd.img"; mv "$OUT/rootfs.img.tmp" "$OUT/rootfs.img"
