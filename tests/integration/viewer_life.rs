//! The viewer's lifecycle (issue 10), each case with the real `vmgpu view` process on a real display server
//! (Xvfb; the restart and truncate cases also under weston) and a producer in the test writing the file:
//! a VM restart (the file replaced), a second launch for the same VM, a file truncated under the mapping, a
//! corrupt queue, a host that stopped, the truncation banner, the first picture and title, the filtered
//! downscale, SIGTERM, the demo file's mode, and the wording of messages. Run by
//! tests/harness/40-viewer-x11.sh (`--ignored`).
use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::lg::MIB;
use super::viewer_wayland::{Weston, start_weston};
use super::viewer_x11::{
    Viewer, XServer, assert_message_on, differing_pixels, pattern_pixels, screenshot, shm_dir,
    write_ppm,
};
use vmgpu::lg::kvmfr::FrameType;
use vmgpu::lg::layout;
use vmgpu::lg::producer::{FrameDesc, Producer, ProducerConfig};
use vmgpu::lg::scene;
use vmgpu::shm::{Region, ShmMap};

const W: u32 = 480;
const H: u32 = 270;

/// Where the viewer draws: an Xvfb, optionally with weston nested in it (the viewer then a Wayland client).
struct Display {
    x: XServer,
    _weston: Option<Weston>,
    runtime: tempfile::TempDir,
    wayland: Option<String>,
}

impl Display {
    fn x11() -> Self {
        Self {
            x: XServer::start(),
            _weston: None,
            runtime: private_dir(),
            wayland: None,
        }
    }

    fn weston() -> Self {
        let x = XServer::start();
        let runtime = private_dir();
        let socket = format!("wayland-vmgpu-life-{}", std::process::id());
        let weston = start_weston(&x, runtime.path(), &socket, W, H);
        Self {
            x,
            _weston: Some(weston),
            runtime,
            wayland: Some(socket),
        }
    }

    /// The viewer's environment: the display and a private runtime directory of its own.
    fn env(&self) -> Vec<(&str, String)> {
        let mut env = vec![("XDG_RUNTIME_DIR", self.runtime.path().display().to_string())];
        match &self.wayland {
            Some(socket) => env.push(("WAYLAND_DISPLAY", socket.clone())),
            None => env.push(("DISPLAY", self.x.display.clone())),
        }
        env
    }

    fn viewer(&self, args: &[&OsStr], dir: &Path, stderr: &str) -> Viewer {
        self.viewer_env(args, dir, stderr, &[])
    }

    fn viewer_env(
        &self,
        args: &[&OsStr],
        dir: &Path,
        stderr: &str,
        extra: &[(&str, &str)],
    ) -> Viewer {
        let env = self.env();
        let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(extra);
        Viewer::start_args(args, dir, &all, stderr)
    }

    /// Pixels differing from `pixels` at the top left, retried while X may still be drawing; weston's pointer
    /// sprite may cover up to 400 of them.
    fn differing(&self, dir: &Path, w: u32, h: u32, pixels: &[u32]) -> u64 {
        let expected = dir.join("expected.ppm");
        write_ppm(&expected, w, h, pixels);
        let allowed = if self.wayland.is_some() { 400 } else { 0 };
        let mut diff = u64::MAX;
        for _ in 0..40 {
            std::thread::sleep(Duration::from_millis(100));
            diff = differing_pixels(&expected, &screenshot(&self.x, dir, w, h));
            if diff <= allowed {
                return 0;
            }
        }
        let _ = std::fs::copy(dir.join("shot.png"), "/tmp/vmgpu-life-failed.png");
        let _ = std::fs::copy(dir.join("expected.ppm"), "/tmp/vmgpu-life-expected.ppm");
        diff
    }
}

fn private_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

fn shm_args(shm: &Path) -> Vec<&OsStr> {
    vec![OsStr::new("--shm"), shm.as_os_str()]
}

fn send(p: &Producer, kind: FrameType, seed: u32) -> u32 {
    let (desc, pixels) = scene::test_pattern(kind, W, H, 32, seed);
    p.send_frame(&desc, &pixels).unwrap().serial
}

/// Waits until the viewer's stderr contains `text`.
fn wait_stderr(v: &Viewer, text: &str) {
    let end = Instant::now() + Duration::from_secs(20);
    while !v.stderr_text().contains(text) {
        assert!(
            Instant::now() < end,
            "stderr never said {text:?}: {}",
            v.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A host that is alive (its heartbeat moves every 10 ms) but does nothing else: for layouts the producer
/// would repair.
struct Heartbeat {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeat {
    fn start(map: Arc<ShmMap>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Acquire) {
                let ts = map.view().atomic_u64(layout::OFF_TIMESTAMP).unwrap();
                ts.fetch_add(10, Ordering::AcqRel);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Byte offset of the header of the queue with `id` (frame 2, pointer 1).
fn queue_base(map: &ShmMap, id: u32) -> usize {
    (0..layout::MAX_QUEUES as usize)
        .map(|i| layout::OFF_QUEUES + i * layout::QUEUE_STRIDE)
        .find(|&b| map.view().read_u32(b + layout::Q_ID).unwrap() == id)
        .expect("queue")
}

/// CPU time (user + system, in clock ticks of 10 ms) a process has used.
fn cpu_ticks(pid: nix::unistd::Pid) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn window_titles(x: &XServer) -> String {
    let out = Command::new("xwininfo")
        .args(["-root", "-tree", "-display", &x.display])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---- 1. VM restart: the file is replaced; one viewer per VM ----

fn vm_restart_shows_the_new_session(d: &Display) {
    let dir = shm_dir();
    let shm = dir.path().join("lg");
    let map = Arc::new(ShmMap::create(&shm, 32 * MIB as u64).unwrap());
    let producer = Producer::start(map.clone(), ProducerConfig::default()).unwrap();
    let mut v = d.viewer(&shm_args(&shm), dir.path(), "viewer.err");
    assert!(
        producer.wait_for_client(Duration::from_secs(20)),
        "{}",
        v.stderr_text()
    );
    let first = send(&producer, FrameType::Bgra, 21);
    v.wait("the first VM run's frame", |p| {
        p.serial == Some(first) && p.size == (W, H)
    });
    // The VM stops: QEMU is gone, the hook removes the file.
    drop(producer);
    drop(map);
    std::fs::remove_file(&shm).unwrap();
    wait_stderr(&v, "does not exist (is the VM running?)");
    // The VM starts again: a new file (new inode) and a new host in it.
    let map = Arc::new(ShmMap::create(&shm, 32 * MIB as u64).unwrap());
    let started = Instant::now();
    let producer = Producer::start(map.clone(), ProducerConfig::default()).unwrap();
    assert!(
        producer.wait_for_client(Duration::from_secs(20)),
        "{}",
        v.stderr_text()
    );
    let subscribed = started.elapsed();
    let second = send(&producer, FrameType::Rgba, 22);
    v.wait("the second VM run's frame", |p| {
        p.connects == 2 && p.serial == Some(second)
    });
    eprintln!(
        "vm restart: the viewer subscribed to the new host {} ms after it started, frame shown {} ms after",
        subscribed.as_millis(),
        started.elapsed().as_millis()
    );
    assert_eq!(
        d.differing(dir.path(), W, H, &pattern_pixels(FrameType::Rgba, W, H, 22)),
        0,
        "the new session's frame is not what the producer wrote; stderr: {}",
        v.stderr_text()
    );
    assert!(v.exit_within(Duration::ZERO).is_none(), "the viewer exited");
}

#[test]
#[ignore = "needs Xvfb: tests/harness/40-viewer-x11.sh"]
fn test_life_x11_vm_restart_shows_the_new_session() {
    vm_restart_shows_the_new_session(&Display::x11());
}

#[test]
#[ignore = "needs Xvfb and weston: tests/harness/40-viewer-x11.sh"]
fn test_life_weston_vm_restart_shows_the_new_session() {
    vm_restart_shows_the_new_session(&Display::weston());
}

#[test]
#[ignore = "needs Xvfb: tests/harness/40-viewer-x11.sh"]
fn test_life_x11_second_launch_raises_the_first() {
    let d = Display::x11();
    let dir = shm_dir();
    let shm = dir.path().join("lg");
    let _map = ShmMap::create(&shm, 32 * MIB as u64).unwrap();
    let args = [OsStr::new("win11"), OsStr::new("--shm"), shm.as_os_str()];
    let mut first = d.viewer(&args, dir.path(), "first.err");
    first.wait("the first window", |p| p.size.0 > 0);
    let mut second = d.viewer(&args, dir.path(), "second.err");
    let status = second.exit_within(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "the second launch did not exit 0: {status:?}; {}",
        second.stderr_text()
    );
    assert!(
        second.stderr_text().contains("already shown in a window"),
        "{}",
        second.stderr_text()
    );
    wait_stderr(&first, "another `vmgpu view` for win11 was started");
    let windows = window_titles(&d.x).matches("\"win11 — ").count();
    assert_eq!(windows, 1, "{}", window_titles(&d.x));
    assert!(
        first.exit_within(Duration::ZERO).is_none(),
        "the first viewer exited"
    );
    // The socket lives in the user's private runtime directory only.
    let sock_dir = d.runtime.path().join("vmgpu");
    assert_eq!(std::fs::metadata(&sock_dir).unwrap().mode() & 0o777, 0o700);
}

// ---- 2. A file that shrinks under the mapping ----

fn truncate_mid_frame_is_survived(d: &Display) {
    let dir = shm_dir();
    let shm = dir.path().join("lg");
    let map = Arc::new(ShmMap::create(&shm, 32 * MIB as u64).unwrap());
    let producer = Producer::start(map.clone(), ProducerConfig::default()).unwrap();
    let mut v = d.viewer(&shm_args(&shm), dir.path(), "viewer.err");
    assert!(
        producer.wait_for_client(Duration::from_secs(20)),
        "{}",
        v.stderr_text()
    );
    let first = send(&producer, FrameType::Bgra, 31);
    v.wait("the frame before the truncation", |p| {
        p.serial == Some(first) && p.size == (W, H)
    });
    // A host process cuts the file to 8 KiB (the LGMP header and rings stay) and a frame is posted at once: its
    // message points past the new end. The producer's own writes there land in zero pages (this test process
    // has the same SIGBUS guard).
    // The viewer is stopped meanwhile (well under the host's 1 s timeout), so on waking it reads the message
    // before its next look at the file: the access past the end faults, and the viewer must survive that.
    use nix::sys::signal::{Signal, kill};
    kill(v.pid(), Signal::SIGSTOP).unwrap();
    let _ = send(&producer, FrameType::Bgra, 32);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&shm)
        .unwrap()
        .set_len(8192)
        .unwrap();
    kill(v.pid(), Signal::SIGCONT).unwrap();
    wait_stderr(
        &v,
        "shrank under the viewer (truncated by a host process); mapping it again",
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        v.exit_within(Duration::ZERO).is_none(),
        "the viewer died: {}",
        v.stderr_text()
    );
    // The file gets its size back and the host restarts: the viewer shows it.
    drop(producer);
    drop(map);
    let connects = v.last.connects;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&shm)
        .unwrap()
        .set_len(32 * MIB as u64)
        .unwrap();
    let map = Arc::new(ShmMap::open(&shm, 0).unwrap());
    let producer = Producer::start(map, ProducerConfig::default()).unwrap();
    assert!(
        producer.wait_for_client(Duration::from_secs(20)),
        "{}",
        v.stderr_text()
    );
    let again = send(&producer, FrameType::Rgba, 33);
    v.wait("a frame after the truncation", |p| {
        p.connects > connects && p.serial == Some(again)
    });
    assert_eq!(
        d.differing(dir.path(), W, H, &pattern_pixels(FrameType::Rgba, W, H, 33)),
        0,
        "stderr: {}",
        v.stderr_text()
    );
    eprintln!("truncate: viewer said:\n{}", v.stderr_text());
}

#[test]
#[ignore = "needs Xvfb: tests/harness/40-viewer-x11.sh"]
fn test_life_x11_truncate_mid_frame_is_survived() {
    truncate_mid_frame_is_survived(&Display::x11());
}

#[test]
#[ignore = "needs Xvfb and weston: tests/harness/40-viewer-x11.sh"]
fn test_life_weston_truncate_mid_frame_is_survived() {
    truncate_mid_frame_is_survived(&Display::weston());
}

// ---- 3. A corrupt queue says why ----

#[test]
#[ignore = "needs Xvfb: tests/harness/40-viewer-x11.sh"]
fn test_life_x11_corrupt_queue_says_why() {
    let d = Display::x11();
    let cases: [(&str, usize, u32, &str); 4] = [
        (
            "numMessages 0",
            layout::Q_NUM_MESSAGES,
            0,
            "has 0 ring slots",
        ),
        (
            "numMessages 0xffffffff",
            layout::Q_NUM_MESSAGES,
            u32::MAX,
            "has 4294967295 ring slots",
        ),
        (
            "ring offset past the end",
            layout::Q_MESSAGES_OFFSET,
            0x7fff_0000,
            "lies outside the",
        ),
        ("lock never released", layout::Q_LOCK, 1, "lock stayed held"),
    ];
    for (what, field, value, says) in cases {
        let dir = shm_dir();
        let shm = dir.path().join("lg");
        let map = Arc::new(ShmMap::create(&shm, 32 * MIB as u64).unwrap());
        let producer = Producer::start(map.clone(), ProducerConfig::default()).unwrap();
        // Let the producer lay the region out, then keep only a heartbeat: it would repair the damage.
        std::thread::sleep(Duration::from_millis(100));
        producer.set_heartbeat(false);
        let base = queue_base(&map, 2);
        map.view().write_u32(base + field, value).unwrap();
        let _beat = Heartbeat::start(map.clone());
        let mut v = d.viewer(&shm_args(&shm), dir.path(), "viewer.err");
        assert_message_on(&d.x, dir.path(), &mut v, says);
        if field == layout::Q_LOCK {
            // A lock the guest never lets go must not cost a core: CPU over 5 s, in 10 ms ticks.
            let before = cpu_ticks(v.pid());
            std::thread::sleep(Duration::from_secs(5));
            let used = cpu_ticks(v.pid()) - before;
            eprintln!(
                "stuck lock: the viewer used {used} ticks of 10 ms in 5 s ({} %)",
                used as f64 / 5.0
            );
            assert!(
                used <= 10,
                "{what}: {used} ticks in 5 s (more than 2 % of a core)"
            );
        }
        drop(v);
    }
}

// ---- 4. "Connected" after the host stopped ----

#[test]
#[ignore = "needs Xvfb: tests/harness/40-viewer-x11.sh"]
fn test_life_x11_stopped_host_is_never_reported_connected() {
    let d = Display::x11();
    let dir = shm_dir();
    let shm = dir.path().join("lg");
    let map = Arc::new(ShmMap::create(&shm, 32 * MIB as u64).unwrap());
    let producer = Producer::start(map.clone(), ProducerConfig::default()).unwrap();
    let mut v = d.viewer(&shm_args(&shm), dir.path(), "viewer.err");
    assert!(
        producer.wait_for_client(Duration::from_secs(20)),
        "{}",
        v.stderr_text()
    );
    let serial = send(&producer, FrameType::Bgra, 41);
    v.wait("the frame", |p| p.serial == Some(serial));
    // The host stops, leaving a ring position the client cannot use: the session ends at once.
    drop(producer);
    let base = queue_base(&map, 2);
    map.view()
        .write_u32(base + layout::Q_POSITION, 999)
        .unwrap();
    wait_stderr(&v, "lost the guest's Looking Glass host");
    std::thread::sleep(Duration::from_millis(2500));
    let text = v.stderr_text();
    let after = &text[text.find("lost the guest's Looking Glass host").unwrap()..];
    assert!(
        !after.contains("connected to Looking Glass host"),
        "a stopped host was reported connected:\n{text}"
    );
}

// ---- 5. The truncation banner ----

#[test]
#[ignore = "needs Xvfb and xdotool: tests/harness/40-viewer-x11.sh"]
fn test_life_x11_truncation_banner_names_the_fix_and_is_dismissed_once() {
    let d = Display::x11();
    let dir = shm_dir();
    let shm = dir.path().join("tiny");
    let map = Arc::new(ShmMap::create(&shm, 4 * MIB as u64).unwrap());
    let producer = Producer::start(map, ProducerConfig::default()).unwrap();
    let args = [OsStr::new("win11"), OsStr::new("--shm"), shm.as_os_str()];
    let mut v = d.viewer(&args, dir.path(), "viewer.err");
    assert!(
        producer.wait_for_client(Duration::from_secs(30)),
        "{}",
        v.stderr_text()
    );
    let (desc, pixels) = scene::test_pattern(FrameType::Bgra, 1024, 768, 0, 51);
    let serial = producer.send_frame(&desc, &pixels).unwrap().serial;
    v.wait("the truncated frame with its banner", |p| {
        p.serial == Some(serial) && p.banner
    });
    let fix = "vmgpu define win11 --update --looking-glass 1024x768";
    wait_stderr(&v, fix);
    // A click on the banner hides it.
    let click = Command::new("xdotool")
        .args(["mousemove", "200", "10", "click", "1"])
        .env("DISPLAY", &d.x.display)
        .status()
        .unwrap();
    assert!(click.success());
    v.wait("the frame without the banner", |p| !p.banner);
    // The same condition does not bring it back, on screen or on stderr.
    for seed in 52..55 {
        let (desc, pixels) = scene::test_pattern(FrameType::Bgra, 1024, 768, 0, seed);
        let serial = producer.send_frame(&desc, &pixels).unwrap().serial;
        v.wait("a later truncated frame", |p| p.serial == Some(serial));
        assert!(!v.last.banner, "the dismissed banner came back");
    }
    assert_eq!(
        v.stderr_text().matches(fix).count(),
        1,
        "{}",
        v.stderr_text()
    );
}

// ---- 6. First impression ----

#[test]
#[ignore = "needs Xvfb: tests/harness/40-viewer-x11.sh"]
fn test_life_x11_first_picture_and_title_say_what_it_waits_for() {
    let d = Display::x11();
    let dir = shm_dir();
    let missing = dir.path().join("missing");
    let mut v = d.viewer(&shm_args(&missing), dir.path(), "viewer.err");
    // The very first present is a message screen, never a black frame.
    v.wait("the first picture", |p| p.size.0 > 0);
    let (w, h) = v.last.size;
    let lit = (0..20).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        let shot = screenshot(&d.x, dir.path(), w.min(1280), h.min(800));
        let out = Command::new("convert")
            .arg(&shot)
            .args([
                "-fill",
                "black",
                "+opaque",
                "#F0F0F0",
                "-format",
                "%[fx:mean]",
                "info:",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<f64>()
            .unwrap_or(0.0)
            > 0.0005
    });
    assert!(lit, "the first picture has no text");
    // The title names the reason from the start, and never says "UPS" while nothing is connected.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let titles = window_titles(&d.x);
        assert!(!titles.contains(" UPS "), "{titles}");
        if titles.contains("does not exist") {
            break;
        }
        assert!(Instant::now() < end, "no title with the reason: {titles}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs Xvfb: tests/harness/40-viewer-x11.sh"]
fn test_life_x11_downscale_keeps_thin_lines() {
    let d = Display::x11();
    let dir = shm_dir();
    let shm = dir.path().join("lg");
    let map = Arc::new(ShmMap::create(&shm, 32 * MIB as u64).unwrap());
    let producer = Producer::start(map, ProducerConfig::default()).unwrap();
    // 960×540 shown at 720×405 (the 1080p → 1440×810 ratio): white 1-px lines every 8 rows on black.
    let (fw, fh, ww, wh) = (960u32, 540u32, 720u32, 405u32);
    let mut v = d.viewer_env(
        &shm_args(&shm),
        dir.path(),
        "viewer.err",
        &[("VMGPU_VIEW_TEST_WINDOW", "720x405")],
    );
    assert!(
        producer.wait_for_client(Duration::from_secs(20)),
        "{}",
        v.stderr_text()
    );
    let pitch = fw * 4;
    let mut pixels = vec![0u8; (pitch * fh) as usize];
    for y in (3..fh).step_by(8) {
        pixels[(y * pitch) as usize..((y + 1) * pitch) as usize].fill(0xFF);
    }
    let desc = FrameDesc {
        kind: FrameType::Bgra,
        width: fw,
        height: fh,
        pitch,
        damage: Vec::new(),
        flags: 0,
    };
    let serial = producer.send_frame(&desc, &pixels).unwrap().serial;
    v.wait("the scaled frame", |p| {
        p.serial == Some(serial) && p.size == (ww, wh)
    });
    std::thread::sleep(Duration::from_millis(300));
    let shot = screenshot(&d.x, dir.path(), ww, wh);
    // One text line per output row: the mean brightness of that row.
    let out = Command::new("convert")
        .arg(&shot)
        .args([
            "-colorspace",
            "gray",
            "-scale",
            "1x405!",
            "-depth",
            "8",
            "txt:-",
        ])
        .output()
        .unwrap();
    let rows: Vec<u8> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split("gray(")
                .nth(1)?
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(rows.len(), wh as usize, "{rows:?}");
    // Each source line (y = 3, 11, …) lands around output row y·0.75: some row near it must be lit.
    let lines = (3..fh).step_by(8).count();
    let shown = (3..fh)
        .step_by(8)
        .filter(|&y| {
            let oy = (y * 3 / 4) as usize;
            rows[oy.saturating_sub(1)..(oy + 2).min(rows.len())]
                .iter()
                .any(|&g| g > 40)
        })
        .count();
    assert_eq!(
        shown, lines,
        "only {shown} of {lines} one-pixel lines survive the downscale"
    );
}

#[test]
#[ignore = "needs Xvfb: tests/harness/40-viewer-x11.sh"]
fn test_life_x11_sigterm_exits_promptly_and_leaves_nothing() {
    let d = Display::x11();
    let dir = shm_dir();
    let shm = dir.path().join("lg");
    let map = Arc::new(ShmMap::create(&shm, 32 * MIB as u64).unwrap());
    let producer = Producer::start(map, ProducerConfig::default()).unwrap();
    let args = [OsStr::new("win11"), OsStr::new("--shm"), shm.as_os_str()];
    let mut v = d.viewer(&args, dir.path(), "viewer.err");
    assert!(
        producer.wait_for_client(Duration::from_secs(20)),
        "{}",
        v.stderr_text()
    );
    let serial = send(&producer, FrameType::Bgra, 61);
    v.wait("the frame", |p| p.serial == Some(serial));
    let sent = Instant::now();
    nix::sys::signal::kill(v.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = v.exit_within(Duration::from_secs(10));
    let took = sent.elapsed();
    eprintln!("SIGTERM: exited {status:?} after {} ms", took.as_millis());
    assert!(status.is_some(), "the viewer did not exit on SIGTERM");
    // It left the queues (the host sees no subscriber) and removed its socket.
    let end = Instant::now() + Duration::from_secs(5);
    while producer.subscribers() != (0, 0) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(producer.subscribers(), (0, 0), "still subscribed");
    let leftovers: Vec<PathBuf> = std::fs::read_dir(d.runtime.path().join("vmgpu"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sock"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
#[ignore = "needs Xvfb: tests/harness/40-viewer-x11.sh"]
fn test_life_x11_demo_file_is_group_readable() {
    let d = Display::x11();
    let dir = shm_dir();
    let mut v = d.viewer(&[OsStr::new("--demo")], dir.path(), "demo.err");
    v.wait("a demo frame", |p| p.serial.is_some());
    let shm = Path::new("/dev/shm").join(format!("vmgpu-demo-{}", v.pid()));
    let meta = std::fs::metadata(&shm).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o660, "{}", shm.display());
    assert_eq!(meta.gid(), nix::unistd::getegid().as_raw());
    nix::sys::signal::kill(v.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(v.exit_within(Duration::from_secs(10)).is_some());
    assert!(!shm.exists(), "the demo left {} behind", shm.display());
}

// ---- 7. Messages ----

#[test]
#[ignore = "needs Xvfb: tests/harness/40-viewer-x11.sh"]
fn test_life_x11_messages_are_plain() {
    let d = Display::x11();
    let dir = shm_dir();
    let junk = dir.path().join("junk");
    let mut bytes = vec![0u8; 64 * 1024];
    bytes[..4].copy_from_slice(&[0x10, b'b', b't', b'x']);
    std::fs::write(&junk, bytes).unwrap();
    let mut v = d.viewer(&shm_args(&junk), dir.path(), "viewer.err");
    assert_message_on(
        &d.x,
        dir.path(),
        &mut v,
        "starts with the bytes 10 62 74 78",
    );
    assert!(!v.stderr_text().contains("\\u{"), "{}", v.stderr_text());
    drop(v);
    // No display at all: one line naming the fix, no source paths of the libraries.
    let out = Command::new(env!("CARGO_BIN_EXE_vmgpu"))
        .args(["view", "--shm"])
        .arg(&junk)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("WAYLAND_SOCKET")
        .env("XDG_RUNTIME_DIR", d.runtime.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("DISPLAY"), "{err}");
    assert!(!err.contains(".cargo") && !err.contains(".rs:"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
