#!/bin/bash
# Runs inside L1 for tests/harness/55-spice-guest.sh (started by vmtest.service from the host's 9p share as
# l1-test.sh): the real SPICE guest side. Starts spice-vdagentd -X (no logind session to follow) and an Xvfb
# session with the session agent spice-vdagent in it, then serves the host's commands, one line each, on the
# virtio serial port vmgpu.ctl (files travel through the 9p share, /mnt/host):
#   T                  -> "T <guest CLOCK_REALTIME>"            (the host estimates the clock offset)
#   CLIPSET FILE [TYPE] -> guest clipboard := /mnt/host/FILE (xclip -i, as TYPE if given: image/png), "OK <rc>"
#   CLIPGET FILE [TYPE] -> xclip -o (as TYPE if given) > /mnt/host/out/FILE, "OK <rc>"
#   PLAY FILE          -> "PLAYING <guest time at aplay's exec>", then "PLAYED <rc>" (aplay of /mnt/host/FILE)
#   REC SECS FILE      -> arecord SECS seconds (S16 stereo 48 kHz) into /mnt/host/out/FILE, "RECORDED <rc>"
#   QUIT               -> logs copied to /mnt/host/out, power off
# Every command has a timeout; the host gives up on its own side too.
S=/mnt/host; OUT=$S/out; mkdir -p "$OUT"
exec > >(tee "$OUT/l1.log") 2>&1
log() { echo "L1[$(cut -d' ' -f1 /proc/uptime)] $*"; }
PORT=/dev/virtio-ports/vmgpu.ctl
for _ in $(seq 300); do [ -e "$PORT" ] && [ -e /dev/virtio-ports/com.redhat.spice.0 ] && [ -e /dev/snd/controlC0 ] && break; sleep 0.2; done
log "ports: $(ls /dev/virtio-ports | tr '\n' ' '); sound: $(tr '\n' ' ' < /proc/asound/cards)"
# The card's own mixer at full, unmuted (QEMU forwards it to the SPICE VOLUME/MUTE the viewer applies).
for c in Master PCM Front Capture 'Capture Volume'; do amixer -q -c 0 sset "$c" 100% unmute cap >/dev/null 2>&1; done
amixer -c 0 scontents 2>&1 | grep -E "^Simple|Playback|Capture" | sed 's/^/  mixer: /' | head -12

export DISPLAY=:0
Xvfb :0 -screen 0 1024x768x24 -nolisten tcp > "$OUT/xvfb.log" 2>&1 &
for _ in $(seq 150); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.2; done
xdpyinfo >/dev/null 2>&1 && log "Xvfb :0 up" || log "Xvfb :0 did not start"
mkdir -p /run/spice-vdagentd
spice-vdagentd -X -x -d > "$OUT/spice-vdagentd.log" 2>&1 &
for _ in $(seq 100); do [ -S /run/spice-vdagentd/spice-vdagent-sock ] && break; sleep 0.1; done
spice-vdagent -x -d > "$OUT/spice-vdagent.log" 2>&1 &
log "spice-vdagentd pid $(pgrep -x spice-vdagentd), spice-vdagent pid $(pgrep -x spice-vdagent)"

exec 3<>"$PORT"
reply() { printf '%s\n' "$*" >&3; log "-> $*"; }
# Announce until the host speaks (it may connect late; what is written before is lost).
line=
until read -r -t 1 line <&3; do printf 'READY\n' >&3; done
log "host is here"
while :; do
  [ -n "$line" ] || { read -r line <&3 || break; }
  set -- $line; line=
  case $1 in
    T) printf 'T %s\n' "$EPOCHREALTIME" >&3 ;;
    CLIPSET)
      log "<- CLIPSET $2 ${3:-text} ($(stat -c %s "$S/$2") bytes)"
      # xclip forks a child that owns the clipboard until another owner takes it
      timeout 20 xclip -i -selection clipboard ${3:+-t "$3"} < "$S/$2"; reply "OK $?" ;;
    CLIPGET)
      t0=$EPOCHREALTIME
      timeout 30 xclip -o -selection clipboard ${3:+-t "$3"} > "/tmp/$2"; rc=$?
      cp "/tmp/$2" "$OUT/$2"; sync
      log "<- CLIPGET $2: rc $rc, $(stat -c %s "/tmp/$2") bytes in $(awk "BEGIN{printf \"%.3f\", $EPOCHREALTIME-$t0}") s"
      reply "OK $rc" ;;
    PLAY)
      cp "$S/$2" /tmp/play.wav
      # a 500 ms ALSA buffer: a guest that TCG stalls for a moment must not underrun (it would replay stale audio)
      printf 'PLAYING %s\n' "$EPOCHREALTIME" >&3
      timeout 120 aplay -q -D plughw:0,0 -B 500000 /tmp/play.wav 2> "$OUT/aplay.err"
      reply "PLAYED $? $(tr '\n' ' ' < "$OUT/aplay.err")" ;;
    REC)
      timeout $(($2 + 30)) arecord -q -D plughw:0,0 -f S16_LE -r 48000 -c 2 -d "$2" -t raw "/tmp/$3" 2> "$OUT/arecord.err"; rc=$?
      cp "/tmp/$3" "$OUT/$3"; sync
      reply "RECORDED $rc $(tr '\n' ' ' < "$OUT/arecord.err")" ;;
    QUIT) break ;;
    READY|'') ;;
    *) reply "ERR unknown command $1" ;;
  esac
done
log "done"
dmesg > "$OUT/dmesg.txt" 2>&1
journalctl -b --no-pager -o short-monotonic > "$OUT/journal.txt" 2>/dev/null
sync
