//! The real viewer as a native Wayland client of weston nested in Xvfb (x11 backend, pixman renderer, kiosk
//! shell): the frame shown pixel-exact except weston's own pointer sprite. Run by tests/harness/40-viewer-x11.sh.
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::lg::MIB;
use super::viewer_x11::{
    Viewer, XServer, differing_pixels, pattern_pixels, screenshot, shm_dir, write_ppm,
};
use vmgpu::lg::kvmfr::FrameType;
use vmgpu::lg::producer::{Producer, ProducerConfig};
use vmgpu::lg::scene;
use vmgpu::shm::ShmMap;

/// weston's pointer sprite sits over the output (docs/rust-deps.md §4 measured 228 px); nothing else may differ.
const POINTER_SPRITE_PX: u64 = 400;

pub struct Weston(Child);

impl Drop for Weston {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start_weston(x: &XServer, runtime: &Path, socket: &str, w: u32, h: u32) -> Weston {
    let child = Command::new("weston")
        .args([
            "--backend=x11-backend.so",
            "--use-pixman",
            "--shell=kiosk-shell.so",
            "--idle-time=0",
        ])
        .arg(format!("--width={w}"))
        .arg(format!("--height={h}"))
        .arg(format!("--socket={socket}"))
        .env("DISPLAY", &x.display)
        .env("XDG_RUNTIME_DIR", runtime)
        .env_remove("WAYLAND_DISPLAY")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(runtime.join("weston.log")).unwrap())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    while !runtime.join(socket).exists() {
        assert!(
            Instant::now() < end,
            "weston did not start: {}",
            std::fs::read_to_string(runtime.join("weston.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Weston(child)
}

#[test]
#[ignore = "needs Xvfb and weston: tests/harness/40-viewer-x11.sh"]
fn test_wayland_frame_is_pixel_exact_under_weston() {
    let (w, h) = (480u32, 270u32);
    let x = XServer::start();
    let runtime = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        runtime.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let socket = format!("wayland-vmgpu-{}", std::process::id());
    let _weston = start_weston(&x, runtime.path(), &socket, w, h);
    let dir = shm_dir();
    let shm = dir.path().join("lg");
    let map = Arc::new(ShmMap::create(&shm, 32 * MIB as u64).unwrap());
    let producer = Producer::start(map, ProducerConfig::default()).unwrap();
    let runtime_dir = runtime.path().display().to_string();
    let mut v = Viewer::start_with(
        &shm,
        dir.path(),
        &[
            ("WAYLAND_DISPLAY", socket.as_str()),
            ("XDG_RUNTIME_DIR", runtime_dir.as_str()),
        ],
    );
    assert!(
        producer.wait_for_client(Duration::from_secs(20)),
        "{}",
        v.stderr_text()
    );
    let (desc, pixels) = scene::test_pattern(FrameType::Bgra, w, h, 0, 11);
    let serial = producer.send_frame(&desc, &pixels).unwrap().serial;
    v.wait("the frame on Wayland", |p| {
        p.serial == Some(serial) && p.size == (w, h)
    });
    let expected = dir.path().join("expected.ppm");
    write_ppm(&expected, w, h, &pattern_pixels(FrameType::Bgra, w, h, 11));
    let mut diff = u64::MAX;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(100));
        diff = differing_pixels(&expected, &screenshot(&x, dir.path(), w, h));
        if diff <= POINTER_SPRITE_PX {
            break;
        }
    }
    assert!(
        diff <= POINTER_SPRITE_PX,
        "{diff} pixels differ under weston; viewer stderr: {}",
        v.stderr_text()
    );
}
