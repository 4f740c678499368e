#!/usr/bin/env bash
# Clipboard and sound with a REAL guest agent and real guest audio (docs/spice.md, docs/testing.md): the nested L1
# Debian image of harness 50 (cached under tests/.cache/l1/<hash>, with spice-vdagent, xvfb, xclip, alsa-utils)
# boots under QEMU with a password-protected SPICE server on 127.0.0.1, the agent's virtio-serial port
# (com.redhat.spice.0 on a spicevmc chardev), ich9-intel-hda + hda-duplex on the SPICE audiodev and a std VGA. In L1
# tests/nested/l1-spice-guest.sh runs spice-vdagentd -X and an Xvfb session with spice-vdagent, and serves the
# host's commands on a second virtio-serial port. Here: Xvfb, a PulseAudio daemon with null sinks (as harness 42),
# the real `vmgpu view --mic` on the SPICE server, and tests/nested/spice-guest-host.py, which checks
#   - clipboard both ways, byte for byte (emoji, CJK, combining marks, RTL, control characters, 1 MiB), xclip on
#     both sides, the viewer focused as a user would have it; and PNG both ways, pixel for pixel with alpha;
#   - guest `aplay` of a 30 s 1 kHz sine (48 kHz S16 stereo) with marker clicks → the host sink's monitor (`parec`):
#     the frequency, and every frame there once (the count against what the viewer's jitter buffer logs as dropped);
#   - the host's tone (pacat into a null sink whose monitor is the default source) → guest `arecord`: the frequency;
# and prints (never asserts) the marker's latency guest aplay → host sink, its drift, and the 1 MiB clipboard
# round trip. KVM or TCG per tests/vm/lib.sh's probe. Exits non-zero and says what failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
T=${CARGO_TARGET_DIR:-target}
START=$SECONDS
die() { echo "FAIL: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap, 9p as root)"
for tool in mmdebstrap mkfs.ext4 qemu-system-x86_64 Xvfb xclip xdotool xmessage pulseaudio parec pacat pactl python3 \
  identify convert; do
  command -v $tool >/dev/null || die "$tool is not installed (run tests/install-deps.sh)"
done
cargo build --quiet --bin vmgpu || die "cargo build"
VMGPU=$(realpath "$T/debug/vmgpu")

# 1) the L1 image, shared with harness 50 (same build script, same cache key)
KEY=$(sha256sum tests/nested/build-l1.sh | cut -c1-16)
CACHE=tests/.cache/l1/$KEY
if [ ! -f "$CACHE/rootfs.img" ]; then
  echo "building the L1 image (mmdebstrap, a few minutes plus the download) into $CACHE"
  rm -rf tests/.cache/l1; mkdir -p "$CACHE"
  bash tests/nested/build-l1.sh "$CACHE" > "$CACHE.build.log" 2>&1 || { tail -20 "$CACHE.build.log"; die "L1 image build"; }
fi

W=$(mktemp -d /tmp/vmgpu-h55.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
mkdir -p "$W/share/out" "$W/pulse"
install -m755 tests/nested/l1-spice-guest.sh "$W/share/l1-test.sh"

# 2) the host desktop: Xvfb, a focus target, PulseAudio with null sinks `out` (default sink) and `mic` (its
#    monitor is the default source)
Xvfb -displayfd 1 -screen 0 1280x800x24 -nolisten tcp > "$W/xvfb.display" 2> "$W/xvfb.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$W/xvfb.display" ] && break; sleep 0.1; done
export DISPLAY=:$(head -1 "$W/xvfb.display")
[ "$DISPLAY" != ":" ] || die "Xvfb did not start: $(cat "$W/xvfb.log")"
xmessage -geometry +900+600 focus-target > /dev/null 2>&1 &
PIDS+=($!)
sink() { echo "module-null-sink sink_name=$1 rate=48000 channels=2 format=s16le"; }
HOME=$W/pulse XDG_RUNTIME_DIR=$W/pulse pulseaudio --daemonize=no --exit-idle-time=-1 -n --use-pid-file=no \
  -L "$(sink out)" -L "$(sink mic)" -L "module-native-protocol-unix socket=$W/pulse/native auth-anonymous=1" \
  > "$W/pulse.log" 2>&1 &
PIDS+=($!)
export PULSE_SERVER=unix:$W/pulse/native
for _ in $(seq 150); do pactl info >/dev/null 2>&1 && break; sleep 0.1; done
pactl set-default-sink out && pactl set-default-source mic.monitor || die "pulseaudio: $(tail -5 "$W/pulse.log")"

# 3) L1 under QEMU with the SPICE server (password), the agent port, the control port and HDA on SPICE audio
# shellcheck source=../vm/lib.sh
. tests/vm/lib.sh
mkdir -p "$VM_CACHE"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PASSWORD=h55-$RANDOM$RANDOM
printf '%s' "$PASSWORD" > "$W/qemu-secret"   # QEMU takes the whole file
printf '%s\n' "$PASSWORD" > "$W/viewer-pw"
LIMIT=${VMGPU_SPICE_GUEST_TIMEOUT:-900}
ACCEL=$(VM_VMLINUZ=$CACHE/vmlinuz VM_KVER=l1-$KEY vm_accel_args)
# shellcheck disable=SC2086 # accel args are words on purpose
timeout -k 5 "$LIMIT" qemu-system-x86_64 $ACCEL \
  -machine q35 -smp 2 -m "${VMGPU_SPICE_GUEST_MEM:-2048}" -nodefaults -no-user-config -display none -no-reboot \
  -serial "file:$W/serial.log" \
  -kernel "$CACHE/vmlinuz" -initrd "$CACHE/initrd.img" \
  -append "console=ttyS0 root=/dev/vda rw panic=-1 loglevel=4 no_timer_check systemd.show_status=0 systemd.unit=multi-user.target" \
  -drive "file=$CACHE/rootfs.img,format=raw,if=virtio,cache=unsafe,snapshot=on" \
  -fsdev "local,id=fs0,path=$W/share,security_model=none" -device virtio-9p-pci,fsdev=fs0,mount_tag=hostshare \
  -device VGA \
  -object "secret,id=spicepw,file=$W/qemu-secret" -spice "port=$PORT,addr=127.0.0.1,password-secret=spicepw" \
  -device virtio-serial-pci,id=vser \
  -chardev spicevmc,id=vdagent,name=vdagent -device virtserialport,bus=vser.0,chardev=vdagent,name=com.redhat.spice.0 \
  -chardev "socket,id=ctl,path=$W/ctl.sock,server=on,wait=off" -device virtserialport,bus=vser.0,chardev=ctl,name=vmgpu.ctl \
  -audiodev spice,id=snd0 -device ich9-intel-hda -device hda-duplex,audiodev=snd0 \
  < /dev/null > "$W/qemu.log" 2>&1 &
QEMU=$!
PIDS+=($QEMU)
echo "L1 booting (${ACCEL#-accel }), SPICE on 127.0.0.1:$PORT"

# 4) the real viewer on it, with the microphone
VMGPU_VIEW_TEST=1 VMGPU_LOG=info "$VMGPU" view --shm "$W/no-looking-glass" --spice "127.0.0.1:$PORT" \
  --spice-password-file "$W/viewer-pw" --mic > "$W/viewer.out" 2> "$W/viewer.err" &
PIDS+=($!)

# 5) the checks (the script tells the guest to power off at its end)
FAIL=0
python3 tests/nested/spice-guest-host.py --share "$W/share" --ctl "$W/ctl.sock" --viewer-log "$W/viewer.err" \
  --boot-limit "$LIMIT" --accel "$(echo "$ACCEL" | awk '{print $2}' | cut -d, -f1)" || FAIL=1
for _ in $(seq 60); do kill -0 $QEMU 2>/dev/null || break; sleep 1; done
kill $QEMU 2>/dev/null

rm -rf tests/.cache/spice-guest-last-run; mkdir -p tests/.cache/spice-guest-last-run
cp -r "$W/share/out/." "$W/serial.log" "$W/qemu.log" "$W/viewer.err" "$W/pulse.log" tests/.cache/spice-guest-last-run/ 2>/dev/null
if [ $FAIL != 0 ]; then
  echo "--- viewer (tail)"; tail -15 "$W/viewer.err"
  echo "--- L1 serial console (tail)"; tail -25 "$W/serial.log"
  echo "--- L1 test log (tail)"; tail -25 "$W/share/out/l1.log" 2>/dev/null
fi
echo "55-spice-guest: $((SECONDS - START)) s (logs kept in tests/.cache/spice-guest-last-run/)"
[ $FAIL = 0 ] && echo "55-spice-guest: ALL PASS" || echo "55-spice-guest: FAILURES"
exit $FAIL
