//! Physical keys (winit `KeyCode`, i.e. the key's position, not its label) → PC AT set-1 scancodes as the
//! SPICE inputs channel takes them. The host's keyboard layout cannot change what the guest receives: the
//! guest applies its own layout to the positions. Table: docs/spice.md (from the protocol fact sheet's
//! evdev → set-1 table; keycodemapdb for Pause).
use winit::keyboard::KeyCode;

use crate::spice::KeyCodes;

/// Set-1 code of a key: `0x00sc` plain, `0xE0sc` extended. `None` for keys a PC keyboard does not have.
pub(crate) fn set1(code: KeyCode) -> Option<u16> {
    use KeyCode as K;
    Some(match code {
        K::Escape => 0x01,
        K::Digit1 => 0x02,
        K::Digit2 => 0x03,
        K::Digit3 => 0x04,
        K::Digit4 => 0x05,
        K::Digit5 => 0x06,
        K::Digit6 => 0x07,
        K::Digit7 => 0x08,
        K::Digit8 => 0x09,
        K::Digit9 => 0x0a,
        K::Digit0 => 0x0b,
        K::Minus => 0x0c,
        K::Equal => 0x0d,
        K::Backspace => 0x0e,
        K::Tab => 0x0f,
        K::KeyQ => 0x10,
        K::KeyW => 0x11,
        K::KeyE => 0x12,
        K::KeyR => 0x13,
        K::KeyT => 0x14,
        K::KeyY => 0x15,
        K::KeyU => 0x16,
        K::KeyI => 0x17,
        K::KeyO => 0x18,
        K::KeyP => 0x19,
        K::BracketLeft => 0x1a,
        K::BracketRight => 0x1b,
        K::Enter => 0x1c,
        K::ControlLeft => 0x1d,
        K::KeyA => 0x1e,
        K::KeyS => 0x1f,
        K::KeyD => 0x20,
        K::KeyF => 0x21,
        K::KeyG => 0x22,
        K::KeyH => 0x23,
        K::KeyJ => 0x24,
        K::KeyK => 0x25,
        K::KeyL => 0x26,
        K::Semicolon => 0x27,
        K::Quote => 0x28,
        K::Backquote => 0x29,
        K::ShiftLeft => 0x2a,
        K::Backslash => 0x2b,
        K::KeyZ => 0x2c,
        K::KeyX => 0x2d,
        K::KeyC => 0x2e,
        K::KeyV => 0x2f,
        K::KeyB => 0x30,
        K::KeyN => 0x31,
        K::KeyM => 0x32,
        K::Comma => 0x33,
        K::Period => 0x34,
        K::Slash => 0x35,
        K::ShiftRight => 0x36,
        K::NumpadMultiply => 0x37,
        K::AltLeft => 0x38,
        K::Space => 0x39,
        K::CapsLock => 0x3a,
        K::F1 => 0x3b,
        K::F2 => 0x3c,
        K::F3 => 0x3d,
        K::F4 => 0x3e,
        K::F5 => 0x3f,
        K::F6 => 0x40,
        K::F7 => 0x41,
        K::F8 => 0x42,
        K::F9 => 0x43,
        K::F10 => 0x44,
        K::NumLock => 0x45,
        K::ScrollLock => 0x46,
        K::Numpad7 => 0x47,
        K::Numpad8 => 0x48,
        K::Numpad9 => 0x49,
        K::NumpadSubtract => 0x4a,
        K::Numpad4 => 0x4b,
        K::Numpad5 => 0x4c,
        K::Numpad6 => 0x4d,
        K::NumpadAdd => 0x4e,
        K::Numpad1 => 0x4f,
        K::Numpad2 => 0x50,
        K::Numpad3 => 0x51,
        K::Numpad0 => 0x52,
        K::NumpadDecimal => 0x53,
        K::IntlBackslash => 0x56,
        K::F11 => 0x57,
        K::F12 => 0x58,
        K::IntlRo => 0x73,
        K::Katakana => 0x78,
        K::Hiragana => 0x77,
        K::Convert => 0x79,
        K::KanaMode => 0x70,
        K::NonConvert => 0x7b,
        K::NumpadComma => 0x7e,
        K::IntlYen => 0x7d,
        K::NumpadEnter => 0xe01c,
        K::ControlRight => 0xe01d,
        K::NumpadDivide => 0xe035,
        K::PrintScreen => 0xe037,
        K::AltRight => 0xe038,
        // keycodemapdb's Pause (QEMU turns it into the real E1 1D 45 … sequence for the guest).
        K::Pause => 0xe046,
        K::Home => 0xe047,
        K::ArrowUp => 0xe048,
        K::PageUp => 0xe049,
        K::ArrowLeft => 0xe04b,
        K::ArrowRight => 0xe04d,
        K::End => 0xe04f,
        K::ArrowDown => 0xe050,
        K::PageDown => 0xe051,
        K::Insert => 0xe052,
        K::Delete => 0xe053,
        K::SuperLeft => 0xe05b,
        K::SuperRight => 0xe05c,
        K::ContextMenu => 0xe05d,
        K::Power => 0xe05e,
        K::Sleep => 0xe05f,
        K::WakeUp => 0xe063,
        K::AudioVolumeMute => 0xe020,
        K::AudioVolumeDown => 0xe02e,
        K::AudioVolumeUp => 0xe030,
        K::LaunchApp2 => 0xe021,
        K::LaunchApp1 => 0xe06b,
        K::LaunchMail => 0xe06c,
        K::MediaSelect => 0xe06d,
        K::BrowserSearch => 0xe065,
        K::BrowserFavorites => 0xe066,
        K::BrowserRefresh => 0xe067,
        K::BrowserStop => 0xe068,
        K::BrowserForward => 0xe069,
        K::BrowserBack => 0xe06a,
        K::BrowserHome => 0xe032,
        K::MediaTrackNext => 0xe019,
        K::MediaPlayPause => 0xe022,
        K::MediaTrackPrevious => 0xe010,
        K::MediaStop => 0xe024,
        _ => return None,
    })
}

/// The KEY_DOWN/KEY_UP codes of a key: set-1 bytes packed low byte first (`E0 48` → `0x48e0`), break = make
/// with bit 7 of the last byte set.
pub fn key_codes(code: KeyCode) -> Option<KeyCodes> {
    let sc = set1(code)?;
    let low = (sc & 0x7f) as u32;
    Some(if sc & 0xff00 == 0xe000 {
        KeyCodes {
            make: (low << 8) | 0xe0,
            brk: ((low | 0x80) << 8) | 0xe0,
        }
    } else {
        KeyCodes {
            make: low,
            brk: low | 0x80,
        }
    })
}

/// Every key with a scancode, for name lookups and tests.
pub(crate) fn all_keys() -> impl Iterator<Item = KeyCode> {
    // winit's KeyCode is non-exhaustive; the names here are the ones the table above covers.
    const NAMES: &[KeyCode] = &{
        use KeyCode as K;
        [
            K::Escape,
            K::Digit1,
            K::Digit2,
            K::Digit3,
            K::Digit4,
            K::Digit5,
            K::Digit6,
            K::Digit7,
            K::Digit8,
            K::Digit9,
            K::Digit0,
            K::Minus,
            K::Equal,
            K::Backspace,
            K::Tab,
            K::KeyQ,
            K::KeyW,
            K::KeyE,
            K::KeyR,
            K::KeyT,
            K::KeyY,
            K::KeyU,
            K::KeyI,
            K::KeyO,
            K::KeyP,
            K::BracketLeft,
            K::BracketRight,
            K::Enter,
            K::ControlLeft,
            K::KeyA,
            K::KeyS,
            K::KeyD,
            K::KeyF,
            K::KeyG,
            K::KeyH,
            K::KeyJ,
            K::KeyK,
            K::KeyL,
            K::Semicolon,
            K::Quote,
            K::Backquote,
            K::ShiftLeft,
            K::Backslash,
            K::KeyZ,
            K::KeyX,
            K::KeyC,
            K::KeyV,
            K::KeyB,
            K::KeyN,
            K::KeyM,
            K::Comma,
            K::Period,
            K::Slash,
            K::ShiftRight,
            K::NumpadMultiply,
            K::AltLeft,
            K::Space,
            K::CapsLock,
            K::F1,
            K::F2,
            K::F3,
            K::F4,
            K::F5,
            K::F6,
            K::F7,
            K::F8,
            K::F9,
            K::F10,
            K::NumLock,
            K::ScrollLock,
            K::Numpad7,
            K::Numpad8,
            K::Numpad9,
            K::NumpadSubtract,
            K::Numpad4,
            K::Numpad5,
            K::Numpad6,
            K::NumpadAdd,
            K::Numpad1,
            K::Numpad2,
            K::Numpad3,
            K::Numpad0,
            K::NumpadDecimal,
            K::IntlBackslash,
            K::F11,
            K::F12,
            K::IntlRo,
            K::Katakana,
            K::Hiragana,
            K::Convert,
            K::KanaMode,
            K::NonConvert,
            K::NumpadComma,
            K::IntlYen,
            K::NumpadEnter,
            K::ControlRight,
            K::NumpadDivide,
            K::PrintScreen,
            K::AltRight,
            K::Pause,
            K::Home,
            K::ArrowUp,
            K::PageUp,
            K::ArrowLeft,
            K::ArrowRight,
            K::End,
            K::ArrowDown,
            K::PageDown,
            K::Insert,
            K::Delete,
            K::SuperLeft,
            K::SuperRight,
            K::ContextMenu,
            K::Power,
            K::Sleep,
            K::WakeUp,
            K::AudioVolumeMute,
            K::AudioVolumeDown,
            K::AudioVolumeUp,
            K::LaunchApp2,
            K::LaunchApp1,
            K::LaunchMail,
            K::MediaSelect,
            K::BrowserSearch,
            K::BrowserFavorites,
            K::BrowserRefresh,
            K::BrowserStop,
            K::BrowserForward,
            K::BrowserBack,
            K::BrowserHome,
            K::MediaTrackNext,
            K::MediaPlayPause,
            K::MediaTrackPrevious,
            K::MediaStop,
        ]
    };
    NAMES.iter().copied()
}

/// A key by its winit name (`ScrollLock`, `Pause`, `ControlRight`, `F12`…), case-insensitive.
pub(crate) fn by_name(name: &str) -> Option<KeyCode> {
    all_keys().find(|k| format!("{k:?}").eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_live_capture() {
        assert_eq!(
            key_codes(KeyCode::KeyA),
            Some(KeyCodes {
                make: 0x1e,
                brk: 0x9e
            })
        );
        assert_eq!(
            key_codes(KeyCode::ArrowUp),
            Some(KeyCodes {
                make: 0x48e0,
                brk: 0xc8e0
            })
        );
        assert_eq!(key_codes(KeyCode::F13), None);
    }

    #[test]
    fn the_table_is_complete_and_unique() {
        let codes: Vec<u16> = all_keys().map(|k| set1(k).unwrap()).collect();
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), codes.len(), "two keys share a scancode");
        // 104/105-key layout: 105 keys + the Japanese/Brazilian extras + media keys.
        assert!(codes.len() >= 105 + 9 + 20, "{}", codes.len());
        assert_eq!(by_name("scrolllock"), Some(KeyCode::ScrollLock));
        assert_eq!(by_name("nope"), None);
    }
}
