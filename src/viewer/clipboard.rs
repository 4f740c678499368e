//! The host side of the guest clipboard: the desktop's clipboard through `arboard` (X11, and Wayland where the
//! compositor offers the data-control protocol; otherwise XWayland's X11 clipboard), as the SPICE agent link's
//! [`HostClipboard`].
//!
//! arboard cannot serve a clipboard lazily (it has no "data wanted" callback; `set_text` hands it the bytes)
//! and does not report clipboard changes, so:
//! - **guest → host**: on the guest's GRAB the text is fetched (REQUEST) only while the window has focus, and
//!   put on the host clipboard when it arrives; a GRAB while unfocused is fetched when the window gets focus
//!   again. Copying in the guest therefore reaches the host only while the user works in the VM's window.
//! - **host → guest**: the host clipboard is looked at when the window gets focus (and when an agent connects);
//!   if its text differs from what was last exchanged, the guest is told (GRAB) — no bytes move. The bytes are
//!   read again and sent only when the guest asks (REQUEST), i.e. when something in the guest pastes.
//!
//! Text only (UTF-8, exact bytes). Images are not synced (the guest's PNG offers are ignored).
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::spice::agent::clip_type;
use crate::spice::{Clipboard, HostClipboard};

struct Inner {
    board: Option<arboard::Clipboard>,
    focused: bool,
    /// The guest owns a text clipboard we have not fetched yet.
    guest_pending: bool,
    /// Hash of the text last exchanged (put on the host clipboard, or announced to the guest).
    last: Option<u64>,
}

/// The desktop clipboard for one window's SPICE session (cheap to clone; clones share one arboard handle).
#[derive(Clone)]
pub struct HostBoard(Arc<Mutex<Inner>>);

impl Default for HostBoard {
    fn default() -> Self {
        Self::new()
    }
}

fn hash(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

impl HostBoard {
    /// Opens the desktop clipboard; without one (no display, a compositor arboard cannot use) the clipboard
    /// is off with one log line and everything else works.
    pub fn new() -> Self {
        let board = match arboard::Clipboard::new() {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::warn!("no host clipboard ({e}): copy and paste with the VM is off");
                None
            }
        };
        Self(Arc::new(Mutex::new(Inner {
            board,
            focused: false,
            guest_pending: false,
            last: None,
        })))
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The window gained or lost focus. On focus: a host clipboard that changed is announced to the guest, one
    /// that holds no text any more is released in the guest (if we had announced it), and a guest clipboard not
    /// fetched yet is requested. Never called with the session's locks held.
    pub fn focus_changed(&self, focused: bool, session: &Clipboard) {
        let (announce, fetch, gone) = {
            let mut inner = self.inner();
            inner.focused = focused;
            if !focused {
                return;
            }
            if inner.board.is_none() {
                return;
            }
            let text = inner.board.as_mut().and_then(|b| b.get_text().ok());
            let (changed, gone) = match text {
                Some(t) if !t.is_empty() => {
                    let changed = inner.last != Some(hash(&t));
                    inner.last = Some(hash(&t));
                    (changed, false)
                }
                _ => {
                    inner.last = None;
                    (false, true)
                }
            };
            (changed, inner.guest_pending && !changed, gone)
        };
        if gone {
            session.release();
        }
        if announce {
            session.announce(&[clip_type::UTF8_TEXT]);
        } else if fetch && !session.request(clip_type::UTF8_TEXT) {
            self.inner().guest_pending = false;
        }
    }
}

impl HostClipboard for HostBoard {
    fn agent_ready(&mut self) -> Vec<u32> {
        let mut inner = self.inner();
        match inner.board.as_mut().and_then(|b| b.get_text().ok()) {
            Some(t) if !t.is_empty() => {
                inner.last = Some(hash(&t));
                vec![clip_type::UTF8_TEXT]
            }
            _ => Vec::new(),
        }
    }

    fn guest_grabbed(&mut self, types: &[u32]) -> Option<u32> {
        let mut inner = self.inner();
        if inner.board.is_none() || !types.contains(&clip_type::UTF8_TEXT) {
            inner.guest_pending = false;
            return None;
        }
        inner.guest_pending = true;
        inner.focused.then_some(clip_type::UTF8_TEXT)
    }

    fn guest_data(&mut self, kind: u32, data: Vec<u8>) {
        if kind != clip_type::UTF8_TEXT {
            return;
        }
        let Ok(text) = String::from_utf8(data) else {
            return;
        };
        let mut inner = self.inner();
        inner.guest_pending = false;
        inner.last = Some(hash(&text));
        if let Some(b) = inner.board.as_mut()
            && let Err(e) = b.set_text(text)
        {
            tracing::warn!("cannot put the guest's text on the host clipboard: {e}");
        }
    }

    fn guest_released(&mut self) {
        self.inner().guest_pending = false;
    }

    fn host_data(&mut self, kind: u32) -> Option<Vec<u8>> {
        if kind != clip_type::UTF8_TEXT {
            return None;
        }
        let mut inner = self.inner();
        let text = inner.board.as_mut()?.get_text().ok()?;
        inner.last = Some(hash(&text));
        Some(text.into_bytes())
    }
}
