#!/usr/bin/env bash
# Records the running machine's view of the host (live /sys and /proc) into OUTDIR, with the same file list as the
# recorder guest (tests/vm/guest/record-tree.sh), for a host-model fixture from real hardware:
#   tests/vm/record-live-host.sh OUTDIR
# Read-only: one `cat` per file and one `readlink` per link; nothing is written outside OUTDIR. Root reads more
# (ACPI tables, some module parameters); unreadable files are left out, as in the guest.
set -euo pipefail
[ $# -eq 1 ] || { sed -n '2,7p' "$0" >&2; exit 2; }
R=$(realpath -m "$1")
[ ! -e "$R" ] || [ -z "$(ls -A "$R")" ] || { echo "record-live-host: $R is not empty" >&2; exit 2; }
mkdir -p "$R"
# shellcheck source=tests/vm/guest/record-tree.sh
. "$(dirname "$0")/guest/record-tree.sh"
rec_file /etc/os-release
rec_file /etc/passwd
rec_file /etc/group
# What git cannot keep (device nodes, owners, modes): the nodes vmgpu stats, in HostRoot's node-stat.txt format.
for p in /dev/kvm /dev/net/tun /dev/vhost-net /dev/vfio/vfio /dev/kvmfr0 /dev/shm/looking-glass /etc/libvirt/hooks/qemu; do
  [ -e "$p" ] || continue
  case $(stat -L -c %F "$p") in
    "regular file" | "regular empty file") k=f ;; directory) k=d ;; "character special file") k=c ;; *) k=o ;;
  esac
  stat -L -c "$p $k %a %u %g %Y" "$p" | awk '{ $3 = sprintf("%04d", $3); print }'
done > "$R/node-stat.txt"
echo "record-live-host: $(find "$R" -type f | wc -l) files, $(find "$R" -type l | wc -l) links in $R" >&2
