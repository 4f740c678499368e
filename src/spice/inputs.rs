//! The inputs channel's messages: what the server sends (INIT, KEY_MODIFIERS, MOUSE_MOTION_ACK) and the
//! client's keyboard and mouse messages, byte for byte.
use super::error::ProtocolError;
use super::wire::Reader;

/// Inputs caps this client sets: KEY_SCANCODE (0).
pub(crate) const CLIENT_CAPS: [u32; 1] = [0];

/// The server acks every this many motion/position messages.
pub(crate) const MOTION_ACK_BUNCH: u32 = 4;

/// Lock-key flags of KEY_MODIFIERS (the window sets them).
#[cfg(feature = "viewer")]
pub(crate) mod modifiers {
    /// Scroll Lock.
    pub(crate) const SCROLL_LOCK: u16 = 1;
    /// Num Lock.
    pub(crate) const NUM_LOCK: u16 = 2;
    /// Caps Lock.
    pub(crate) const CAPS_LOCK: u16 = 4;
}

/// Mouse buttons (`u8 button` ids) and their `buttons_state` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Button {
    /// Left.
    Left,
    /// Middle.
    Middle,
    /// Right.
    Right,
    /// Wheel up (press + release per notch).
    WheelUp,
    /// Wheel down.
    WheelDown,
    /// Back/side.
    Side,
    /// Forward/extra.
    Extra,
}

impl Button {
    /// The button id on the wire.
    pub(crate) fn id(self) -> u8 {
        match self {
            Button::Left => 1,
            Button::Middle => 2,
            Button::Right => 3,
            Button::WheelUp => 4,
            Button::WheelDown => 5,
            Button::Side => 6,
            Button::Extra => 7,
        }
    }

    /// The bit in `buttons_state`.
    pub(crate) fn mask(self) -> u16 {
        1 << (self.id() - 1)
    }
}

/// An inputs channel message from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InputsMsg {
    /// The guest's lock-key state at link.
    Init {
        /// Lock flags.
        modifiers: u16,
    },
    /// The guest's lock LEDs changed.
    KeyModifiers(u16),
    /// Four motion messages were processed.
    MotionAck,
    /// Anything else: skipped.
    Other(u16),
}

/// Parses an inputs channel message (types ≥ 101).
pub(crate) fn parse(kind: u16, body: &[u8]) -> Result<InputsMsg, ProtocolError> {
    Ok(match kind {
        101 => InputsMsg::Init {
            modifiers: Reader::new("INPUTS_INIT", body).u16()?,
        },
        102 => InputsMsg::KeyModifiers(Reader::new("INPUTS_KEY_MODIFIERS", body).u16()?),
        111 => InputsMsg::MotionAck,
        other => InputsMsg::Other(other),
    })
}

/// Client messages: (type, body).
pub(crate) mod client {
    /// KEY_DOWN with the set-1 bytes packed little-endian.
    pub(crate) fn key_down(code: u32) -> (u16, Vec<u8>) {
        (101, code.to_le_bytes().to_vec())
    }

    /// KEY_UP.
    pub(crate) fn key_up(code: u32) -> (u16, Vec<u8>) {
        (102, code.to_le_bytes().to_vec())
    }

    /// KEY_MODIFIERS: the lock state the guest should have.
    #[cfg(feature = "viewer")]
    pub(crate) fn key_modifiers(flags: u16) -> (u16, Vec<u8>) {
        (103, flags.to_le_bytes().to_vec())
    }

    /// MOUSE_MOTION (relative, server mode).
    pub(crate) fn mouse_motion(dx: i32, dy: i32, buttons: u16) -> (u16, Vec<u8>) {
        let mut b = Vec::with_capacity(10);
        b.extend_from_slice(&dx.to_le_bytes());
        b.extend_from_slice(&dy.to_le_bytes());
        b.extend_from_slice(&buttons.to_le_bytes());
        (111, b)
    }

    /// MOUSE_POSITION (absolute guest pixels, client mode).
    pub(crate) fn mouse_position(x: u32, y: u32, buttons: u16, display: u8) -> (u16, Vec<u8>) {
        let mut b = Vec::with_capacity(11);
        b.extend_from_slice(&x.to_le_bytes());
        b.extend_from_slice(&y.to_le_bytes());
        b.extend_from_slice(&buttons.to_le_bytes());
        b.push(display);
        (112, b)
    }

    /// MOUSE_PRESS: button id and the state after the press.
    pub(crate) fn mouse_press(button: u8, buttons: u16) -> (u16, Vec<u8>) {
        let [a, b] = buttons.to_le_bytes();
        (113, vec![button, a, b])
    }

    /// MOUSE_RELEASE: button id and the state after the release.
    pub(crate) fn mouse_release(button: u8, buttons: u16) -> (u16, Vec<u8>) {
        let [a, b] = buttons.to_le_bytes();
        (114, vec![button, a, b])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_bytes_match_the_live_capture() {
        assert_eq!(client::key_down(0x1e), (101, vec![0x1e, 0, 0, 0]));
        assert_eq!(client::key_up(0xc8e0), (102, vec![0xe0, 0xc8, 0, 0]));
        assert_eq!(
            client::mouse_motion(10, 5, 0),
            (111, vec![10, 0, 0, 0, 5, 0, 0, 0, 0, 0])
        );
        assert_eq!(
            client::mouse_position(100, 100, 0, 0),
            (112, vec![100, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0])
        );
        assert_eq!(client::mouse_press(1, 1), (113, vec![1, 1, 0]));
        assert_eq!(Button::WheelDown.mask(), 0x10);
    }

    #[test]
    fn server_messages() {
        assert_eq!(
            parse(101, &[4, 0]).unwrap(),
            InputsMsg::Init { modifiers: 4 }
        );
        assert!(parse(102, &[4]).is_err());
        assert_eq!(parse(111, &[]).unwrap(), InputsMsg::MotionAck);
    }
}
