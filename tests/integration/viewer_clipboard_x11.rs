//! The clipboard through the real X clipboard: the viewer's host side (`arboard`) on an Xvfb, `xclip` as the
//! host application, the scripted SPICE agent as the guest. Both ways, byte for byte, for every script in
//! [`TEXTS`] and a 1 MiB text, and images as `image/png` pixel-exact; and the no-agent notice. Run by tests/harness/40-viewer-x11.sh (`--ignored`).
//!
//! arboard reads `DISPLAY` from the environment, which a test must not change in a shared process: the outer
//! test starts Xvfb and runs the inner one in a child process of this test binary with `DISPLAY` set.
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::spice_agent_fake::{TEXTS, big_text, handshake, serve_agent, session_with};
use super::spice_agent_png::{decode_rgba, test_pngs};
use super::viewer_x11::XServer;
use vmgpu::spice::agent::{self, Selection};
use vmgpu::spice::{Endpoint, Status, Target};
use vmgpu::viewer::clipboard::HostBoard;
use vmgpu::viewer::input::{NO_AGENT, SpiceConfig};

const INNER: &str = "VMGPU_CLIPBOARD_X11_INNER";

#[test]
#[ignore = "needs Xvfb and xclip: tests/harness/40-viewer-x11.sh"]
fn viewer_clipboard_x11_xclip_both_ways() {
    run_inner("viewer_clipboard_x11::viewer_clipboard_x11_inner");
}

#[test]
#[ignore = "needs Xvfb and xclip: tests/harness/40-viewer-x11.sh"]
fn viewer_clipboard_x11_png_both_ways() {
    run_inner("viewer_clipboard_x11::viewer_clipboard_x11_png_inner");
}

/// Runs the inner test `name` in a child process of this test binary, on its own Xvfb.
fn run_inner(name: &str) {
    let x = XServer::start();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DISPLAY", &x.display)
        .env(INNER, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "inner test failed:\n{text}");
    assert!(text.contains("1 passed"), "the inner test ran:\n{text}");
}

fn xclip_out() -> Vec<u8> {
    xclip_out_as("UTF8_STRING")
}

/// The host clipboard as `target` (xclip's `-t`), empty when it has no such target.
fn xclip_out_as(target: &str) -> Vec<u8> {
    let out = Command::new("xclip")
        .args(["-o", "-selection", "clipboard", "-t", target])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    out.stdout
}

fn xclip_in(text: &[u8]) {
    xclip_in_as("UTF8_STRING", text);
}

/// Copies `data` as `target` (xclip's `-t`) to the host clipboard, like an application would.
fn xclip_in_as(target: &str, data: &[u8]) {
    let mut child = Command::new("xclip")
        .args(["-i", "-selection", "clipboard", "-t", target])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    // xclip forks a child that serves the selection and the parent exits.
    assert!(child.wait().unwrap().success());
}

#[test]
#[ignore = "child of viewer_clipboard_x11_xclip_both_ways"]
fn viewer_clipboard_x11_inner() {
    if std::env::var_os(INNER).is_none() {
        return;
    }
    let (port, rx) = serve_agent(1);
    let board = HostBoard::new();
    let s = session_with(port, Some(Box::new(board.clone())));
    let mut a = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    handshake(&mut a, 0x60);
    board.focus_changed(true, &s.clipboard());
    let big = big_text();
    let texts: Vec<&[u8]> = TEXTS
        .iter()
        .map(|t| t.as_bytes())
        .chain([big.as_bytes()])
        .collect();

    // Guest → host: the guest grabs, the focused window requests, xclip reads the host clipboard.
    for text in &texts {
        a.send_agent(&agent::grab(Selection::Clipboard, &[1], true));
        let (kind, data) = a.next_agent();
        assert_eq!((kind, data), (8, vec![0, 0, 0, 0, 1, 0, 0, 0]), "REQUEST");
        a.send_agent(&agent::clipboard(Selection::Clipboard, 1, text, true));
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let got = xclip_out();
            if got == *text {
                break;
            }
            assert!(
                Instant::now() < end,
                "xclip -o gave {} bytes, want {}",
                got.len(),
                text.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // Host → guest: xclip copies, the window gets focus, the guest is told (GRAB) and asks.
    for text in &texts {
        xclip_in(text);
        // xclip's serving child may not own the selection yet when its parent exits.
        let end = Instant::now() + Duration::from_secs(20);
        while xclip_out() != **text {
            assert!(Instant::now() < end, "xclip never served the text");
            std::thread::sleep(Duration::from_millis(20));
        }
        board.focus_changed(false, &s.clipboard());
        board.focus_changed(true, &s.clipboard());
        let (kind, data) = a.next_agent();
        assert_eq!((kind, data), (7, vec![0, 0, 0, 0, 1, 0, 0, 0]), "GRAB");
        a.send_agent(&agent::request(Selection::Clipboard, 1, true));
        let (kind, data) = a.next_agent();
        assert_eq!(kind, 4);
        assert_eq!(&data[..8], &[0, 0, 0, 0, 1, 0, 0, 0]);
        assert!(
            data[8..] == **text,
            "the guest got {} bytes, want {}",
            data.len() - 8,
            text.len()
        );
    }
    // Focus again with nothing new on the host clipboard: nothing is announced.
    board.focus_changed(false, &s.clipboard());
    board.focus_changed(true, &s.clipboard());
    a.send_agent(&agent::encode(6, &[1, 0, 0, 0, 0x60, 0, 0, 0]));
    assert_eq!(a.next_agent().0, 6, "no GRAB for an unchanged clipboard");
    // An agent announcing itself again (a new guest session agent) is told about the host clipboard again.
    assert_eq!(a.next_agent(), (7, vec![0, 0, 0, 0, 1, 0, 0, 0]), "GRAB");
    // The host clipboard emptied: the guest's copy of our announcement is released.
    xclip_in(b"");
    let end = Instant::now() + Duration::from_secs(20);
    while !xclip_out().is_empty() {
        assert!(Instant::now() < end, "xclip never served the empty text");
        std::thread::sleep(Duration::from_millis(20));
    }
    board.focus_changed(false, &s.clipboard());
    board.focus_changed(true, &s.clipboard());
    assert_eq!(a.next_agent(), (9, vec![0, 0, 0, 0]), "RELEASE");
    assert_eq!(s.state().status, Status::Connected);
    drop(s);

    // No agent in the guest: one notice, the session otherwise normal.
    let (port, rx) = serve_agent(0);
    std::thread::spawn(move || {
        if let Ok(a) = rx.recv_timeout(Duration::from_secs(20)) {
            a.serve_until_closed();
        }
    });
    let ep = Endpoint {
        target: Target::Tcp {
            host: "127.0.0.1".into(),
            port,
        },
        password: Vec::new(),
    };
    let config = SpiceConfig {
        resolve: Arc::new(move || Ok(ep.clone())),
        escape: winit::keyboard::KeyCode::ScrollLock,
        clipboard: true,
        playback: false,
        mic: false,
    };
    let mut c = config.start(Arc::new(|| {})).unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    while c.session().state().status != Status::Connected {
        assert!(Instant::now() < end, "never connected");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(c.agent_notice().as_deref(), Some(NO_AGENT));
    assert_eq!(c.agent_notice(), None, "once");
}

/// Images through the real X clipboard: the guest's PNG is served by arboard as `image/png` and `xclip -t
/// image/png -o` reads a PNG with exactly its pixels; a PNG copied with `xclip -t image/png -i` is announced as
/// IMAGE_PNG on focus and reaches the guest as a PNG with exactly its pixels; text still wins over an image.
#[test]
#[ignore = "child of viewer_clipboard_x11_png_both_ways"]
fn viewer_clipboard_x11_png_inner() {
    if std::env::var_os(INNER).is_none() {
        return;
    }
    let (port, rx) = serve_agent(1);
    let board = HostBoard::new();
    let s = session_with(port, Some(Box::new(board.clone())));
    let mut a = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    handshake(&mut a, 0x60);
    board.focus_changed(true, &s.clipboard());
    let images = test_pngs();

    // Guest → host: the guest grabs with PNG, the focused window requests it, xclip reads image/png.
    for (n, t) in images.iter().enumerate() {
        a.send_agent(&agent::grab(Selection::Clipboard, &[2], true));
        let (kind, data) = a.next_agent();
        assert_eq!(
            (kind, data),
            (8, vec![0, 0, 0, 0, 2, 0, 0, 0]),
            "REQUEST(PNG)"
        );
        a.send_agent(&agent::clipboard(Selection::Clipboard, 2, &t.png, true));
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let got = xclip_out_as("image/png");
            if !got.is_empty() && decode_rgba(&got) == t.rgba {
                break;
            }
            assert!(
                Instant::now() < end,
                "xclip -t image/png never gave image #{n} ({} bytes)",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // Host → guest: xclip copies a PNG, the window gets focus, the guest is told (GRAB PNG) and asks.
    for (n, t) in images.iter().enumerate() {
        xclip_in_as("image/png", &t.png);
        let end = Instant::now() + Duration::from_secs(20);
        while xclip_out_as("image/png") != t.png {
            assert!(Instant::now() < end, "xclip never served image #{n}");
            std::thread::sleep(Duration::from_millis(20));
        }
        board.focus_changed(false, &s.clipboard());
        board.focus_changed(true, &s.clipboard());
        assert_eq!(
            a.next_agent(),
            (7, vec![0, 0, 0, 0, 2, 0, 0, 0]),
            "GRAB(PNG)"
        );
        a.send_agent(&agent::request(Selection::Clipboard, 2, true));
        let (kind, data) = a.next_agent();
        assert_eq!((kind, &data[..8]), (4, &[0, 0, 0, 0, 2, 0, 0, 0][..]));
        assert!(
            decode_rgba(&data[8..]) == t.rgba,
            "the guest got image #{n} with other pixels"
        );
    }
    // Text copied after the image: announced as text.
    xclip_in("after the image ✓".as_bytes());
    let end = Instant::now() + Duration::from_secs(20);
    while xclip_out() != "after the image ✓".as_bytes() {
        assert!(Instant::now() < end, "xclip never served the text");
        std::thread::sleep(Duration::from_millis(20));
    }
    board.focus_changed(false, &s.clipboard());
    board.focus_changed(true, &s.clipboard());
    assert_eq!(
        a.next_agent(),
        (7, vec![0, 0, 0, 0, 1, 0, 0, 0]),
        "GRAB(text)"
    );
    assert_eq!(s.state().status, Status::Connected);
}
