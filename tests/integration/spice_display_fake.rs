//! The SPICE display channel against a scripted server: the client asks for uncompressed bitmaps, draws
//! surfaces exactly, and a malformed or undecodable display message costs a display relink (a full refresh),
//! never the session, the inputs or a panic.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::spice_fake::{accept_link, init, msg, serve, session, wait_for};
use vmgpu::spice::{Session, Status};

/// SURFACE_CREATE of a primary 32-bit surface.
pub fn surface_create(id: u32, w: u32, h: u32) -> Vec<u8> {
    let body: Vec<u8> = [id, w, h, 32, 1]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    msg(314, &body)
}

/// DRAW_COPY of `pixels` (0x00RRGGBB, `w × h`) to (x, y) of surface 0 as a 32-bit top-down bitmap.
pub fn draw_copy(x: i32, y: i32, w: u32, h: u32, pixels: &[u32]) -> Vec<u8> {
    let mut b = 0u32.to_le_bytes().to_vec();
    for v in [y, x, y + h as i32, x + w as i32] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.push(0); // clip NONE
    b.extend_from_slice(&57u32.to_le_bytes());
    for v in [0i32, 0, h as i32, w as i32] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&8u16.to_le_bytes()); // OP_PUT
    b.extend_from_slice(&[0; 14]); // scale mode, mask
    b.extend_from_slice(&0x1_0000_0002u64.to_le_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&w.to_le_bytes());
    b.extend_from_slice(&h.to_le_bytes());
    b.extend_from_slice(&[8, 4]); // 32BIT, TOP_DOWN
    for v in [w, h, w * 4, 0] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for p in pixels {
        b.extend_from_slice(&p.to_le_bytes());
    }
    msg(304, &b)
}

/// MARK.
pub fn mark() -> Vec<u8> {
    msg(102, &[])
}

/// SET_ACK(1, 20).
pub fn set_ack() -> Vec<u8> {
    msg(3, &[1, 0, 0, 0, 20, 0, 0, 0])
}

/// Reads one client message: (type, body).
pub fn read_msg(s: &mut TcpStream) -> std::io::Result<(u16, Vec<u8>)> {
    let mut h = [0u8; 6];
    s.read_exact(&mut h)?;
    let size = u32::from_le_bytes(h[2..6].try_into().unwrap()) as usize;
    let mut body = vec![0u8; size];
    s.read_exact(&mut body)?;
    Ok((u16::from_le_bytes([h[0], h[1]]), body))
}

/// What a display link's script gets: the socket and how many display links came before this one.
pub type DisplayScript = dyn Fn(&mut TcpStream, u32) + Send + Sync;

/// A scripted SPICE server: main (INIT, CHANNELS_LIST with display and inputs), inputs (silent), and each
/// display link handed to `display` after the client's INIT and PREFERRED_COMPRESSION (checked here).
/// Returns the port and the display link counter.
pub fn serve_display(display: Arc<DisplayScript>) -> (u16, Arc<AtomicU32>) {
    serve_display_and_cursor(display, Arc::new(|s: &mut TcpStream, _| drain(s))).0
}

/// [`serve_display`] plus a cursor channel whose links go to `cursor`; returns the port, the display link
/// counter and the cursor link counter.
pub fn serve_display_and_cursor(
    display: Arc<DisplayScript>,
    cursor: Arc<DisplayScript>,
) -> ((u16, Arc<AtomicU32>), Arc<AtomicU32>) {
    let links = Arc::new(AtomicU32::new(0));
    let counter = links.clone();
    let cursor_links = Arc::new(AtomicU32::new(0));
    let cursor_counter = cursor_links.clone();
    let (port, _) = serve(move |mut s| {
        let Ok(kind) = accept_link(&mut s, 0x0f) else {
            return;
        };
        match kind {
            1 => {
                let _ = s.write_all(&init(0x77, 3, 2));
                while let Ok((k, _)) = read_msg(&mut s) {
                    if k == 104 {
                        let _ = s.write_all(&msg(104, &[3, 0, 0, 0, 2, 0, 3, 0, 4, 0]));
                    }
                }
            }
            2 => {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let first = read_msg(&mut s);
                let second = read_msg(&mut s);
                let (Ok(first), Ok(second)) = (first, second) else {
                    return;
                };
                assert_eq!(first, (101, vec![0; 14]), "DISPLAY_INIT, nothing cached");
                assert_eq!(second, (103, vec![1]), "PREFERRED_COMPRESSION OFF");
                display(&mut s, n);
            }
            4 => {
                let n = cursor_counter.fetch_add(1, Ordering::SeqCst);
                cursor(&mut s, n);
            }
            _ => while read_msg(&mut s).is_ok() {},
        }
    });
    ((port, links), cursor_links)
}

/// Reads (ACKs, PONGs) until the client closes.
pub fn drain(s: &mut TcpStream) {
    while read_msg(s).is_ok() {}
}

fn primary(s: &Session) -> Option<(u32, u32, Vec<u32>)> {
    let screen = s.screen();
    let screen = screen.lock().unwrap();
    screen
        .primary()
        .map(|p| (p.width, p.height, p.pixels.clone()))
}

fn wait_primary(s: &Session, what: &str, want: impl Fn(&(u32, u32, Vec<u32>)) -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if primary(s).is_some_and(|p| want(&p)) {
            return;
        }
        assert!(
            Instant::now() < end,
            "waiting for {what}: {:?}",
            primary(s).map(|p| (p.0, p.1))
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn spice_display_draws_surfaces_exactly() {
    let acks = Arc::new(Mutex::new(Vec::new()));
    let seen = acks.clone();
    let (port, links) = serve_display(Arc::new(move |s: &mut TcpStream, _| {
        let mut out = set_ack();
        out.extend(surface_create(0, 8, 4));
        out.extend(draw_copy(0, 0, 8, 4, &[0x00_10_20_30; 32]));
        out.extend(mark());
        for i in 0..30u32 {
            out.extend(draw_copy((i % 8) as i32, 1, 1, 1, &[0x00ff_0000 | i]));
        }
        let _ = s.write_all(&out);
        while let Ok((k, b)) = read_msg(s) {
            seen.lock().unwrap().push((k, b));
        }
    }));
    let s = session(port);
    wait_for(&s, "connected", |st| *st == Status::Connected);
    wait_primary(&s, "the last update", |(w, h, p)| {
        (*w, *h) == (8, 4) && p[8 + 5] == 0x00ff_001d
    });
    let (_, _, p) = primary(&s).unwrap();
    assert_eq!(p[0], 0x0010_2030);
    assert_eq!(p[8], 0x00ff_0018);
    assert_eq!(p[16..], [0x0010_2030; 16]);
    // ACK_SYNC, then one ACK after 20 messages.
    let end = Instant::now() + Duration::from_secs(10);
    while acks.lock().unwrap().len() < 2 {
        assert!(Instant::now() < end, "acks: {:?}", acks.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        acks.lock().unwrap()[..2],
        [(1, vec![1, 0, 0, 0]), (2, vec![])]
    );
    assert_eq!(links.load(Ordering::SeqCst), 1);
}

/// Each hostile display message: the screen never shows it, the display is relinked (the server sends
/// everything again), the session and its inputs stay connected.
#[test]
fn spice_display_hostile_messages_cost_a_relink_only() {
    let mut oversized_stride = draw_copy(0, 0, 2, 2, &[1; 4]);
    let at = 6 + 57 + 28;
    oversized_stride[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut lying_clip = draw_copy(0, 0, 2, 2, &[1; 4]);
    lying_clip[6 + 20] = 1; // RECTS with a count from the next bytes: far more than the body holds
    let mut compressed = draw_copy(0, 0, 2, 2, &[1; 4]);
    compressed[6 + 57 + 8] = 101; // LZ_RGB
    let cases: Vec<Vec<u8>> = vec![
        surface_create(0, 0, 0),
        surface_create(0, 65536, 65536),
        oversized_stride,
        lying_clip,
        msg(304, &[0; 30]),
        compressed,
    ];
    let cases = Arc::new(cases);
    let script_cases = cases.clone();
    let (port, links) = serve_display(Arc::new(move |s: &mut TcpStream, n| {
        let mut out = set_ack();
        out.extend(surface_create(0, 2, 2));
        out.extend(draw_copy(0, 0, 2, 2, &[n; 4]));
        out.extend(mark());
        if let Some(bad) = script_cases.get(n as usize) {
            out.extend(bad);
            out.extend(draw_copy(0, 0, 2, 2, &[0xdead; 4]));
        }
        let _ = s.write_all(&out);
        drain(s);
    }));
    let s = session(port);
    wait_for(&s, "connected", |st| *st == Status::Connected);
    let last = cases.len() as u32;
    let end = Instant::now() + Duration::from_secs(60);
    while links.load(Ordering::SeqCst) <= last {
        assert!(
            Instant::now() < end,
            "relinks so far: {}",
            links.load(Ordering::SeqCst)
        );
        assert_eq!(s.state().status, Status::Connected, "the session stays up");
        if let Some((_, _, p)) = primary(&s) {
            assert!(!p.contains(&0xdead), "nothing after a bad message is drawn");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_primary(&s, "the clean screen after the last relink", |(_, _, p)| {
        *p == [last; 4]
    });
    assert_eq!(s.state().status, Status::Connected);
}

/// CURSOR_SET body: hot-spot position, visible, a new ALPHA cursor `w × h` (B,G,R,A) with hot spot `hot`.
fn cursor_set(x: i16, y: i16, w: u16, h: u16, hot: (u16, u16), bgra: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&x.to_le_bytes());
    b.extend_from_slice(&y.to_le_bytes());
    b.push(1);
    b.extend_from_slice(&2u16.to_le_bytes()); // CACHE_ME
    b.extend_from_slice(&9u64.to_le_bytes());
    b.push(0); // ALPHA
    for v in [w, h, hot.0, hot.1] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(bgra);
    msg(103, &b)
}

/// The cursor channel: SET and MOVE reach the session's cursor state (top-left = position − hot spot); a
/// 0×0 cursor costs a cursor relink only.
#[test]
fn spice_cursor_set_move_and_hostile_shape() {
    let ((port, _), cursor_links) = serve_display_and_cursor(
        Arc::new(|s: &mut TcpStream, _| {
            let mut out = set_ack();
            out.extend(surface_create(0, 8, 8));
            out.extend(mark());
            let _ = s.write_all(&out);
            drain(s);
        }),
        Arc::new(|s: &mut TcpStream, n| {
            let mut out = set_ack();
            if n == 0 {
                out.extend(cursor_set(5, 5, 2, 2, (1, 1), &[0xff; 16]));
                out.extend(msg(104, &[3, 0, 4, 0]));
                let _ = s.write_all(&out);
                std::thread::sleep(Duration::from_secs(3));
                let _ = s.write_all(&cursor_set(0, 0, 0, 0, (0, 0), &[]));
            } else {
                out.extend(cursor_set(1, 1, 1, 1, (0, 0), &[0, 0, 0xff, 0xff]));
                let _ = s.write_all(&out);
            }
            drain(s);
        }),
    );
    let s = session(port);
    wait_for(&s, "connected", |st| *st == Status::Connected);
    let cursor = s.cursor();
    let wait = |what: &str, want: &dyn Fn(&vmgpu::lg::kvmfr::CursorState) -> bool| {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let state = cursor.lock().unwrap().state.clone();
            if want(&state) {
                return;
            }
            assert!(Instant::now() < end, "waiting for {what}: {state:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait("the moved cursor", &|c| {
        c.visible && c.position == (2, 3) && c.shape.as_ref().is_some_and(|s| s.width == 2)
    });
    wait("the cursor of the relinked channel", &|c| {
        c.position == (1, 1) && c.shape.as_ref().is_some_and(|s| s.width == 1)
    });
    assert_eq!(cursor_links.load(Ordering::SeqCst), 2);
    assert_eq!(s.state().status, Status::Connected);
}
