//! The real `vmgpu view` window on a real X server (Xvfb, one per test) against the producer writing into a
//! shared-memory file: screenshots compared pixel-exact (`compare -metric AE`) with what the producer wrote, for
//! each frame format, damage-only updates, each cursor type, a producer restart and a client the host marked
//! BAD; and the bad-input messages. Run by tests/harness/40-viewer-x11.sh (`--ignored`).
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use super::lg::{MIB, expected_pixel};
use vmgpu::lg::kvmfr::{CursorShape, CursorType, FrameType, Rect};
use vmgpu::lg::layout;
use vmgpu::lg::producer::{CursorSend, Producer, ProducerConfig};
use vmgpu::lg::scene;
use vmgpu::shm::{Region, ShmMap};

/// An Xvfb on a display number of its own, killed on drop.
pub struct XServer {
    child: Child,
    pub display: String,
}

impl XServer {
    pub fn start() -> XServer {
        // Distinct numbers per process (pid) and per test in it (counter): two tests must never share a server.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let base = 200 + (std::process::id() % 400) * 16;
        for _ in 0..400 {
            let n = base + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 4000;
            if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                || Path::new(&format!("/tmp/.X{n}-lock")).exists()
            {
                continue;
            }
            let Ok(child) = Command::new("Xvfb")
                .args([
                    format!(":{n}").as_str(),
                    "-screen",
                    "0",
                    "1280x800x24",
                    "-nolisten",
                    "tcp",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            else {
                continue;
            };
            let mut server = XServer {
                child,
                display: format!(":{n}"),
            };
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end {
                let alive = matches!(server.child.try_wait(), Ok(None));
                if alive && Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
                    return server;
                }
                if let Ok(Some(_)) = server.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = server.child.kill();
        }
        panic!("could not start Xvfb");
    }
}

impl Drop for XServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `presented ...` line of the viewer's test mode.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Presented {
    pub serial: Option<u32>,
    pub size: (u32, u32),
    pub cursor: u64,
    pub connects: u64,
    pub resub: u64,
    /// `none`, `looking-glass` or `spice`.
    pub source: String,
    /// SPICE display updates applied.
    pub spice: u64,
    /// A banner is drawn over the frame.
    pub banner: bool,
}

fn parse_line(line: &str) -> Option<Presented> {
    let mut p = Presented::default();
    for field in line.strip_prefix("presented ")?.split(' ') {
        let (k, v) = field.split_once('=')?;
        match k {
            "serial" => p.serial = v.parse().ok(),
            "size" => {
                let (w, h) = v.split_once('x')?;
                p.size = (w.parse().ok()?, h.parse().ok()?);
            }
            "cursor" => p.cursor = v.parse().ok()?,
            "connects" => p.connects = v.parse().ok()?,
            "resub" => p.resub = v.parse().ok()?,
            "source" => p.source = v.to_string(),
            "spice" => p.spice = v.parse().ok()?,
            "banner" => p.banner = v == "1",
            _ => {}
        }
    }
    Some(p)
}

/// The real viewer process.
pub struct Viewer {
    child: Child,
    lines: Receiver<Presented>,
    pub last: Presented,
    stderr: PathBuf,
}

impl Viewer {
    pub fn start(x: &XServer, shm: &Path, dir: &Path) -> Viewer {
        Self::start_with(shm, dir, &[("DISPLAY", x.display.as_str())])
    }

    /// Starts the viewer with these display variables (the others removed).
    pub fn start_with(shm: &Path, dir: &Path, env: &[(&str, &str)]) -> Viewer {
        Self::start_extra(shm, dir, env, &[])
    }

    /// Starts the viewer on `--shm SHM` with these display variables and extra `view` arguments.
    pub fn start_extra(shm: &Path, dir: &Path, env: &[(&str, &str)], extra: &[&str]) -> Viewer {
        let mut args = vec![std::ffi::OsStr::new("--shm"), shm.as_os_str()];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        Self::start_args(&args, dir, env, "viewer.err")
    }

    /// Starts `vmgpu view ARGS` with these variables (DISPLAY and WAYLAND_DISPLAY removed unless given);
    /// stderr goes to `dir/stderr_name`.
    pub fn start_args(
        args: &[&std::ffi::OsStr],
        dir: &Path,
        env: &[(&str, &str)],
        stderr_name: &str,
    ) -> Viewer {
        let stderr = dir.join(stderr_name);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vmgpu"));
        cmd.env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .arg("view")
            .args(args)
            .env("VMGPU_VIEW_TEST", "1")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(p) = parse_line(&line)
                    && tx.send(p).is_err()
                {
                    break;
                }
            }
        });
        Viewer {
            child,
            lines: rx,
            last: Presented::default(),
            stderr,
        }
    }

    /// Waits for a present that satisfies `want`.
    pub fn wait(&mut self, what: &str, want: impl Fn(&Presented) -> bool) {
        let end = Instant::now() + Duration::from_secs(20);
        while !want(&self.last) {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(p) => self.last = p,
                Err(_) => panic!(
                    "viewer never presented {what}; last: {:?}; stderr: {}",
                    self.last,
                    self.stderr_text()
                ),
            }
        }
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    /// The exit status, waiting up to `timeout` for it.
    pub fn exit_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `pixels` (0x00RRGGBB) as a binary PPM.
pub fn write_ppm(path: &Path, w: u32, h: u32, pixels: &[u32]) {
    let mut f = std::fs::File::create(path).unwrap();
    write!(f, "P6\n{w} {h}\n255\n").unwrap();
    let rgb: Vec<u8> = pixels
        .iter()
        .flat_map(|p| [(p >> 16) as u8, (p >> 8) as u8, *p as u8])
        .collect();
    f.write_all(&rgb).unwrap();
}

/// Screenshot of the top-left `w × h` of the screen.
pub fn screenshot(x: &XServer, dir: &Path, w: u32, h: u32) -> PathBuf {
    let shot = dir.join("shot.png");
    let crop = format!("{w}x{h}+0+0");
    // `import` can fail transiently while the server is busy (seen with weston nested in Xvfb): retry.
    let mut errors = String::new();
    let ok = (0..10).any(|attempt| {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(200));
        }
        let out = Command::new("import")
            .args([
                "-display", &x.display, "-window", "root", "-crop", &crop, "+repage",
            ])
            .arg(&shot)
            .output()
            .unwrap();
        errors = String::from_utf8_lossy(&out.stderr).into_owned();
        out.status.success()
    });
    assert!(ok, "import failed 10 times: {errors}");
    shot
}

/// `compare -metric AE`: the number of differing pixels.
pub fn differing_pixels(expected: &Path, shot: &Path) -> u64 {
    let out = Command::new("compare")
        .args(["-metric", "AE"])
        .arg(expected)
        .arg(shot)
        .arg("null:")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    text.split_whitespace()
        .next()
        .and_then(|n| n.parse::<f64>().ok())
        .map_or(u64::MAX, |v| v as u64)
}

/// Screenshots until the top-left matches `pixels` (X may still be drawing the last present); asserts 0 px differ.
pub fn assert_screen(x: &XServer, dir: &Path, w: u32, h: u32, pixels: &[u32], what: &str) {
    let expected = dir.join("expected.ppm");
    write_ppm(&expected, w, h, pixels);
    let mut diff = u64::MAX;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(50));
        diff = differing_pixels(&expected, &screenshot(x, dir, w, h));
        if diff == 0 {
            return;
        }
    }
    let keep = dir.join(format!("failed-{}.png", what.replace(' ', "-")));
    let _ = std::fs::copy(dir.join("shot.png"), &keep);
    panic!(
        "{what}: {diff} pixels differ from what the producer wrote (screenshot {})",
        keep.display()
    );
}

pub fn pattern_pixels(kind: FrameType, w: u32, h: u32, seed: u32) -> Vec<u32> {
    (0..h)
        .flat_map(|y| (0..w).map(move |x| expected_pixel(kind, x, y, seed) & 0xFF_FFFF))
        .collect()
}

/// A temp dir in /dev/shm (where real LG memory lives), else the default temp dir.
pub fn shm_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("vmgpu-test-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

struct Rig {
    x: XServer,
    dir: tempfile::TempDir,
    shm: PathBuf,
    map: Arc<ShmMap>,
}

fn rig() -> Rig {
    let x = XServer::start();
    let dir = shm_dir();
    let shm = dir.path().join("lg");
    let map = Arc::new(ShmMap::create(&shm, 32 * MIB as u64).unwrap());
    Rig { x, dir, shm, map }
}

/// A rig with a producer and a viewer that has subscribed.
fn rig_with_viewer() -> (Rig, Producer, Viewer) {
    let r = rig();
    let producer = Producer::start(r.map.clone(), ProducerConfig::default()).unwrap();
    let v = Viewer::start(&r.x, &r.shm, r.dir.path());
    assert!(
        producer.wait_for_client(Duration::from_secs(20)),
        "{}",
        v.stderr_text()
    );
    (r, producer, v)
}

const W: u32 = 480;
const H: u32 = 270;

fn send_pattern(p: &Producer, kind: FrameType, seed: u32) -> u32 {
    let (desc, pixels) = scene::test_pattern(kind, W, H, 32, seed);
    p.send_frame(&desc, &pixels).unwrap().serial
}

#[test]
#[ignore = "needs Xvfb: tests/harness/40-viewer-x11.sh"]
fn test_x11_every_frame_format_is_pixel_exact() {
    let r = rig();
    let producer = Producer::start(r.map.clone(), ProducerConfig::default()).unwrap();
    let mut v = Viewer::start(&r.x, &r.shm, r.dir.path());
    assert!(
        producer.wait_for_client(Duration::from_secs(20)),
        "{}",
        v.stderr_text()
    );
    for (seed, kind) in [
        FrameType::Bgra,
        FrameType::Rgba,
        FrameType::Rgba10,
        FrameType::Rgba16f,
    ]
    .into_iter()
    .enumerate()
    {
        let serial = send_pattern(&producer, kind, seed as u32);
        v.wait(&format!("{kind:?}"), |p| {
            p.serial == Some(serial) && p.size == (W, H)
        });
        assert_screen(
            &r.x,
            r.dir.path(),
            W,
            H,
            &pattern_pixels(kind, W, H, seed as u32),
            &format!("{kind:?}"),
        );
    }
}

#[test]
#[ignore = "needs Xvfb: tests/harness/40-viewer-x11.sh"]
fn test_x11_damage_only_update_copies_only_the_rects() {
    let (r, producer, mut v) = rig_with_viewer();
    let first = send_pattern(&producer, FrameType::Bgra, 1);
    v.wait("the full frame", |p| {
        p.serial == Some(first) && p.size == (W, H)
    });
    // The slot's bytes outside the rect are garbage: a viewer that copied more than the damage would show it.
    let (mut desc, mut garbage) = scene::test_pattern(FrameType::Bgra, W, H, 32, 99);
    let rect = Rect {
        x: 100,
        y: 50,
        w: 64,
        h: 40,
    };
    scene::fill_rect(&mut garbage, desc.pitch, rect, [0x10, 0x80, 0xF0, 255]);
    desc.damage = vec![rect];
    let second = producer.send_frame(&desc, &garbage).unwrap().serial;
    v.wait("the damage-only frame", |p| p.serial == Some(second));
    let mut expected = pattern_pixels(FrameType::Bgra, W, H, 1);
    for y in rect.y..rect.y + rect.h {
        for x in rect.x..rect.x + rect.w {
            expected[(y * W + x) as usize] = 0xF0_8010;
        }
    }
    assert_screen(&r.x, r.dir.path(), W, H, &expected, "damage only");
}

/// A 16×16 cursor of each kind, and the screen pixel each one produces over `dst`.
/// A 32-bpp cursor whose texel (x, y) is `px(x, y)` in B,G,R,A order.
fn bgra_shape(kind: CursorType, w: u32, h: u32, px: impl Fn(u32, u32) -> [u8; 4]) -> CursorShape {
    let data = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .flat_map(|(x, y)| px(x, y))
        .collect();
    CursorShape {
        kind,
        width: w,
        height: h,
        pitch: w * 4,
        hotspot: (0, 0),
        data,
    }
}

/// The screen pixel a cursor texel (x, y) produces over `dst`.
type Over = Box<dyn Fn(u32, u32, u32) -> u32>;

fn cursor_case(kind: CursorType) -> (CursorShape, Over) {
    let (w, h) = (16u32, 16u32);
    match kind {
        CursorType::Color => {
            // Left half opaque orange, right half 50 % premultiplied grey, bottom rows transparent.
            let shape = bgra_shape(kind, w, h, |x, y| match (x < 8, y < 12) {
                (_, false) => [0; 4],
                (true, true) => [0x00, 0x80, 0xFF, 0xFF],
                (false, true) => [0x40, 0x40, 0x40, 0x80],
            });
            (
                shape,
                Box::new(|x, y, d| {
                    if y >= 12 {
                        d
                    } else if x < 8 {
                        0xFF_8000
                    } else {
                        let c = |s: u32| {
                            (0x40
                                + ((d >> s) & 0xFF) * 127 / 255
                                + u32::from(((d >> s) & 0xFF) * 127 % 255 >= 128))
                            .min(255)
                                << s
                        };
                        c(16) | c(8) | c(0)
                    }
                }),
            )
        }
        CursorType::Monochrome => {
            // Row bands: AND=1 XOR=0 (transparent), AND=0 XOR=1 (white), AND=1 XOR=1 (invert), AND=0 XOR=0 (black).
            let pitch = 2u32;
            let mut data = vec![0u8; (2 * h * pitch) as usize];
            for y in 0..h {
                let (and, xor) = match y / 4 {
                    0 => (1, 0),
                    1 => (0, 1),
                    2 => (1, 1),
                    _ => (0, 0),
                };
                data[(y * pitch) as usize..][..2].fill(if and == 1 { 0xFF } else { 0 });
                data[((h + y) * pitch) as usize..][..2].fill(if xor == 1 { 0xFF } else { 0 });
            }
            let shape = CursorShape {
                kind,
                width: w,
                height: h,
                pitch,
                hotspot: (1, 1),
                data,
            };
            (
                shape,
                Box::new(|_, y, d| match y / 4 {
                    0 => d,
                    1 => 0xFF_FFFF,
                    2 => d ^ 0xFF_FFFF,
                    _ => 0,
                }),
            )
        }
        CursorType::MaskedColor => {
            // Top half: alpha 0 = replace with blue; bottom half: alpha 0xFF = XOR with 0x00FF00.
            let shape = bgra_shape(kind, w, h, |_, y| {
                if y < 8 {
                    [0xFF, 0, 0, 0]
                } else {
                    [0, 0xFF, 0, 0xFF]
                }
            });
            (
                shape,
                Box::new(|_, y, d| if y < 8 { 0x00_00FF } else { d ^ 0x00_FF00 }),
            )
        }
    }
}

#[test]
#[ignore = "needs Xvfb: tests/harness/40-viewer-x11.sh"]
fn test_x11_every_cursor_type_is_drawn_exactly() {
    let (r, producer, mut v) = rig_with_viewer();
    let serial = send_pattern(&producer, FrameType::Bgra, 3);
    v.wait("the frame", |p| {
        p.serial == Some(serial) && p.size == (W, H)
    });
    let base = pattern_pixels(FrameType::Bgra, W, H, 3);
    for (i, kind) in [
        CursorType::Color,
        CursorType::Monochrome,
        CursorType::MaskedColor,
    ]
    .into_iter()
    .enumerate()
    {
        let (shape, over) = cursor_case(kind);
        let (cx, cy) = (40 + 100 * i as i16, 60);
        let sent_before = v.last.cursor;
        producer
            .send_cursor(&CursorSend {
                position: Some((cx, cy)),
                visible: true,
                shape: Some(shape.clone()),
            })
            .unwrap();
        v.wait(&format!("{kind:?} cursor"), |p| p.cursor > sent_before);
        let mut expected = base.clone();
        for y in 0..shape.height {
            for x in 0..shape.width {
                let at = ((cy as u32 + y) * W + cx as u32 + x) as usize;
                expected[at] = over(x, y, expected[at]) & 0xFF_FFFF;
            }
        }
        assert_screen(
            &r.x,
            r.dir.path(),
            W,
            H,
            &expected,
            &format!("{kind:?} cursor"),
        );
    }
}

#[test]
#[ignore = "needs Xvfb: tests/harness/40-viewer-x11.sh"]
fn test_x11_producer_restart_is_followed() {
    let (r, producer, mut v) = rig_with_viewer();
    let serial = send_pattern(&producer, FrameType::Bgra, 4);
    v.wait("the first session's frame", |p| {
        p.serial == Some(serial) && p.size == (W, H)
    });
    let old_session = producer.session_id();
    drop(producer);
    v.wait("the waiting screen", |p| p.serial.is_none());
    let producer = Producer::start(r.map.clone(), ProducerConfig::default()).unwrap();
    assert_ne!(producer.session_id(), old_session);
    assert!(
        producer.wait_for_client(Duration::from_secs(20)),
        "{}",
        v.stderr_text()
    );
    let serial = send_pattern(&producer, FrameType::Rgba, 5);
    v.wait("the second session's frame", |p| {
        p.connects == 2 && p.serial == Some(serial)
    });
    assert_screen(
        &r.x,
        r.dir.path(),
        W,
        H,
        &pattern_pixels(FrameType::Rgba, W, H, 5),
        "after restart",
    );
}

#[test]
#[ignore = "needs Xvfb: tests/harness/40-viewer-x11.sh"]
fn test_x11_client_marked_bad_recovers() {
    use nix::sys::signal::{Signal, kill};
    let (r, producer, mut v) = rig_with_viewer();
    let serial = send_pattern(&producer, FrameType::Bgra, 6);
    v.wait("the first frame", |p| {
        p.serial == Some(serial) && p.size == (W, H)
    });
    kill(v.pid(), Signal::SIGSTOP).unwrap();
    send_pattern(&producer, FrameType::Bgra, 7);
    let end = Instant::now() + Duration::from_secs(5);
    while producer.subscribers().0 as u32 == 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_ne!(
        producer.subscribers().0 as u32,
        0,
        "the stalled viewer was not marked BAD"
    );
    kill(v.pid(), Signal::SIGCONT).unwrap();
    assert!(producer.wait_for_client(Duration::from_secs(10)));
    let serial = send_pattern(&producer, FrameType::Bgra, 8);
    v.wait("a frame after resubscribing", |p| {
        p.resub >= 1 && p.serial == Some(serial)
    });
    assert_screen(
        &r.x,
        r.dir.path(),
        W,
        H,
        &pattern_pixels(FrameType::Bgra, W, H, 8),
        "after BAD",
    );
}

/// Waits for the viewer's stderr to contain `text`, then checks the window shows a message (light text pixels).
fn assert_message(r: &Rig, v: &mut Viewer, text: &str) {
    assert_message_on(&r.x, r.dir.path(), v, text);
}

/// [`assert_message`] for any X server and directory.
pub fn assert_message_on(x: &XServer, dir: &Path, v: &mut Viewer, text: &str) {
    let end = Instant::now() + Duration::from_secs(15);
    while !v.stderr_text().contains(text) {
        assert!(
            Instant::now() < end,
            "stderr never said {text:?}: {}",
            v.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    v.wait("a message screen", |p| p.size.0 > 0);
    std::thread::sleep(Duration::from_millis(300));
    let shot = screenshot(x, dir, 640, 400);
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
    let lit: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0);
    assert!(
        lit > 0.001,
        "no message text visible in the window for {text:?}"
    );
    assert!(v.child.try_wait().unwrap().is_none(), "the viewer exited");
}

#[test]
#[ignore = "needs Xvfb: tests/harness/40-viewer-x11.sh"]
fn test_x11_bad_input_is_a_message_never_a_crash() {
    let r = rig();
    // Missing file.
    let missing = r.dir.path().join("missing");
    let mut v = Viewer::start(&r.x, &missing, r.dir.path());
    assert_message(&r, &mut v, "does not exist (is the VM running?)");
    drop(v);
    // Too small.
    let small = r.dir.path().join("small");
    std::fs::write(&small, vec![0u8; 1000]).unwrap();
    let mut v = Viewer::start(&r.x, &small, r.dir.path());
    assert_message(&r, &mut v, "too small");
    drop(v);
    // Not LGMP.
    let junk = r.dir.path().join("junk");
    std::fs::write(&junk, vec![0x5Au8; 64 * 1024]).unwrap();
    let mut v = Viewer::start(&r.x, &junk, r.dir.path());
    assert_message(&r, &mut v, "not a Looking Glass region");
    drop(v);
    // Wrong version (a master-era LGMP header with a moving heartbeat).
    let producer = Producer::start(r.map.clone(), ProducerConfig::default()).unwrap();
    r.map.view().write_u32(layout::OFF_VERSION, 10).unwrap();
    let mut v = Viewer::start(&r.x, &r.shm, r.dir.path());
    assert_message(&r, &mut v, "incompatible LGMP version 10");
    drop(v);
    drop(producer);
    // Truncated frame: a 4 MiB region and a frame that needs more.
    let tiny = r.dir.path().join("tiny");
    let map = Arc::new(ShmMap::create(&tiny, 4 * MIB as u64).unwrap());
    let producer = Producer::start(map, ProducerConfig::default()).unwrap();
    let mut v = Viewer::start(&r.x, &tiny, r.dir.path());
    assert!(
        producer.wait_for_client(Duration::from_secs(30)),
        "the viewer did not subscribe: {:?} {}",
        producer.subscribers(),
        v.stderr_text()
    );
    let (desc, pixels) = scene::test_pattern(FrameType::Bgra, 1024, 768, 0, 9);
    producer.send_frame(&desc, &pixels).unwrap();
    assert_message(&r, &mut v, "shared memory is too small for 1024x768");
}

#[test]
#[ignore = "needs Xvfb: tests/harness/40-viewer-x11.sh"]
fn test_x11_demo_plays_and_removes_its_shm_on_sigterm() {
    let x = XServer::start();
    let dir = shm_dir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmgpu"))
        .args(["view", "--demo"])
        .env("DISPLAY", &x.display)
        .env_remove("WAYLAND_DISPLAY")
        .env("VMGPU_VIEW_TEST", "1")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("demo.err")).unwrap())
        .spawn()
        .unwrap();
    let shm = Path::new("/dev/shm").join(format!("vmgpu-demo-{}", child.id()));
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = channel();
    // Keep draining stdout so the viewer never blocks on a full pipe.
    std::thread::spawn(move || {
        for p in out
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| parse_line(&l))
        {
            if p.serial.is_some_and(|s| s >= 30) && p.cursor >= 30 {
                let _ = tx.send(());
            }
        }
    });
    let moving = rx.recv_timeout(Duration::from_secs(30)).is_ok();
    assert!(
        moving,
        "the demo never showed 30 frames with a moving cursor"
    );
    // The title names the VM (here "demo") and the updates per second; it is refreshed every second.
    let titled = (0..40).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        let tree = Command::new("xwininfo")
            .args(["-root", "-tree", "-display", &x.display])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&tree.stdout).into_owned();
        text.contains("\"demo — ") && text.contains(" UPS — vmgpu\"")
    });
    assert!(titled, "no window titled \"demo — N UPS — vmgpu\"");
    assert!(
        !Path::new("/dev/shm").is_dir() || shm.exists(),
        "the demo's shm file is not where expected"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let _ = child.wait();
    assert!(!shm.exists(), "the demo left {} behind", shm.display());
}
