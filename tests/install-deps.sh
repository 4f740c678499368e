#!/usr/bin/env bash
# Installs everything the build and the test suite need on a fresh Debian/Ubuntu-like machine.
# Idempotent: a second run only checks. Run as root (CI does).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PKGS=(
  # build: the `virt` crate links libvirt through pkg-config
  build-essential pkg-config libvirt-dev
  # real-kernel harness (QEMU q35 + intel-iommu, busybox initramfs, Debian kernel modules)
  qemu-system-x86 qemu-utils busybox-static cpio kmod ovmf e2fsprogs bc
  # real libvirtd + schema validation
  libvirt-daemon-system libvirt-clients libxml2-utils swtpm swtpm-tools
  # nested end-to-end image and `vmgpu setup` against real grub/initramfs tools
  mmdebstrap
  # viewer tests: real X server, screenshots, Wayland compositor nested in Xvfb
  xvfb x11-apps x11-utils xauth imagemagick weston libxkbcommon-x11-0 libx11-xcb1 libxcursor1 xdotool
  libxrandr2 libxi6 libwayland-client0 libwayland-cursor0
)
# `install-deps.sh build` installs only what building vmgpu needs (the README's first command).
[ "${1:-all}" = build ] && PKGS=(build-essential pkg-config libvirt-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "install-deps: cargo not found (install rustup's stable toolchain)" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt 2>/dev/null || true
