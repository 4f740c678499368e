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
//! Text (UTF-8, exact bytes) and images: the guest's PNG arrives decoded (RGBA, bounded: see
//! `spice::clip_png`) and goes on the host clipboard through arboard's `set_image` (which serves it as
//! `image/png`); a host image (arboard's `get_image`) is announced as IMAGE_PNG when the host clipboard holds no
//! text, and encoded as PNG only when the guest asks. Text wins when a clipboard offers both.
use std::borrow::Cow;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::spice::agent::clip_type;
use crate::spice::{Clipboard, HostClipboard, RgbaImage};

struct Inner {
    board: Option<arboard::Clipboard>,
    focused: bool,
    /// The guest owns a clipboard of this type (text or PNG) that we have not fetched yet.
    guest_pending: Option<u32>,
    /// Hash of the item last exchanged (put on the host clipboard, or announced to the guest).
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

fn hash(item: impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    item.hash(&mut h);
    h.finish()
}

fn image_hash(width: usize, height: usize, bytes: &[u8]) -> u64 {
    hash((width, height, bytes))
}

/// What the host clipboard holds, as the guest would be told: its type and a hash of it.
fn look(board: &mut arboard::Clipboard) -> Option<(u32, u64)> {
    if let Ok(t) = board.get_text()
        && !t.is_empty()
    {
        return Some((clip_type::UTF8_TEXT, hash(t.as_str())));
    }
    let image = board.get_image().ok()?;
    Some((
        clip_type::IMAGE_PNG,
        image_hash(image.width, image.height, &image.bytes),
    ))
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
            guest_pending: None,
            last: None,
        })))
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The window gained or lost focus. On focus: a host clipboard that changed is announced to the guest (text,
    /// or an image as IMAGE_PNG), one that holds nothing we sync any more is released in the guest (if we had
    /// announced it), and a guest clipboard not fetched yet is requested. Never called with the session's
    /// locks held.
    pub fn focus_changed(&self, focused: bool, session: &Clipboard) {
        let (announce, fetch, gone) = {
            let mut inner = self.inner();
            inner.focused = focused;
            if !focused {
                return;
            }
            let Some(board) = inner.board.as_mut() else {
                return;
            };
            let (announce, gone) = match look(board) {
                Some((kind, h)) => {
                    let changed = inner.last != Some(h);
                    inner.last = Some(h);
                    (changed.then_some(kind), false)
                }
                None => {
                    inner.last = None;
                    (None, true)
                }
            };
            let fetch = inner.guest_pending.filter(|_| announce.is_none());
            (announce, fetch, gone)
        };
        if gone {
            session.release();
        }
        if let Some(kind) = announce {
            session.announce(&[kind]);
        } else if let Some(kind) = fetch
            && !session.request(kind)
        {
            self.inner().guest_pending = None;
        }
    }
}

impl HostClipboard for HostBoard {
    fn agent_ready(&mut self) -> Vec<u32> {
        let mut inner = self.inner();
        let Some(board) = inner.board.as_mut() else {
            return Vec::new();
        };
        match look(board) {
            Some((kind, h)) => {
                inner.last = Some(h);
                vec![kind]
            }
            None => Vec::new(),
        }
    }

    fn guest_grabbed(&mut self, types: &[u32]) -> Option<u32> {
        let mut inner = self.inner();
        let kind = [clip_type::UTF8_TEXT, clip_type::IMAGE_PNG]
            .into_iter()
            .find(|k| types.contains(k))
            .filter(|_| inner.board.is_some());
        inner.guest_pending = kind;
        kind.filter(|_| inner.focused)
    }

    fn guest_data(&mut self, kind: u32, data: Vec<u8>) {
        if kind != clip_type::UTF8_TEXT {
            return;
        }
        let Ok(text) = String::from_utf8(data) else {
            return;
        };
        let mut inner = self.inner();
        inner.guest_pending = None;
        inner.last = Some(hash(text.as_str()));
        if let Some(b) = inner.board.as_mut()
            && let Err(e) = b.set_text(text)
        {
            tracing::warn!("cannot put the guest's text on the host clipboard: {e}");
        }
    }

    fn guest_image(&mut self, image: RgbaImage) {
        let mut inner = self.inner();
        inner.guest_pending = None;
        let (width, height) = (image.width as usize, image.height as usize);
        inner.last = Some(image_hash(width, height, &image.pixels));
        let data = arboard::ImageData {
            width,
            height,
            bytes: Cow::Owned(image.pixels),
        };
        if let Some(b) = inner.board.as_mut()
            && let Err(e) = b.set_image(data)
        {
            tracing::warn!("cannot put the guest's image on the host clipboard: {e}");
        }
    }

    fn guest_released(&mut self) {
        self.inner().guest_pending = None;
    }

    fn host_data(&mut self, kind: u32) -> Option<Vec<u8>> {
        if kind != clip_type::UTF8_TEXT {
            return None;
        }
        let mut inner = self.inner();
        let text = inner.board.as_mut()?.get_text().ok()?;
        inner.last = Some(hash(text.as_str()));
        Some(text.into_bytes())
    }

    fn host_image(&mut self) -> Option<RgbaImage> {
        let mut inner = self.inner();
        let image = inner.board.as_mut()?.get_image().ok()?;
        inner.last = Some(image_hash(image.width, image.height, &image.bytes));
        // A size that does not fit u32 is refused by the encoder's caps as 0×0.
        Some(RgbaImage {
            width: u32::try_from(image.width).unwrap_or(0),
            height: u32::try_from(image.height).unwrap_or(0),
            pixels: image.bytes.into_owned(),
        })
    }
}
