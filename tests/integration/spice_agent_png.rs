//! Clipboard images (IMAGE_PNG) against the scripted agent of `spice_agent_fake`: the guest's PNG reaches the
//! host side as exactly its RGBA pixels, and a host image reaches the agent as a PNG that decodes (with the
//! `png` crate directly, not our decoder) to exactly its pixels; a corrupt PNG, a PNG whose header declares
//! 2 GiB of pixels and an agent message announced at 2 GiB each cost one log line and the item, never the
//! session. The real X clipboard (`xclip -t image/png`) is `viewer_clipboard_x11_png_both_ways`.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::spice_agent_fake::{FakeAgent, serve_agent, session_with};
use vmgpu::spice::agent::{self, Selection};
use vmgpu::spice::{HostClipboard, RgbaImage, Status};

/// A test image: its PNG file and the RGBA pixels it must decode to.
pub struct TestPng {
    pub png: Vec<u8>,
    pub rgba: RgbaImage,
}

fn noise(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect()
}

fn encode(w: u32, h: u32, color: png::ColorType, depth: png::BitDepth, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = png::Encoder::new(&mut out, w, h);
    e.set_color(color);
    e.set_depth(depth);
    let mut wr = e.write_header().unwrap();
    wr.write_image_data(data).unwrap();
    wr.finish().unwrap();
    out
}

/// 8-bit images of each colour type, odd sizes, noise (incompressible) and every alpha value.
pub fn test_pngs() -> Vec<TestPng> {
    let mut out = Vec::new();
    let (w, h) = (301, 203);
    let rgba = noise(w * h * 4, 1);
    out.push(TestPng {
        png: encode(
            w as u32,
            h as u32,
            png::ColorType::Rgba,
            png::BitDepth::Eight,
            &rgba,
        ),
        rgba: RgbaImage {
            width: w as u32,
            height: h as u32,
            pixels: rgba,
        },
    });
    let (w, h) = (97, 61);
    let rgb = noise(w * h * 3, 2);
    out.push(TestPng {
        png: encode(
            w as u32,
            h as u32,
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            &rgb,
        ),
        rgba: RgbaImage {
            width: w as u32,
            height: h as u32,
            pixels: rgb
                .chunks(3)
                .flat_map(|p| [p[0], p[1], p[2], 255])
                .collect(),
        },
    });
    let ga: Vec<u8> = (0..=255u8).flat_map(|a| [a / 2, a]).collect();
    out.push(TestPng {
        png: encode(
            16,
            16,
            png::ColorType::GrayscaleAlpha,
            png::BitDepth::Eight,
            &ga,
        ),
        rgba: RgbaImage {
            width: 16,
            height: 16,
            pixels: ga
                .chunks(2)
                .flat_map(|p| [p[0], p[0], p[0], p[1]])
                .collect(),
        },
    });
    out
}

/// Decodes a PNG to RGBA8 with the `png` crate alone (8-bit RGB or RGBA, as an encoder of RGBA writes).
pub fn decode_rgba(bytes: &[u8]) -> RgbaImage {
    let mut d = png::Decoder::new(std::io::Cursor::new(bytes));
    d.set_transformations(png::Transformations::EXPAND);
    let mut r = d.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let f = r.next_frame(&mut buf).unwrap();
    buf.truncate(f.buffer_size());
    let pixels = match (f.color_type, f.bit_depth) {
        (png::ColorType::Rgba, png::BitDepth::Eight) => buf,
        (png::ColorType::Rgb, png::BitDepth::Eight) => buf
            .chunks(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        other => panic!("unexpected PNG output {other:?}"),
    };
    RgbaImage {
        width: f.width,
        height: f.height,
        pixels,
    }
}

/// A valid PNG whose header declares 16384 × 32768 pixels: 2 GiB as RGBA.
pub fn png_declaring_2_gib() -> Vec<u8> {
    let mut p = encode(
        1,
        1,
        png::ColorType::Rgba,
        png::BitDepth::Eight,
        &[1, 2, 3, 4],
    );
    p[16..20].copy_from_slice(&16_384u32.to_be_bytes());
    p[20..24].copy_from_slice(&32_768u32.to_be_bytes());
    let crc = crc32(&p[12..29]);
    p[29..33].copy_from_slice(&crc.to_be_bytes());
    p
}

/// CRC-32 of a PNG chunk's type and data (to forge a valid IHDR).
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A host side that prefers images: records the guest's and serves a fixed host image.
#[derive(Clone, Default)]
struct ImageHost {
    got: Arc<Mutex<Vec<RgbaImage>>>,
    host: Arc<Mutex<Option<RgbaImage>>>,
}

impl HostClipboard for ImageHost {
    fn agent_ready(&mut self) -> Vec<u32> {
        Vec::new()
    }
    fn guest_grabbed(&mut self, types: &[u32]) -> Option<u32> {
        types.contains(&2).then_some(2)
    }
    fn guest_data(&mut self, _kind: u32, _data: Vec<u8>) {
        panic!("no text in this test");
    }
    fn guest_image(&mut self, image: RgbaImage) {
        self.got.lock().unwrap().push(image);
    }
    fn guest_released(&mut self) {}
    fn host_data(&mut self, _kind: u32) -> Option<Vec<u8>> {
        None
    }
    fn host_image(&mut self) -> Option<RgbaImage> {
        self.host.lock().unwrap().clone()
    }
}

impl ImageHost {
    fn wait_for(&self, n: usize) -> Vec<RgbaImage> {
        let end = Instant::now() + Duration::from_secs(60);
        while self.got.lock().unwrap().len() < n {
            assert!(Instant::now() < end, "waiting for guest image #{n}");
            std::thread::sleep(Duration::from_millis(10));
        }
        self.got.lock().unwrap().clone()
    }
}

/// Start-up with an agent that has BY_DEMAND + SELECTION + MAX_CLIPBOARD: told our 16 MiB limit.
fn handshake_max(a: &mut FakeAgent) {
    let (kind, _) = a.next_agent();
    assert_eq!(kind, 6, "ANNOUNCE_CAPABILITIES");
    let mut d = 0u32.to_le_bytes().to_vec();
    d.extend_from_slice(&(0x60u32 | 1 << 10).to_le_bytes());
    a.send_agent(&agent::encode(6, &d));
    assert_eq!(
        a.next_agent(),
        (14, (16i32 << 20).to_le_bytes().to_vec()),
        "MAX_CLIPBOARD"
    );
}

/// The guest grabs with PNG (among others), we request PNG, and it sends `png`.
fn guest_sends(a: &mut FakeAgent, png: &[u8]) {
    a.send_agent(&agent::grab(Selection::Clipboard, &[3, 2], true));
    assert_eq!(
        a.next_agent(),
        (8, vec![0, 0, 0, 0, 2, 0, 0, 0]),
        "REQUEST(clipboard, PNG)"
    );
    a.send_agent(&agent::clipboard(Selection::Clipboard, 2, png, true));
}

#[test]
fn spice_agent_png_both_ways_pixel_exact() {
    let (port, rx) = serve_agent(1);
    let host = ImageHost::default();
    let s = session_with(port, Some(Box::new(host.clone())));
    let mut a = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    handshake_max(&mut a);
    let images = test_pngs();
    for (n, t) in images.iter().enumerate() {
        guest_sends(&mut a, &t.png);
        let got = host.wait_for(n + 1);
        assert!(got[n] == t.rgba, "guest image #{n}: {:?} differs", got[n]);
    }
    for (n, t) in images.iter().enumerate() {
        *host.host.lock().unwrap() = Some(t.rgba.clone());
        s.clipboard().announce(&[2]);
        assert_eq!(
            a.next_agent(),
            (7, vec![0, 0, 0, 0, 2, 0, 0, 0]),
            "GRAB(PNG)"
        );
        a.send_agent(&agent::request(Selection::Clipboard, 2, true));
        let (kind, data) = a.next_agent();
        assert_eq!((kind, &data[..8]), (4, &[0, 0, 0, 0, 2, 0, 0, 0][..]));
        assert!(decode_rgba(&data[8..]) == t.rgba, "host image #{n} differs");
    }
    // A host image over the caps: the guest's request is answered with NONE, the session goes on.
    *host.host.lock().unwrap() = Some(RgbaImage {
        width: 20_000,
        height: 1,
        pixels: vec![0; 80_000],
    });
    s.clipboard().announce(&[2]);
    assert_eq!(a.next_agent().0, 7);
    a.send_agent(&agent::request(Selection::Clipboard, 2, true));
    assert_eq!(a.next_agent(), (4, vec![0, 0, 0, 0, 0, 0, 0, 0]), "NONE");
    assert_eq!(s.state().status, Status::Connected);
}

#[test]
fn spice_agent_png_hostile_images_cost_the_item_not_the_session() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let (port, rx) = serve_agent(1);
    let host = ImageHost::default();
    let s = session_with(port, Some(Box::new(host.clone())));
    let mut a = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    handshake_max(&mut a);
    let good = &test_pngs()[0];
    // Not a PNG at all; a PNG cut short; a PNG with its pixel data flipped (bad zlib / CRC).
    guest_sends(&mut a, b"\x89PNG\r\n\x1a\nthis is not a png");
    let mut cut = good.png.clone();
    cut.truncate(cut.len() / 2);
    guest_sends(&mut a, &cut);
    let mut flipped = good.png.clone();
    for b in &mut flipped[100..200] {
        *b ^= 0x5a;
    }
    guest_sends(&mut a, &flipped);
    // A header declaring 2 GiB of pixels: refused before its buffer exists.
    guest_sends(&mut a, &png_declaring_2_gib());
    // An image message announced at 2 GiB: 300 bodies of it arrive, then the agent leaves mid-message.
    a.send_agent(&agent::grab(Selection::Clipboard, &[2], true));
    assert_eq!(a.next_agent().0, 8);
    let mut h = agent::clipboard(Selection::Clipboard, 2, &good.png[..100], true);
    h[16..20].copy_from_slice(&(2u32 << 30).to_le_bytes());
    a.send_bodies(&[&h[..120]]);
    let filler = vec![0x42; 2048];
    for _ in 0..300 {
        a.send_bodies(&[&filler]);
    }
    a.agent_restarts();
    handshake_max(&mut a);
    // PNG data nobody asked for.
    a.send_agent(&agent::clipboard(Selection::Clipboard, 2, &good.png, true));
    assert!(
        host.got.lock().unwrap().is_empty(),
        "nothing hostile reached the host"
    );
    // Same session, and images still work.
    guest_sends(&mut a, &good.png);
    assert!(host.wait_for(1)[0] == good.rgba);
    assert_eq!(s.state().status, Status::Connected);
    assert_eq!(s.state().sessions, 1, "no reconnect");
}
