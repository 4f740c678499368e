#!/usr/bin/env bash
# Benchmark (measures, never asserts a timing): how `vmgpu check` and `vmgpu gpus` scale with the number of PCI
# functions, and `vmgpu status` with 100 journals. The trees are generated here, at bench time, by
# tests/fixtures/hosts/derive.py --bench-tree (the committed 152-function bench tree's recipe with more
# switches), never committed.
#
#   bash benches/check_scale.sh            # RUNS (21) runs per size, sizes interleaved so all see the same load
#
# Prints per size the median wall time of the whole process, the time per function, and the slope (marginal
# ms per function) of the lower and the upper half of the range: flat per-function cost means the two slopes
# agree (ratio about 1); a quadratic cost would double the upper one.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-21}
SIZES=${SIZES:-"152 500 1000"}
cargo build --quiet --release --no-default-features --bin vmgpu
B=${CARGO_TARGET_DIR:-target}/release/vmgpu
case $B in /*) ;; *) B=$PWD/$B ;; esac
work=$(mktemp -d /tmp/vmgpu-scale.XXXXXX)
trap 'rm -rf "$work"' EXIT
for n in $SIZES; do python3 tests/fixtures/hosts/derive.py --bench-tree "$work/tree-$n" "$n" >/dev/null; done

# wall time and CPU time (user + system, 10 ms resolution; from GNU time when installed, else "-") of one
# process, in microseconds. CPU time is what the load of a shared machine disturbs least.
TIMEF=$work/time.out
wall() {
  local t0 t1 cpu=-
  t0=$(date +%s%N)
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -o "$TIMEF" -f "%U %S" "$@" >/dev/null 2>&1 || true
    cpu=$(awk '{ printf "%d", ($1 + $2) * 1000000 }' "$TIMEF")
  else
    "$@" >/dev/null 2>&1 || true
  fi
  t1=$(date +%s%N)
  echo "$(((t1 - t0) / 1000)) $cpu"
}

for n in $SIZES; do for cmd in check gpus; do wall "$B" "$cmd" --root "$work/tree-$n" >/dev/null; done; done # warm-up
for _ in $(seq "$RUNS"); do
  for n in $SIZES; do
    f=$(ls "$work/tree-$n/sys/bus/pci/devices" | wc -l)
    for cmd in check gpus; do echo "$cmd $f $(wall "$B" "$cmd" --root "$work/tree-$n")"; done
  done
done > "$work/samples"

echo "load: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs), $RUNS runs per size, medians of the whole process"
for cmd in check gpus; do
  for col in 3 4; do
    what=$([ $col = 3 ] && echo "wall" || echo "CPU")
    awk -v cmd="$cmd" -v col=$col -v what="$what" '
      $1 == cmd && $col != "-" { s[$2] = s[$2] " " $col }
      END {
        m = 0
        for (f in s) { k = split(s[f], v, " "); for (a = 1; a <= k; a++) for (b = a + 1; b <= k; b++) if (v[b] < v[a]) { x = v[a]; v[a] = v[b]; v[b] = x }
          fn[++m] = f + 0; med[f + 0] = v[int((k + 1) / 2)] / 1000 }
        if (m < 2) exit
        for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++) if (fn[b] < fn[a]) { x = fn[a]; fn[a] = fn[b]; fn[b] = x }
        for (a = 1; a <= m; a++) printf "%s %s: %4d functions: median %7.2f ms, %.4f ms per function\n", cmd, what, fn[a], med[fn[a]], med[fn[a]] / fn[a]
        lo = (med[fn[2]] - med[fn[1]]) / (fn[2] - fn[1]); hi = (med[fn[m]] - med[fn[m - 1]]) / (fn[m] - fn[m - 1])
        printf "%s %s: slope %d-%d: %.4f ms per function; %d-%d: %.4f ms per function; ratio upper/lower %.2f\n",
          cmd, what, fn[1], fn[2], lo, fn[m - 1], fn[m], hi, (lo > 0 ? hi / lo : 0)
      }' "$work/samples"
  done
done

# status: 100 journals against 1, both on the 1000-function tree. The journal is a real one, written by the hook
# (simulated host operations on the tree) for the Turing card; the other 99 are copies under other VM names.
big=$work/tree-${SIZES##* }
mkdir -p "$work/domain"
sed 's#<name>[^<]*</name>#<name>scale-vm</name>#' tests/vm/domains/bench-gpu.xml > "$work/domain/vm.xml"
"$B" --root "$big" hook scale-vm prepare begin - < "$work/domain/vm.xml" >/dev/null 2>"$work/hook.err" ||
  { echo "status: the hook could not prepare on the bench tree:"; cat "$work/hook.err"; exit 1; }
journal=$big/run/vmgpu/scale-vm.json
[ -f "$journal" ] || { echo "status: no journal at $journal"; exit 1; }
one=$work/status-one && mkdir -p "$one/run/vmgpu" && cp "$journal" "$one/run/vmgpu/"
many=$work/status-many && mkdir -p "$many/run/vmgpu"
for i in $(seq -w 1 100); do sed "s/scale-vm/scale-vm-$i/g" "$journal" > "$many/run/vmgpu/scale-vm-$i.json"; done
for _ in $(seq "$RUNS"); do
  for r in one many; do for j in "" --json; do echo "$r${j:+-json} $(wall "$B" --root "$work/status-$r" status $j)"; done; done
done > "$work/status"
awk '
  { s[$1] = s[$1] " " $2 }  # wall time
  END {
    for (c in s) { k = split(s[c], v, " "); for (a = 1; a <= k; a++) for (b = a + 1; b <= k; b++) if (v[b] < v[a]) { x = v[a]; v[a] = v[b]; v[b] = x }
      med[c] = v[int((k + 1) / 2)] / 1000 }
    printf "status: 1 journal %.2f ms, 100 journals %.2f ms (%.3f ms per journal); --json: %.2f ms, %.2f ms (%.3f ms per journal)\n",
      med["one"], med["many"], (med["many"] - med["one"]) / 99, med["one-json"], med["many-json"], (med["many-json"] - med["one-json"]) / 99
  }' "$work/status"
echo "steps per journal: $(grep -o "\"step\":" "$journal" | wc -l), journal size $(wc -c < "$journal") bytes"
