//! The whole Looking Glass frame path of the real viewer (measures, never asserts). Run: `cargo bench --bench
//! view_path` (optional arguments: `xvfb`, `weston`, `full`, `damage`, `1080`, `1440`, `2160` pick rows).
//!
//! For 1080p, 1440p and 4K BGRA frames at 60 frames/s, under Xvfb and under weston (x11 backend, pixman
//! renderer, nested in Xvfb): the real `vmgpu view --shm FILE` process (test mode, so its window is exactly
//! the frame size) shows frames that `vmgpu::lg::producer` in this process writes into the shm file. The CPU
//! of the whole viewer process (all threads: `utime+stime` of `/proc/PID/stat`, and the nanosecond run time of
//! `/proc/PID/task/*/schedstat`) over the streamed frames, per frame, against one memcpy of a frame out of the
//! same shared memory measured in the same run (median, cold cache, as the frame a guest just wrote is).
//!
//! Two streams per resolution: `full` (every frame entirely new, no damage rects) and `damage` (the demo
//! scene: a moving square, a few % of the frame damaged per frame). The viewer's CPU while connected with no
//! frames is printed beside them (its polling floor).
// Tests, benches and the build script may write files and start programs directly (clippy.toml).
#![allow(clippy::disallowed_methods)]
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vmgpu::lg::kvmfr::FrameType;
use vmgpu::lg::producer::{Producer, ProducerConfig};
use vmgpu::lg::scene::{self, DemoScene};
use vmgpu::shm::{Region, ShmMap};

const MIB: usize = 1 << 20;
const FPS: u32 = 60;
/// Frames streamed before measuring (the window resizes, caches warm up).
const WARMUP: u32 = 60;
/// Frames measured per row.
const FRAMES: u32 = 300;
/// memcpy repetitions per row (median).
const COPIES: usize = 31;

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(path: &Path, what: &str, child: &mut Child) {
    let end = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        if Instant::now() > end || matches!(child.try_wait(), Ok(Some(_))) {
            panic!("{what} did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Xvfb with a screen of `w × h` on a free display number.
fn xvfb(w: u32, h: u32) -> (Proc, String) {
    let base = 900 + std::process::id() % 500;
    for n in base..base + 100 {
        if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            || Path::new(&format!("/tmp/.X{n}-lock")).exists()
        {
            continue;
        }
        let mut child = Command::new("Xvfb")
            .args([&format!(":{n}"), "-screen", "0", &format!("{w}x{h}x24")])
            .args(["-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb");
        wait_for(
            Path::new(&format!("/tmp/.X11-unix/X{n}")),
            "Xvfb",
            &mut child,
        );
        return (Proc(child), format!(":{n}"));
    }
    panic!("no free X display number");
}

/// weston nested in the X server `display`, its output `w × h`, the socket in `runtime`.
fn weston(display: &str, runtime: &Path, w: u32, h: u32) -> (Proc, String) {
    let socket = format!("wayland-vmgpu-bench-{}", std::process::id());
    let mut child = Command::new("weston")
        .args([
            "--backend=x11-backend.so",
            "--use-pixman",
            "--shell=kiosk-shell.so",
            "--idle-time=0",
        ])
        .arg(format!("--width={w}"))
        .arg(format!("--height={h}"))
        .arg(format!("--socket={socket}"))
        .env("DISPLAY", display)
        .env("XDG_RUNTIME_DIR", runtime)
        .env_remove("WAYLAND_DISPLAY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("weston");
    wait_for(&runtime.join(&socket), "weston", &mut child);
    (Proc(child), socket)
}

/// The viewer (`binary`); counts its `presented` lines.
fn viewer(
    binary: &Path,
    pacing: &str,
    shm: &Path,
    env: &[(&str, &str)],
    presents: Arc<AtomicU64>,
) -> Proc {
    let mut cmd = Command::new(binary);
    cmd.env("VMGPU_VIEW_PACING", pacing);
    cmd.env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .arg("view")
        .arg("--shm")
        .arg(shm)
        .env("VMGPU_VIEW_TEST", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("vmgpu view");
    let out = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.starts_with("presented ") {
                presents.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    Proc(child)
}

/// CPU of the whole process so far: (`utime+stime` in clock ticks, run time of all live threads in ns).
fn cpu(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    // After the command: state is field 3, utime 14 and stime 15 (1-based, so indexes 11 and 12 here).
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut ns = 0;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let s = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    (ticks(11) + ticks(12), ns)
}

fn clock_ticks_per_s() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |v| v as f64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One memcpy of `len` bytes out of the shared memory, cold cache: median seconds.
fn memcpy_cold(map: &ShmMap, len: usize) -> f64 {
    let mut dst = vec![0u8; len];
    let mut scratch = vec![0u8; 64 * MIB];
    let view = map.view();
    let mut times = Vec::new();
    for i in 0..COPIES {
        scratch.fill(i as u8);
        std::hint::black_box(&scratch);
        let t = Instant::now();
        view.read_bytes(MIB, &mut dst).expect("inside the mapping");
        times.push(t.elapsed().as_secs_f64());
        std::hint::black_box(&dst);
    }
    median(times)
}

#[derive(Clone, Copy, PartialEq)]
enum Stream {
    Full,
    Damage,
}

/// Streams `count` frames at [`FPS`]; returns how many were sent.
fn stream(
    producer: &Producer,
    w: u32,
    h: u32,
    kind: Stream,
    demo: &mut DemoScene,
    count: u32,
) -> u32 {
    let patterns: Vec<_> = if kind == Stream::Full {
        (0..2)
            .map(|seed| scene::test_pattern(FrameType::Bgra, w, h, 0, seed))
            .collect()
    } else {
        Vec::new()
    };
    let interval = Duration::from_secs(1) / FPS;
    let start = Instant::now();
    let mut sent = 0;
    for i in 0..count {
        let due = start + interval * i;
        if let Some(left) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(left);
        }
        let ok = match kind {
            Stream::Full => {
                let (desc, pixels) = &patterns[i as usize % 2];
                producer.send_frame(desc, pixels).is_ok()
            }
            Stream::Damage => {
                let (desc, pixels) = demo.next_frame();
                producer.send_frame(&desc, pixels).is_ok()
            }
        };
        sent += u32::from(ok);
    }
    sent
}

struct Row {
    binary: &'static str,
    pacing: &'static str,
    server: &'static str,
    size: (u32, u32),
    sent: u32,
    presents: u64,
    memcpy: f64,
    cpu_ns: f64,
    cpu_ticks: f64,
    idle: f64,
    wall: f64,
}

fn measure(
    (binary, path): (&'static str, &Path),
    pacing: &'static str,
    server: &'static str,
    (w, h): (u32, u32),
    kind: Stream,
) -> Row {
    let (_x, display) = xvfb(w, h);
    let runtime = tempfile::tempdir().expect("runtime dir");
    std::fs::set_permissions(
        runtime.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod runtime dir");
    let dir = tempfile::Builder::new()
        .prefix("vmgpu-bench-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("shm dir");
    let shm: PathBuf = dir.path().join("lg");
    let map = Arc::new(ShmMap::create(&shm, 128 * MIB as u64).expect("shm file"));
    let producer = Producer::start(map.clone(), ProducerConfig::default()).expect("producer");
    let presents = Arc::new(AtomicU64::new(0));
    let runtime_dir = runtime.path().display().to_string();
    let (_weston, viewer) = if server == "weston" {
        let (weston, socket) = weston(&display, runtime.path(), w, h);
        let env = [
            ("WAYLAND_DISPLAY", socket.as_str()),
            ("XDG_RUNTIME_DIR", runtime_dir.as_str()),
        ];
        (
            Some(weston),
            viewer(path, pacing, &shm, &env, presents.clone()),
        )
    } else {
        let env = [("DISPLAY", display.as_str())];
        (None, viewer(path, pacing, &shm, &env, presents.clone()))
    };
    assert!(
        producer.wait_for_client(Duration::from_secs(30)),
        "the viewer never subscribed"
    );
    let pid = viewer.0.id();
    let mut demo = DemoScene::new(w, h);
    let (first, pixels) = demo.full_frame();
    producer.send_frame(&first, pixels).expect("first frame");
    stream(&producer, w, h, kind, &mut demo, WARMUP);
    // The polling floor: connected, no frames (after the active window of the feed has passed).
    std::thread::sleep(Duration::from_millis(800));
    let (_, idle0) = cpu(pid);
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let idle = (cpu(pid).1 - idle0) as f64 / 1e9 / t.elapsed().as_secs_f64();
    let memcpy_before = memcpy_cold(&map, (w * h * 4) as usize);
    let (ticks0, ns0) = cpu(pid);
    let p0 = presents.load(Ordering::Relaxed);
    let t = Instant::now();
    let sent = stream(&producer, w, h, kind, &mut demo, FRAMES);
    // The last frame's ingest and present.
    std::thread::sleep(Duration::from_millis(50));
    let wall = t.elapsed().as_secs_f64();
    let (ticks1, ns1) = cpu(pid);
    let presents = presents.load(Ordering::Relaxed) - p0;
    let memcpy_after = memcpy_cold(&map, (w * h * 4) as usize);
    Row {
        binary,
        pacing,
        server,
        size: (w, h),
        sent,
        presents,
        memcpy: (memcpy_before + memcpy_after) / 2.0,
        cpu_ns: (ns1 - ns0) as f64 / 1e9 / sent.max(1) as f64,
        cpu_ticks: (ticks1 - ticks0) as f64 / clock_ticks_per_s() / sent.max(1) as f64,
        idle,
        wall,
    }
}

fn main() {
    // `cargo test --all-targets` runs this binary with `--bench` absent: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("view_path: run with `cargo bench --bench view_path`");
        return;
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let picked = |word: &str, all: &[&str]| {
        args.iter().any(|a| a == word) || !args.iter().any(|a| all.contains(&a.as_str()))
    };
    // `VMGPU_BENCH_BASELINE=/path/to/an/older/vmgpu`: each row also for that binary, side by side.
    let baseline = std::env::var_os("VMGPU_BENCH_BASELINE").map(PathBuf::from);
    let this = PathBuf::from(env!("CARGO_BIN_EXE_vmgpu"));
    let mut binaries = Vec::new();
    if let Some(b) = &baseline {
        binaries.push(("baseline", b.as_path(), "adaptive"));
    }
    binaries.push(("this", this.as_path(), "adaptive"));
    // The feed's pacing spins near the expected frame (issue 16 item 3): its CPU beside plain polling.
    binaries.push(("this", this.as_path(), "plain"));
    let servers = ["xvfb", "weston"];
    let kinds = ["full", "damage"];
    let sizes = ["1080", "1440", "2160"];
    println!(
        "## `vmgpu view --shm` whole process, BGRA at {FPS} frames/s, {FRAMES} frames per row\n"
    );
    println!(
        "| binary | pacing | server | frame | stream | frames sent | presents | memcpy of one frame (cold) | viewer CPU per frame (schedstat) | (utime+stime) | ratio CPU/memcpy | idle CPU (no frames) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for server in servers.into_iter().filter(|s| picked(s, &servers)) {
        for (name, size) in [
            ("1080", (1920, 1080)),
            ("1440", (2560, 1440)),
            ("2160", (3840, 2160)),
        ] {
            if !picked(name, &sizes) {
                continue;
            }
            for (kname, kind) in [("full", Stream::Full), ("damage", Stream::Damage)] {
                if !picked(kname, &kinds) {
                    continue;
                }
                for &(name, path, pacing) in &binaries {
                    let r = measure((name, path), pacing, server, size, kind);
                    println!(
                        "| {} | {} | {} | {}×{} | {} | {} in {:.2} s | {} | {:.3} ms | {:.3} ms | {:.3} ms | **{:.2}×** | {:.1} % |",
                        r.binary,
                        r.pacing,
                        r.server,
                        r.size.0,
                        r.size.1,
                        kname,
                        r.sent,
                        r.wall,
                        r.presents,
                        r.memcpy * 1e3,
                        r.cpu_ns * 1e3,
                        r.cpu_ticks * 1e3,
                        r.cpu_ns / r.memcpy,
                        r.idle * 100.0
                    );
                }
            }
        }
    }
}
