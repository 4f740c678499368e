#!/usr/bin/env bash
# Wall time of the whole `vmgpu check` process (start, read the tree, run every check, print, exit) on the
# 152-function bench tree: min / median / max of 50 runs of the release binary (no libvirt/viewer features).
#   bash benches/check_wall.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release --no-default-features --bin vmgpu
B=${CARGO_TARGET_DIR:-target}/release/vmgpu
TREE=tests/fixtures/hosts/bench-many-devices
for _ in 1 2 3; do "$B" check --root "$TREE" >/dev/null || true; done
for _ in $(seq 50); do
  t0=$(date +%s%N); "$B" check --root "$TREE" >/dev/null || true; t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000 ))
done | sort -n | awk '{a[NR]=$1} END {printf "vmgpu check (%s): min %.1f ms, median %.1f ms, max %.1f ms (50 runs)\n", "'"$TREE"'", a[1]/1000, a[int((NR+1)/2)]/1000, a[NR]/1000}'
