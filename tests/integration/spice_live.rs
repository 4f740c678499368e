//! `vmgpu view` driving a real VM through QEMU's SPICE server (with a password): the guest (Debian kernel,
//! busybox, tests/vm/evdev-print.c) prints every evdev event on its serial console; `xdotool` types and clicks
//! into the real viewer window on Xvfb. Exact key codes and order, absolute positions through the letterbox,
//! no stuck key after a focus loss mid-chord, the escape key's capture, wrong and missing passwords refused.
//! Run by tests/harness/45-spice-input.sh (`--ignored`; it builds the kernel and initramfs).
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::viewer_x11::{XServer, shm_dir};
use vmgpu::lg::kvmfr::FrameType;
use vmgpu::lg::producer::{Producer, ProducerConfig};
use vmgpu::lg::scene;
use vmgpu::shm::ShmMap;

/// The guest's VGA text mode: the SPICE display QEMU scales absolute positions by.
const GW: u32 = 720;
const GH: u32 = 400;
const PASSWORD: &str = "harness-pass-1";

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn env_path(k: &str) -> PathBuf {
    PathBuf::from(
        std::env::var_os(k)
            .unwrap_or_else(|| panic!("{k} is not set (run tests/harness/45-spice-input.sh)")),
    )
}

/// The viewer's password file (its first line is the password).
fn password_file(dir: &Path) -> PathBuf {
    let path = dir.join("pw");
    std::fs::write(&path, format!("{PASSWORD}\n")).unwrap();
    path
}

/// Boots the harness guest (Debian kernel + busybox, std VGA, USB tablet) with QEMU's SPICE server on a loopback
/// port that asks for [`PASSWORD`]; its serial console goes to `serial`. `extra` QEMU arguments, `append` extra
/// kernel arguments.
fn harness_guest(dir: &Path, port: u16, serial: &Path, extra: &[&str], append: &str) -> Killed {
    // QEMU's secret takes the whole file (a newline would be part of the password).
    let secret = dir.join("qemu-secret");
    std::fs::write(&secret, PASSWORD).unwrap();
    let accel = std::env::var("VMGPU_SPICE_ACCEL").unwrap_or_else(|_| "-accel tcg -cpu max".into());
    Killed(
        Command::new("qemu-system-x86_64")
            .args(accel.split_whitespace())
            .args(["-machine", "q35", "-m", "512", "-smp", "2"])
            .args([
                "-nodefaults",
                "-no-user-config",
                "-no-reboot",
                "-display",
                "none",
            ])
            .args([
                "-device",
                "VGA",
                "-device",
                "qemu-xhci",
                "-device",
                "usb-tablet",
            ])
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .args(extra)
            .arg("-object")
            .arg(format!("secret,id=spicepw,file={}", secret.display()))
            .arg("-spice")
            .arg(format!(
                "port={port},addr=127.0.0.1,password-secret=spicepw"
            ))
            .arg("-kernel")
            .arg(env_path("VMGPU_SPICE_KERNEL"))
            .arg("-initrd")
            .arg(env_path("VMGPU_SPICE_INITRD"))
            .arg("-append")
            .arg(format!(
                "console=ttyS0 panic=-1 loglevel=4 no_timer_check {append}"
            ))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("qemu.err")).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// The guest's serial console, read incrementally.
struct Console {
    path: PathBuf,
    seen: usize,
}

/// One evdev event from the guest: (device, kind, code, value).
type Ev = (u32, String, u32, i32);

impl Console {
    fn text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.path).unwrap_or_default()).replace('\r', "")
    }

    fn wait_line(&self, what: &str, limit: Duration) -> String {
        let end = Instant::now() + limit;
        loop {
            let t = self.text();
            if let Some(l) = t.lines().find(|l| l.starts_with(what)) {
                return l.to_string();
            }
            assert!(
                Instant::now() < end,
                "guest never printed {what}; console:\n{t}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// New key/button/axis events (repeats dropped) until `n` arrived or `quiet` passed without one.
    fn events(&mut self, n: usize, limit: Duration) -> Vec<Ev> {
        let end = Instant::now() + limit;
        loop {
            let t = self.text();
            let evs: Vec<Ev> = t
                .lines()
                .skip(self.seen)
                .filter_map(parse_ev)
                .filter(|e| e.3 != 2 || e.1 != "KEY")
                .collect();
            if evs.len() >= n || Instant::now() >= end {
                self.seen = t.lines().count();
                return evs;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn parse_ev(l: &str) -> Option<Ev> {
    let mut f = l.strip_prefix("EVDEV ")?.split(' ');
    Some((
        f.next()?.parse().ok()?,
        f.next()?.to_string(),
        f.next()?.parse().ok()?,
        f.next()?.parse().ok()?,
    ))
}

fn xdo(x: &XServer, args: &[&str]) -> String {
    let out = Command::new("xdotool")
        .args(args)
        .env("DISPLAY", &x.display)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xdotool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn viewer(x: &XServer, shm: &Path, port: u16, pwfile: Option<&Path>, err: &Path) -> Killed {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vmgpu"));
    cmd.env_remove("WAYLAND_DISPLAY")
        .env("DISPLAY", &x.display)
        .env("VMGPU_VIEW_TEST", "1")
        .args(["view", "--shm"])
        .arg(shm)
        .args(["--spice", &format!("127.0.0.1:{port}")]);
    if let Some(p) = pwfile {
        cmd.arg("--spice-password-file").arg(p);
    }
    Killed(
        cmd.stdout(Stdio::null())
            .stderr(std::fs::File::create(err).unwrap())
            .spawn()
            .unwrap(),
    )
}

fn wait_title(x: &XServer, wid: &str, want: &str) -> String {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let t = xdo(x, &["getwindowname", wid]);
        if t.contains(want) {
            return t;
        }
        assert!(Instant::now() < end, "title never said {want:?}: {t:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn keys(evs: &[Ev]) -> Vec<(u32, i32)> {
    evs.iter()
        .filter(|e| e.1 == "KEY")
        .map(|e| (e.2, e.3))
        .collect()
}

#[test]
#[ignore = "needs QEMU, a guest kernel and Xvfb: tests/harness/45-spice-input.sh"]
fn spice_live_keyboard_mouse_and_passwords() {
    let dir = shm_dir();
    let port = free_port();
    let pwfile = password_file(dir.path());
    let serial = dir.path().join("serial.log");
    let _qemu = harness_guest(dir.path(), port, &serial, &[], "");
    let mut con = Console {
        path: serial,
        seen: 0,
    };
    con.wait_line("EVDEV-READY", Duration::from_secs(240));
    let t = con.text();
    let kbd: u32 = t
        .lines()
        .find(|l| l.starts_with("EVDEVICE") && l.contains("AT_Translated"))
        .and_then(|l| l.split(' ').nth(1)?.parse().ok())
        .expect("PS/2 keyboard");
    let tablet: u32 = t
        .lines()
        .find(|l| l.starts_with("EVDEVICE") && l.contains("Tablet"))
        .and_then(|l| l.split(' ').nth(1)?.parse().ok())
        .expect("USB tablet");
    con.seen = t.lines().count();

    let x = XServer::start();
    let map = Arc::new(ShmMap::create(&dir.path().join("lg"), 32 << 20).unwrap());
    let producer = Producer::start(map, ProducerConfig::default()).unwrap();

    // Wrong and missing passwords: refused, and the reason is on stderr.
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "nope\n").unwrap();
    for (pw, name) in [(Some(bad.as_path()), "wrong"), (None, "missing")] {
        let err = dir.path().join(format!("{name}.err"));
        let v = viewer(&x, &dir.path().join("lg"), port, pw, &err);
        let end = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&err)
            .unwrap_or_default()
            .contains("wrong or missing SPICE password")
        {
            assert!(
                Instant::now() < end,
                "{name} password not reported: {}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(v);
    }

    let err = dir.path().join("viewer.err");
    let _v = viewer(&x, &dir.path().join("lg"), port, Some(&pwfile), &err);
    assert!(producer.wait_for_client(Duration::from_secs(30)));
    let (desc, pixels) = scene::test_pattern(FrameType::Bgra, GW, GH, 32, 1);
    producer.send_frame(&desc, &pixels).unwrap();
    let wid = {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new("xdotool")
                .args(["search", "--name", "vmgpu"])
                .env("DISPLAY", &x.display)
                .output()
                .unwrap();
            let id = String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            if !id.is_empty() {
                break id;
            }
            assert!(Instant::now() < end, "no viewer window");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    xdo(&x, &["windowfocus", "--sync", &wid]);
    // The guest's tablet is active once evdev-print opened it: the server offers client mode and we take it.
    wait_title(&x, &wid, "keys and mouse go to the VM");

    // Typing: shifted characters, arrows, F-keys, Ctrl+Alt combinations, in order.
    xdo(&x, &["type", "--delay", "30", "Hi, A!"]);
    xdo(
        &x,
        &[
            "key",
            "--delay",
            "30",
            "Up",
            "Left",
            "F5",
            "F12",
            "ctrl+alt+t",
            "Home",
            "KP_Enter",
            "Super_L",
        ],
    );
    const SHIFT: u32 = 42;
    let mut want: Vec<(u32, i32)> = Vec::new();
    let tap = |w: &mut Vec<(u32, i32)>, k: u32| w.extend([(k, 1), (k, 0)]);
    // xdotool releases a chord's keys in the order it pressed them (xev under Xvfb shows Shift_L released
    // before h): the guest must see exactly that order, which is what the viewer received.
    want.extend([(SHIFT, 1), (35, 1), (SHIFT, 0), (35, 0)]); // H
    tap(&mut want, 23); // i
    tap(&mut want, 51); // ,
    tap(&mut want, 57); // space
    want.extend([(SHIFT, 1), (30, 1), (SHIFT, 0), (30, 0)]); // A
    want.extend([(SHIFT, 1), (2, 1), (SHIFT, 0), (2, 0)]); // !
    for k in [103, 105, 63, 88] {
        tap(&mut want, k);
    }
    want.extend([(29, 1), (56, 1), (20, 1), (29, 0), (56, 0), (20, 0)]); // ctrl+alt+t
    for k in [102, 96, 125] {
        tap(&mut want, k);
    }
    let got: Vec<(u32, i32)> = keys(
        &con.events(want.len(), Duration::from_secs(60))
            .into_iter()
            .filter(|e| e.0 == kbd)
            .collect::<Vec<_>>(),
    );
    assert_eq!(got, want, "key codes and order");

    // Absolute pointer at known window coordinates: 1:1 first, then letterboxed in a 1280x800 window.
    for (wx, wy, size) in [
        (100u32, 50u32, (GW, GH)),
        (700, 300, (GW, GH)),
        (640, 400, (1280, 800)),
        (1000, 700, (1280, 800)),
    ] {
        if size.0 != GW {
            xdo(&x, &["windowsize", "--sync", &wid, "1280", "800"]);
            std::thread::sleep(Duration::from_millis(500));
            con.events(1000, Duration::from_millis(500));
        }
        let p = vmgpu::viewer::scale::Placement::fit((GW, GH), size);
        let (fx, fy) = p.to_frame(wx, wy, (GW, GH)).unwrap();
        xdo(
            &x,
            &["mousemove", "--sync", &wx.to_string(), &wy.to_string()],
        );
        let evs = con.events(2, Duration::from_secs(20));
        let last = |axis: u32| {
            evs.iter()
                .rev()
                .find(|e| e.0 == tablet && e.1 == "ABS" && e.2 == axis)
                .map(|e| e.3)
        };
        let (ax, ay) = (last(0).expect("ABS_X"), last(1).expect("ABS_Y"));
        let gx = ax as f64 * GW as f64 / 32767.0;
        let gy = ay as f64 * GH as f64 / 32767.0;
        assert!(
            (gx - fx as f64).abs() <= 1.0 && (gy - fy as f64).abs() <= 1.0,
            "window ({wx},{wy}) → frame ({fx},{fy}), guest ({gx:.1},{gy:.1})"
        );
    }
    xdo(&x, &["click", "1"]);
    xdo(&x, &["click", "3"]);
    xdo(&x, &["click", "4"]);
    let evs = con.events(5, Duration::from_secs(20));
    let btn: Vec<(u32, i32)> = keys(
        &evs.iter()
            .filter(|e| e.0 == tablet)
            .cloned()
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        btn,
        [(272, 1), (272, 0), (273, 1), (273, 0)],
        "left and right click"
    );
    assert!(
        evs.iter()
            .any(|e| e.0 == tablet && e.1 == "REL" && e.2 == 8 && e.3 == 1),
        "one wheel notch up: {evs:?}"
    );

    // Focus loss in the middle of Ctrl+Alt: both released in the guest, nothing stuck.
    xdo(&x, &["keydown", "ctrl"]);
    xdo(&x, &["keydown", "alt"]);
    let other = Killed(
        Command::new("xmessage")
            .args(["-geometry", "+900+700", "other"])
            .env("DISPLAY", &x.display)
            .spawn()
            .unwrap(),
    );
    let other_id = {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let out = Command::new("xdotool")
                .args(["search", "--name", "xmessage"])
                .env("DISPLAY", &x.display)
                .output()
                .unwrap();
            if let Some(id) = String::from_utf8_lossy(&out.stdout).lines().next() {
                break id.to_string();
            }
            assert!(Instant::now() < end, "no xmessage window");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    xdo(&x, &["windowfocus", "--sync", &other_id]);
    xdo(&x, &["keyup", "alt"]);
    xdo(&x, &["keyup", "ctrl"]);
    let got = keys(
        &con.events(4, Duration::from_secs(10))
            .into_iter()
            .filter(|e| e.0 == kbd)
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        got,
        [(29, 1), (56, 1), (56, 0), (29, 0)],
        "released on focus loss"
    );
    drop(other);

    // The escape key toggles the capture and never reaches the guest.
    xdo(&x, &["windowfocus", "--sync", &wid]);
    xdo(&x, &["key", "Scroll_Lock"]);
    wait_title(&x, &wid, "input captured (ScrollLock releases)");
    xdo(&x, &["key", "Scroll_Lock"]);
    wait_title(&x, &wid, "keys and mouse go to the VM");
    let got = keys(
        &con.events(1, Duration::from_secs(3))
            .into_iter()
            .filter(|e| e.0 == kbd)
            .collect::<Vec<_>>(),
    );
    assert!(
        got.iter().all(|(k, _)| *k != 70),
        "Scroll Lock reached the guest: {got:?}"
    );
    let err_text = std::fs::read_to_string(&err).unwrap_or_default();
    assert!(!err_text.contains("panicked"), "{err_text}");
}

/// Asks QEMU's monitor (HMP on a unix socket) for a screendump of the guest's display into `ppm`.
fn screendump(monitor: &Path, ppm: &Path) {
    use std::io::{Read, Write};
    let _ = std::fs::remove_file(ppm);
    let mut s = std::os::unix::net::UnixStream::connect(monitor).expect("QEMU monitor");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    writeln!(s, "screendump {}", ppm.display()).unwrap();
    let mut sink = [0u8; 4096];
    let end = Instant::now() + Duration::from_secs(20);
    // Wait until the file is complete: a P6 720×400 image.
    while std::fs::metadata(ppm).map_or(true, |m| m.len() < (GW * GH * 3) as u64) {
        assert!(Instant::now() < end, "no screendump in {}", ppm.display());
        let _ = s.read(&mut sink);
    }
    std::thread::sleep(Duration::from_millis(200));
}

/// The SPICE display of a real QEMU guest (std VGA, text mode) in the real viewer is pixel-identical to QEMU's
/// own screendump of the same moment; a Looking Glass producer takes the window over, and when it stops the
/// SPICE display is back, again identical to the screendump.
#[test]
#[ignore = "needs QEMU, a guest kernel and Xvfb: tests/harness/45-spice-input.sh"]
fn spice_live_display_matches_qemu_screendump() {
    use super::viewer_x11::{Viewer, differing_pixels, screenshot};
    let dir = shm_dir();
    let port = free_port();
    let pwfile = password_file(dir.path());
    let serial = dir.path().join("serial.log");
    let monitor = dir.path().join("monitor.sock");
    let monitor_arg = format!("unix:{},server=on,wait=off", monitor.display());
    // The kernel writes only to the serial line and hides the VGA cursor: a still screen to compare.
    let _qemu = harness_guest(
        dir.path(),
        port,
        &serial,
        &["-monitor", &monitor_arg],
        "vt.global_cursor_default=0",
    );
    let con = Console {
        path: serial,
        seen: 0,
    };
    con.wait_line("EVDEV-READY", Duration::from_secs(240));

    let x = XServer::start();
    let lg = dir.path().join("lg");
    let map = Arc::new(ShmMap::create(&lg, 32 << 20).unwrap());
    let spice = format!("127.0.0.1:{port}");
    let mut v = Viewer::start_extra(
        &lg,
        dir.path(),
        &[("DISPLAY", x.display.as_str())],
        &[
            "--spice",
            &spice,
            "--spice-password-file",
            pwfile.to_str().unwrap(),
        ],
    );
    v.wait("the guest's SPICE display", |p| {
        p.source == "spice" && p.size == (GW, GH)
    });
    std::thread::sleep(vmgpu::viewer::feed::BANNER_TIME + Duration::from_millis(700));
    let compare = |what: &str| {
        let ppm = dir.path().join("qemu.ppm");
        let mut diff = u64::MAX;
        for _ in 0..10 {
            screendump(&monitor, &ppm);
            let bytes = std::fs::read(&ppm).unwrap();
            let lit = bytes[bytes.len() - (GW * GH * 3) as usize..]
                .iter()
                .filter(|&&b| b != 0)
                .count();
            assert!(
                lit > 1000,
                "{what}: the guest's screen is blank ({lit} lit bytes): nothing to compare"
            );
            diff = differing_pixels(&ppm, &screenshot(&x, dir.path(), GW, GH));
            if diff == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let keep = std::env::temp_dir().join(format!("spice-live-{}.png", what.replace(' ', "-")));
        let _ = std::fs::copy(dir.path().join("shot.png"), &keep);
        panic!(
            "{what}: {diff} pixels differ from QEMU's screendump (window: {})",
            keep.display()
        );
    };
    compare("spice display");

    let producer = Producer::start(map, ProducerConfig::default()).unwrap();
    assert!(
        producer.wait_for_client(Duration::from_secs(30)),
        "{}",
        v.stderr_text()
    );
    let (desc, pixels) = scene::test_pattern(FrameType::Bgra, 640, 360, 32, 3);
    let serial = producer.send_frame(&desc, &pixels).unwrap().serial;
    v.wait("the Looking Glass frame", |p| {
        p.source == "looking-glass" && p.serial == Some(serial)
    });
    drop(producer);
    v.wait("the SPICE display again", |p| {
        p.source == "spice" && p.size == (GW, GH)
    });
    compare("spice display after looking glass");
}
