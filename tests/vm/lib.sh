#!/usr/bin/env bash
# Shared library of the real-kernel harness (source it; bash only). What it gives:
#   vm_kernel                      fetch (apt-get download, cached) + extract + depmod the Debian `linux-image-amd64`
#                                  kernel into tests/.cache/vm/; sets VM_KVER, VM_KROOT, VM_VMLINUZ
#   vm_initramfs OUT INIT [SRC:DST ...]
#                                  busybox-static initramfs with the kernel's modules (+ deps, depmod'ed), INIT as
#                                  /init, tests/vm/guest/common.sh as /lib/vmtest/common.sh, extra files SRC -> DST
#   vm_vfio_check                  builds the static VFIO probe helper (tests/vm/vfio-check.c); sets VM_VFIO_CHECK
#   vm_qemu LOG TIMEOUT [QEMU ARGS...]
#                                  boots q35 + intel-iommu + root port with a multifunction "GPU" (VGA fn0,
#                                  ich9-intel-hda fn1) under TCG (KVM only where a probe boot proves it works),
#                                  serial console to LOG; env: NOIOMMU=1 drops the vIOMMU, VM_SMP, VM_MEM,
#                                  VM_APPEND (extra kernel args), VM_ACCEL=tcg|kvm forces the accelerator
#                                  VM_VIDEO (default video=Virtual-1:d: the test GPU's output stays dark, the
#                                  guest is a headless host whose boot VGA is not its display; with the console
#                                  lit on it the hook refuses the GPU as the host's display, src/host/display.rs)
#                                  VM_CPUFREQ=1: the guest gets a real cpufreq driver (acpi-cpufreq), see vm_cpufreq_ssdt
# Everything downloaded or built lives under tests/.cache/vm (git-ignored), so re-runs only rebuild the initramfs.
VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VM_REPO=$(cd "$VM_DIR/../.." && pwd)
VM_CACHE=${VM_CACHE:-$VM_REPO/tests/.cache/vm}
# Modules the guest needs: the "GPU" host drivers, vfio, 9p, kvm (for /sys/module/kvm*), xhci for extra devices.
VM_MODULES="vfio vfio_pci vfio_iommu_type1 bochs snd_hda_intel snd_hda_codec_generic 9p 9pnet_virtio virtio_pci
  kvm kvm_intel kvm_amd xhci_pci acpi_cpufreq cpufreq_powersave ${VM_EXTRA_MODULES:-}"

vm_log() { echo "vm: $*" >&2; }

# The newest linux-image-<ver>-amd64 that the `linux-image-amd64` metapackage depends on (not the cloud flavour:
# it lacks DRM_BOCHS and SND_HDA_INTEL, so there would be no host drivers to unbind).
vm_kernel_package() {
  apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9].*-amd64$/{print $2; exit}'
}

vm_kernel() {
  local pkg deb
  mkdir -p "$VM_CACHE/debs"
  pkg=$(vm_kernel_package)
  if [ -z "$pkg" ]; then
    apt-get update -qq >/dev/null 2>&1 || true
    pkg=$(vm_kernel_package)
  fi
  if [ -z "$pkg" ]; then # offline: fall back to whatever is cached
    pkg=$(cd "$VM_CACHE" && ls -d kernel-*/ 2>/dev/null | sed 's#^kernel-##; s#/$##' | tail -1 || true)
    [ -n "$pkg" ] || { vm_log "cannot resolve linux-image-amd64 (apt-cache) and nothing is cached"; return 1; }
    pkg=linux-image-$pkg
  fi
  VM_KVER=${pkg#linux-image-}
  VM_KROOT=$VM_CACHE/kernel-$VM_KVER
  if [ ! -f "$VM_KROOT/.complete" ]; then
    deb=$(ls "$VM_CACHE/debs/${pkg}"_*.deb 2>/dev/null | tail -1 || true)
    if [ -z "$deb" ]; then
      vm_log "downloading $pkg"
      (cd "$VM_CACHE/debs" && { apt-get download "$pkg" 2>/dev/null || { apt-get update -qq && apt-get download "$pkg"; }; }) ||
        { vm_log "apt-get download $pkg failed"; return 1; }
      deb=$(ls "$VM_CACHE/debs/${pkg}"_*.deb | tail -1)
    fi
    vm_log "extracting $(basename "$deb")"
    rm -rf "$VM_KROOT"; mkdir -p "$VM_KROOT"
    dpkg-deb -x "$deb" "$VM_KROOT" || return 1
    depmod -b "$VM_KROOT" "$VM_KVER" || return 1
    touch "$VM_KROOT/.complete"
  fi
  VM_VMLINUZ=$VM_KROOT/boot/vmlinuz-$VM_KVER
  [ -f "$VM_VMLINUZ" ] || { vm_log "no $VM_VMLINUZ"; return 1; }
}

# vm_initramfs OUT INIT [SRC:DST ...]   (needs vm_kernel first)
vm_initramfs() {
  local out init w ko rel m pair src dst
  out=$(realpath -m "$1"); init=$2; shift 2
  w=$(mktemp -d "${TMPDIR:-/tmp}/vmgpu-initramfs.XXXXXX") || return 1
  mkdir -p "$w"/{bin,proc,sys,dev,tmp,run,etc,root,mnt,usr,lib/vmtest,lib/modules/"$VM_KVER"}
  # the kernel's request_module() runs /sbin/modprobe (the HDA codec driver is loaded that way)
  ln -s bin "$w/sbin"; ln -s ../bin "$w/usr/bin"; ln -s ../bin "$w/usr/sbin"
  cp /bin/busybox "$w/bin/busybox"
  for m in $(/bin/busybox --list); do [ "$m" = busybox ] || ln -sf busybox "$w/bin/$m"; done
  for m in $VM_MODULES; do modprobe -d "$VM_KROOT" -S "$VM_KVER" --show-depends "$m" 2>/dev/null; done |
    awk '$1=="insmod"{print $2}' | sort -u | while read -r ko; do
      rel=${ko#"$VM_KROOT"/}; mkdir -p "$w/$(dirname "$rel")"; cp "$ko" "$w/$rel"
    done
  cp "$VM_KROOT/lib/modules/$VM_KVER"/modules.{order,builtin,builtin.modinfo} "$w/lib/modules/$VM_KVER/"
  depmod -b "$w" "$VM_KVER" || { rm -rf "$w"; return 1; }
  install -m755 "$init" "$w/init"
  install -m644 "$VM_DIR/guest/common.sh" "$w/lib/vmtest/common.sh"
  for pair in "$@"; do
    src=${pair%%:*}; dst=${pair#*:}
    mkdir -p "$w/$(dirname "$dst")"; cp -a "$src" "$w/$dst"
  done
  (cd "$w" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) > "$out"
  local rc=$?
  rm -rf "$w"
  return $rc
}

vm_vfio_check() {
  VM_VFIO_CHECK=$VM_CACHE/vfio-check
  mkdir -p "$VM_CACHE"
  if [ ! -x "$VM_VFIO_CHECK" ] || [ "$VM_DIR/vfio-check.c" -nt "$VM_VFIO_CHECK" ]; then
    gcc -O2 -Wall -static -o "$VM_VFIO_CHECK" "$VM_DIR/vfio-check.c" || return 1
  fi
}

# The accelerator: KVM only when /dev/kvm is usable AND a probe boot reaches /init (cached per host kernel);
# on hosts whose /dev/kvm cannot boot a stock kernel (e.g. PVM) this falls back to TCG.
vm_accel_args() {
  local mode=${VM_ACCEL:-auto} probe
  if [ "$mode" = auto ]; then
    probe=$VM_CACHE/kvm-probe-$(uname -r)-$VM_KVER
    if [ ! -f "$probe" ]; then
      mode=tcg
      if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
        vm_log "probing KVM (one boot, cached in $probe)"
        if vm_kvm_probe; then mode=kvm; fi
      fi
      echo "$mode" > "$probe"
    fi
    mode=$(cat "$probe")
  fi
  case $mode in
    kvm) echo "-accel kvm -cpu host" ;;
    # acpi-cpufreq refuses AMD family 0xf ("K8 systems must use native drivers"), which is what TCG's `max`
    # CPU says it is; for VM_CPUFREQ the guest sees family 6 (no family-specific AMD code on x86-64)
    *) echo "-accel tcg,thread=multi -cpu max${VM_CPUFREQ:+,family=6}" ;;
  esac
}

# vm_cpufreq_ssdt CPUS: prints the path of an SSDT (compiled with iasl, cached in VM_CACHE) that gives QEMU's
# q35 processor objects \_SB.CPUS.C000..C<CPUS-1> (see QEMU's DSDT) ACPI P-states: _PCT with SystemIO
# registers at an unused port, a _PSS of three states and _PPC 0. acpi-cpufreq then drives every vCPU: QEMU
# drops the writes to the control port and reads of the status port give 0xff, the status value of P0, so
# the driver always reads the top frequency back. One cpufreq policy per CPU (no _PSD), like most desktops'.
vm_cpufreq_ssdt() {
  local n=$1 asl=$VM_CACHE/cpufreq-ssdt-$1.asl i
  case $n in '' | *[!0-9]*) vm_log "vm_cpufreq_ssdt: $n is not a CPU count"; return 1 ;; esac
  if [ ! -s "${asl%.asl}.aml" ] || [ "${BASH_SOURCE[0]}" -nt "${asl%.asl}.aml" ]; then
    command -v iasl >/dev/null || { vm_log "no iasl: install acpica-tools (tests/install-deps.sh)"; return 1; }
    mkdir -p "$VM_CACHE"
    {
      echo 'DefinitionBlock ("", "SSDT", 2, "VMGPU", "CPUFREQ", 1)'
      echo '{'
      for ((i = 0; i < n; i++)); do printf '    External (\_SB.CPUS.C%03X, ProcessorObj)
' "$i"; done
      cat <<'ASL'
    Scope (\_SB)
    {
        Name (VPCT, Package (0x02)
        {
            ResourceTemplate () { Register (SystemIO, 0x08, 0x00, 0x0000000000000A00, ,) },
            ResourceTemplate () { Register (SystemIO, 0x08, 0x00, 0x0000000000000A00, ,) }
        })
        // MHz, mW, latency us, bus master latency us, control, status (0xff: what the unused port reads)
        Name (VPSS, Package (0x03)
        {
            Package (0x06) { 2000, 10000, 10, 10, 0xFF, 0xFF },
            Package (0x06) { 1500, 7000, 10, 10, 0x01, 0x01 },
            Package (0x06) { 1000, 4000, 10, 10, 0x02, 0x02 }
        })
    }
ASL
      for ((i = 0; i < n; i++)); do
        printf '    Scope (\_SB.CPUS.C%03X)
    {
' "$i"
        echo '        Method (_PCT, 0, NotSerialized) { Return (\_SB.VPCT) }'
        echo '        Method (_PSS, 0, NotSerialized) { Return (\_SB.VPSS) }'
        echo '        Method (_PPC, 0, NotSerialized) { Return (Zero) }'
        echo '    }'
      done
      echo '}'
    } > "$asl"
    iasl -p "${asl%.asl}" "$asl" > "$asl.log" 2>&1 || { vm_log "iasl failed on $asl: $(tail -5 "$asl.log")"; return 1; }
  fi
  echo "${asl%.asl}.aml"
}


vm_kvm_probe() {
  local d rc
  d=$(mktemp -d "${TMPDIR:-/tmp}/vmgpu-kvmprobe.XXXXXX") || return 1
  printf '#!/bin/sh\necho VMTEST-KVM-PROBE-OK\npoweroff -f\n' > "$d/init"
  (cd "$d" && mkdir bin && cp /bin/busybox bin/ && ln -s busybox bin/sh && ln -s busybox bin/echo &&
    ln -s busybox bin/poweroff && chmod +x init && find . -print0 | cpio --null -o -H newc --quiet | gzip -1 > initrd)
  timeout 30 qemu-system-x86_64 -accel kvm -cpu host -machine q35 -m 512 -nodefaults -no-user-config \
    -display none -serial "file:$d/log" -no-reboot -kernel "$VM_VMLINUZ" -initrd "$d/initrd" \
    -append "console=ttyS0 panic=-1 loglevel=1" >/dev/null 2>&1
  grep -q VMTEST-KVM-PROBE-OK "$d/log" 2>/dev/null; rc=$?
  rm -rf "$d"
  return $rc
}

# vm_qemu LOG TIMEOUT INITRD [QEMU ARGS...]: boots the standard guest, serial console (ttyS0) to LOG.
# no_timer_check: on a loaded host TCG can be slow enough for the kernel's early IO-APIC timer check to fail
# ("timer doesn't work through Interrupt-remapped IO-APIC" → panic); VMs routinely skip that check.
vm_qemu() {
  local log=$1 limit=$2 initrd=$3; shift 3
  local iommu=(-device intel-iommu,intremap=on) cpufreq=() aml smp=${VM_SMP:-4}
  [ -n "${NOIOMMU:-}" ] && iommu=()
  if [ -n "${VM_CPUFREQ:-}" ]; then
    aml=$(vm_cpufreq_ssdt "${smp%%,*}") || return 1
    cpufreq=(-acpitable "file=$aml")
  fi
  # shellcheck disable=SC2046 # accel args are words on purpose
  timeout --foreground -k 5 "$limit" qemu-system-x86_64 $(vm_accel_args) \
    -machine q35,kernel-irqchip=split -smp "${VM_SMP:-4}" -m "${VM_MEM:-2048}" \
    -audiodev none,id=snd0 -nodefaults -no-user-config -display none -no-reboot \
    -serial "file:$log" \
    "${iommu[@]}" "${cpufreq[@]}" \
    -device pcie-root-port,id=rp1,bus=pcie.0,chassis=1,addr=1c.0 \
    -device VGA,bus=rp1,addr=00.0,multifunction=on \
    -device ich9-intel-hda,id=hda,bus=rp1,addr=00.1 -device hda-duplex,bus=hda.0,audiodev=snd0 \
    -kernel "$VM_VMLINUZ" -initrd "$initrd" \
    -append "console=ttyS0 ${VM_IOMMU_CMDLINE-intel_iommu=on iommu=pt} panic=-1 loglevel=4 no_timer_check ${VM_VIDEO-video=Virtual-1:d} ${VM_APPEND:-}" \
    "$@" </dev/null
}

# The real vmgpu for the guest: a static glibc build (the guest has no libc). Always with --target, so these
# RUSTFLAGS never mix with the normal builds in a shared target dir. Sets VM_VMGPU (VM_VMGPU_BIN=FILE: use FILE).
# Non-PIE (relocation-model=static), like busybox: TCG caches translated code by virtual address, so with ASLR
# a PIE binary is translated anew at every exec (~100 ms per vmgpu start here, 3-4x its non-PIE start).
vm_build_vmgpu() {
  if [ -n "${VM_VMGPU_BIN:-}" ]; then VM_VMGPU=$VM_VMGPU_BIN; return 0; fi # a prebuilt static binary
  (cd "$VM_REPO" && RUSTFLAGS='-C target-feature=+crt-static -C relocation-model=static' cargo build --quiet --release --no-default-features \
    --target x86_64-unknown-linux-gnu) || { vm_log "static build of vmgpu failed"; return 1; }
  VM_VMGPU=${CARGO_TARGET_DIR:-$VM_REPO/target}/x86_64-unknown-linux-gnu/release/vmgpu
  case $VM_VMGPU in /*) ;; *) VM_VMGPU=$VM_REPO/$VM_VMGPU ;; esac
  [ -x "$VM_VMGPU" ] || { vm_log "no $VM_VMGPU after the build"; return 1; }
}

# The files every hook-running guest gets (SRC:DST pairs for vm_initramfs): vmgpu, vfio-check, the test
# domains and a minimal /etc (users alice and libvirt-qemu, group kvm) for the shm owner.
vm_hook_guest_files() {
  local f
  echo "$VM_VMGPU:bin/vmgpu"
  echo "$VM_VFIO_CHECK:bin/vfio-check"
  echo "$VM_DIR/guest/gpu-writes.sh:bin/gpu-writes.sh"
  for f in "$VM_DIR"/domains/*.xml; do echo "$f:etc/vmtest/${f##*/}"; done
  for f in "$VM_DIR"/etc/*; do echo "$f:etc/${f##*/}"; done
}

# vm_report LOG: prints the guest's test lines; returns 0 only on "RESULT: ALL PASS" and no FAIL line
vm_report() {
  tr -d '\r' < "$1" | grep -a -E '^(PASS|FAIL|INFO|==|T\+|RESULT|    )' || true
  tr -d '\r' < "$1" | grep -aq '^RESULT: ALL PASS' && ! tr -d '\r' < "$1" | grep -aq '^FAIL'
}

# vm_boot LOG TIMEOUT INITRD [QEMU ARGS...]: vm_qemu, booted a second time when the first boot never reached
# /init: a kernel that panics early, or hangs in early boot (seen: a soft lockup in the crypto self-tests under
# TCG on an overloaded host), is the machine's fault, not the test's. A boot that has not reached /init after
# VM_BOOT_LIMIT seconds (150) is stopped (QEMU's own pid, from -pidfile). The first console stays in LOG.first.
vm_boot() {
  local log=$1 limit=$2 initrd=$3 attempt bg waited stopped
  shift 3
  for attempt in 1 2; do
    rm -f "$log.pid"
    vm_qemu "$log" "$limit" "$initrd" -pidfile "$log.pid" "$@" &
    bg=$!
    waited=0 stopped=
    while kill -0 "$bg" 2>/dev/null; do
      if [ -z "$stopped" ] && [ "$waited" -ge "${VM_BOOT_LIMIT:-150}" ] &&
        ! grep -aq '^VMTEST: init reached' "$log" 2>/dev/null; then
        vm_log "the guest has not reached /init after ${waited}s: stopping this boot"
        [ -s "$log.pid" ] && kill "$(cat "$log.pid")" 2>/dev/null
        stopped=1
      fi
      sleep 1
      waited=$((waited + 1))
    done
    wait "$bg"
    rm -f "$log.pid"
    grep -aq '^VMTEST: init reached' "$log" 2>/dev/null && return 0
    [ "$attempt" = 1 ] || return 1
    vm_log "the guest never reached /init; booting once more (first console: $log.first)"
    mv "$log" "$log.first"
  done
}
