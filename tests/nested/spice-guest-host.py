#!/usr/bin/env python3
"""Host side of tests/harness/55-spice-guest.sh: drives the L1 guest (tests/nested/l1-spice-guest.sh) over its
control port while the real `vmgpu view --mic` is connected to the guest's SPICE server, and checks clipboard and
audio end to end. Python's standard library only. Prints PASS/FAIL/INFO lines; exits 1 on any FAIL.

Environment (set by the harness): DISPLAY (the host Xvfb with the viewer window), PULSE_SERVER (the test's
PulseAudio: null sink `out` is the default sink, the monitor of null sink `mic` the default source).
"""
import argparse
import math
import os
import re
import socket
import struct
import subprocess
import threading
import time
import zlib

RATE = 48_000
SECONDS = 30
TONE = 1000.0
MIC_TONE = 750.0
MARKERS = (1.0, SECONDS - 1.0)  # marker clicks (seconds into the file)
CLICK = 48  # frames of full scale per click
# the same texts as tests/integration/spice_agent_fake.rs (TEXTS)
TEXTS = [
    "😀👩‍👩‍👧‍👦🇩🇪 emoji",
    "漢字かなカナ한국어 中文",
    "e\u0301 a\u0308\u0323 Z\u0335\u0336",
    "שלום עולם \u200fمرحبا بالعالم",
    "tab\tand\nnewlines\n\nend ✓",
    "ascii",
]

FAILED = False


def ok(msg):
    print(f"PASS: {msg}", flush=True)


def bad(msg):
    global FAILED
    FAILED = True
    print(f"FAIL: {msg}", flush=True)


def info(msg):
    print(f"INFO: {msg}", flush=True)


def big_text():
    """1 MiB of every text above (NUL-free), cut on a character boundary (as big_text() in the Rust tests)."""
    s = bytearray()
    while len(s) < 1 << 20:
        s += TEXTS[len(s) % len(TEXTS)].encode() + b"\n"
    text = s.decode()
    while len(text.encode()) > 1 << 20:
        text = text[:-1]
    return text.encode()


class Guest:
    """The line protocol on the guest's vmgpu.ctl virtio-serial port."""

    def __init__(self, path, limit):
        end = time.time() + 60
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                if time.time() > end:
                    raise
                time.sleep(0.2)
        self.buf = b""
        first = self.line(limit, skip_ready=False)
        if first != "READY":
            raise RuntimeError(f"guest said {first!r} first")

    def line(self, limit, skip_ready=True):
        end = time.time() + limit
        while True:
            while b"\n" in self.buf:
                ln, self.buf = self.buf.split(b"\n", 1)
                text = ln.decode(errors="replace").strip()
                if text and not (skip_ready and text == "READY"):
                    return text
            left = end - time.time()
            if left <= 0:
                raise TimeoutError(f"no answer from the guest in {limit} s")
            self.s.settimeout(left)
            data = self.s.recv(4096)
            if not data:
                raise EOFError("the guest closed its control port")
            self.buf += data

    def send(self, cmd):
        self.s.sendall(cmd.encode() + b"\n")

    def ask(self, cmd, limit=60):
        self.send(cmd)
        return self.line(limit)

    def clock_offset(self):
        """guest CLOCK_REALTIME minus the host's, from the fastest of 20 exchanges (± half its round trip)."""
        best = None
        for _ in range(20):
            t0 = time.time()
            ans = self.ask("T", 10)
            t1 = time.time()
            g = float(ans.split()[1])
            if best is None or t1 - t0 < best[0]:
                best = (t1 - t0, g - (t0 + t1) / 2)
        return best[1], best[0] / 2


def run(args, stdin=None, timeout=30):
    return subprocess.run(args, input=stdin, capture_output=True, timeout=timeout)


def host_clip_get():
    try:
        return run(["xclip", "-o", "-selection", "clipboard"], timeout=20).stdout
    except subprocess.TimeoutExpired:
        return None


def host_clip_set(data):
    # xclip forks a child that serves the selection; the parent returns
    subprocess.run(["xclip", "-i", "-selection", "clipboard"], input=data, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=20, check=True)
    end = time.time() + 20
    while host_clip_get() != data:
        if time.time() > end:
            raise RuntimeError("xclip never served the text on the host")
        time.sleep(0.05)


def xdo(*a):
    return run(["xdotool", *a]).stdout.decode().strip()


def window(name):
    end = time.time() + 60
    while time.time() < end:
        ids = xdo("search", "--name", name).split()
        if ids:
            return ids[0]
        time.sleep(0.2)
    raise RuntimeError(f"no window named {name}")


def wait_title(wid, want, limit):
    end = time.time() + limit
    title = ""
    while time.time() < end:
        title = xdo("getwindowname", wid)
        if want in title:
            return title
        time.sleep(0.5)
    raise RuntimeError(f"window title {title!r} never had {want!r}")


def check_clipboard(g, share, viewer, other):
    texts = [t.encode() for t in TEXTS] + [big_text()]
    names = [f"text{i}" for i in range(len(TEXTS))] + ["1MiB"]
    for i, t in enumerate(texts):
        with open(os.path.join(share, f"clip{i}"), "wb") as f:
            f.write(t)
    # the window's focus makes the viewer announce the host clipboard to the guest: that must have landed before
    # the guest copies (the later announcement wins, in the guest as on the host), so wait until the guest
    # pastes it
    host_clip_set(b"sentinel start")
    _, got, _ = guest_paste(g, share, (viewer, other), "sync", lambda b: b, lambda got: got == b"sentinel start")
    if got != b"sentinel start":
        bad("the guest never saw the host clipboard the viewer announced at focus")
    # guest -> host: xclip -i in the guest; the agent announces it, the focused viewer asks for it
    for i, (t, name) in enumerate(zip(texts, names)):
        host_clip_set(f"sentinel {i}".encode())
        t0 = time.time()
        ans = g.ask(f"CLIPSET clip{i}", 40)
        got = poll(host_clip_get, lambda got: got == t)
        if ans == "OK 0" and got == t:
            ok(f"clipboard guest → host, {name} ({len(t)} bytes) byte for byte in {time.time() - t0:.2f} s")
        else:
            bad(f"clipboard guest → host, {name}: guest {ans!r}, host has {len(got or b'')} bytes, want {len(t)}")
    # host -> guest: xclip -i on the host; the viewer announces it when its window gets focus; xclip -o in the guest
    for i, (t, name) in enumerate(zip(texts, names)):
        t0 = time.time()
        host_clip_set(t)
        ans, got, t1 = guest_paste(g, share, (viewer, other), f"got{i}", lambda b: b, lambda got: got == t)
        if ans == "OK 0" and got == t:
            ok(f"clipboard host → guest, {name} ({len(t)} bytes) byte for byte in {t1 - t0:.2f} s")
        else:
            bad(f"clipboard host → guest, {name}: guest {ans!r}, {len(got)} bytes, want {len(t)}"
                f"{'' if len(got) != len(t) else ' (same length, other bytes)'}")
        if name == "1MiB":
            # and back: the guest copies what it pasted, the host pastes it (the README's round-trip number)
            host_clip_set(b"sentinel back")
            t1b = time.time()
            g.ask("CLIPSET out/got%d" % i, 40)
            back_ok = poll(host_clip_get, lambda got: got == t) == t
            t2 = time.time()
            if back_ok:
                there, back = t1 - t0, t2 - t1b
                info(f"clipboard round trip of 1 MiB text (host xclip -i → guest xclip -o, guest xclip -i → "
                     f"host xclip -o): {there + back:.2f} s (host → guest {there:.2f} s, back {back:.2f} s)")
            else:
                bad("1 MiB clipboard: the guest's copy never came back to the host")


def poll(fetch, good, timeout=60, step=0.05):
    """`fetch()` until `good` of it or `timeout` seconds; returns the last value fetched."""
    end = time.time() + timeout
    while True:
        got = fetch()
        if good(got) or time.time() > end:
            return got
        time.sleep(step)


def guest_paste(g, share, windows, target, decode, good, timeout=60):
    """Focuses the viewer (from `windows` = (viewer, other)) and has the guest paste its clipboard into
    out/<first word of target> (`target`: the file, then an optional type) until `good` of it decoded, asking
    again: the viewer's GRAB may reach the agent after xclip -o read the previous clipboard. Returns (the
    guest's last answer, the decoded paste, the time of that answer)."""
    viewer, other = windows
    path = os.path.join(share, "out", target.split()[0])
    end = time.time() + timeout
    while True:
        xdo("windowfocus", "--sync", other)
        xdo("windowfocus", "--sync", viewer)
        ans = g.ask(f"CLIPGET {target}", 60)
        answered = time.time()
        try:
            with open(path, "rb") as f:
                got = decode(f.read())
        except OSError:
            got = decode(b"")
        if good(got) or time.time() > end:
            return ans, got, answered
        time.sleep(0.3)


def png_bytes(width, height, rgba):
    """A PNG (RGBA8, no filter) of `rgba` rows, with the standard library only."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\0" + rgba[y * width * 4:(y + 1) * width * 4] for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def test_images():
    """(name, width, height, RGBA) — an opaque one with every pixel different, and one whose alpha runs 1..255
    (0 is left out: a fully transparent pixel's colour is not part of the picture, and converters may drop it)."""
    w, h = 97, 61
    opaque = bytearray()
    for y in range(h):
        for x in range(w):
            opaque += bytes(((x * 7 + y) % 256, (y * 5 + x * 3) % 256, (x * y) % 256, 255))
    w2, h2 = 64, 48
    alpha = bytearray()
    for y in range(h2):
        for x in range(w2):
            alpha += bytes(((x * 4) % 256, (y * 5) % 256, (x + y) % 256, 1 + (x + y * w2) % 255))
    return [("opaque 97x61", w, h, bytes(opaque)), ("alpha 64x48", w2, h2, bytes(alpha))]


def decode_png(data):
    """(width, height, RGBA8) of any PNG, through ImageMagick (the harness installs it for harness 40)."""
    if not data.startswith(b"\x89PNG"):
        return None
    try:
        size = run(["identify", "-format", "%w %h", "png:-"], stdin=data).stdout.split()
        raw = run(["convert", "png:-", "-depth", "8", "rgba:-"], stdin=data).stdout
        return int(size[0]), int(size[1]), raw
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        return None


def same_picture(got, width, height, rgba):
    """Pixel for pixel, alpha included; `got` from decode_png."""
    return got is not None and got[:2] == (width, height) and got[2] == rgba


def host_png_get():
    try:
        return run(["xclip", "-o", "-selection", "clipboard", "-t", "image/png"], timeout=20).stdout
    except subprocess.TimeoutExpired:
        return b""


def png_verdict(way, receiver, name, ans, got, want, t0):
    """PASS when the guest's xclip answered OK and the receiver's clipboard has the picture `want`."""
    if ans == "OK 0" and same_picture(got, *want):
        ok(f"clipboard {way}, PNG {name} pixel for pixel in {time.time() - t0:.2f} s")
    else:
        bad(f"clipboard {way}, PNG {name}: guest {ans!r}, {receiver} has "
            f"{'no PNG' if got is None else f'{got[0]}x{got[1]}, other pixels'}")


def check_png(g, share, viewer, other):
    """PNG both ways through the real spice-vdagent: the guest's `xclip -t image/png -i` → the viewer (focused)
    REQUESTs it, decodes it and puts it on the host clipboard with arboard → host `xclip -t image/png -o`; and a
    host `xclip -t image/png -i` → announced at focus, encoded on the guest's REQUEST → guest `xclip -t image/png
    -o`. Pixel for pixel, alpha included, whatever PNG encoder each side used."""
    for i, (name, w, h, rgba) in enumerate(test_images()):
        png = png_bytes(w, h, rgba)
        with open(os.path.join(share, f"img{i}.png"), "wb") as f:
            f.write(png)
        if not same_picture(decode_png(png), w, h, rgba):
            bad(f"PNG {name}: the test's own PNG does not decode to its pixels (ImageMagick)")
            continue
        # guest -> host
        host_clip_set(f"sentinel png {i}".encode())
        t0 = time.time()
        ans = g.ask(f"CLIPSET img{i}.png image/png", 40)
        got = poll(lambda: decode_png(host_png_get()), lambda got: same_picture(got, w, h, rgba), step=0.2)
        png_verdict("guest → host", "host", name, ans, got, (w, h, rgba), t0)
        # host -> guest
        t0 = time.time()
        subprocess.run(["xclip", "-i", "-selection", "clipboard", "-t", "image/png", os.path.join(share, f"img{i}.png")],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20, check=True)
        ans, got, _ = guest_paste(g, share, (viewer, other), f"pngback{i} image/png", decode_png,
                                  lambda got: same_picture(got, w, h, rgba))
        png_verdict("host → guest", "guest", name, ans, got, (w, h, rgba), t0)


def sine_wav(path):
    """30 s of a 1 kHz sine, 48 kHz S16 stereo, half a sample out of phase (no sample is ever 0), with a
    full-scale click of CLICK frames at each MARKERS second."""
    frames = RATE * SECONDS
    period = [round(8000 * math.sin(2 * math.pi * TONE * (n + 0.5) / RATE)) for n in range(int(RATE / TONE))]
    data = bytearray()
    click_at = [int(m * RATE) for m in MARKERS]
    for n in range(frames):
        v = 30000 if any(c <= n < c + CLICK for c in click_at) else period[n % len(period)]
        data += struct.pack("<hh", v, v)
    hdr = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 2, RATE, RATE * 4, 4, 16) + b"data" + struct.pack("<I", len(data))
    with open(path, "wb") as f:
        f.write(hdr + data)
    return frames


class Parec:
    """parec of the `out` sink's monitor, with the host time of each read."""

    def __init__(self):
        self.p = subprocess.Popen(["parec", "-d", "out.monitor", "--raw", "--format=s16le", "--rate=48000",
                                   "--channels=2", "--latency-msec=5"], stdout=subprocess.PIPE)
        self.data = bytearray()
        self.reads = []  # (host time, bytes so far)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        while True:
            b = os.read(self.p.stdout.fileno(), 65536)
            if not b:
                return
            now = time.time()
            self.data += b
            self.reads.append((now, len(self.data)))

    def stop(self):
        self.p.terminate()
        self.p.wait()
        self.t.join(5)

    def when(self, frame):
        """Host time of the read that brought `frame` (minus the part of the read after it)."""
        byte = frame * 4
        for t, n in self.reads:
            if n > byte:
                return t - (n - byte) / 4 / RATE
        return None


def runs_of_sound(left, right):
    """[start, end) of the runs of frames that are not exact zeros (a sink's or QEMU's silence, an underrun)."""
    runs, start = [], None
    for i, (v, w) in enumerate(zip(left, right)):
        if v or w:
            if start is None:
                start = i
        elif start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(left)))
    return runs


def frequency(segments):
    """Zero crossings per second, halved, over segments of continuous sound (a gap never counts as a crossing)."""
    crossings = sum(sum(1 for a, b in zip(s, s[1:]) if (a < 0) != (b < 0)) for s in segments)
    n = sum(len(s) - 1 for s in segments)
    return crossings / 2 / (n / RATE) if n > 0 else 0.0


def dropped_so_far(log):
    """The viewer's last 'stream stopped' totals: (played, dropped)."""
    try:
        text = open(log, errors="replace").read()
    except OSError:
        return None
    m = re.findall(r"so far (\d+) frames played, (\d+) dropped", text)
    return tuple(map(int, m[-1])) if m else None


def check_playback(g, share, viewer_log, offset, kvm):
    want = sine_wav(os.path.join(share, "sine.wav"))
    rec = Parec()
    time.sleep(1)
    before = dropped_so_far(viewer_log) or (0, 0)
    ans = g.ask("PLAY sine.wav", 60)
    if not ans.startswith("PLAYING "):
        bad(f"guest aplay: {ans!r}")
        rec.stop()
        return
    started = float(ans.split()[1]) - offset  # host time of aplay's exec
    ans = g.line(SECONDS + 120)
    time.sleep(2)
    rec.stop()
    if ans.startswith("PLAYED 0"):
        ok("guest aplay played 30 s of a 1 kHz sine (48 kHz S16 stereo) into its HDA card")
    else:
        bad(f"guest aplay: {ans!r}")
    # the viewer logs its totals at the guest's STOP
    end = time.time() + 10
    after = dropped_so_far(viewer_log)
    while (after is None or after == before) and time.time() < end:
        time.sleep(0.2)
        after = dropped_so_far(viewer_log)
    if after is None:
        bad("the viewer never logged the playback totals (SPICE playback: stream stopped ...)")
        after = before
    dropped = after[1] - before[1]
    frames = struct.unpack(f"<{len(rec.data) // 2}h", bytes(rec.data[: len(rec.data) // 4 * 4]))
    left = frames[0::2]
    right = frames[1::2]
    with open(os.path.join(share, "out", "host-playback.raw"), "wb") as f:
        f.write(rec.data)
    # the sink's silence (nothing playing, or an underrun) is exact zeros; the test signal never is
    runs = runs_of_sound(left, right)
    if not runs:
        bad(f"the host sink's monitor stayed silent ({len(left)} frames recorded)")
        return
    heard = sum(b - a for a, b in runs)
    gaps = len(runs) - 1
    silence = runs[-1][1] - runs[0][0] - heard
    played = after[0] - before[0]
    info(f"playback: {want} frames sent by aplay; {played + dropped} reached the viewer ({want - played - dropped} "
         f"lost before it: guest, QEMU, spice-server), which dropped {dropped} (jitter buffer) and played {played}; "
         f"the sink's monitor heard {heard} in {gaps + 1} runs with {silence} frames of silence between them")
    upstream = want - played - dropped
    # nothing duplicated: never more than was sent, at the viewer or at the sink (10 ms of slack for QEMU's last
    # partial period)
    if heard <= want + 480 and played + dropped <= want + 480:
        ok(f"nothing duplicated: the viewer got {played + dropped} frames and the sink {heard}, of {want} sent")
    else:
        bad(f"duplicated audio: {want} frames sent, the viewer got {played + dropped}, the sink {heard}")
    # nothing lost by the viewer beyond what its jitter buffer counted: what it handed to the sound server is
    # heard, or as much silence is in its place (a sink underrun: the monitor shows silence, then misses as much
    # of the late audio; harness 42 / docs/spice.md). Slack: the sink's rewind at the stream's start, which the
    # monitor never shows (up to the stream's 20 ms latency: 146-374 frames seen; the sine carries no counter to
    # tell it apart here; harness 42's counter channel checks the start and the end frame by frame).
    if played - heard <= silence + 960:
        ok(f"every frame the viewer played is heard ({heard} of {played}) or covered by the sink's {silence} "
           f"frames of silence; the rest is its {dropped} counted drops")
    else:
        bad(f"the viewer played {played} frames, the sink heard {heard} with only {silence} frames of silence")
    # upstream of the viewer (guest ALSA, QEMU's HDA and audio timer, spice-server): nothing may be lost on a
    # KVM guest; a TCG guest on a loaded host cannot keep real time, so there it is reported
    if kvm and upstream > 480:
        bad(f"{upstream} frames lost before the viewer (KVM guest)")
    elif kvm:
        ok(f"nothing lost before the viewer ({upstream} frames, within 10 ms)")
    else:
        info(f"TCG guest: {upstream} frames ({upstream * 1000 / RATE:.0f} ms) lost before the viewer, not asserted")
    clicks = []
    i = 0
    high = max(left) * 0.6  # the clicks are full scale, the sine 8000
    while i < len(left):
        if left[i] > high:
            clicks.append(i)
            i += RATE // 2
        else:
            i += 1
    sine = []
    for a, b in runs:
        seg = [v for k, v in enumerate(left[a:b]) if not any(c - 5 <= a + k < c + CLICK + 5 for c in clicks)]
        if len(seg) > 480:
            sine.append(seg)
    f = frequency(sine)
    if abs(f - TONE) <= TONE * 0.01:
        ok(f"host sink hears {f:.1f} Hz (want {TONE:.0f})")
    else:
        bad(f"host sink hears {f:.1f} Hz, want {TONE:.0f}")
    if len(clicks) != len(MARKERS):
        bad(f"{len(clicks)} marker clicks heard, want {len(MARKERS)}")
        return
    lat = [rec.when(c) - (started + m) for c, m in zip(clicks, MARKERS)]
    first = rec.when(runs[0][0]) - started
    # between the clicks: the file has MARKERS[1] - MARKERS[0] seconds; the sink had that plus its silence minus
    # what was lost, which is all the drift there is
    between = [(a, b) for a, b in runs if b > clicks[0] and a < clicks[1]]
    sound = sum(min(b, clicks[1]) - max(a, clicks[0]) for a, b in between)
    hole = clicks[1] - clicks[0] - sound
    lost = int((MARKERS[1] - MARKERS[0]) * RATE) - sound
    info(f"audio latency, guest aplay's exec → host sink monitor (clock offset known to ±{OFFSET_ERR * 1000:.1f} ms): "
         f"first sound {first * 1000:.0f} ms; marker click {MARKERS[0]:.0f} s into the file {lat[0] * 1000:.0f} ms, "
         f"{MARKERS[1]:.0f} s into it {lat[1] * 1000:.0f} ms (drift {(lat[1] - lat[0]) * 1000:+.0f} ms = "
         f"{hole * 1000 / RATE:.0f} ms of silence at the sink - {lost * 1000 / RATE:.0f} ms of audio lost between the clicks)")


def check_mic(g, share):
    tone = bytearray()
    for n in range(RATE * 20):
        v = round(8000 * math.sin(2 * math.pi * MIC_TONE * (n + 0.5) / RATE))
        tone += struct.pack("<hh", v, v)
    path = os.path.join(share, "..", "mic-tone.raw")
    with open(path, "wb") as f:
        f.write(tone)
    play = subprocess.Popen(["pacat", "-d", "mic", "--raw", "--format=s16le", "--rate=48000", "--channels=2",
                             "--latency-msec=20", path])
    try:
        time.sleep(1)
        ans = g.ask("REC 6 mic.raw", 60)
    finally:
        play.terminate()
        play.wait()
    if not ans.startswith("RECORDED 0"):
        bad(f"guest arecord: {ans!r}")
        return
    try:
        data = open(os.path.join(share, "out", "mic.raw"), "rb").read()
    except OSError:
        data = b""
    samples = struct.unpack(f"<{len(data) // 2}h", data[: len(data) // 4 * 4])
    left, right = samples[0::2], samples[1::2]
    # QEMU fills the guest's input with zeros while the host's audio is late (the record channel's START, a
    # stalled TCG guest): judge the runs of sound, which must be the tone and most of the recording
    runs = [r for r in runs_of_sound(left, right) if r[1] - r[0] >= 480]
    heard = sum(b - a for a, b in runs)
    f = frequency([left[a:b] for a, b in runs])
    if heard >= 0.5 * len(left) and abs(f - MIC_TONE) <= MIC_TONE * 0.01:
        ok(f"guest arecord hears the host's {MIC_TONE:.0f} Hz tone: {f:.1f} Hz over {heard} of {len(left)} frames "
           f"({len(runs)} runs of sound)")
    else:
        bad(f"guest arecord: {f:.1f} Hz over {heard} of {len(left)} frames ({len(runs)} runs of sound; want "
            f"{MIC_TONE:.0f} Hz over at least half)")


OFFSET_ERR = 0.0


def main():
    global OFFSET_ERR
    ap = argparse.ArgumentParser()
    ap.add_argument("--share", required=True)
    ap.add_argument("--ctl", required=True)
    ap.add_argument("--viewer-log", required=True)
    ap.add_argument("--boot-limit", type=float, default=900)
    ap.add_argument("--accel", default="tcg")
    a = ap.parse_args()
    t0 = time.time()
    try:
        g = Guest(a.ctl, a.boot_limit)
    except Exception as e:  # noqa: BLE001 - one line, then the logs
        bad(f"the guest never came up on its control port: {e}")
        return 1
    info(f"guest ready after {time.time() - t0:.0f} s")
    offset, OFFSET_ERR = g.clock_offset()
    try:
        viewer = window("vmgpu")
        other = window("xmessage")
        try:
            title = wait_title(viewer, "input", 120)
            ok(f"the viewer is connected to the guest's SPICE server with its password ({title!r})")
        except RuntimeError as e:
            bad(str(e))
        check_clipboard(g, a.share, viewer, other)
        check_png(g, a.share, viewer, other)
        check_playback(g, a.share, a.viewer_log, offset, a.accel == "kvm")
        check_mic(g, a.share)
    except Exception as e:  # noqa: BLE001 - a broken step is a failure with its reason, then the logs
        bad(f"{type(e).__name__}: {e}")
    try:
        g.send("QUIT")
    except OSError:
        pass
    return 1 if FAILED else 0


if __name__ == "__main__":
    raise SystemExit(main())
