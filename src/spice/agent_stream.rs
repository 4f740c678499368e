//! The agent byte stream on the main channel, both ways.
//!
//! In: [`Inbox`] reassembles agent messages from AGENT_DATA bodies (any split, headers included) into whole
//! messages, holding at most [`agent::MAX_MESSAGE`] bytes: a message announced larger is skipped byte by byte
//! without being stored, a header that is not an agent header drops the rest of that body (the next body
//! starts a message again), and a message that stops arriving for [`STALL`] is dropped when the next data
//! comes. Each drop is one [`Inbox::push`] result with its reason, for one log line.
//!
//! Out: [`Outbox`] cuts whole messages into AGENT_DATA bodies of at most [`MAX_DATA`] bytes (the first carries
//! the header) and sends one per token the server granted; the rest wait, bounded by [`MAX_QUEUED`], until
//! AGENT_TOKEN returns tokens.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::agent::{self, HEADER_LEN, Header};

/// Largest AGENT_DATA body (`VD_AGENT_MAX_DATA_SIZE`); the server ends the session on a bigger one.
pub(crate) const MAX_DATA: usize = 2048;
/// A partly received message with no new bytes for this long is dropped when the next data arrives.
pub(crate) const STALL: Duration = Duration::from_secs(10);
/// Most bytes waiting for tokens: two clipboard items.
pub(crate) const MAX_QUEUED: usize = 2 * agent::MAX_MESSAGE;
/// AGENT_START's grant for agent → client data (messages the server may send before we return tokens).
pub(crate) const INBOUND_WINDOW: u32 = 64;
/// Tokens are returned in batches of this many consumed messages.
pub(crate) const RETURN_BATCH: u32 = INBOUND_WINDOW / 2;

/// What one AGENT_DATA body completed or dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// A whole message.
    Message {
        /// Agent message type.
        kind: u32,
        /// Its data (≤ [`agent::MAX_MESSAGE`] bytes).
        data: Vec<u8>,
    },
    /// Something was dropped; the reason is one line.
    Dropped(String),
}

#[derive(Debug)]
enum State {
    /// Between messages: the header bytes so far.
    Header(Vec<u8>),
    /// Inside a message we keep.
    Body { header: Header, data: Vec<u8> },
    /// Inside a message too large to keep: bytes still to skip.
    Skip { left: u64 },
    /// After a bad header: the rest of this body is ignored.
    Resync,
}

/// Reassembles agent → client messages.
#[derive(Debug)]
pub(crate) struct Inbox {
    state: State,
    last_data: Instant,
}

impl Default for Inbox {
    fn default() -> Self {
        Self {
            state: State::Header(Vec::new()),
            last_data: Instant::now(),
        }
    }
}

impl Inbox {
    /// Bytes held for a message in progress (for the memory bound's tests).
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        match &self.state {
            State::Header(h) => h.capacity(),
            State::Body { data, .. } => data.capacity(),
            State::Skip { .. } | State::Resync => 0,
        }
    }

    /// Drops a message in progress (agent gone): the reason, when there was one.
    pub(crate) fn reset(&mut self) -> Option<String> {
        let why = self.pending();
        self.state = State::Header(Vec::new());
        why
    }

    fn pending(&self) -> Option<String> {
        match &self.state {
            State::Header(h) if h.is_empty() => None,
            State::Header(h) => Some(format!(
                "agent message header cut after {} bytes: dropped",
                h.len()
            )),
            State::Body { header, data } => Some(format!(
                "agent message type {} stopped after {} of {} bytes: dropped",
                header.kind,
                data.len(),
                header.size
            )),
            State::Skip { .. } | State::Resync => None,
        }
    }

    /// Feeds one AGENT_DATA body.
    pub(crate) fn push(&mut self, mut body: &[u8], now: Instant) -> Vec<Event> {
        let mut out = Vec::new();
        if now.saturating_duration_since(self.last_data) > STALL
            && let Some(why) = self.reset()
        {
            out.push(Event::Dropped(why));
        }
        self.last_data = now;
        if matches!(self.state, State::Resync) {
            self.state = State::Header(Vec::new());
        }
        while !body.is_empty() {
            match &mut self.state {
                State::Header(h) => {
                    let n = (HEADER_LEN - h.len()).min(body.len());
                    h.extend_from_slice(&body[..n]);
                    body = &body[n..];
                    let Ok(bytes) = <[u8; HEADER_LEN]>::try_from(h.as_slice()) else {
                        continue;
                    };
                    self.state = match agent::parse_header(&bytes) {
                        Err(e) => {
                            out.push(Event::Dropped(format!(
                                "{e}: rest of the agent data dropped"
                            )));
                            body = &[];
                            State::Resync
                        }
                        Ok(header) if header.size as usize > agent::MAX_MESSAGE => {
                            out.push(Event::Dropped(format!(
                                "agent message type {} announces {} bytes, over the {} MiB limit: dropped",
                                header.kind,
                                header.size,
                                agent::MAX_CLIPBOARD >> 20
                            )));
                            State::Skip {
                                left: u64::from(header.size),
                            }
                        }
                        Ok(header) => State::Body {
                            header,
                            // Grows with the bytes that really come, not with the size announced.
                            data: Vec::with_capacity((header.size as usize).min(64 << 10)),
                        },
                    };
                }
                State::Body { header, data } => {
                    let n = (header.size as usize - data.len()).min(body.len());
                    data.extend_from_slice(&body[..n]);
                    body = &body[n..];
                }
                State::Skip { left } => {
                    let n = (*left).min(body.len() as u64);
                    *left -= n;
                    body = &body[n as usize..];
                }
                State::Resync => body = &[],
            }
            self.complete(&mut out);
        }
        self.complete(&mut out);
        out
    }

    fn complete(&mut self, out: &mut Vec<Event>) {
        match &mut self.state {
            State::Body { header, data } if data.len() == header.size as usize => {
                out.push(Event::Message {
                    kind: header.kind,
                    data: std::mem::take(data),
                });
                self.state = State::Header(Vec::new());
            }
            State::Skip { left: 0 } => self.state = State::Header(Vec::new()),
            _ => {}
        }
    }
}

/// Client → agent messages waiting for tokens.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    tokens: u32,
    queue: VecDeque<Vec<u8>>,
    queued: usize,
}

impl Outbox {
    /// An empty queue with the server's grant.
    pub(crate) fn new(tokens: u32) -> Self {
        Self {
            tokens,
            ..Self::default()
        }
    }

    /// Bytes waiting.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Tokens the server returned.
    pub(crate) fn add_tokens(&mut self, n: u32) {
        self.tokens = self.tokens.saturating_add(n);
    }

    /// Queues one whole agent message (header + data) cut into AGENT_DATA bodies; refused (with the reason)
    /// when the queue would pass [`MAX_QUEUED`].
    pub(crate) fn push(&mut self, message: &[u8]) -> Result<(), String> {
        if self.queued + message.len() > MAX_QUEUED {
            return Err(format!(
                "{} bytes of agent data already wait for the guest: a {}-byte message dropped",
                self.queued,
                message.len()
            ));
        }
        for chunk in message.chunks(MAX_DATA) {
            self.queue.push_back(chunk.to_vec());
        }
        self.queued += message.len();
        Ok(())
    }

    /// Takes the bodies the tokens allow now (one token each).
    pub(crate) fn ready(&mut self) -> Vec<Vec<u8>> {
        let n = (self.tokens as usize).min(self.queue.len());
        self.tokens -= n as u32;
        let out: Vec<Vec<u8>> = self.queue.drain(..n).collect();
        self.queued -= out.iter().map(Vec::len).sum::<usize>();
        out
    }
}

/// Counts agent → client messages and says when to return tokens.
#[derive(Debug, Default)]
pub(crate) struct Returns {
    consumed: u32,
}

impl Returns {
    /// One AGENT_DATA consumed; `Some(n)` when `n` tokens should go back now.
    pub(crate) fn consumed(&mut self) -> Option<u32> {
        self.consumed += 1;
        (self.consumed >= RETURN_BATCH).then(|| std::mem::take(&mut self.consumed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spice::agent::{MAX_MESSAGE, encode};

    fn msgs(events: Vec<Event>) -> Vec<(u32, Vec<u8>)> {
        events
            .into_iter()
            .filter_map(|e| match e {
                Event::Message { kind, data } => Some((kind, data)),
                Event::Dropped(_) => None,
            })
            .collect()
    }

    #[test]
    fn any_split_reassembles() {
        let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let mut stream = encode(4, &data);
        stream.extend_from_slice(&encode(9, &[]));
        for piece in [1, 7, 20, 21, 2048, 10_000] {
            let mut inbox = Inbox::default();
            let mut got = Vec::new();
            for c in stream.chunks(piece) {
                got.extend(msgs(inbox.push(c, Instant::now())));
            }
            assert_eq!(
                got,
                vec![(4, data.clone()), (9, vec![])],
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn a_2_gib_message_is_skipped_unstored() {
        let mut inbox = Inbox::default();
        let mut h = encode(4, &[]);
        h[16..20].copy_from_slice(&(2u32 << 30).to_le_bytes());
        let ev = inbox.push(&h, Instant::now());
        assert!(matches!(&ev[..], [Event::Dropped(w)] if w.contains("over the 16 MiB limit")));
        for _ in 0..100 {
            assert!(inbox.push(&[0u8; 2048], Instant::now()).is_empty());
            assert_eq!(inbox.held(), 0);
        }
    }

    #[test]
    fn a_size_that_lies_short_drops_the_rest_of_the_body() {
        let mut m = encode(4, &[7u8; 30]);
        m[16..20].copy_from_slice(&4u32.to_le_bytes());
        let mut inbox = Inbox::default();
        let ev = inbox.push(&m, Instant::now());
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert!(matches!(&ev[1], Event::Dropped(w) if w.contains("protocol")));
        // The next body starts a message again.
        assert_eq!(
            msgs(inbox.push(&encode(9, &[]), Instant::now())),
            vec![(9, vec![])]
        );
    }

    #[test]
    fn a_stalled_message_is_dropped_by_the_next_data() {
        let mut m = encode(4, &[0; 100]);
        m[16..20].copy_from_slice(&1000u32.to_le_bytes());
        let mut inbox = Inbox::default();
        let t = Instant::now();
        assert!(inbox.push(&m, t).is_empty());
        let ev = inbox.push(&encode(9, &[]), t + STALL + Duration::from_secs(1));
        assert!(matches!(&ev[0], Event::Dropped(w) if w.contains("stopped after 100 of 1000")));
        assert_eq!(msgs(ev), vec![(9, vec![])]);
    }

    #[test]
    fn memory_stays_within_one_message() {
        let mut inbox = Inbox::default();
        let mut h = encode(4, &[]);
        h[16..20].copy_from_slice(&(MAX_MESSAGE as u32).to_le_bytes());
        inbox.push(&h, Instant::now());
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..(MAX_MESSAGE >> 20) {
            inbox.push(&chunk, Instant::now());
            assert!(inbox.held() <= MAX_MESSAGE);
        }
    }

    #[test]
    fn outbox_spends_one_token_per_body_and_waits() {
        let mut out = Outbox::new(2);
        out.push(&encode(4, &[1u8; 5000])).unwrap();
        let first = out.ready();
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].len(), MAX_DATA);
        assert_eq!(&first[0][..4], &[1, 0, 0, 0]);
        assert!(out.ready().is_empty());
        out.add_tokens(10);
        let rest = out.ready();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].len(), 5020 - 2 * MAX_DATA);
        assert_eq!(out.queued(), 0);
        assert!(out.push(&vec![0; MAX_QUEUED + 1]).is_err());
    }

    #[test]
    fn tokens_return_in_batches() {
        let mut r = Returns::default();
        let back: Vec<u32> = (0..100).filter_map(|_| r.consumed()).collect();
        assert_eq!(back, vec![RETURN_BATCH; 100 / RETURN_BATCH as usize]);
    }
}
