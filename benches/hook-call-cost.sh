#!/usr/bin/env bash
# Benchmark (measures, never asserts a timing): the fixed cost of one hook call on this host, the way libvirt
# calls it (`hooks/qemu VM reconnect begin -`, the domain XML on stdin; `reconnect` changes nothing). Side by side
# in one run, interleaved: the default `vmgpu` release build as the hook, the hook-only `vmgpu-hook` (what
# `vmgpu install` copies when it sits beside vmgpu), and `sh -c true` as the floor. Prints ms per call per block,
# the medians and the ratios. Env: CALLS per block (50), BLOCKS (5).
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${CALLS:-50}
BLOCKS=${BLOCKS:-5}
cargo build --quiet --release --bins
T=${CARGO_TARGET_DIR:-target}/release
W=$(mktemp -d /tmp/vmgpu-hookcost.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/full" "$W/hook"
cp "$T/vmgpu" "$W/full/qemu"
cp "$T/vmgpu-hook" "$W/hook/qemu"
XML=tests/vm/domains/bench-gpu.xml
needed() { { readelf -d "$1" 2>/dev/null || true; } | grep -c NEEDED || true; }
echo "NEEDED libraries: vmgpu $(needed "$T/vmgpu") (ldd: $(ldd "$T/vmgpu" | wc -l) in all), vmgpu-hook $(needed "$T/vmgpu-hook") (ldd: $(ldd "$T/vmgpu-hook" | wc -l))"
ms_per_call() { # COMMAND... -> ms per call over CALLS calls
  local t0 t1 i
  t0=$(date +%s%N)
  for ((i = 0; i < CALLS; i++)); do "$@" < "$XML" > /dev/null 2>&1 || true; done
  t1=$(date +%s%N)
  echo "scale=3; ($t1 - $t0) / 1000000 / $CALLS" | bc
}
full=(); hook=(); shell=()
printf '%-6s %12s %12s %12s\n' block vmgpu vmgpu-hook 'sh -c true'
for ((b = 1; b <= BLOCKS; b++)); do
  f=$(ms_per_call "$W/full/qemu" bench-gpu reconnect begin -)
  h=$(ms_per_call "$W/hook/qemu" bench-gpu reconnect begin -)
  s=$(ms_per_call sh -c true)
  full+=("$f"); hook+=("$h"); shell+=("$s")
  printf '%-6s %9s ms %9s ms %9s ms\n' "$b" "$f" "$h" "$s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mf=$(median "${full[@]}"); mh=$(median "${hook[@]}"); ms=$(median "${shell[@]}")
echo "median ms per call: vmgpu $mf, vmgpu-hook $mh, sh -c true $ms"
echo "ratios: vmgpu-hook / vmgpu $(echo "scale=3; $mh / $mf" | bc), vmgpu-hook / sh $(echo "scale=2; $mh / $ms" | bc), vmgpu / sh $(echo "scale=2; $mf / $ms" | bc)"
echo "host: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(git rev-parse --short HEAD)"
