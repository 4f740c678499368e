//! The guest agent as the session sees it: AGENT_START and capability announcement when an agent connects,
//! token flow control both ways, and the clipboard by demand (GRAB / REQUEST / CLIPBOARD / RELEASE) between
//! the agent and a [`HostClipboard`].
//!
//! Nothing moves unasked: a host clipboard change is only announced to the guest ([`Clipboard::announce`]);
//! its bytes go when the agent REQUESTs them. A guest GRAB is handed to the host side, which decides when to
//! REQUEST the data (`guest_grabbed`'s answer, or [`Clipboard::request`] later).
//!
//! Only the normal clipboard (selection 0) is synced: a Linux agent also grabs PRIMARY whenever text is
//! selected, which would move every selection. Text is UTF-8 both ways, NUL-free (trailing NULs from the
//! guest are cut), with CRLF line ends for a guest that announces GUEST_LINEEND_CRLF.
//!
//! Locking: the host side is never called with the agent state locked, so host code may call
//! [`Clipboard`] methods from any thread (the window) without a lock-order deadlock.
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::agent::{self, AgentMsg, Selection, cap, clip_type};
use super::agent_stream::{self, Event, Inbox, Outbox, Returns};
use super::channel::Writer;
use super::clip_png::{self, RgbaImage};
use super::error::Error;
use super::main_channel::client;

/// The host's clipboard, driven by the agent link on the session's main thread.
pub trait HostClipboard: Send {
    /// The agent is ready for the clipboard: the types to announce now (the host clipboard's, or none).
    fn agent_ready(&mut self) -> Vec<u32>;
    /// The guest owns its clipboard with these types: the type to REQUEST now, if any.
    fn guest_grabbed(&mut self, types: &[u32]) -> Option<u32>;
    /// The data for our REQUEST (text already checked as UTF-8 with LF line ends).
    fn guest_data(&mut self, kind: u32, data: Vec<u8>);
    /// The guest dropped its clipboard (or the agent left).
    fn guest_released(&mut self);
    /// The guest asks for the host clipboard as `kind`: its bytes now, or `None`.
    fn host_data(&mut self, kind: u32) -> Option<Vec<u8>>;
    /// The image for our REQUEST of IMAGE_PNG, decoded from the guest's PNG within the caps of
    /// [`clip_png`](super::clip_png) (a PNG that does not decode never gets here).
    fn guest_image(&mut self, image: RgbaImage) {
        let _ = image;
    }
    /// The guest asks for the host clipboard as IMAGE_PNG: the host's image now (encoded here), or `None`.
    fn host_image(&mut self) -> Option<RgbaImage> {
        None
    }
}

#[derive(Default)]
struct State {
    writer: Option<Writer>,
    connected: bool,
    /// The agent's caps word, once it announced it.
    caps: Option<u32>,
    outbox: Outbox,
    inbox: Inbox,
    returns: Returns,
    /// Types of the guest's clipboard while the guest owns it.
    guest_types: Option<Vec<u32>>,
    /// We announced the host clipboard and the guest has not grabbed since.
    host_owned: bool,
    /// The type we REQUESTed and wait for: clipboard data nobody asked for is dropped.
    requested: Option<u32>,
}

impl State {
    fn by_demand(&self) -> bool {
        self.caps
            .is_some_and(|c| cap::has(c, cap::CLIPBOARD_BY_DEMAND))
    }

    fn with_selection(&self) -> bool {
        self.caps
            .is_some_and(|c| cap::has(c, cap::CLIPBOARD_SELECTION))
    }

    fn crlf(&self) -> bool {
        self.caps
            .is_some_and(|c| cap::has(c, cap::GUEST_LINEEND_CRLF))
    }

    /// Queues a whole agent message and sends what the tokens allow.
    fn send(&mut self, message: &[u8]) -> Result<(), Error> {
        if !self.connected {
            return Ok(());
        }
        if let Err(why) = self.outbox.push(message) {
            tracing::warn!("SPICE agent: {why}");
            return Ok(());
        }
        self.flush()
    }

    fn flush(&mut self) -> Result<(), Error> {
        let Some(w) = &self.writer else {
            return Ok(());
        };
        let bodies = self.outbox.ready();
        for batch in bodies.chunks(64) {
            let msgs: Vec<(u16, Vec<u8>)> = batch
                .iter()
                .map(|b| (client::AGENT_DATA, b.clone()))
                .collect();
            w.send_all(&msgs)?;
        }
        Ok(())
    }
}

/// The agent link of one session (shared by the main thread and the window).
pub(super) struct AgentLink {
    state: Mutex<State>,
    host: Mutex<Option<Box<dyn HostClipboard>>>,
    clipboard_on: bool,
}

impl AgentLink {
    pub(super) fn new(host: Option<Box<dyn HostClipboard>>) -> Self {
        Self {
            clipboard_on: host.is_some(),
            state: Mutex::default(),
            host: Mutex::new(host),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn host<T>(&self, f: impl FnOnce(&mut dyn HostClipboard) -> T) -> Option<T> {
        let mut host = self.host.lock().unwrap_or_else(|e| e.into_inner());
        host.as_mut().map(|h| f(h.as_mut()))
    }

    /// A new main channel: where agent data goes.
    pub(super) fn session_started(&self, writer: Writer) {
        let mut s = self.state();
        *s = State {
            writer: Some(writer),
            ..State::default()
        };
    }

    /// The session ended: everything in flight is dropped.
    pub(super) fn session_ended(&self) {
        let had_guest = {
            let mut s = self.state();
            let had = s.guest_types.is_some();
            *s = State::default();
            had
        };
        if had_guest {
            self.host(|h| h.guest_released());
        }
    }

    /// An agent is connected (INIT, AGENT_CONNECTED or AGENT_CONNECTED_TOKENS) with `tokens` for our data:
    /// AGENT_START with our grant, then our capabilities (asking for the agent's).
    pub(super) fn connected(&self, tokens: u32) -> Result<(), Error> {
        let mut s = self.state();
        let writer = s.writer.clone();
        *s = State {
            writer,
            connected: true,
            outbox: Outbox::new(tokens),
            ..State::default()
        };
        if let Some(w) = &s.writer {
            w.send(
                client::AGENT_START,
                &agent_stream::INBOUND_WINDOW.to_le_bytes(),
            )?;
        }
        let caps = if self.clipboard_on {
            agent::CLIENT_CAPS
        } else {
            0
        };
        s.send(&agent::announce(true, caps))
    }

    /// The agent left: its clipboard and anything queued for it are gone.
    pub(super) fn disconnected(&self) {
        let (had_guest, dropped) = {
            let mut s = self.state();
            let had = s.guest_types.is_some();
            let dropped = s.inbox.reset();
            let writer = s.writer.take();
            *s = State {
                writer,
                ..State::default()
            };
            (had, dropped)
        };
        if let Some(why) = dropped {
            tracing::warn!("SPICE agent left: {why}");
        }
        if had_guest {
            self.host(|h| h.guest_released());
        }
    }

    /// AGENT_TOKEN: the server returned tokens for our data.
    pub(super) fn tokens(&self, n: u32) -> Result<(), Error> {
        let mut s = self.state();
        s.outbox.add_tokens(n);
        s.flush()
    }

    /// One AGENT_DATA body from the agent.
    pub(super) fn data(&self, body: &[u8]) -> Result<(), Error> {
        let events = {
            let mut s = self.state();
            if let Some(n) = s.returns.consumed()
                && let Some(w) = &s.writer
            {
                w.send(client::AGENT_TOKEN, &n.to_le_bytes())?;
            }
            s.inbox.push(body, Instant::now())
        };
        for event in events {
            match event {
                Event::Dropped(why) => tracing::warn!("SPICE agent: {why}"),
                Event::Message { kind, data } => {
                    let with_selection = self.state().with_selection();
                    match agent::parse(kind, &data, with_selection) {
                        Ok(msg) => self.handle(msg)?,
                        Err(e) => tracing::warn!("SPICE agent: {e}: message dropped"),
                    }
                }
            }
        }
        Ok(())
    }

    fn handle(&self, msg: AgentMsg) -> Result<(), Error> {
        match msg {
            AgentMsg::Capabilities { request, caps } => {
                let ready = {
                    let mut s = self.state();
                    s.caps = Some(caps);
                    if request {
                        let ours = if self.clipboard_on {
                            agent::CLIENT_CAPS
                        } else {
                            0
                        };
                        s.send(&agent::announce(false, ours))?;
                    }
                    // Tell an agent that can hear it our item limit, so it sends no bigger PNG or text.
                    if self.clipboard_on && s.by_demand() && cap::has(caps, cap::MAX_CLIPBOARD) {
                        s.send(&agent::max_clipboard())?;
                    }
                    s.by_demand()
                };
                if !ready {
                    if self.clipboard_on {
                        tracing::info!(
                            "SPICE agent without clipboard by demand (caps {caps:#x}): no clipboard"
                        );
                    }
                    return Ok(());
                }
                let types = self.host(|h| h.agent_ready()).unwrap_or_default();
                if !types.is_empty() {
                    self.announce(&types)?;
                }
            }
            AgentMsg::Grab { selection, types } => {
                if selection != Selection::Clipboard || !self.clipboard_on {
                    return Ok(());
                }
                {
                    let mut s = self.state();
                    s.guest_types = Some(types.clone());
                    s.host_owned = false;
                    s.requested = None;
                }
                if let Some(kind) = self.host(|h| h.guest_grabbed(&types)).flatten() {
                    self.request(kind)?;
                }
            }
            AgentMsg::Request { selection, kind } => {
                if selection != Selection::Clipboard {
                    return Ok(());
                }
                let owned = self.state().host_owned;
                let data = match (owned, kind) {
                    (false, _) => None,
                    (true, clip_type::IMAGE_PNG) => self.host_png(),
                    (true, _) => self.host(|h| h.host_data(kind)).flatten(),
                };
                let mut s = self.state();
                let data = match data {
                    Some(d) if kind == clip_type::UTF8_TEXT && s.crlf() => to_crlf(&d),
                    Some(d) => d,
                    None => Vec::new(),
                };
                let (kind, data) = if data.len() > agent::MAX_CLIPBOARD {
                    tracing::warn!(
                        "the host clipboard holds {} bytes, over the {} MiB limit: not sent to the guest",
                        data.len(),
                        agent::MAX_CLIPBOARD >> 20
                    );
                    (clip_type::NONE, Vec::new())
                } else if data.is_empty() {
                    (clip_type::NONE, data)
                } else {
                    (kind, data)
                };
                let with = s.with_selection();
                s.send(&agent::clipboard(Selection::Clipboard, kind, &data, with))?;
            }
            AgentMsg::Clipboard {
                selection,
                kind,
                data,
            } => {
                if selection != Selection::Clipboard {
                    return Ok(());
                }
                let asked = self.state().requested.take();
                if asked != Some(kind) {
                    if kind != clip_type::NONE {
                        tracing::warn!(
                            "SPICE agent: clipboard data of type {kind} that was not requested: dropped"
                        );
                    }
                    return Ok(());
                }
                if kind == clip_type::IMAGE_PNG {
                    match clip_png::decode(&data) {
                        Ok(image) => {
                            self.host(|h| h.guest_image(image));
                        }
                        Err(e) => tracing::warn!(
                            "SPICE agent: clipboard image dropped: {}",
                            // The decoder quotes the guest's bytes (chunk names): no line breaks in the log.
                            crate::report::one_line(&e).escape_debug()
                        ),
                    }
                    return Ok(());
                }
                let data = if kind == clip_type::UTF8_TEXT {
                    match guest_text(data, self.state().crlf()) {
                        Ok(text) => text,
                        Err(why) => {
                            tracing::warn!("SPICE agent: clipboard text dropped: {why}");
                            return Ok(());
                        }
                    }
                } else {
                    data
                };
                self.host(|h| h.guest_data(kind, data));
            }
            AgentMsg::Release { selection } => {
                if selection != Selection::Clipboard {
                    return Ok(());
                }
                let had = self.state().guest_types.take().is_some();
                if had {
                    self.host(|h| h.guest_released());
                }
            }
            AgentMsg::Other(_) => {}
        }
        Ok(())
    }

    /// The host's image as PNG for the guest's REQUEST (encoded only now), or `None` with one log line.
    fn host_png(&self) -> Option<Vec<u8>> {
        let image = self.host(|h| h.host_image()).flatten()?;
        match clip_png::encode(&image) {
            Ok(png) => Some(png),
            Err(e) => {
                tracing::warn!(
                    "the host clipboard's image is not sent to the guest: {}",
                    crate::report::one_line(&e)
                );
                None
            }
        }
    }

    fn announce(&self, types: &[u32]) -> Result<(), Error> {
        let mut s = self.state();
        if !s.connected || !s.by_demand() || !self.clipboard_on {
            return Ok(());
        }
        s.host_owned = true;
        s.guest_types = None;
        let with = s.with_selection();
        s.send(&agent::grab(Selection::Clipboard, types, with))
    }

    #[cfg(feature = "viewer")]
    fn release(&self) -> Result<(), Error> {
        let mut s = self.state();
        if !s.host_owned {
            return Ok(());
        }
        s.host_owned = false;
        let with = s.with_selection();
        s.send(&agent::release(Selection::Clipboard, with))
    }

    fn request(&self, kind: u32) -> Result<bool, Error> {
        let mut s = self.state();
        if !s.guest_types.as_ref().is_some_and(|t| t.contains(&kind)) {
            return Ok(false);
        }
        let with = s.with_selection();
        s.requested = Some(kind);
        s.send(&agent::request(Selection::Clipboard, kind, with))?;
        Ok(true)
    }

    fn ready(&self) -> bool {
        let s = self.state();
        s.connected && s.by_demand() && self.clipboard_on
    }

    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        self.state().outbox.queued()
    }
}

/// Guest text as the host gets it: trailing NULs cut, CRLF → LF for a CRLF guest, valid UTF-8 or refused.
fn guest_text(mut data: Vec<u8>, crlf: bool) -> Result<Vec<u8>, String> {
    while data.last() == Some(&0) {
        data.pop();
    }
    if crlf {
        data = from_crlf(&data);
    }
    match std::str::from_utf8(&data) {
        Ok(_) => Ok(data),
        Err(e) => Err(format!("not UTF-8 ({e})")),
    }
}

/// LF → CRLF (a lone CR and an existing CRLF stay).
fn to_crlf(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 32);
    let mut prev = 0u8;
    for &b in text {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// CRLF → LF.
fn from_crlf(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'\r' && text.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(text[i]);
        i += 1;
    }
    out
}

/// The clipboard side of a session, for the host side (the window): announce, release, request.
#[derive(Clone)]
pub struct Clipboard(pub(super) Arc<AgentLink>);

impl Clipboard {
    /// True while an agent that does clipboard by demand is connected (and the clipboard is on).
    pub fn ready(&self) -> bool {
        self.0.ready()
    }

    /// The host clipboard changed to these types: GRAB in the guest (no data moves).
    pub fn announce(&self, types: &[u32]) {
        if let Err(e) = self.0.announce(types) {
            tracing::debug!("SPICE agent: cannot announce the host clipboard: {e}");
        }
    }

    /// The host clipboard is empty or not something the guest can take: RELEASE in the guest.
    #[cfg(feature = "viewer")]
    pub(crate) fn release(&self) {
        if let Err(e) = self.0.release() {
            tracing::debug!("SPICE agent: cannot release the clipboard: {e}");
        }
    }

    /// Asks the guest for its clipboard as `kind` (the data comes to `HostClipboard::guest_data`); false
    /// when the guest does not own a clipboard of that type.
    #[cfg(feature = "viewer")]
    pub(crate) fn request(&self, kind: u32) -> bool {
        self.0.request(kind).unwrap_or_else(|e| {
            tracing::debug!("SPICE agent: cannot request the guest clipboard: {e}");
            false
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends() {
        assert_eq!(to_crlf(b"a\nb\r\nc\r"), b"a\r\nb\r\nc\r");
        assert_eq!(from_crlf(b"a\r\nb\nc\r"), b"a\nb\nc\r");
        assert_eq!(guest_text(b"x\r\ny\0\0".to_vec(), true).unwrap(), b"x\ny");
        assert_eq!(guest_text(b"x\r\ny".to_vec(), false).unwrap(), b"x\r\ny");
        assert!(guest_text(vec![0xff, 0xfe], false).is_err());
    }
}
