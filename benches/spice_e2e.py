#!/usr/bin/env python3
"""End-to-end SPICE numbers of issue 12 on the harness guest (measures, never asserts). Run through
benches/spice_e2e.sh, which builds the release viewer and the guest (kernel + busybox + evdev printer).

1. xdotool key -> guest evdev event: `vmgpu view` vs `remote-viewer` (virt-viewer) on the same QEMU, same run,
   alternating rounds. QEMU's SPICE server takes one client at a time (a second one kicks the first), so each
   round starts one client, waits until a probe key reaches the guest, measures, and closes it. The clock runs
   from just before `xdotool key` is spawned to the moment the guest's serial line for the press is read on
   the host (serial console on a unix socket, read by a thread here): both clients pay the same xdotool start,
   Xvfb, QEMU and guest costs, so the ratio is what the client adds.
2. Viewer CPU while idle: `vmgpu view` on an idle shm for IDLE_S seconds without --spice, then with a SPICE
   session open to the same guest (utime+stime from /proc/PID/stat); remote-viewer idle alongside for scale.
3. SPICE display (issue 13): a second guest (tests/vm/guest/paint-test.sh: std VGA in the VESA mode
   1920x1080x32, vesafb) paints a full screen of random pixels each time the host asks on the serial line.
   QEMU runs with image-compression=off and streaming-video=off (what `vmgpu define` asks for), so both clients
   receive the same uncompressed bitmaps. Alternating rounds, PAINTS each: process CPU (utime+stime) and bytes
   received on its SPICE sockets (TCP_INFO via `ss`) of each client from the first paint until the last update has arrived, minus
   the client's idle CPU over the same time; per full-screen update.

Env: VMGPU_BIN, VMGPU_SPICE_KERNEL, VMGPU_SPICE_INITRD, VMGPU_PAINT_INITRD, VMGPU_SPICE_ACCEL (set by the
.sh), PHASES (default "input,idle,display"), ROUNDS (default 6), KEYS_PER_ROUND (default 10), IDLE_S (default
20), DISPLAY_ROUNDS (default 4), PAINTS (default 10).
"""
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.environ["VMGPU_BIN"]
ROUNDS = int(os.environ.get("ROUNDS", "6"))
KEYS = int(os.environ.get("KEYS_PER_ROUND", "10"))
IDLE_S = float(os.environ.get("IDLE_S", "20"))
PHASES = os.environ.get("PHASES", "input,idle,display").split(",")
DISPLAY_ROUNDS = int(os.environ.get("DISPLAY_ROUNDS", "4"))
PAINTS = int(os.environ.get("PAINTS", "10"))
PAINT_W, PAINT_H = 1920, 1080
PASSWORD = "bench-pass-1"
# Keys with one-byte set-1 codes and their evdev numbers: a, s, d, f, j, k, l.
KEYSET = [("a", 30), ("s", 31), ("d", 32), ("f", 33), ("j", 36), ("k", 37), ("l", 38)]

work = tempfile.mkdtemp(prefix="vmgpu-spicebench.")
procs = []


def spawn(args, **kw):
    p = subprocess.Popen(args, stdout=kw.pop("stdout", subprocess.DEVNULL),
                         stderr=kw.pop("stderr", subprocess.DEVNULL), **kw)
    procs.append(p)
    return p


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def cleanup():
    for p in reversed(procs):
        stop(p)
    shutil.rmtree(work, ignore_errors=True)


class Console:
    """The guest's serial console: every line with the host's monotonic arrival time."""

    def __init__(self, path):
        self.lines = []  # (ns, text)
        self.cond = threading.Condition()
        end = time.monotonic() + 30
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        buf = b""
        while True:
            data = self.sock.recv(65536)
            if not data:
                return
            now = time.monotonic_ns()
            buf += data
            *done, buf = buf.split(b"\n")
            with self.cond:
                self.lines.extend((now, l.decode(errors="replace").strip("\r")) for l in done)
                self.cond.notify_all()

    def wait(self, pred, start, timeout):
        """First line from index `start` matching pred: (index, ns), or None after timeout."""
        end = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.lines):
                    if pred(self.lines[i][1]):
                        return i, self.lines[i][0]
                    i += 1
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def mark(self):
        with self.cond:
            return len(self.lines)


def xdo(display, *args, check=True):
    r = subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": display}, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"xdotool {args}: {r.stderr.strip()}")
    return r.stdout.strip()


def find_window(display, pid, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        out = xdo(display, "search", "--onlyvisible", "--pid", str(pid), "--name", ".", check=False)
        if out:
            return out.splitlines()[-1]
        time.sleep(0.2)
    raise RuntimeError(f"no window for pid {pid}")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, round((len(v) - 1) * q))]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    n = s.getsockname()[1]
    s.close()
    return n


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def received(port):
    """Bytes the client side of every open connection to `port` has received (TCP_INFO through `ss`; a
    process's rchar would miss them, as recv() is not counted there). One client is connected at a time."""
    out = subprocess.run(["ss", "-tinH", f"dport = :{port}"], capture_output=True, text=True).stdout
    return sum(int(w.split(":")[1]) for w in out.split() if w.startswith("bytes_received:"))


ACCEL = os.environ.get("VMGPU_SPICE_ACCEL", "-accel tcg -cpu max").split()


def qemu(tag, port, initrd, vga, append, extra_spice=""):
    """A guest with a SPICE server on loopback (password) and its serial console on a unix socket."""
    secret = write(os.path.join(work, f"{tag}.secret"), PASSWORD)
    serial = os.path.join(work, f"{tag}.serial.sock")
    proc = spawn(["qemu-system-x86_64", *ACCEL, "-machine", "q35", "-m", "512", "-smp", "2", "-nodefaults",
           "-no-user-config", "-no-reboot", "-display", "none", "-device", vga, "-device", "qemu-xhci",
           "-device", "usb-tablet", "-chardev", f"socket,id=ser,path={serial},server=on,wait=on",
           "-serial", "chardev:ser", "-object", f"secret,id=spicepw,file={secret}",
           "-spice", f"port={port},addr=127.0.0.1,password-secret=spicepw{extra_spice}",
           "-kernel", os.environ["VMGPU_SPICE_KERNEL"], "-initrd", initrd,
           "-append", f"console=ttyS0 panic=-1 loglevel=4 no_timer_check {append}"],
          stderr=open(os.path.join(work, f"{tag}.qemu.err"), "w"))
    return proc, Console(serial)


class Desktop:
    """Xvfb large enough for a 1920x1080 window at 1:1, and how to start each client on it."""

    def __init__(self):
        n = 300 + os.getpid() % 400
        while os.path.exists(f"/tmp/.X11-unix/X{n}"):
            n += 1
        self.display = f":{n}"
        spawn(["Xvfb", self.display, "-screen", "0", "2560x1600x24", "-nolisten", "tcp"])
        end = time.monotonic() + 10
        while not os.path.exists(f"/tmp/.X11-unix/X{n}"):
            if time.monotonic() > end:
                raise RuntimeError("Xvfb did not start")
            time.sleep(0.05)
        self.env = {k: v for k, v in os.environ.items() if k != "WAYLAND_DISPLAY"}
        self.env["DISPLAY"] = self.display
        self.shm = os.path.join(work, "lg")
        with open(self.shm, "wb") as f:
            f.truncate(32 << 20)
        self.pwfile = write(os.path.join(work, "pw"), PASSWORD + "\n")

    def vmgpu(self, port, spice=True, presents=None):
        """`presents`: a file that gets the test mode's line per present (VMGPU_VIEW_TEST=1), to count them."""
        args = [BIN, "view", "--shm", self.shm]
        if spice:
            args += ["--spice", f"127.0.0.1:{port}", "--spice-password-file", self.pwfile]
        err = open(os.path.join(work, "vmgpu.err"), "a")
        if presents is None:
            return spawn(args, env=self.env, stderr=err)
        return spawn(args, env={**self.env, "VMGPU_VIEW_TEST": "1"}, stdout=open(presents, "w"), stderr=err)

    def remote_viewer(self, port):
        vv = write(os.path.join(work, f"{port}.vv"),
                   f"[virt-viewer]\ntype=spice\nhost=127.0.0.1\nport={port}\npassword={PASSWORD}\n")
        return spawn(["remote-viewer", vv], env=self.env)


def input_phase(desk, port, con, kbd):
    display = desk.display

    def press(key, code):
        """One key through the focused window: ns from spawning xdotool to the guest's press line, or None."""
        mark = con.mark()
        t0 = time.monotonic_ns()
        xdo(display, "key", key)
        hit = con.wait(lambda l: l == f"EVDEV {kbd} KEY {code} 1", mark, 10)
        con.wait(lambda l: l == f"EVDEV {kbd} KEY {code} 0", mark, 10)
        return None if hit is None else hit[1] - t0

    def round_of(name, start):
        p = start()
        wid = find_window(display, p.pid)
        xdo(display, "windowfocus", "--sync", wid, check=False)
        # Connected once a probe key reaches the guest (the session links and the tablet settles).
        end = time.monotonic() + 90
        while press("h", 35) is None:
            if time.monotonic() > end:
                raise RuntimeError(f"{name}: no key reached the guest")
            xdo(display, "windowfocus", "--sync", wid, check=False)
        time.sleep(1)
        out = []
        for _ in range(KEYS):
            key, code = random.choice(KEYSET)
            d = press(key, code)
            if d is not None:
                out.append(d / 1e6)
            time.sleep(random.uniform(0.15, 0.35))
        stop(p)
        time.sleep(1)
        return out

    clients = [("vmgpu view", lambda: desk.vmgpu(port)), ("remote-viewer", lambda: desk.remote_viewer(port))]
    lat = {name: [] for name, _ in clients}
    for r in range(ROUNDS):
        order = clients if r % 2 == 0 else clients[::-1]
        for name, start in order:
            lat[name] += round_of(name, start)
            print(f"  round {r + 1}/{ROUNDS} {name}: {len(lat[name])} keys so far", file=sys.stderr)

    print(f"\nxdotool key -> guest evdev press (ms; {ROUNDS} alternating rounds x {KEYS} keys, "
          f"accel: {' '.join(ACCEL)}):")
    med = {}
    for name, v in lat.items():
        med[name] = statistics.median(v)
        print(f"  {name:14}: n {len(v):3}  p50 {med[name]:7.2f}  p90 {pct(v, 0.9):7.2f}  "
              f"min {min(v):7.2f}  max {max(v):7.2f}")
    print(f"  ratio vmgpu/remote-viewer (p50): {med['vmgpu view'] / med['remote-viewer']:.2f}x  (goal <= 1.0x)",
          flush=True)


def idle_phase(desk, port):
    hz = os.sysconf("SC_CLK_TCK")

    def idle(name, start, settle):
        p = start()
        find_window(desk.display, p.pid)
        time.sleep(settle)
        t0, c0 = time.monotonic(), cpu_ticks(p.pid)
        time.sleep(IDLE_S)
        t1, c1 = time.monotonic(), cpu_ticks(p.pid)
        stop(p)
        time.sleep(1)
        share = (c1 - c0) / hz / (t1 - t0) * 100
        print(f"  {name:36}: {share:6.2f} % of a core", flush=True)
        return share

    print(f"\nidle CPU over {IDLE_S:.0f} s, no frames, no input (goal: SPICE session <= +1 % of a core):")
    without = idle("vmgpu view, no --spice", lambda: desk.vmgpu(port, spice=False), 3)
    with_spice = idle("vmgpu view, SPICE session open", lambda: desk.vmgpu(port), 8)
    idle("remote-viewer, SPICE session open", lambda: desk.remote_viewer(port), 8)
    print(f"  difference vmgpu with - without SPICE: {with_spice - without:+.2f} % of a core", flush=True)


def wait_quiet(port, since, want, quiet=0.4, timeout=30):
    """Until the client has received `want` bytes more than `since` and then nothing for `quiet` s (or
    timeout)."""
    end = time.monotonic() + timeout
    last, last_change = received(port), time.monotonic()
    while time.monotonic() < end:
        time.sleep(0.05)
        now = received(port)
        if now != last:
            last, last_change = now, time.monotonic()
        elif now - since >= want and time.monotonic() - last_change >= quiet:
            return True
    return False


def display_phase(desk):
    port = free_port()
    _, con = qemu("paint", port, os.environ["VMGPU_PAINT_INITRD"],
               "VGA,vgamem_mb=32",
               # VESA mode 0x192 of QEMU's VGA BIOS (1920x1080x32), set at boot: vesafb draws into it.
               "vga=0x392 vt.global_cursor_default=0",
               ",image-compression=off,streaming-video=off")
    ready = con.wait(lambda l: l.startswith("PAINT-READY"), 0, 300)
    if ready is None:
        raise RuntimeError("paint guest never printed PAINT-READY")
    print(f"\npaint guest: {con.lines[ready[0]][1]}", file=sys.stderr)
    full = PAINT_W * PAINT_H * 4
    hz = os.sysconf("SC_CLK_TCK")
    painted = [0]

    def paint():
        painted[0] += 1
        mark = con.mark()
        con.sock.sendall(b"paint\n")
        if con.wait(lambda l: l == f"PAINTED {painted[0]}", mark, 60) is None:
            raise RuntimeError("the guest did not paint")

    presents = os.path.join(work, "presents")

    def present_lines():
        try:
            with open(presents) as f:
                return sum(1 for l in f if l.startswith("presented"))
        except FileNotFoundError:
            return 0

    def round_of(name, start):
        p = start()
        wid = find_window(desk.display, p.pid)
        # Connected and the first full picture arrived: one paint, all of it read, then quiet.
        base = received(port)
        paint()
        if not wait_quiet(port, base, full * 0.9, quiet=1.0, timeout=120):
            with open(os.path.join(work, "vmgpu.err")) as f:
                log = f.read()[-2000:]
            raise RuntimeError(f"{name}: the first full update never arrived (read {received(port) - base} "
                               f"bytes); vmgpu's stderr:\n{log}")
        geometry = xdo(desk.display, "getwindowgeometry", wid, check=False).splitlines()[-1].split()[-1]
        t0, c0 = time.monotonic(), cpu_ticks(p.pid)
        time.sleep(3)
        idle_rate = (cpu_ticks(p.pid) - c0) / hz / (time.monotonic() - t0)
        t0, c0, r0, n0 = time.monotonic(), cpu_ticks(p.pid), received(port), present_lines()
        for _ in range(PAINTS):
            before = received(port)
            paint()
            if not wait_quiet(port, before, full * 0.9):
                print(f"  {name}: an update was short (timed out)", file=sys.stderr)
        t1, c1, r1, n1 = time.monotonic(), cpu_ticks(p.pid), received(port), present_lines()
        stop(p)
        time.sleep(1)
        busy = (c1 - c0) / hz - idle_rate * (t1 - t0)
        return busy / PAINTS * 1e3, (r1 - r0) / PAINTS, geometry, idle_rate * 100, (n1 - n0) / PAINTS

    clients = [("vmgpu view", lambda: desk.vmgpu(port, presents=presents)),
               ("remote-viewer", lambda: desk.remote_viewer(port))]
    res = {name: [] for name, _ in clients}
    for r in range(DISPLAY_ROUNDS):
        order = clients if r % 2 == 0 else clients[::-1]
        for name, start in order:
            res[name].append(round_of(name, start))
            ms, got, geo, idle_pct, pres = res[name][-1]
            print(f"  display round {r + 1}/{DISPLAY_ROUNDS} {name}: {ms:.1f} ms CPU/update, "
                  f"{got / 1e6:.2f} MB read/update, window {geo}, idle {idle_pct:.2f} %"
                  + (f", {pres:.1f} presents/update" if name == "vmgpu view" else ""), file=sys.stderr)

    print(f"\nSPICE display: full {PAINT_W}x{PAINT_H} updates of random pixels (uncompressed), "
          f"{DISPLAY_ROUNDS} alternating rounds x {PAINTS} updates, process CPU minus idle:")
    med = {}
    for name, v in res.items():
        ms = [x[0] for x in v]
        med[name] = statistics.median(ms)
        got = statistics.median(x[1] for x in v)
        print(f"  {name:14}: CPU/update median {med[name]:7.1f} ms  (rounds: {', '.join(f'{x:.1f}' for x in ms)})  "
              f"read/update {got / 1e6:.2f} MB = {got / (PAINT_W * PAINT_H):.2f} B/pixel  window {v[0][2]}")
    pres = statistics.median(x[4] for x in res["vmgpu view"])
    print(f"  vmgpu view presents per update: {pres:.1f} (each blits the whole window into the presented buffer)")
    print(f"  ratio vmgpu/remote-viewer (CPU per update): {med['vmgpu view'] / med['remote-viewer']:.2f}x",
          flush=True)


def main():
    desk = Desktop()
    if "input" in PHASES or "idle" in PHASES:
        port = free_port()
        guest, con = qemu("input", port, os.environ["VMGPU_SPICE_INITRD"], "VGA", "")
        if con.wait(lambda l: l.startswith("EVDEV-READY"), 0, 300) is None:
            raise RuntimeError("guest never printed EVDEV-READY")
        kbd = next(l.split()[1] for _, l in con.lines if l.startswith("EVDEVICE") and "AT_Translated" in l)
        if "input" in PHASES:
            input_phase(desk, port, con, kbd)
        if "idle" in PHASES:
            idle_phase(desk, port)
        stop(guest)  # a TCG guest left running would load the host during the display phase
    if "display" in PHASES:
        display_phase(desk)


try:
    main()
finally:
    cleanup()
