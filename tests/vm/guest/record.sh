#!/bin/sh
# /init of the recorder guest: copies the parts of sysfs/procfs that vmgpu's host model reads into /tmp/rec,
# keeping the kernel's layout and symlinks (exact relative targets), then sends it as tar.gz + base64 over ttyS1.
# The copying itself is tests/vm/guest/record-tree.sh (shared with tests/vm/record-live-host.sh).
. /lib/vmtest/common.sh
vm_setup
R=/tmp/rec
. /lib/vmtest/record-tree.sh

info "recorded $(find "$R" -type f | wc -l) files, $(find "$R" -type l | wc -l) links"
tar -C "$R" -czf /tmp/rec.tgz . || fail "tar"
echo "REC-MD5 $(md5sum < /tmp/rec.tgz | cut -d' ' -f1)"
stty -F /dev/ttyS1 raw -echo 2>/dev/null
base64 < /tmp/rec.tgz > /dev/ttyS1
echo "REC-END" > /dev/ttyS1
vm_finish
