//! One window, two sources, on a real X server (Xvfb): the real `vmgpu view` shows a scripted SPICE server's
//! display while no Looking Glass frames flow, switches to the producer's frames as soon as one arrives, and
//! back to the SPICE display when the producer stops; each screen compared pixel-exact. A hostile display
//! message only costs a display relink: the window stays up and shows the next clean screen. Prints the switch
//! times (the README's numbers). Run by tests/harness/40-viewer-x11.sh (`--ignored`).
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::lg::MIB;
use super::spice_display_fake::{drain, draw_copy, mark, serve_display, set_ack, surface_create};
use super::viewer_x11::{Viewer, XServer, assert_screen, pattern_pixels, shm_dir};
use vmgpu::lg::kvmfr::FrameType;
use vmgpu::lg::producer::{Producer, ProducerConfig};
use vmgpu::lg::scene;
use vmgpu::shm::ShmMap;

const SW: u32 = 320;
const SH: u32 = 200;

/// The SPICE screen of display link `n`: a pattern that differs per link.
fn spice_pixels(n: u32) -> Vec<u32> {
    (0..SH)
        .flat_map(|y| {
            (0..SW).map(move |x| {
                ((x * 7 + n * 40) & 0xff) << 16 | ((y * 5) & 0xff) << 8 | (x ^ y) & 0xff
            })
        })
        .collect()
}

#[test]
#[ignore = "needs Xvfb: tests/harness/40-viewer-x11.sh"]
fn test_x11_spice_display_until_looking_glass_and_back() {
    let x = XServer::start();
    let dir = shm_dir();
    let shm = dir.path().join("lg");
    let map = Arc::new(ShmMap::create(&shm, 32 * MIB as u64).unwrap());
    // Link 0 draws the screen in two halves (clipless copies), then a hostile surface after a while; link 1
    // (the relink) draws the second pattern.
    let (port, links) = serve_display(Arc::new(|s: &mut TcpStream, n| {
        let px = spice_pixels(n);
        let mut out = set_ack();
        out.extend(surface_create(0, SW, SH));
        let half = (SH / 2) as usize * SW as usize;
        out.extend(draw_copy(0, 0, SW, SH / 2, &px[..half]));
        out.extend(draw_copy(0, (SH / 2) as i32, SW, SH / 2, &px[half..]));
        out.extend(mark());
        let _ = s.write_all(&out);
        if n == 0 {
            // Wait for the test to look at the LG part, then misbehave.
            std::thread::sleep(Duration::from_secs(12));
            let _ = s.write_all(&surface_create(0, 65536, 65536));
        }
        drain(s);
    }));
    let spice = format!("127.0.0.1:{port}");
    let mut v = Viewer::start_extra(
        &shm,
        dir.path(),
        &[("DISPLAY", x.display.as_str())],
        &["--spice", &spice],
    );
    v.wait("the SPICE display", |p| {
        p.source == "spice" && p.size == (SW, SH)
    });
    // The input hint banner covers the top until it expires.
    std::thread::sleep(vmgpu::viewer::feed::BANNER_TIME + Duration::from_millis(700));
    assert_screen(&x, dir.path(), SW, SH, &spice_pixels(0), "spice display");

    let producer = Producer::start(map.clone(), ProducerConfig::default()).unwrap();
    assert!(
        producer.wait_for_client(Duration::from_secs(20)),
        "{}",
        v.stderr_text()
    );
    let (w, h) = (480, 270);
    let (desc, pixels) = scene::test_pattern(FrameType::Bgra, w, h, 32, 9);
    let sent = Instant::now();
    let serial = producer.send_frame(&desc, &pixels).unwrap().serial;
    v.wait("the Looking Glass frame", |p| {
        p.source == "looking-glass" && p.serial == Some(serial) && p.size == (w, h)
    });
    let to_lg = sent.elapsed();
    assert_screen(
        &x,
        dir.path(),
        w,
        h,
        &pattern_pixels(FrameType::Bgra, w, h, 9),
        "looking glass over spice",
    );

    let stopped = Instant::now();
    drop(producer);
    v.wait("the SPICE display again", |p| {
        p.source == "spice" && p.size == (SW, SH)
    });
    let to_spice = stopped.elapsed();
    assert_screen(&x, dir.path(), SW, SH, &spice_pixels(0), "spice after lg");
    eprintln!(
        "switch SPICE → LG after the first frame: {:.1} ms; LG → SPICE after the host stopped: {:.0} ms",
        to_lg.as_secs_f64() * 1e3,
        to_spice.as_secs_f64() * 1e3
    );

    // The hostile surface: the display is relinked, the window keeps running and shows link 1's screen.
    let end = Instant::now() + Duration::from_secs(30);
    while links.load(std::sync::atomic::Ordering::SeqCst) < 2 {
        assert!(Instant::now() < end, "no relink; {}", v.stderr_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    v.wait("the relinked display", |p| {
        p.source == "spice" && p.spice >= 4
    });
    assert_screen(
        &x,
        dir.path(),
        SW,
        SH,
        &spice_pixels(1),
        "spice after relink",
    );
    assert!(
        v.stderr_text().contains("65536x65536"),
        "one line names the bad surface: {}",
        v.stderr_text()
    );
}
