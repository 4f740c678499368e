//! Property tests of the agent side: arbitrary bytes and mutated valid agent streams, cut anywhere, give
//! messages or one-line drops, never a panic, and the reassembly never holds more than one message's limit.
use std::sync::{Arc, Mutex};
use std::time::Instant;

use proptest::prelude::*;

use super::agent::{self, HEADER_LEN, MAX_MESSAGE, Selection, clip_type, kind};
use super::agent_link::{AgentLink, HostClipboard};
use super::agent_stream::{Event, Inbox};

/// Emoji, CJK, a combining mark, right-to-left, a Windows line end.
const TEXT: &str = "😀 漢字 é a\u{0301} שלום\r\n";

/// A valid agent stream: capabilities, a grab, a request, clipboard text and a release, with selections.
fn valid_stream() -> Vec<u8> {
    let mut s = agent::announce(true, 0x260);
    s.extend(agent::grab(Selection::Clipboard, &[1, 2], true));
    s.extend(agent::request(Selection::Clipboard, 1, true));
    s.extend(agent::clipboard(
        Selection::Clipboard,
        clip_type::UTF8_TEXT,
        TEXT.as_bytes(),
        true,
    ));
    s.extend(agent::release(Selection::Clipboard, true));
    s
}

fn parse_every_kind(data: &[u8]) {
    for k in [
        kind::REPLY,
        kind::CLIPBOARD,
        kind::ANNOUNCE_CAPABILITIES,
        kind::CLIPBOARD_GRAB,
        kind::CLIPBOARD_REQUEST,
        kind::CLIPBOARD_RELEASE,
        42,
    ] {
        let _ = agent::parse(k, data, true);
        let _ = agent::parse(k, data, false);
    }
}

/// Feeds `stream` cut at `cuts` (offsets, any order) and checks the memory bound after every body.
fn feed(stream: &[u8], cuts: &[usize]) -> Vec<Event> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    let mut inbox = Inbox::default();
    let mut events = Vec::new();
    let mut start = 0;
    for end in cuts.into_iter().chain([stream.len()]) {
        events.extend(inbox.push(&stream[start..end.max(start)], Instant::now()));
        start = end.max(start);
        assert!(inbox.held() <= MAX_MESSAGE.max(HEADER_LEN));
    }
    for e in &events {
        match e {
            Event::Message { data, .. } => parse_every_kind(data),
            Event::Dropped(why) => assert!(!why.contains('\n'), "one line: {why}"),
        }
    }
    events
}

/// A host side that records what reached it.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl HostClipboard for Recorder {
    fn agent_ready(&mut self) -> Vec<u32> {
        vec![clip_type::UTF8_TEXT]
    }
    fn guest_grabbed(&mut self, types: &[u32]) -> Option<u32> {
        self.0.lock().unwrap().push(format!("grab {types:?}"));
        types.first().copied()
    }
    fn guest_data(&mut self, kind: u32, data: Vec<u8>) {
        if kind == clip_type::UTF8_TEXT {
            assert!(
                std::str::from_utf8(&data).is_ok(),
                "text reaches the host as UTF-8"
            );
        }
        self.0
            .lock()
            .unwrap()
            .push(format!("data {kind} {}", data.len()));
    }
    fn guest_released(&mut self) {
        self.0.lock().unwrap().push("release".into());
    }
    fn host_data(&mut self, _kind: u32) -> Option<Vec<u8>> {
        Some(b"host".to_vec())
    }
}

#[test]
fn the_valid_stream_reaches_the_host_side() {
    let rec = Recorder::default();
    let link = AgentLink::new(Some(Box::new(rec.clone())));
    link.data(&valid_stream()).unwrap();
    assert_eq!(
        *rec.0.lock().unwrap(),
        vec![
            "grab [1, 2]".to_string(),
            format!("data 1 {}", TEXT.len() - 1), // CRLF → LF: the agent announced GUEST_LINEEND_CRLF
            "release".to_string()
        ]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096),
                                   cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        parse_every_kind(&bytes);
        feed(&bytes, &cuts);
        let link = AgentLink::new(Some(Box::new(Recorder::default())));
        let _ = link.data(&bytes);
    }

    #[test]
    fn mutated_valid_streams_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
                                         cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let mut stream = valid_stream();
        let len = stream.len();
        for (at, v) in flips {
            stream[at % len] = v;
        }
        feed(&stream, &cuts);
        let link = AgentLink::new(Some(Box::new(Recorder::default())));
        for piece in stream.chunks(37) {
            let _ = link.data(piece);
        }
        prop_assert!(link.queued() <= super::agent_stream::MAX_QUEUED);
    }

    #[test]
    fn lying_sizes_are_dropped_or_skipped(size in any::<u32>(), tail in 0usize..3000) {
        let mut m = agent::encode(kind::CLIPBOARD, &vec![b'x'; tail]);
        m[16..20].copy_from_slice(&size.to_le_bytes());
        let events = feed(&m, &[7, 20, 500]);
        if size as usize > MAX_MESSAGE {
            prop_assert!(matches!(&events[0], Event::Dropped(w) if w.contains("limit")));
        }
    }

    #[test]
    fn valid_streams_survive_any_cut(cuts in proptest::collection::vec(any::<usize>(), 0..12)) {
        let events = feed(&valid_stream(), &cuts);
        prop_assert_eq!(events.len(), 5);
        let whole = events.iter().filter(|e| matches!(e, Event::Message { .. })).count();
        prop_assert_eq!(whole, 5);
    }
}
