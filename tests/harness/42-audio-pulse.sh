#!/usr/bin/env bash
# SPICE audio on a real sound server (tests/integration/spice_audio.rs, docs/spice.md "Audio"): each test starts
# its own PulseAudio daemon (user-style instance on a private socket, null sinks), then
#   - playback: a scripted SPICE server sends a 1 kHz sine with a counter channel and a marker click; `parec`
#     records the sink's monitor; frames in order and bit-exact, none repeated, every loss covered by a counted
#     jitter-buffer drop or as much silence (a starved writer), the muted tail silent; the added latency is
#     printed, never asserted (VMGPU_AUDIO_SECONDS=600 plays 10 minutes instead of 3 s, for the drift);
#   - microphone (--mic): `pacat` plays a 1 kHz tone into a null sink whose monitor is the default source; the
#     scripted server must receive MODE(raw), START_MARK and DATA at 1 kHz, and no DATA after its STOP.
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in pulseaudio parec pacat pactl; do
  command -v "$tool" >/dev/null || { echo "42-audio-pulse: $tool is missing (tests/install-deps.sh installs it)" >&2; exit 1; }
done
cargo test --test integration audio_pulse_ -- --ignored --test-threads=1 --nocapture
