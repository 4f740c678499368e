//! The client session state machine the viewer runs: wait for the host → check versions → subscribe to the
//! frame and pointer queues → poll; on QUEUE_TIMEOUT resubscribe (where the real B7 client exits), on a session
//! change or a stopped heartbeat start over. Bad data never ends it: a bad message is skipped, a bad header is a
//! "waiting" state.
use std::time::{Duration, Instant};

use super::frame;
use super::kvmfr::{self, CursorUpdate, FrameInfo, HostInfo, Rect};
use super::lgmp::{self, LgmpClient, Session, Subscription};
use crate::shm::ShmView;

/// Between SessionInit attempts while the host is absent.
const RETRY_WAITING: Duration = Duration::from_millis(100);
/// Between attempts while the versions do not match (the real client retries every second).
const RETRY_INCOMPATIBLE: Duration = Duration::from_secs(1);
/// Between session validity checks.
const VALIDITY_CHECK: Duration = Duration::from_millis(100);
/// Cursor messages handled per step at most.
const CURSOR_BATCH: usize = 32;

/// What the client tells its user about the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// No host yet, or it went away; the text says why.
    Waiting(String),
    /// The region holds a protocol version this viewer cannot read.
    Incompatible(String),
    /// Connected to this host.
    Connected(HostInfo),
}

/// Receives what the client reads. `frame` converts the pixels (via [`frame::ingest`]) before the client
/// releases the message.
pub trait Handler {
    /// The connection status changed.
    fn status(&mut self, status: Status);
    /// A new frame: read `rects` (all of it when `None`) into the presentable buffer.
    fn frame(
        &mut self,
        view: ShmView<'_>,
        info: &FrameInfo,
        rects: Option<&[Rect]>,
    ) -> frame::Result<()>;
    /// A frame message could not be used (shown to the user, then skipped).
    fn bad_frame(&mut self, why: String);
    /// A cursor update.
    fn cursor(&mut self, update: CursorUpdate);
}

struct Live {
    session: Session,
    host: HostInfo,
    frame: Option<Subscription>,
    pointer: Option<Subscription>,
    last_serial: Option<u32>,
    last_format: Option<u32>,
    next_check: Instant,
}

/// The client.
pub struct Client {
    lgmp: LgmpClient,
    live: Option<Live>,
    next_try: Instant,
    status: Option<Status>,
    /// Times the client resubscribed after being marked BAD.
    pub resubscribes: u64,
}

impl Client {
    /// lgmpClientInit on `view`; the first session attempt waits 200 ms for the heartbeat to move.
    pub fn new(view: ShmView<'_>) -> lgmp::Result<Self> {
        Ok(Self {
            lgmp: LgmpClient::init(view)?,
            live: None,
            next_try: Instant::now() + Duration::from_millis(200),
            status: None,
            resubscribes: 0,
        })
    }

    /// Whether a session is up.
    pub fn connected(&self) -> bool {
        self.live.is_some()
    }

    fn set_status(&mut self, h: &mut impl Handler, status: Status) {
        if self.status.as_ref() != Some(&status) {
            self.status = Some(status.clone());
            h.status(status);
        }
    }

    /// One round: connect if needed, then the cursor messages and at most one frame. Returns whether it did
    /// anything (the caller sleeps its poll interval when not).
    pub fn step(&mut self, view: ShmView<'_>, h: &mut impl Handler) -> bool {
        if self.live.is_none() {
            return self.try_connect(view, h);
        }
        let now = Instant::now();
        if let Some(live) = &mut self.live
            && now >= live.next_check
        {
            live.next_check = now + VALIDITY_CHECK;
            if live.session.valid(view) {
                // The client's own record of the heartbeat must follow too, or a later SessionInit would take
                // a heartbeat from before a host stopped for a live one.
                self.lgmp.observe(view);
            } else {
                self.disconnect(
                    view,
                    h,
                    "the guest's Looking Glass host went away or restarted",
                );
                return false;
            }
        }
        let cursor = self.pump_cursor(view, h);
        let frame = self.pump_frame(view, h);
        match (cursor, frame) {
            (Ok(c), Ok(f)) => c || f,
            (Err(e), _) | (_, Err(e)) => {
                self.on_queue_error(view, h, e);
                true
            }
        }
    }

    fn try_connect(&mut self, view: ShmView<'_>, h: &mut impl Handler) -> bool {
        if Instant::now() < self.next_try {
            return false;
        }
        self.next_try = Instant::now() + RETRY_WAITING;
        let session = match self.lgmp.session_init(view) {
            Ok(s) => s,
            Err(lgmp::Error::InvalidMagic { found }) => {
                let text = if found == 0 {
                    "waiting for the guest's Looking Glass host to start".to_string()
                } else {
                    format!(
                        "this is not a Looking Glass region (it starts with {}, not \"LGMP\"); waiting",
                        describe_bytes(&found.to_le_bytes())
                    )
                };
                self.set_status(h, Status::Waiting(text));
                return false;
            }
            Err(e @ lgmp::Error::InvalidVersion { .. }) => {
                self.next_try = Instant::now() + RETRY_INCOMPATIBLE;
                self.set_status(h, Status::Incompatible(e.to_string()));
                return false;
            }
            Err(lgmp::Error::NoHeartbeat) => {
                self.set_status(
                    h,
                    Status::Waiting(
                        "waiting for the guest's Looking Glass host (no heartbeat)".into(),
                    ),
                );
                return false;
            }
            Err(e) => {
                self.set_status(h, Status::Waiting(format!("waiting for the guest: {e}")));
                return false;
            }
        };
        let host = match kvmfr::parse_udata(&session.udata) {
            Ok(host) => host,
            Err(e) => {
                self.next_try = Instant::now() + RETRY_INCOMPATIBLE;
                self.set_status(h, Status::Incompatible(e.to_string()));
                return false;
            }
        };
        let (frame, pointer) = match (
            session.subscribe(view, kvmfr::QUEUE_FRAME),
            session.subscribe(view, kvmfr::QUEUE_POINTER),
        ) {
            (Ok(f), Ok(p)) => (f, p),
            (f, p) => {
                // The real client retries a missing queue every 1 ms; a lock the guest never releases is tried
                // again after a second (each try waits out the lock deadline); anything else (corrupt queue
                // headers, a full queue) waits as long as a missing host does. Each says why on screen.
                let error = [&f, &p]
                    .into_iter()
                    .find_map(|r| r.as_ref().err())
                    .map(|e| (e.to_string(), subscribe_retry(e)));
                for s in [f, p].into_iter().flatten() {
                    let _ = s.unsubscribe(view);
                }
                let (why, retry) = error.unwrap_or_default();
                self.next_try = Instant::now() + retry;
                self.set_status(
                    h,
                    Status::Waiting(format!(
                        "the guest's Looking Glass host is up but its queues are not usable: {why}; waiting"
                    )),
                );
                return false;
            }
        };
        tracing::info!(host = %host.hostver, capture = %host.capture, "connected to the Looking Glass host");
        self.set_status(h, Status::Connected(host.clone()));
        self.live = Some(Live {
            session,
            host,
            frame: Some(frame),
            pointer: Some(pointer),
            last_serial: None,
            last_format: None,
            next_check: Instant::now() + VALIDITY_CHECK,
        });
        true
    }

    fn disconnect(&mut self, view: ShmView<'_>, h: &mut impl Handler, why: &str) {
        if let Some(live) = self.live.take() {
            for s in [live.frame, live.pointer].into_iter().flatten() {
                let _ = s.unsubscribe(view);
            }
        }
        tracing::info!("{why}");
        self.lgmp.observe(view);
        self.next_try = Instant::now() + RETRY_WAITING;
        self.set_status(h, Status::Waiting(why.to_string()));
    }

    fn on_queue_error(&mut self, view: ShmView<'_>, h: &mut impl Handler, e: lgmp::Error) {
        let Some(live) = &mut self.live else { return };
        match e {
            lgmp::Error::QueueTimeout(q) | lgmp::Error::Unsubscribed(q) => {
                tracing::warn!("the host dropped us from queue {q} ({e}); subscribing again");
                self.resubscribes += 1;
                let slot = if q == kvmfr::QUEUE_FRAME {
                    &mut live.frame
                } else {
                    &mut live.pointer
                };
                *slot = live.session.subscribe(view, q).ok();
                live.last_serial = None;
                if slot.is_none() {
                    self.disconnect(view, h, "the guest's Looking Glass host is not answering");
                }
            }
            e => {
                tracing::debug!("LGMP error: {e}");
                self.disconnect(
                    view,
                    h,
                    &format!(
                        "lost the guest's Looking Glass host ({}); waiting",
                        crate::report::one_line(&e)
                    ),
                );
                // Bad data from a host that is still beating would only be found again at once: try once a
                // second, not ten times (each try is two lines on stderr).
                self.next_try = Instant::now() + RETRY_INCOMPATIBLE;
            }
        }
    }

    fn pump_cursor(&mut self, view: ShmView<'_>, h: &mut impl Handler) -> lgmp::Result<bool> {
        let Some(sub) = self.live.as_mut().and_then(|l| l.pointer.as_mut()) else {
            return Ok(false);
        };
        let mut any = false;
        for _ in 0..CURSOR_BATCH {
            let Some(msg) = sub.process(view)? else { break };
            let update = kvmfr::parse_cursor(view, &msg);
            sub.message_done(view)?;
            any = true;
            match update {
                Ok(u) => h.cursor(u),
                Err(e) => tracing::debug!("skipped a cursor message: {e}"),
            }
        }
        Ok(any)
    }

    fn pump_frame(&mut self, view: ShmView<'_>, h: &mut impl Handler) -> lgmp::Result<bool> {
        let Some(live) = self.live.as_mut() else {
            return Ok(false);
        };
        let Some(sub) = live.frame.as_mut() else {
            return Ok(false);
        };
        let Some(msg) = sub.process(view)? else {
            return Ok(false);
        };
        match kvmfr::parse_frame(view, &msg, live.host.version) {
            Ok(info) => {
                let same_format = live.last_format == Some(info.format_ver);
                let repeat = same_format && live.last_serial == Some(info.serial);
                let in_order = same_format
                    && live
                        .last_serial
                        .is_some_and(|s| s.wrapping_add(1) == info.serial);
                let rects = (in_order && !info.damage.is_empty()).then_some(info.damage.as_slice());
                if !repeat {
                    match h.frame(view, &info, rects) {
                        Ok(()) => {
                            live.last_serial = Some(info.serial);
                            live.last_format = Some(info.format_ver);
                        }
                        Err(e) => {
                            live.last_serial = None;
                            h.bad_frame(format!(
                                "a frame was skipped: {}",
                                crate::report::one_line(&e)
                            ));
                        }
                    }
                }
            }
            Err(e) => {
                live.last_serial = None;
                h.bad_frame(format!(
                    "a frame was skipped: {}",
                    crate::report::one_line(&e)
                ));
            }
        }
        sub.message_done(view)?;
        Ok(true)
    }

    /// Asks the host to move the guest cursor (KVMFR SETCURSORPOS), if it advertised the feature. Returns the
    /// message serial.
    pub fn set_cursor_pos(&self, view: ShmView<'_>, x: i32, y: i32) -> Option<u32> {
        let live = self.live.as_ref()?;
        if live.host.features & kvmfr::FEATURE_SETCURSORPOS == 0 {
            return None;
        }
        let mut msg = [0u8; 12];
        msg[0..4].copy_from_slice(&kvmfr::MESSAGE_SETCURSORPOS.to_le_bytes());
        msg[4..8].copy_from_slice(&x.to_le_bytes());
        msg[8..12].copy_from_slice(&y.to_le_bytes());
        live.pointer.as_ref()?.send_data(view, &msg).ok()
    }

    /// Leaves the queues (at exit).
    pub fn shutdown(&mut self, view: ShmView<'_>) {
        if let Some(live) = self.live.take() {
            for s in [live.frame, live.pointer].into_iter().flatten() {
                let _ = s.unsubscribe(view);
            }
        }
    }
}

/// How long to wait before subscribing again after `e`.
fn subscribe_retry(e: &lgmp::Error) -> Duration {
    match e {
        lgmp::Error::NoSuchQueue(_) => Duration::from_millis(1),
        lgmp::Error::LockTimeout(_) => RETRY_INCOMPATIBLE,
        _ => RETRY_WAITING,
    }
}

/// Bytes from the region for a message: `"ABCD"` when they are printable ASCII, else hex (`10 62 74 78`).
pub(crate) fn describe_bytes(bytes: &[u8]) -> String {
    if bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("\"{}\"", String::from_utf8_lossy(bytes))
    } else {
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("the bytes {}", hex.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::describe_bytes;

    #[test]
    fn test_describe_bytes_shows_binary_as_hex_and_text_as_text() {
        assert_eq!(
            describe_bytes(&[0x10, b'b', b't', b'x']),
            "the bytes 10 62 74 78"
        );
        assert_eq!(describe_bytes(b"LGMQ"), "\"LGMQ\"");
    }
}
