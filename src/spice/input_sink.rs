//! [`Inputs`]: the handle the window thread sends keyboard and mouse input through. It writes straight into the
//! inputs channel's socket (no queue, so a key reaches the socket within the call), remembers every key still
//! down so [`Inputs::release_all`] can lift them, and keeps the server's motion-ack flow control: at most
//! [`MAX_UNACKED`] motion/position messages are in flight; beyond that, motion is merged (relative) or the
//! latest position kept (absolute) and sent when the next MOUSE_MOTION_ACK arrives, so the server never
//! drops input.
use std::sync::{Arc, Mutex, MutexGuard};

use super::channel::Writer;
use super::inputs::{Button, MOTION_ACK_BUNCH, client};

/// Motion messages allowed in flight (two ack bunches).
pub(crate) const MAX_UNACKED: u32 = 2 * MOTION_ACK_BUNCH;
/// Largest relative step per message (QEMU's relative pointer paths take at most ±127).
pub(crate) const MAX_STEP: i32 = 127;

/// A key's set-1 codes packed as KEY_DOWN/KEY_UP expect them (low byte first, e.g. `0x48e0` / `0xc8e0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyCodes {
    /// Make code.
    pub make: u32,
    /// Break code.
    pub brk: u32,
}

#[derive(Debug, Default)]
struct State {
    link: Option<Writer>,
    held: Vec<KeyCodes>,
    buttons: u16,
    unacked: u32,
    pending_rel: (i32, i32),
    pending_abs: Option<(u32, u32)>,
    /// Messages sent since the link (the harness and the benchmark read it).
    sent: u64,
}

/// The window's handle on the inputs channel (cheap to clone). Without a linked channel every call is a no-op.
#[derive(Debug, Clone, Default)]
pub struct Inputs(Arc<Mutex<State>>);

impl Inputs {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True while an inputs channel is linked.
    pub fn is_linked(&self) -> bool {
        self.lock().link.is_some()
    }

    /// Key pressed (a repeat sends the make code again, like a keyboard's typematic repeat).
    pub fn key_down(&self, key: KeyCodes) {
        let mut s = self.lock();
        if s.link.is_none() {
            return;
        }
        if !s.held.contains(&key) {
            s.held.push(key);
        }
        send(&mut s, &[client::key_down(key.make)]);
    }

    /// Key released (sent even if the key was not seen going down: a stale break is harmless, a stuck key is not).
    pub fn key_up(&self, key: KeyCodes) {
        let mut s = self.lock();
        s.held.retain(|k| *k != key);
        send(&mut s, &[client::key_up(key.brk)]);
    }

    /// Releases every key and button still down (focus lost, capture released, session ending).
    pub fn release_all(&self) {
        let mut s = self.lock();
        let mut msgs: Vec<_> = s
            .held
            .drain(..)
            .rev()
            .map(|k| client::key_up(k.brk))
            .collect();
        for b in [
            Button::Left,
            Button::Middle,
            Button::Right,
            Button::Side,
            Button::Extra,
        ] {
            if s.buttons & b.mask() != 0 {
                s.buttons &= !b.mask();
                msgs.push(client::mouse_release(b.id(), s.buttons));
            }
        }
        if !msgs.is_empty() {
            send(&mut s, &msgs);
        }
    }

    /// Keys currently held (as sent).
    pub fn held(&self) -> Vec<KeyCodes> {
        self.lock().held.clone()
    }

    /// Sets the guest's lock keys (Caps/Num/Scroll flags) to the host's.
    #[cfg(feature = "viewer")]
    pub(crate) fn sync_locks(&self, flags: u16) {
        let mut s = self.lock();
        send(&mut s, &[client::key_modifiers(flags)]);
    }

    /// Absolute pointer position in guest pixels (client mouse mode).
    pub fn position(&self, x: u32, y: u32) {
        let mut s = self.lock();
        if s.unacked >= MAX_UNACKED {
            s.pending_abs = Some((x, y));
            return;
        }
        s.unacked += 1;
        let buttons = s.buttons;
        send(&mut s, &[client::mouse_position(x, y, buttons, 0)]);
    }

    /// Relative motion (server mouse mode).
    #[cfg(feature = "viewer")]
    pub(crate) fn motion(&self, dx: i32, dy: i32) {
        let mut s = self.lock();
        s.pending_rel.0 = s.pending_rel.0.saturating_add(dx);
        s.pending_rel.1 = s.pending_rel.1.saturating_add(dy);
        flush_motion(&mut s);
    }

    /// Button pressed.
    pub fn press(&self, b: Button) {
        let mut s = self.lock();
        s.buttons |= b.mask();
        let buttons = s.buttons;
        send(&mut s, &[client::mouse_press(b.id(), buttons)]);
    }

    /// Button released.
    pub fn release(&self, b: Button) {
        let mut s = self.lock();
        s.buttons &= !b.mask();
        let buttons = s.buttons;
        send(&mut s, &[client::mouse_release(b.id(), buttons)]);
    }

    /// Wheel notches: positive = up (away from the user).
    #[cfg(feature = "viewer")]
    pub(crate) fn wheel(&self, notches: i32) {
        let b = if notches > 0 {
            Button::WheelUp
        } else {
            Button::WheelDown
        };
        let mut s = self.lock();
        let buttons = s.buttons;
        let msgs: Vec<_> = (0..notches.unsigned_abs().min(32))
            .flat_map(|_| {
                [
                    client::mouse_press(b.id(), buttons),
                    client::mouse_release(b.id(), buttons),
                ]
            })
            .collect();
        if !msgs.is_empty() {
            send(&mut s, &msgs);
        }
    }

    /// A new inputs link: fresh flow control and key state.
    pub(super) fn attach(&self, writer: Writer) {
        let mut s = self.lock();
        *s = State {
            link: Some(writer),
            ..State::default()
        };
    }

    /// The link is gone.
    pub(super) fn detach(&self) {
        let mut s = self.lock();
        if let Some(w) = s.link.take() {
            w.shutdown();
        }
        s.held.clear();
        s.buttons = 0;
    }

    /// MOUSE_MOTION_ACK: four more messages may go; send what was held back.
    pub(super) fn on_motion_ack(&self) {
        let mut s = self.lock();
        s.unacked = s.unacked.saturating_sub(MOTION_ACK_BUNCH);
        if let Some((x, y)) = s.pending_abs.take() {
            s.unacked += 1;
            let buttons = s.buttons;
            send(&mut s, &[client::mouse_position(x, y, buttons, 0)]);
        }
        flush_motion(&mut s);
    }
}

/// Sends the merged relative motion in steps of at most ±[`MAX_STEP`] while the flow control allows.
fn flush_motion(s: &mut State) {
    let mut msgs = Vec::new();
    while s.pending_rel != (0, 0) && s.unacked < MAX_UNACKED {
        let dx = s.pending_rel.0.clamp(-MAX_STEP, MAX_STEP);
        let dy = s.pending_rel.1.clamp(-MAX_STEP, MAX_STEP);
        s.pending_rel = (s.pending_rel.0 - dx, s.pending_rel.1 - dy);
        s.unacked += 1;
        msgs.push(client::mouse_motion(dx, dy, s.buttons));
    }
    if !msgs.is_empty() {
        send(s, &msgs);
    }
}

fn send(s: &mut State, msgs: &[(u16, Vec<u8>)]) {
    let Some(w) = &s.link else { return };
    match w.send_all(msgs) {
        Ok(()) => s.sent += msgs.len() as u64,
        Err(e) => {
            tracing::debug!("SPICE inputs: {e}");
            // The reader thread sees the shut-down socket and the session reconnects.
            w.shutdown();
            s.link = None;
        }
    }
}
