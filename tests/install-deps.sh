#!/usr/bin/env bash
# Installs what building vmgpu (`build`) or the whole test suite (default) needs, then checks that every *command*
# the build and the harnesses run is really there: a package recorded as installed is not enough (installing
# qemu-system-x86 once removed a newer qemu-utils, and with it qemu-img). A command still missing after one
# reinstall of its package fails the run, naming the command. Idempotent: a second run only checks. Run as root.
#
#   bash tests/install-deps.sh build   # build dependencies; Debian/Ubuntu, openSUSE, Fedora or Arch (os-release)
#   bash tests/install-deps.sh         # everything the test suite needs (Debian/Ubuntu-like, like CI)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
mode=${1:-all}
die() { echo "install-deps: $*" >&2; exit 1; }

# The distro family from /etc/os-release, the way `vmgpu setup` detects it (ID, then ID_LIKE).
family() {
  local id="" like=""
  # shellcheck disable=SC1091
  [ -r /etc/os-release ] && { id=$(. /etc/os-release && echo "${ID:-}"); like=$(. /etc/os-release && echo "${ID_LIKE:-}"); }
  for w in $id $like; do
    case $w in
      debian | ubuntu) echo debian; return ;;
      opensuse* | suse | sles) echo suse; return ;;
      fedora | rhel | centos) echo fedora; return ;;
      arch) echo arch; return ;;
    esac
  done
  echo unknown
}

# "command package" pairs: each command one harness or the build runs, and the Debian package that provides it.
BUILD_CMDS="cc:build-essential pkg-config:pkg-config"
TEST_CMDS="
  qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils busybox:busybox-static cpio:cpio modprobe:kmod depmod:kmod
  mkfs.ext4:e2fsprogs bc:bc jq:jq gcc:build-essential iasl:acpica-tools
  libvirtd:libvirt-daemon-system virtlogd:libvirt-daemon-system virsh:libvirt-clients
  virt-xml-validate:libvirt-clients xmllint:libxml2-utils swtpm:swtpm swtpm_setup:swtpm-tools
  unshare:util-linux nsenter:util-linux chroot:coreutils sha256sum:coreutils tar:tar
  mmdebstrap:mmdebstrap
  Xvfb:xvfb xwininfo:x11-utils xauth:xauth import:imagemagick compare:imagemagick convert:imagemagick identify:imagemagick weston:weston
  xdotool:xdotool xclip:xclip remote-viewer:virt-viewer python3:python3 ss:iproute2
  pulseaudio:pulseaudio parec:pulseaudio-utils pacat:pulseaudio-utils pactl:pulseaudio-utils
  pipewire:pipewire pipewire-pulse:pipewire-pulse wireplumber:wireplumber dbus-daemon:dbus-daemon"
# Packages without a command of their own (libraries, firmware), installed with the rest.
TEST_PKGS="libvirt-dev libpulse-dev ovmf libxkbcommon-x11-0 libx11-xcb1 libxcursor1 libxrandr2 libxi6 libwayland-client0
  libwayland-cursor0 x11-apps"

missing_cmds() { # prints the "command:package" pairs whose command is not on PATH
  local pair
  for pair in "$@"; do command -v "${pair%%:*}" >/dev/null 2>&1 || echo "$pair"; done
}

debian_install() { # debian_install PKG...
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@"
}

build_other_distro() { # the build dependencies on openSUSE, Fedora and Arch (README's first command)
  case $1 in
    suse) zypper --non-interactive install gcc pkg-config libvirt-devel libpulse-devel ;;
    fedora) dnf install -y gcc pkgconf-pkg-config libvirt-devel pulseaudio-libs-devel ;;
    arch) pacman -S --needed --noconfirm base-devel pkgconf libvirt libpulse ;;
    *) die "unknown distribution (no ID/ID_LIKE in /etc/os-release that vmgpu knows): install a C compiler, pkg-config and the development files of libvirt and libpulse" ;;
  esac
}

fam=$(family)
if [ "$mode" = build ] && [ "$fam" != debian ]; then
  command -v cc >/dev/null && command -v pkg-config >/dev/null && pkg-config --exists libvirt libpulse-simple || build_other_distro "$fam"
else
  cmds="$BUILD_CMDS $TEST_CMDS" pkgs="libvirt-dev $TEST_PKGS"
  [ "$mode" != build ] || { cmds=$BUILD_CMDS; pkgs="libvirt-dev libpulse-dev"; }
  # shellcheck disable=SC2086
  wanted=$(
    for p in $pkgs; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"; done
    missing_cmds $cmds | cut -d: -f2
  )
  [ -z "$wanted" ] || debian_install $(echo "$wanted" | sort -u)
  # After installing: a command can still be gone (a package removed by another's dependencies). Reinstall its
  # package once, then give up naming it.
  # shellcheck disable=SC2086
  gone=$(missing_cmds $cmds)
  if [ -n "$gone" ]; then
    echo "install-deps: still missing after installing: $(echo "$gone" | cut -d: -f1 | tr '\n' ' ')- reinstalling" >&2
    # shellcheck disable=SC2046
    apt-get install -y -qq --no-install-recommends --reinstall $(echo "$gone" | cut -d: -f2 | sort -u)
    # shellcheck disable=SC2086
    gone=$(missing_cmds $cmds)
    [ -z "$gone" ] || die "these commands are missing after installing their packages: $(echo "$gone" | tr '\n' ' ')"
  fi
fi
command -v pkg-config >/dev/null && pkg-config --exists libvirt || die "pkg-config finds no libvirt (libvirt's development package)"
pkg-config --exists libpulse-simple || die "pkg-config finds no libpulse-simple (libpulse's development package)"
command -v cargo >/dev/null || die "cargo not found (install rustup's stable toolchain)"
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt 2>/dev/null || true
