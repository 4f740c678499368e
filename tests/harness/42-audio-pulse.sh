#!/usr/bin/env bash
# SPICE audio on a real sound server (tests/integration/spice_audio.rs, docs/spice.md "Audio"), run once on each
# server the desktops have: PulseAudio, then PipeWire (pipewire + wireplumber + pipewire-pulse, with a private
# D-Bus session bus); `VMGPU_SOUND_SERVER=pulseaudio` or `=pipewire` runs one. Each test starts its own private
# instance (tests/integration/sound_server.rs: own XDG_RUNTIME_DIR and socket, null sinks), then
#   - playback: a scripted SPICE server sends a 1 kHz sine with a counter channel and a marker click; `parec`
#     records the sink's monitor; frames in order and bit-exact, none repeated, every loss covered by a counted
#     jitter-buffer drop or as much silence (a starved writer), the muted tail silent; the added latency is
#     printed, never asserted (VMGPU_AUDIO_SECONDS=600 plays 10 minutes instead of 3 s, for the drift;
#     VMGPU_AUDIO_LATENCY_OUT=FILE appends the latency line per server);
#   - microphone (--mic): `pacat` plays a 1 kHz tone into a null sink whose monitor is the default source; the
#     scripted server must receive MODE(raw), START_MARK and DATA at 1 kHz, and no DATA after its STOP.
set -euo pipefail
cd "$(dirname "$0")/../.."
servers=${VMGPU_SOUND_SERVER:-pulseaudio pipewire}
tools="parec pacat pactl"
for server in $servers; do
  case $server in
    pulseaudio) tools="$tools pulseaudio" ;;
    pipewire) tools="$tools pipewire wireplumber pipewire-pulse dbus-daemon" ;;
    *) echo "42-audio-pulse: VMGPU_SOUND_SERVER=$server: expected pulseaudio or pipewire" >&2; exit 2 ;;
  esac
done
for tool in $tools; do
  command -v "$tool" >/dev/null || { echo "42-audio-pulse: $tool is missing (tests/install-deps.sh installs it)" >&2; exit 1; }
done
for server in $servers; do
  echo "42-audio-pulse: sound server $server"
  VMGPU_SOUND_SERVER=$server cargo test --test integration audio_pulse_ -- --ignored --test-threads=1 --nocapture
done
