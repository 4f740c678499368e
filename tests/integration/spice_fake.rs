//! The SPICE session against a scripted server in this process (a TCP listener speaking the link protocol):
//! every malformed or hostile case ends the attempt with a one-line reason and a retry, never a panic; and the
//! happy path puts the exact inputs bytes on the wire, with the motion-ack flow control.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use vmgpu::spice::inputs::Button;
use vmgpu::spice::{Endpoint, KeyCodes, Session, Status, Target};

/// A valid RSA-1024 SubjectPublicKeyInfo (the server's key; the scripted server never decrypts).
const PUB_KEY_HEX: &str = "30819f300d06092a864886f70d010101050003818d0030818902818100cecbe75843a41c84601b7e00bec6610760408f5f0ca965ab512502a989b620813f5246afca1c680af84193a0e5f91f6346d227344ddb4b00d551e6418f1e60ebdbebdf15cbc93e6478d31436974b239f9a6a18d45456f38400f2e52e2b91df254aecc07add771a8517011513d70fcb477b22aec9afcff2e4aad52c68058b95190203010001";

fn pub_key() -> Vec<u8> {
    (0..PUB_KEY_HEX.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&PUB_KEY_HEX[i..i + 2], 16).unwrap())
        .collect()
}

fn link_reply(error: u32, channel_caps: u32) -> Vec<u8> {
    let mut body = error.to_le_bytes().to_vec();
    body.extend_from_slice(&pub_key());
    for v in [1u32, 1, 178, 0x0b, channel_caps] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    let mut out = b"REDQ".to_vec();
    for v in [2u32, 2, body.len() as u32] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&body);
    out
}

fn msg(kind: u16, body: &[u8]) -> Vec<u8> {
    let mut out = kind.to_le_bytes().to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

fn init(session_id: u32, mouse_supported: u32, mouse_current: u32) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [session_id, 1, mouse_supported, mouse_current, 0, 10, 0, 0] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    msg(103, &b)
}

/// Reads the client's link message; returns the channel type.
fn read_link(s: &mut TcpStream) -> std::io::Result<u8> {
    let mut h = [0u8; 16];
    s.read_exact(&mut h)?;
    assert_eq!(&h[..4], b"REDQ");
    let size = u32::from_le_bytes(h[12..16].try_into().unwrap()) as usize;
    let mut body = vec![0u8; size];
    s.read_exact(&mut body)?;
    Ok(body[4])
}

/// Link, auth word and 128-byte ticket, result OK.
fn accept_link(s: &mut TcpStream, channel_caps: u32) -> std::io::Result<u8> {
    let kind = read_link(s)?;
    s.write_all(&link_reply(0, channel_caps))?;
    let mut auth = [0u8; 4 + 128];
    s.read_exact(&mut auth)?;
    assert_eq!(&auth[..4], &[1, 0, 0, 0], "auth mechanism SPICE");
    s.write_all(&[0, 0, 0, 0])?;
    Ok(kind)
}

/// A server that runs `script` on each main connection.
fn serve(script: impl Fn(TcpStream) + Send + Sync + 'static) -> (u16, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let conns = Arc::new(AtomicU32::new(0));
    let counter = conns.clone();
    let script = Arc::new(script);
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            let script = script.clone();
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
                script(s)
            });
        }
    });
    (port, conns)
}

fn session(port: u16) -> Session {
    let ep = Endpoint {
        target: Target::Tcp {
            host: "127.0.0.1".into(),
            port,
        },
        password: b"secret".to_vec(),
    };
    Session::start(Box::new(move || Ok(ep.clone())), Arc::new(|| {})).unwrap()
}

fn wait_for(s: &Session, what: &str, cond: impl Fn(&Status) -> bool) -> Status {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let st = s.state().status;
        if cond(&st) {
            return st;
        }
        assert!(Instant::now() < end, "waiting for {what}; status {st:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Each hostile case: the status names the problem, the session retries (a second connection comes).
fn refused_with(script: impl Fn(TcpStream) + Send + Sync + 'static, expect: &str) {
    let (port, conns) = serve(script);
    let s = session(port);
    let st = wait_for(&s, expect, |st| matches!(st, Status::Failed(_)));
    let Status::Failed(reason) = st else {
        unreachable!()
    };
    assert!(reason.contains(expect), "{reason:?} should say {expect:?}");
    assert!(!reason.contains('\n'), "one line: {reason:?}");
    let end = Instant::now() + Duration::from_secs(20);
    while conns.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < end, "no retry after {reason}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(s);
}

#[test]
fn spice_hostile_not_spice_at_all() {
    refused_with(
        |mut s| {
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        },
        "not a SPICE server",
    );
}

#[test]
fn spice_hostile_version_mismatch() {
    refused_with(
        |mut s| {
            let _ = read_link(&mut s);
            let mut r = link_reply(0, 0);
            r[4] = 3;
            let _ = s.write_all(&r);
        },
        "version 3",
    );
}

#[test]
fn spice_hostile_wrong_password() {
    refused_with(
        |mut s| {
            let _ = read_link(&mut s);
            let _ = s.write_all(&link_reply(0, 0));
            let mut t = [0u8; 132];
            let _ = s.read_exact(&mut t);
            let _ = s.write_all(&7u32.to_le_bytes());
        },
        "wrong or missing SPICE password",
    );
}

#[test]
fn spice_hostile_gone_mid_handshake() {
    refused_with(
        |mut s| {
            let _ = read_link(&mut s);
            let _ = s.write_all(&link_reply(0, 0)[..40]);
        },
        "closed the connection",
    );
}

#[test]
fn spice_hostile_oversized_reply_and_message() {
    refused_with(
        |mut s| {
            let _ = read_link(&mut s);
            let mut r = link_reply(0, 0);
            r[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
            let _ = s.write_all(&r);
        },
        "exceeds",
    );
    refused_with(
        |mut s| {
            if accept_link(&mut s, 0x0f).is_ok() {
                let mut m = msg(109, &[]);
                m[2..6].copy_from_slice(&u32::MAX.to_le_bytes());
                let _ = s.write_all(&m);
            }
        },
        "exceeds the limit",
    );
}

#[test]
fn spice_hostile_truncated_and_lying_messages() {
    refused_with(
        |mut s| {
            if accept_link(&mut s, 0x0f).is_ok() {
                let _ = s.write_all(&msg(103, &[1, 2, 3]));
            }
        },
        "MAIN_INIT: truncated",
    );
    refused_with(
        |mut s| {
            if accept_link(&mut s, 0x0f).is_ok() {
                let _ = s.write_all(&init(9, 1, 1));
                let _ = s.write_all(&msg(104, &[0xff, 0xff, 0xff, 0x7f, 3, 0]));
            }
        },
        "CHANNELS_LIST: count",
    );
    refused_with(
        |mut s| {
            if accept_link(&mut s, 0x0f).is_ok() {
                let _ = s.write_all(&msg(105, &[1, 0, 1, 0]));
            }
        },
        "not MAIN_INIT",
    );
    refused_with(
        |mut s| {
            if accept_link(&mut s, 0x0f).is_ok() {
                let _ = s.write_all(&init(9, 1, 1));
                let _ = s.write_all(&msg(3, &[1, 0]));
            }
        },
        "SET_ACK: truncated",
    );
    refused_with(
        |mut s| {
            if accept_link(&mut s, 0x0f).is_ok() {
                let _ = s.write_all(&init(9, 1, 1));
                let mut d = vec![0u8; 8];
                d.extend_from_slice(&7u32.to_le_bytes());
                let _ = s.write_all(&msg(6, &d));
            }
        },
        "disconnected us",
    );
}

#[test]
fn spice_hostile_refused_inputs_channel() {
    refused_with(
        |mut s| {
            let Ok(kind) = read_link(&mut s) else { return };
            if kind != 1 {
                let _ = s.write_all(&link_reply(9, 0));
                return;
            }
            let _ = s.write_all(&link_reply(0, 0x0f));
            let mut t = [0u8; 132];
            let _ = s.read_exact(&mut t);
            let _ = s.write_all(&[0, 0, 0, 0]);
            let _ = s.write_all(&init(9, 1, 1));
            let _ = s.write_all(&msg(104, &[1, 0, 0, 0, 3, 0]));
            std::thread::sleep(Duration::from_secs(5));
        },
        "refused the inputs channel: channel not available",
    );
}

/// The whole session: PING answered, mouse mode requested, exact key and mouse bytes, flow control.
#[test]
fn spice_session_bytes_and_motion_ack() {
    let (tx, rx) = std::sync::mpsc::channel::<(u8, Vec<u8>)>();
    let tx = std::sync::Mutex::new(tx);
    let (port, _) = serve(move |mut s| {
        let Ok(kind) = accept_link(&mut s, 0x0f) else {
            return;
        };
        let tx = tx.lock().unwrap().clone();
        if kind == 1 {
            s.write_all(&init(0x1234, 3, 1)).unwrap();
            s.write_all(&msg(4, &[1, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1, 0xaa, 0xbb]))
                .unwrap();
        }
        loop {
            let mut h = [0u8; 6];
            if s.read_exact(&mut h).is_err() {
                return;
            }
            let size = u32::from_le_bytes(h[2..6].try_into().unwrap()) as usize;
            let mut body = vec![0u8; size];
            if s.read_exact(&mut body).is_err() {
                return;
            }
            let kind_msg = u16::from_le_bytes([h[0], h[1]]);
            if kind == 1 && kind_msg == 104 {
                s.write_all(&msg(104, &[1, 0, 0, 0, 3, 0])).unwrap();
            }
            if kind == 1 && kind_msg == 105 {
                s.write_all(&msg(105, &[3, 0, 2, 0])).unwrap();
            }
            let _ = tx.send((kind, [h.to_vec(), body].concat()));
        }
    });
    let s = session(port);
    wait_for(&s, "connected", |st| *st == Status::Connected);
    let recv = |want_kind: u8| -> Vec<u8> {
        loop {
            let (k, m) = rx.recv_timeout(Duration::from_secs(20)).expect("a message");
            if k == want_kind {
                return m;
            }
        }
    };
    let main: Vec<Vec<u8>> = (0..3).map(|_| recv(1)).collect();
    assert!(main.contains(&msg(104, &[])), "ATTACH_CHANNELS: {main:?}");
    assert!(
        main.contains(&msg(3, &[1, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1])),
        "PONG without filler"
    );
    assert!(
        main.contains(&msg(105, &[2, 0])),
        "client mouse mode requested"
    );
    let end = Instant::now() + Duration::from_secs(20);
    while !s.client_mouse() {
        assert!(Instant::now() < end);
        std::thread::sleep(Duration::from_millis(10));
    }
    let inputs = s.inputs();
    let up = KeyCodes {
        make: 0x48e0,
        brk: 0xc8e0,
    };
    inputs.key_down(up);
    inputs.key_down(KeyCodes {
        make: 0x1d,
        brk: 0x9d,
    });
    assert_eq!(recv(3), msg(101, &[0xe0, 0x48, 0, 0]));
    assert_eq!(recv(3), msg(101, &[0x1d, 0, 0, 0]));
    inputs.release_all();
    assert_eq!(recv(3), msg(102, &[0x9d, 0, 0, 0]), "released newest first");
    assert_eq!(recv(3), msg(102, &[0xe0, 0xc8, 0, 0]));
    assert!(inputs.held().is_empty());
    inputs.press(Button::Left);
    assert_eq!(recv(3), msg(113, &[1, 1, 0]));
    inputs.release(Button::Left);
    assert_eq!(recv(3), msg(114, &[1, 0, 0]));
    // No acks: 8 positions go out, the rest are merged into the latest.
    for i in 0..20u32 {
        inputs.position(i, 2 * i);
    }
    for i in 0..8u32 {
        let mut b = i.to_le_bytes().to_vec();
        b.extend_from_slice(&(2 * i).to_le_bytes());
        b.extend_from_slice(&[0, 0, 0]);
        assert_eq!(recv(3), msg(112, &b));
    }
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "held back until an ack"
    );
    drop(s);
}
