#!/usr/bin/env bash
# Real kernel: boots the harness guest (Debian kernel, QEMU q35, TCG) twice — with intel-iommu and a four-function
# card behind its own root port, and without any IOMMU — records its sysfs/procfs with tests/vm/record-host-tree.sh,
# and runs the real `vmgpu gpus --json` / `vmgpu check --json` on each fresh recording:
#   * with IOMMU: the four functions form one card in one group (passable with all functions), IOMMU PASS;
#   * without: IOMMU FAIL saying there is no IOMMU, exit 1;
#   * every symlink of the committed fixture tests/fixtures/hosts/recorded/q35-iommu (the layout the
#     derived fixtures copy) is written the same way by the kernel, so a layout change shows up here.
# Exits non-zero and says what failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
T=${CARGO_TARGET_DIR:-target}
FAIL=0
ok() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; FAIL=1; }
die() { echo "FAIL: $*"; exit 1; }
command -v jq >/dev/null || die "jq is not installed (run tests/install-deps.sh)"
cargo build --quiet --bin vmgpu || die "cargo build"
VMGPU=$T/debug/vmgpu
W=$(mktemp -d /tmp/vmgpu-h20.XXXXXX)
trap 'rm -rf "$W"' EXIT

VM_SMP="4,sockets=1,cores=2,threads=2" VM_APPEND="hugepages=16" tests/vm/record-host-tree.sh "$W/iommu" \
  -device pcie-root-port,id=rp2,bus=pcie.0,chassis=2,addr=1d.0 \
  -device VGA,bus=rp2,addr=00.0,multifunction=on -device ich9-intel-hda,id=hda2,bus=rp2,addr=00.1 \
  -device qemu-xhci,bus=rp2,addr=00.2 -device pci-serial,bus=rp2,addr=00.3 >"$W/rec1.log" 2>&1 ||
  { cat "$W/rec1.log"; die "recording with IOMMU"; }
NOIOMMU=1 VM_IOMMU_CMDLINE="" tests/vm/record-host-tree.sh "$W/noiommu" >"$W/rec2.log" 2>&1 ||
  { cat "$W/rec2.log"; die "recording without IOMMU"; }

# with IOMMU: the card at 02:00.0 as one unit
"$VMGPU" gpus --json --root "$W/iommu" >"$W/gpus.json" || bad "vmgpu gpus exited $?"
card='.[] | select(.primary.address == "0000:02:00.0")'
n=$(jq "[$card | .functions[]] | length" "$W/gpus.json")
groups=$(jq "[$card | .functions[].iommu_group] | unique | length" "$W/gpus.json")
verdict=$(jq -r "$card | .verdict" "$W/gpus.json")
if [ "$n" = 4 ] && [ "$groups" = 1 ] && [ "$verdict" = passable-with-all-functions ]; then
  ok "real kernel: 02:00.0-3 is one card, $n functions in one group, $verdict"
else
  bad "real kernel: 02:00.0 card has $n functions in $groups groups, verdict $verdict"
fi
"$VMGPU" check --json --root "$W/iommu" >"$W/check1.json"
sev=$(jq -r '.findings[] | select(.id == "iommu.enabled") | .severity' "$W/check1.json")
[ "$sev" = PASS ] && ok "real kernel with intel-iommu: iommu.enabled PASS" || bad "iommu.enabled is $sev with intel-iommu"

# without IOMMU: FAIL with the reason, exit 1
"$VMGPU" check --json --root "$W/noiommu" >"$W/check2.json"; rc=$?
what=$(jq -r '.findings[] | select(.id == "iommu.enabled") | "\(.severity) \(.what)"' "$W/check2.json")
case "$rc $what" in
  "1 FAIL no IOMMU"*) ok "real kernel without IOMMU: exit 1, $what" ;;
  *) bad "without IOMMU: exit $rc, iommu.enabled: $what" ;;
esac

# the kernel's link layout is the committed fixture's: every link the fixture has, the kernel writes the same
# (the recorder may record more over time; extra links are fine)
layout() { (cd "$1" && find sys -type l -printf '%p -> %l\n' | sort); }
missing=$(comm -23 <(layout tests/fixtures/hosts/recorded/q35-iommu) <(layout "$W/iommu"))
if [ -z "$missing" ]; then
  ok "sysfs link layout matches tests/fixtures/hosts/recorded/q35-iommu ($(layout "$W/iommu" | wc -l) links)"
else
  echo "$missing"; bad "links of the recorded fixture that the kernel no longer writes the same way (above)"
fi
exit $FAIL
