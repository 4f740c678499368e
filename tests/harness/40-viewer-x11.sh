#!/usr/bin/env bash
# The real `vmgpu view` window on real display servers against the producer writing a shared-memory file:
#   - X11: one Xvfb per test; screenshots (ImageMagick `import`) compared pixel-exact (`compare -metric AE`) with
#     what the producer wrote, for every frame format, damage-only updates, every cursor type, a producer restart
#     and a client the host marked BAD; bad inputs give a message in the window and on stderr.
#   - Wayland: weston nested in Xvfb (x11 backend, pixman), the viewer as a native Wayland client.
#   - Lifecycle (tests/integration/viewer_life.rs, docs/viewer.md): a VM restart (file replaced), a second
#     launch, a file truncated mid-frame, corrupt queues, a stopped host, the truncation banner (xdotool click),
#     the first picture and title, the filtered downscale, SIGTERM, the demo file's mode, plain messages.
#   - Clipboard (tests/integration/viewer_clipboard_x11.rs): arboard against `xclip` on Xvfb with a scripted SPICE
#     agent, both ways byte for byte.
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in Xvfb import compare convert xwininfo weston xdotool xclip; do
  command -v "$tool" >/dev/null || { echo "40-viewer-x11: $tool is missing (tests/install-deps.sh installs it)" >&2; exit 1; }
done
cargo test --test integration viewer_ -- --ignored --test-threads=2
