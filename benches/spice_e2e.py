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

Env: VMGPU_BIN, VMGPU_SPICE_KERNEL, VMGPU_SPICE_INITRD, VMGPU_SPICE_ACCEL (set by the .sh),
ROUNDS (default 6), KEYS_PER_ROUND (default 10), IDLE_S (default 20).
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
PASSWORD = "bench-pass-1"
# Keys with one-byte set-1 codes and their evdev numbers: a, s, d, f, j, k, l.
KEYSET = [("a", 30), ("s", 31), ("d", 32), ("f", 33), ("j", 36), ("k", 37), ("l", 38)]

work = tempfile.mkdtemp(prefix="vmgpu-spicebench.")
procs = []


def spawn(args, **kw):
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=kw.pop("stderr", subprocess.DEVNULL), **kw)
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


def main():
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    port_no = port.getsockname()[1]
    port.close()
    secret = os.path.join(work, "secret")
    with open(secret, "w") as f:
        f.write(PASSWORD)
    pwfile = os.path.join(work, "pw")
    with open(pwfile, "w") as f:
        f.write(PASSWORD + "\n")
    vv = os.path.join(work, "bench.vv")
    with open(vv, "w") as f:
        f.write(f"[virt-viewer]\ntype=spice\nhost=127.0.0.1\nport={port_no}\npassword={PASSWORD}\n")
    shm = os.path.join(work, "lg")
    with open(shm, "wb") as f:
        f.truncate(32 << 20)
    serial = os.path.join(work, "serial.sock")
    accel = os.environ.get("VMGPU_SPICE_ACCEL", "-accel tcg -cpu max").split()
    qemu = spawn(
        ["qemu-system-x86_64", *accel, "-machine", "q35", "-m", "512", "-smp", "2", "-nodefaults",
         "-no-user-config", "-no-reboot", "-display", "none", "-device", "VGA", "-device", "qemu-xhci",
         "-device", "usb-tablet", "-chardev", f"socket,id=ser,path={serial},server=on,wait=on",
         "-serial", "chardev:ser", "-object", f"secret,id=spicepw,file={secret}",
         "-spice", f"port={port_no},addr=127.0.0.1,password-secret=spicepw",
         "-kernel", os.environ["VMGPU_SPICE_KERNEL"], "-initrd", os.environ["VMGPU_SPICE_INITRD"],
         "-append", "console=ttyS0 panic=-1 loglevel=4 no_timer_check"],
        stderr=open(os.path.join(work, "qemu.err"), "w"))
    con = Console(serial)
    if con.wait(lambda l: l.startswith("EVDEV-READY"), 0, 300) is None:
        raise RuntimeError("guest never printed EVDEV-READY")
    kbd = next(l.split()[1] for _, l in con.lines if l.startswith("EVDEVICE") and "AT_Translated" in l)

    n = 300 + os.getpid() % 400
    while os.path.exists(f"/tmp/.X11-unix/X{n}"):
        n += 1
    display = f":{n}"
    spawn(["Xvfb", display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
    end = time.monotonic() + 10
    while not os.path.exists(f"/tmp/.X11-unix/X{n}"):
        if time.monotonic() > end:
            raise RuntimeError("Xvfb did not start")
        time.sleep(0.05)
    xenv = {k: v for k, v in os.environ.items() if k != "WAYLAND_DISPLAY"}
    xenv["DISPLAY"] = display

    def vmgpu(spice=True):
        args = [BIN, "view", "--shm", shm]
        if spice:
            args += ["--spice", f"127.0.0.1:{port_no}", "--spice-password-file", pwfile]
        return spawn(args, env=xenv)

    def remote_viewer():
        return spawn(["remote-viewer", vv], env=xenv)

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

    lat = {"vmgpu view": [], "remote-viewer": []}
    for r in range(ROUNDS):
        order = [("vmgpu view", vmgpu), ("remote-viewer", remote_viewer)]
        if r % 2:
            order.reverse()
        for name, start in order:
            lat[name] += round_of(name, start)
            print(f"  round {r + 1}/{ROUNDS} {name}: {len(lat[name])} keys so far", file=sys.stderr)

    print(f"\nxdotool key -> guest evdev press (ms; {ROUNDS} alternating rounds x {KEYS} keys, "
          f"accel: {' '.join(accel)}):")
    med = {}
    for name, v in lat.items():
        med[name] = statistics.median(v)
        print(f"  {name:14}: n {len(v):3}  p50 {med[name]:7.2f}  p90 {pct(v, 0.9):7.2f}  "
              f"min {min(v):7.2f}  max {max(v):7.2f}")
    print(f"  ratio vmgpu/remote-viewer (p50): {med['vmgpu view'] / med['remote-viewer']:.2f}x  (goal <= 1.0x)")

    # Idle CPU.
    hz = os.sysconf("SC_CLK_TCK")

    def idle(name, start, settle):
        p = start()
        find_window(display, p.pid)
        time.sleep(settle)
        t0, c0 = time.monotonic(), cpu_ticks(p.pid)
        time.sleep(IDLE_S)
        t1, c1 = time.monotonic(), cpu_ticks(p.pid)
        stop(p)
        time.sleep(1)
        share = (c1 - c0) / hz / (t1 - t0) * 100
        print(f"  {name:36}: {share:6.2f} % of a core")
        return share

    print(f"\nidle CPU over {IDLE_S:.0f} s, no frames, no input (goal: SPICE session <= +1 % of a core):")
    without = idle("vmgpu view, no --spice", lambda: vmgpu(False), 3)
    with_spice = idle("vmgpu view, SPICE session open", vmgpu, 8)
    idle("remote-viewer, SPICE session open", remote_viewer, 8)
    print(f"  difference vmgpu with - without SPICE: {with_spice - without:+.2f} % of a core")


try:
    main()
finally:
    cleanup()
