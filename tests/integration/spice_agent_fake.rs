//! The guest agent against a scripted SPICE server that plays the agent on the main channel: capabilities,
//! token flow control both ways (the client never sends past its grant, and returns ours), the clipboard by
//! demand both ways with text in every script and a 1 MiB text, exact bytes; hostile agent messages (lying
//! sizes, 2 GiB, bad headers, broken UTF-8, agent leaving mid-message) cost one log line each, never the
//! session. The real X clipboard (arboard ↔ `xclip`) is `viewer_clipboard_x11_xclip_both_ways`.
use std::collections::VecDeque;
use std::io::Write;
use std::net::TcpStream;
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::spice_display_fake::{drain, read_msg};
use super::spice_fake::{accept_link, msg, serve};
use vmgpu::spice::agent::{self, Selection};
use vmgpu::spice::{Endpoint, HostClipboard, Session, Status, Target};

/// Emoji (with a ZWJ sequence and a flag), CJK, combining marks, right-to-left with a mark, mixed scripts.
pub const TEXTS: [&str; 6] = [
    "😀👩‍👩‍👧‍👦🇩🇪 emoji",
    "漢字かなカナ한국어 中文",
    "e\u{0301} a\u{0308}\u{0323} Z\u{0335}\u{0336}",
    "שלום עולם \u{200F}مرحبا بالعالم",
    "tab\tand\nnewlines\n\nend ✓",
    "ascii",
];

/// A 1 MiB text of every kind above (NUL-free), cut on a character boundary.
pub fn big_text() -> String {
    let mut s = String::new();
    while s.len() < 1 << 20 {
        s.push_str(TEXTS[s.len() % TEXTS.len()]);
        s.push('\n');
    }
    while s.len() > 1 << 20 {
        s.pop();
    }
    s
}

/// The scripted agent on one main connection, driven by the test thread.
pub struct FakeAgent {
    s: TcpStream,
    /// Tokens the client granted us (AGENT_START), spent per AGENT_DATA, returned by AGENT_TOKEN.
    tokens: u32,
    /// Whether AGENT_START came.
    pub started: Option<u32>,
    /// Client AGENT_DATA bodies since we last returned tokens (the client has 10).
    unreturned: u32,
    /// Client → agent bytes not yet a whole message.
    partial: Vec<u8>,
    done: VecDeque<(u32, Vec<u8>)>,
}

impl FakeAgent {
    /// Answers the client until it closes (a main channel with nothing to say).
    pub fn serve_until_closed(mut self) {
        while self.try_pump() {}
    }

    fn pump(&mut self) {
        assert!(self.try_pump(), "the client closed the main channel");
    }

    /// One client message, handled: ATTACH answered, tokens counted, agent data reassembled.
    fn try_pump(&mut self) -> bool {
        let Ok((kind, body)) = read_msg(&mut self.s) else {
            return false;
        };
        match kind {
            104 => {
                // CHANNELS_LIST: inputs only.
                self.s.write_all(&msg(104, &[1, 0, 0, 0, 3, 0])).unwrap();
            }
            106 => {
                let n = u32::from_le_bytes(body[..4].try_into().unwrap());
                self.started = Some(n);
                self.tokens = n;
            }
            108 => self.tokens += u32::from_le_bytes(body[..4].try_into().unwrap()),
            107 => {
                assert!(body.len() <= 2048, "AGENT_DATA of {} bytes", body.len());
                self.unreturned += 1;
                assert!(self.unreturned <= 10, "the client sent past its 10 tokens");
                if self.unreturned == 10 {
                    self.s.write_all(&msg(110, &10u32.to_le_bytes())).unwrap();
                    self.unreturned = 0;
                }
                self.partial.extend_from_slice(&body);
                while self.partial.len() >= 20 {
                    let size =
                        u32::from_le_bytes(self.partial[16..20].try_into().unwrap()) as usize;
                    if self.partial.len() < 20 + size {
                        break;
                    }
                    assert_eq!(&self.partial[..4], &[1, 0, 0, 0], "VD_AGENT_PROTOCOL");
                    let kind = u32::from_le_bytes(self.partial[4..8].try_into().unwrap());
                    let rest = self.partial.split_off(20 + size);
                    let data = self.partial[20..].to_vec();
                    self.partial = rest;
                    self.done.push_back((kind, data));
                }
            }
            _ => {}
        }
        true
    }

    /// The next whole agent message from the client.
    pub fn next_agent(&mut self) -> (u32, Vec<u8>) {
        while self.done.is_empty() {
            self.pump();
        }
        self.done.pop_front().unwrap()
    }

    /// Sends raw AGENT_DATA bodies, spending our tokens (waiting for the client's AGENT_TOKEN at 0).
    pub fn send_bodies(&mut self, bodies: &[&[u8]]) {
        for b in bodies {
            while self.tokens == 0 {
                self.pump();
            }
            self.tokens -= 1;
            self.s.write_all(&msg(109, b)).unwrap();
        }
    }

    /// Sends a whole agent message in ≤ 2048-byte bodies.
    pub fn send_agent(&mut self, message: &[u8]) {
        let bodies: Vec<&[u8]> = message.chunks(2048).collect();
        self.send_bodies(&bodies);
    }

    /// Sends a main channel message (not agent data).
    pub fn send_main(&mut self, m: &[u8]) {
        self.s.write_all(m).unwrap();
    }

    /// The agent leaves (AGENT_DISCONNECTED) and a new one connects with 10 tokens for the client.
    pub fn agent_restarts(&mut self) {
        self.send_main(&msg(108, &0u32.to_le_bytes()));
        self.send_main(&msg(115, &10u32.to_le_bytes()));
        self.unreturned = 0;
        self.started = None;
        self.partial.clear();
    }
}

/// A server whose main connections go to the test thread as [`FakeAgent`]s (INIT sent with an agent
/// connected and 10 tokens), and whose inputs channel is drained.
pub fn serve_agent(agent_connected: u32) -> (u16, Receiver<FakeAgent>) {
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    let (port, _) = serve(move |mut s| {
        let Ok(kind) = accept_link(&mut s, 0x0f) else {
            return;
        };
        if kind == 1 {
            let mut b = Vec::new();
            for v in [0x55u32, 1, 3, 2, agent_connected, 10, 0, 0] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            s.write_all(&msg(103, &b)).unwrap();
            let agent = FakeAgent {
                s,
                tokens: 0,
                started: None,
                unreturned: 0,
                partial: Vec::new(),
                done: VecDeque::new(),
            };
            let _ = tx.lock().unwrap().send(agent);
        } else {
            drain(&mut s);
        }
    });
    (port, rx)
}

/// What reached the host side: (type, bytes) per item.
pub type Received = Arc<Mutex<Vec<(u32, Vec<u8>)>>>;

/// A host side that records the guest's data and serves a fixed host text.
#[derive(Clone, Default)]
pub struct Recorder {
    pub got: Received,
    pub host_text: Arc<Mutex<Vec<u8>>>,
}

impl HostClipboard for Recorder {
    fn agent_ready(&mut self) -> Vec<u32> {
        Vec::new()
    }
    fn guest_grabbed(&mut self, types: &[u32]) -> Option<u32> {
        types.contains(&1).then_some(1)
    }
    fn guest_data(&mut self, kind: u32, data: Vec<u8>) {
        self.got.lock().unwrap().push((kind, data));
    }
    fn guest_released(&mut self) {}
    fn host_data(&mut self, _kind: u32) -> Option<Vec<u8>> {
        Some(self.host_text.lock().unwrap().clone())
    }
}

impl Recorder {
    fn wait_for(&self, n: usize) -> Vec<(u32, Vec<u8>)> {
        let end = Instant::now() + Duration::from_secs(30);
        while self.got.lock().unwrap().len() < n {
            assert!(Instant::now() < end, "waiting for guest data #{n}");
            std::thread::sleep(Duration::from_millis(10));
        }
        self.got.lock().unwrap().clone()
    }
}

pub fn session_with(port: u16, host: Option<Box<dyn HostClipboard>>) -> Session {
    let ep = Endpoint {
        target: Target::Tcp {
            host: "127.0.0.1".into(),
            port,
        },
        password: Vec::new(),
    };
    Session::start_with_clipboard(Box::new(move || Ok(ep.clone())), Arc::new(|| {}), host).unwrap()
}

/// Start-up: AGENT_START with our window, our capabilities (request=1, BY_DEMAND + SELECTION), and the
/// agent's answer with `caps`.
pub fn handshake(a: &mut FakeAgent, caps: u32) {
    let (kind, data) = a.next_agent();
    assert_eq!(
        (kind, data),
        (6, vec![1, 0, 0, 0, 0x60, 0, 0, 0]),
        "ANNOUNCE_CAPABILITIES"
    );
    assert_eq!(a.started, Some(64), "AGENT_START before any agent data");
    let mut d = 0u32.to_le_bytes().to_vec();
    d.extend_from_slice(&caps.to_le_bytes());
    a.send_agent(&agent::encode(6, &d));
}

/// The guest grabs, we request, the text comes: exact bytes at the host side.
fn guest_copies(a: &mut FakeAgent, rec: &Recorder, text: &[u8], n: usize) {
    a.send_agent(&[
        1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    ]);
    let (kind, data) = a.next_agent();
    assert_eq!(
        (kind, data),
        (8, vec![0, 0, 0, 0, 1, 0, 0, 0]),
        "REQUEST(clipboard, UTF8)"
    );
    a.send_agent(&agent::clipboard(Selection::Clipboard, 1, text, true));
    let got = rec.wait_for(n);
    assert_eq!(got[n - 1].0, 1);
    assert!(
        got[n - 1].1 == text,
        "text #{n} differs ({} bytes)",
        text.len()
    );
}

/// We grab, the guest requests, our text goes: exact bytes at the agent, within the client's tokens.
fn host_copies(s: &Session, a: &mut FakeAgent, rec: &Recorder, text: &[u8]) {
    *rec.host_text.lock().unwrap() = text.to_vec();
    assert!(s.clipboard().ready());
    s.clipboard().announce(&[1]);
    let (kind, data) = a.next_agent();
    assert_eq!(
        (kind, data),
        (7, vec![0, 0, 0, 0, 1, 0, 0, 0]),
        "GRAB(clipboard, UTF8)"
    );
    a.send_agent(&agent::request(Selection::Clipboard, 1, true));
    let (kind, data) = a.next_agent();
    assert_eq!(kind, 4);
    assert_eq!(&data[..8], &[0, 0, 0, 0, 1, 0, 0, 0]);
    assert!(
        data[8..] == *text,
        "host text differs ({} bytes)",
        text.len()
    );
}

#[test]
fn spice_agent_clipboard_both_ways_any_script_and_1_mib() {
    let (port, rx) = serve_agent(1);
    let rec = Recorder::default();
    let s = session_with(port, Some(Box::new(rec.clone())));
    let mut a = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    handshake(&mut a, 0x60);
    let big = big_text();
    let mut n = 0;
    for text in TEXTS.iter().map(|t| t.as_bytes()).chain([big.as_bytes()]) {
        n += 1;
        guest_copies(&mut a, &rec, text, n);
    }
    for text in TEXTS.iter().map(|t| t.as_bytes()).chain([big.as_bytes()]) {
        host_copies(&s, &mut a, &rec, text);
    }
    assert_eq!(s.state().status, Status::Connected);
}

#[test]
fn spice_agent_hostile_messages_cost_the_item_not_the_session() {
    let (port, rx) = serve_agent(1);
    let rec = Recorder::default();
    let s = session_with(port, Some(Box::new(rec.clone())));
    let mut a = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    handshake(&mut a, 0x60);
    // A clipboard announced at 2 GiB: 300 bodies of it arrive, then the agent leaves mid-message.
    let mut h = agent::encode(4, &[]);
    h[16..20].copy_from_slice(&(2u32 << 30).to_le_bytes());
    a.send_bodies(&[&h]);
    let filler = vec![b'x'; 2048];
    for _ in 0..300 {
        a.send_bodies(&[&filler]);
    }
    a.agent_restarts();
    handshake(&mut a, 0x60);
    // A size that lies short: the rest of the body is garbage as a header.
    let mut m = agent::clipboard(Selection::Clipboard, 1, &[b'y'; 100], true);
    m[16..20].copy_from_slice(&12u32.to_le_bytes());
    a.send_bodies(&[&m]);
    // Not the agent protocol.
    let mut bad = agent::encode(7, &[0, 0, 0, 0, 1, 0, 0, 0]);
    bad[0] = 9;
    a.send_bodies(&[&bad]);
    // A grab with a selection that does not exist, an odd number of type bytes, and text that is not UTF-8.
    a.send_agent(&agent::encode(7, &[7, 0, 0, 0, 1, 0, 0, 0]));
    a.send_agent(&agent::encode(7, &[0, 0, 0, 0, 1, 0]));
    guest_copies_raw(&mut a, &[0xff, 0xfe, b'a']);
    // A message that starts but never completes, then the agent leaves: nothing reaches the host.
    let mut cut = agent::encode(4, &[0; 100]);
    cut[16..20].copy_from_slice(&5000u32.to_le_bytes());
    a.send_bodies(&[&cut]);
    a.agent_restarts();
    handshake(&mut a, 0x60);
    assert!(
        rec.got.lock().unwrap().is_empty(),
        "nothing hostile reached the host"
    );
    // Still the same session, and the clipboard still works.
    guest_copies(&mut a, &rec, "after all that ✓".as_bytes(), 1);
    assert_eq!(s.state().status, Status::Connected);
    assert_eq!(s.state().sessions, 1, "no reconnect");
}

/// The guest grabs and answers our request with `data` as text.
fn guest_copies_raw(a: &mut FakeAgent, data: &[u8]) {
    a.send_agent(&agent::grab(Selection::Clipboard, &[1], true));
    let (kind, _) = a.next_agent();
    assert_eq!(kind, 8);
    a.send_agent(&agent::clipboard(Selection::Clipboard, 1, data, true));
}

#[test]
fn spice_agent_clipboard_off_announces_no_clipboard() {
    let (port, rx) = serve_agent(1);
    let s = session_with(port, None);
    let mut a = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    let (kind, data) = a.next_agent();
    assert_eq!(
        (kind, data),
        (6, vec![1, 0, 0, 0, 0, 0, 0, 0]),
        "no clipboard caps"
    );
    assert_eq!(a.started, Some(64));
    a.send_agent(&agent::encode(6, &[0, 0, 0, 0, 0x60, 0, 0, 0]));
    // A guest grab is not answered by a request: the next thing the client sends is our probe's answer.
    a.send_agent(&agent::grab(Selection::Clipboard, &[1], true));
    a.send_agent(&agent::encode(6, &[1, 0, 0, 0, 0x60, 0, 0, 0]));
    let (kind, _) = a.next_agent();
    assert_eq!(kind, 6, "no REQUEST with the clipboard off");
    assert!(!s.clipboard().ready());
}
