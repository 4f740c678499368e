//! KVMFR on top of LGMP (docs/lg-protocol.md §3): the udata header and records, frame messages (v20 = B7, v19 = B6)
//! and cursor messages. Parsers copy each record once and validate every field against the region; encoders
//! (for the producer) write the same layouts.
use super::lgmp::Message;
use crate::shm::{self, ShmView};

mod cursor;
mod frame;
mod udata;
pub use cursor::{CursorShape, CursorState, CursorType, CursorUpdate, parse_cursor};
pub use frame::{FrameInfo, FrameType, Rect, parse_frame};
pub use udata::{HostInfo, encode_udata, parse_udata};

/// "KVMFR---".
pub(crate) const MAGIC: &[u8; 8] = b"KVMFR---";
/// KVMFR version of B7.
pub(crate) const VERSION_B7: u32 = 20;
/// KVMFR version of B6.
pub(crate) const VERSION_B6: u32 = 19;
/// Queue id of the pointer queue.
pub(crate) const QUEUE_POINTER: u32 = 1;
/// Queue id of the frame queue.
pub(crate) const QUEUE_FRAME: u32 = 2;
/// Size of the KVMFR header in udata.
pub(crate) const HEADER_SIZE: usize = 48;
/// Damage rects in a frame.
pub(crate) const MAX_DAMAGE_RECTS: usize = 64;
/// Size of a B7 KVMFRFrame.
pub(crate) const FRAME_SIZE_V20: usize = 1084;
/// Size of a B6 KVMFRFrame.
pub(crate) const FRAME_SIZE_V19: usize = 1076;
/// The cursor struct in front of the shape data.
pub(crate) const CURSOR_SIZE: usize = 24;
/// Largest cursor image side (MAX_POINTER_SIZE = 24 + 512·512·4).
pub(crate) const MAX_CURSOR_SIDE: u32 = 512;
/// Largest frame side we accept.
pub(crate) const MAX_FRAME_SIDE: u32 = 16384;
/// KVMFR_FEATURE_SETCURSORPOS.
pub(crate) const FEATURE_SETCURSORPOS: u32 = 0x1;
/// KVMFR_MESSAGE_SETCURSORPOS.
pub(crate) const MESSAGE_SETCURSORPOS: u32 = 0;

/// Frame flags.
pub(crate) mod flags {
    // 0x1 BLOCK_SCREENSAVER and 0x2 REQUEST_ACTIVATION: the viewer acts on neither.
    /// The shared memory is too small: fewer rows than the frame height.
    pub(crate) const TRUNCATED: u32 = 0x4;
    /// HDR content.
    pub(crate) const HDR: u32 = 0x8;
    /// PQ already applied.
    pub(crate) const HDR_PQ: u32 = 0x10;
}

/// Cursor flags (in the LGMP message udata).
pub(crate) mod cursor_flags {
    /// x/y valid.
    pub(crate) const POSITION: u32 = 0x1;
    /// Visible.
    pub(crate) const VISIBLE: u32 = 0x2;
    /// Shape fields and data valid.
    pub(crate) const SHAPE: u32 = 0x4;
}

/// KVMFR errors: bad data in the udata or a message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// udata is not KVMFR.
    #[error("the LGMP udata is not a KVMFR header")]
    NotKvmfr,
    /// Another KVMFR version.
    #[error(
        "incompatible KVMFR version {found} (host {host:?}); this viewer speaks {VERSION_B7} (Looking Glass B7) and {VERSION_B6} (B6)"
    )]
    Version {
        /// The host's version.
        found: u32,
        /// The host's build string.
        host: String,
    },
    /// A frame field is impossible.
    #[error("bad frame: {0}")]
    Frame(String),
    /// A cursor field is impossible.
    #[error("bad cursor: {0}")]
    Cursor(String),
    /// Access outside the region.
    #[error("bad shared-memory access")]
    Shm(#[from] shm::Error),
}

/// Result of this module.
pub(crate) type Result<T> = std::result::Result<T, Error>;

fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

/// A NUL-terminated string the guest wrote, safe to print: invalid UTF-8 and control characters (a terminal
/// escape sequence among them) become U+FFFD.
fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end])
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::{HeapRegion, Region};

    /// A frame slot at 0 with the struct laid out for `version`, pixels at 4096.
    fn slot(version: u32, fields: &[(usize, u32)]) -> (HeapRegion, Message) {
        let region = HeapRegion::new(64 * 1024);
        let v = region.view();
        let shift = if version == VERSION_B6 { 8 } else { 0 };
        let base = [
            (8, 1),
            (28 - shift, 16),
            (32 - shift, 8),
            (44 - shift, 64),
            (48 - shift, 4092),
        ];
        for (off, val) in base {
            v.write_u32(off, val).unwrap();
        }
        if version == VERSION_B7 {
            v.write_u32(24, 8).unwrap();
        }
        for &(off, val) in fields {
            v.write_u32(off, val).unwrap();
        }
        (
            region,
            Message {
                udata: 0,
                size: 16384,
                offset: 0,
            },
        )
    }

    #[test]
    fn test_parse_frame_b6_layout_uses_frame_height_as_data_height() {
        let (region, msg) = slot(VERSION_B6, &[]);
        let info = parse_frame(region.view(), &msg, VERSION_B6).unwrap();
        assert_eq!(
            (
                info.width,
                info.height,
                info.data_height,
                info.pitch,
                info.data_offset
            ),
            (16, 8, 8, 64, 4096)
        );
    }

    #[test]
    fn test_parse_frame_more_than_64_rects_means_full_damage() {
        let (region, msg) = slot(VERSION_B7, &[(52, 65)]);
        assert!(
            parse_frame(region.view(), &msg, VERSION_B7)
                .unwrap()
                .damage
                .is_empty()
        );
    }

    #[test]
    fn test_parse_frame_rect_is_clipped_to_the_frame() {
        let (region, msg) = slot(
            VERSION_B7,
            &[(52, 1), (56, 10), (60, 2), (64, 100), (68, 100)],
        );
        let info = parse_frame(region.view(), &msg, VERSION_B7).unwrap();
        assert_eq!(
            info.damage,
            vec![Rect {
                x: 10,
                y: 2,
                w: 6,
                h: 6
            }]
        );
    }

    #[test]
    fn test_parse_frame_pitch_below_width_is_refused() {
        let (region, msg) = slot(VERSION_B7, &[(44, 60)]);
        assert!(parse_frame(region.view(), &msg, VERSION_B7).is_err());
    }

    #[test]
    fn test_parse_frame_data_past_the_slot_is_refused() {
        let (region, msg) = slot(VERSION_B7, &[(48, 16000)]);
        assert!(parse_frame(region.view(), &msg, VERSION_B7).is_err());
    }

    #[test]
    fn test_parse_frame_unknown_type_is_refused() {
        let (region, msg) = slot(VERSION_B7, &[(8, 6)]);
        assert!(parse_frame(region.view(), &msg, VERSION_B7).is_err());
    }

    #[test]
    fn test_parse_cursor_monochrome_odd_height_is_refused() {
        let region = HeapRegion::new(4096);
        for (off, val) in [(4, 1), (12, 8), (16, 7), (20, 1)] {
            region.view().write_u32(off, val).unwrap();
        }
        let msg = Message {
            udata: cursor_flags::SHAPE,
            size: 4096,
            offset: 0,
        };
        assert!(parse_cursor(region.view(), &msg).is_err());
    }

    #[test]
    fn test_udata_roundtrip_reads_records() {
        let info = parse_udata(&encode_udata("B7", 1, "D12", "AMD Ryzen", "Windows 11")).unwrap();
        assert_eq!(
            (
                info.version,
                info.hostver.as_str(),
                info.capture.as_str(),
                info.os_name.as_str()
            ),
            (20, "B7", "D12", "Windows 11")
        );
    }

    #[test]
    fn test_udata_with_oversized_record_stops_parsing() {
        let mut udata = encode_udata("B7", 0, "D12", "cpu", "os");
        udata[HEADER_SIZE + 4..HEADER_SIZE + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_udata(&udata).unwrap().capture, "");
    }

    #[test]
    fn test_guest_strings_lose_control_characters() {
        assert_eq!(cstr(b"B7\x1b[2J\nx\0junk"), "B7\u{FFFD}[2J\u{FFFD}x");
        assert_eq!(cstr(b"Windows 11"), "Windows 11");
    }
}
