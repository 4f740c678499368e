//! KVMFR on top of LGMP (docs/lg-protocol.md §3): the udata header and records, frame messages (v20 = B7, v19 = B6)
//! and cursor messages. Parsers copy each record once and validate every field against the region; encoders
//! (for the producer) write the same layouts.
use super::lgmp::Message;
use crate::shm::{self, ShmView};

/// "KVMFR---".
pub const MAGIC: &[u8; 8] = b"KVMFR---";
/// KVMFR version of B7.
pub const VERSION_B7: u32 = 20;
/// KVMFR version of B6.
pub const VERSION_B6: u32 = 19;
/// Queue id of the pointer queue.
pub const QUEUE_POINTER: u32 = 1;
/// Queue id of the frame queue.
pub const QUEUE_FRAME: u32 = 2;
/// Size of the KVMFR header in udata.
pub const HEADER_SIZE: usize = 48;
/// Largest udata we copy (the real one is a few hundred bytes).
pub const MAX_UDATA: usize = 64 * 1024;
/// Damage rects in a frame.
pub const MAX_DAMAGE_RECTS: usize = 64;
/// Size of a B7 KVMFRFrame.
pub const FRAME_SIZE_V20: usize = 1084;
/// Size of a B6 KVMFRFrame.
pub const FRAME_SIZE_V19: usize = 1076;
/// The cursor struct in front of the shape data.
pub const CURSOR_SIZE: usize = 24;
/// Largest cursor image side (MAX_POINTER_SIZE = 24 + 512·512·4).
pub const MAX_CURSOR_SIDE: u32 = 512;
/// Largest frame side we accept.
pub const MAX_FRAME_SIDE: u32 = 16384;
/// KVMFR_FEATURE_SETCURSORPOS.
pub const FEATURE_SETCURSORPOS: u32 = 0x1;
/// KVMFR_MESSAGE_SETCURSORPOS.
pub const MESSAGE_SETCURSORPOS: u32 = 0;

/// Frame flags.
pub mod flags {
    /// The guest wants the screensaver inhibited.
    pub const BLOCK_SCREENSAVER: u32 = 0x1;
    /// A guest window asks for attention.
    pub const REQUEST_ACTIVATION: u32 = 0x2;
    /// The shared memory is too small: fewer rows than the frame height.
    pub const TRUNCATED: u32 = 0x4;
    /// HDR content.
    pub const HDR: u32 = 0x8;
    /// PQ already applied.
    pub const HDR_PQ: u32 = 0x10;
}

/// Cursor flags (in the LGMP message udata).
pub mod cursor_flags {
    /// x/y valid.
    pub const POSITION: u32 = 0x1;
    /// Visible.
    pub const VISIBLE: u32 = 0x2;
    /// Shape fields and data valid.
    pub const SHAPE: u32 = 0x4;
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
pub type Result<T> = std::result::Result<T, Error>;

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

/// What the guest's host application says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostInfo {
    /// KVMFR version (20 or 19).
    pub version: u32,
    /// Host build string, e.g. "B7".
    pub hostver: String,
    /// Feature flags.
    pub features: u32,
    /// Capture backend from VMINFO.
    pub capture: String,
    /// CPU model from VMINFO.
    pub cpu_model: String,
    /// OS name from OSINFO.
    pub os_name: String,
}

/// Parses the KVMFR header and records from a copy of the udata.
pub fn parse_udata(udata: &[u8]) -> Result<HostInfo> {
    if udata.len() < HEADER_SIZE || &udata[..8] != MAGIC {
        return Err(Error::NotKvmfr);
    }
    let version = u32_at(udata, 8);
    let hostver = cstr(&udata[12..44]);
    if version != VERSION_B7 && version != VERSION_B6 {
        return Err(Error::Version {
            found: version,
            host: hostver,
        });
    }
    let mut info = HostInfo {
        version,
        hostver,
        features: u32_at(udata, 44),
        ..HostInfo::default()
    };
    let mut rest = &udata[HEADER_SIZE..];
    while rest.len() >= 8 {
        let kind = rest[0];
        let size = u32_at(rest, 4) as usize;
        let Some(payload) = rest.get(8..8usize.saturating_add(size)) else {
            break;
        };
        match kind {
            1 if payload.len() >= 51 => {
                info.capture = cstr(&payload[16..48]);
                info.cpu_model = cstr(&payload[51..]);
            }
            2 if !payload.is_empty() => info.os_name = cstr(&payload[1..]),
            _ => {}
        }
        rest = &rest[8 + size..];
    }
    Ok(info)
}

/// Builds the udata the B7 host writes: header, VMINFO, OSINFO.
pub fn encode_udata(
    hostver: &str,
    features: u32,
    capture: &str,
    cpu_model: &str,
    os_name: &str,
) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION_B7.to_le_bytes());
    let mut hv = [0u8; 32];
    for (d, s) in hv.iter_mut().zip(hostver.bytes().take(31)) {
        *d = s;
    }
    out.extend_from_slice(&hv);
    out.extend_from_slice(&features.to_le_bytes());
    let mut vminfo = vec![0u8; 51];
    for (d, s) in vminfo[16..47].iter_mut().zip(capture.bytes()) {
        *d = s;
    }
    vminfo[48..51].copy_from_slice(&[4, 4, 1]);
    vminfo.extend_from_slice(cpu_model.as_bytes());
    vminfo.push(0);
    push_record(&mut out, 1, &vminfo);
    let mut osinfo = vec![3u8];
    osinfo.extend_from_slice(os_name.as_bytes());
    osinfo.push(0);
    push_record(&mut out, 2, &osinfo);
    out
}

fn push_record(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    out.extend_from_slice(&[kind, 0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Frame pixel formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// B,G,R,A bytes.
    Bgra,
    /// R,G,B,A bytes.
    Rgba,
    /// 10:10:10:2 little-endian words.
    Rgba10,
    /// Four half floats (scRGB).
    Rgba16f,
}

impl FrameType {
    /// The wire value.
    pub fn wire(self) -> u32 {
        match self {
            Self::Bgra => 1,
            Self::Rgba => 2,
            Self::Rgba10 => 3,
            Self::Rgba16f => 4,
        }
    }

    /// From the wire value (BGR_32 and RGB_24 are not supported).
    pub fn from_wire(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Bgra),
            2 => Some(Self::Rgba),
            3 => Some(Self::Rgba10),
            4 => Some(Self::Rgba16f),
            _ => None,
        }
    }

    /// Bytes per pixel in shared memory.
    pub fn bytes_per_pixel(self) -> u32 {
        if self == Self::Rgba16f { 8 } else { 4 }
    }
}

/// A damage rectangle in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rect {
    /// Left.
    pub x: u32,
    /// Top.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

/// A validated frame message: every offset below lies inside the region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameInfo {
    /// Changes whenever format, size or layout change.
    pub format_ver: u32,
    /// Host frame counter (repeats reuse it).
    pub serial: u32,
    /// Pixel format.
    pub kind: FrameType,
    /// Guest desktop size.
    pub screen: (u32, u32),
    /// Logical frame size.
    pub width: u32,
    /// Logical frame height.
    pub height: u32,
    /// Rows stored (less than `height` when truncated).
    pub data_height: u32,
    /// Bytes per row in shared memory.
    pub pitch: u32,
    /// Absolute offset of the write-position word.
    pub wp_offset: usize,
    /// Absolute offset of the first pixel.
    pub data_offset: usize,
    /// Damage clipped to the frame; empty = the whole frame.
    pub damage: Vec<Rect>,
    /// FRAME_FLAG_*.
    pub flags: u32,
    /// Rotation (0..3); only 0 is displayed as such.
    pub rotation: u32,
}

impl FrameInfo {
    /// Bytes of pixel data when complete (the final write position).
    pub fn data_size(&self) -> usize {
        self.data_height as usize * self.pitch as usize
    }

    /// The shared memory size the host needs for this frame (the "use N MiB" hint, docs/lg-protocol.md §5.1).
    pub fn needed_mib(&self) -> u64 {
        let bytes = self.screen.1.max(self.height) as u64 * self.pitch as u64 * 2;
        (bytes.div_ceil(1 << 20) + 10).next_power_of_two()
    }
}

/// Copies and validates the KVMFRFrame of `msg` (KVMFR `version` 20 or 19).
pub fn parse_frame(view: ShmView<'_>, msg: &Message, version: u32) -> Result<FrameInfo> {
    let b6 = version == VERSION_B6;
    let size = if b6 { FRAME_SIZE_V19 } else { FRAME_SIZE_V20 };
    if (msg.size as usize) < size {
        return Err(Error::Frame(format!(
            "message of {} bytes is smaller than a frame header",
            msg.size
        )));
    }
    let mut raw = [0u8; FRAME_SIZE_V20];
    view.read_bytes(msg.offset as usize, &mut raw[..size])?;
    let f = |off: usize| u32_at(&raw, off);
    // B6 lacks dataWidth/dataHeight: every later field sits 8 bytes earlier.
    let shift = if b6 { 8 } else { 0 };
    let kind_raw = f(8);
    let kind = FrameType::from_wire(kind_raw)
        .ok_or_else(|| Error::Frame(format!("unsupported frame type {kind_raw}")))?;
    let (width, height) = (f(28 - shift), f(32 - shift));
    let data_height = if b6 { height } else { f(24) };
    let pitch = f(44 - shift);
    let offset = f(48 - shift) as usize;
    let count = f(52 - shift) as usize;
    let flags = f(1080 - shift);
    if width == 0 || height == 0 || width > MAX_FRAME_SIDE || height > MAX_FRAME_SIDE {
        return Err(Error::Frame(format!("size {width}x{height}")));
    }
    if data_height > height {
        return Err(Error::Frame(format!(
            "{data_height} data rows for a frame of {height}"
        )));
    }
    if (pitch as u64) < width as u64 * kind.bytes_per_pixel() as u64 {
        return Err(Error::Frame(format!(
            "pitch {pitch} too small for {width} pixels"
        )));
    }
    let bad_offset = || Error::Frame(format!("frame buffer offset {offset}"));
    let wp_offset = (msg.offset as usize)
        .checked_add(offset)
        .ok_or_else(bad_offset)?;
    if offset < size || !wp_offset.is_multiple_of(4) {
        return Err(bad_offset());
    }
    let data_offset = wp_offset + 4;
    let data_size = data_height as usize * pitch as usize;
    let msg_end = msg.offset as usize + msg.size as usize;
    if data_offset
        .checked_add(data_size)
        .is_none_or(|end| end > msg_end)
    {
        return Err(Error::Frame(format!(
            "{data_height} rows of {pitch} bytes overrun the {} byte slot",
            msg.size
        )));
    }
    view.check(data_offset, data_size)?;
    // A frame canvas is allocated from this: keep it within a few times the region (truncated frames
    // legitimately claim more rows than the region holds).
    if width as u64 * height as u64 * 4 > (view.len() as u64).saturating_mul(4) {
        return Err(Error::Frame(format!(
            "{width}x{height} is far larger than the shared memory"
        )));
    }
    let mut damage = Vec::new();
    if count <= MAX_DAMAGE_RECTS {
        for i in 0..count {
            let r = 56 - shift + 16 * i;
            let (x, y, w, h) = (f(r), f(r + 4), f(r + 8), f(r + 12));
            let w = w.min(width.saturating_sub(x));
            let h = h.min(height.saturating_sub(y));
            if w > 0 && h > 0 {
                damage.push(Rect { x, y, w, h });
            }
        }
        if count > 0 && damage.is_empty() {
            // Every rect fell outside the frame: nothing changed that we can show.
            damage.push(Rect {
                x: 0,
                y: 0,
                w: 0,
                h: 0,
            });
        }
    }
    Ok(FrameInfo {
        format_ver: f(0),
        serial: f(4),
        kind,
        screen: (f(12), f(16)),
        width,
        height,
        data_height,
        pitch,
        wp_offset,
        data_offset,
        damage,
        flags,
        rotation: f(36 - shift),
    })
}

/// Cursor image kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorType {
    /// Premultiplied B,G,R,A.
    Color,
    /// AND mask rows then XOR mask rows, 1 bpp.
    Monochrome,
    /// B,G,R,A where A = 0 replaces and A = 0xFF XORs.
    MaskedColor,
}

/// A validated cursor shape with its bytes copied out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorShape {
    /// Kind.
    pub kind: CursorType,
    /// Width in pixels.
    pub width: u32,
    /// Visible height in pixels (half the wire height for monochrome).
    pub height: u32,
    /// Bytes per row.
    pub pitch: u32,
    /// Hotspot.
    pub hotspot: (i8, i8),
    /// `wire height × pitch` bytes.
    pub data: Vec<u8>,
}

/// A cursor update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorUpdate {
    /// Top-left of the image in guest pixels, when the message carries a position.
    pub position: Option<(i16, i16)>,
    /// Visible.
    pub visible: bool,
    /// A new shape, when the message carries one.
    pub shape: Option<CursorShape>,
}

/// Copies and validates a cursor message (flags in `msg.udata`).
pub fn parse_cursor(view: ShmView<'_>, msg: &Message) -> Result<CursorUpdate> {
    if (msg.size as usize) < CURSOR_SIZE {
        return Err(Error::Cursor(format!("message of {} bytes", msg.size)));
    }
    let raw: [u8; CURSOR_SIZE] = view.read_array(msg.offset as usize)?;
    let fl = msg.udata;
    let position = (fl & cursor_flags::POSITION != 0).then(|| {
        (
            i16::from_le_bytes([raw[0], raw[1]]),
            i16::from_le_bytes([raw[2], raw[3]]),
        )
    });
    let shape = if fl & cursor_flags::SHAPE != 0 {
        Some(parse_shape(view, msg, &raw)?)
    } else {
        None
    };
    Ok(CursorUpdate {
        position,
        visible: fl & cursor_flags::VISIBLE != 0,
        shape,
    })
}

fn parse_shape(view: ShmView<'_>, msg: &Message, raw: &[u8; CURSOR_SIZE]) -> Result<CursorShape> {
    let kind = match u32_at(raw, 4) {
        0 => CursorType::Color,
        1 => CursorType::Monochrome,
        2 => CursorType::MaskedColor,
        t => return Err(Error::Cursor(format!("type {t}"))),
    };
    let (width, wire_height, pitch) = (u32_at(raw, 12), u32_at(raw, 16), u32_at(raw, 20));
    let mono = kind == CursorType::Monochrome;
    let max_h = if mono {
        2 * MAX_CURSOR_SIDE
    } else {
        MAX_CURSOR_SIDE
    };
    if width > MAX_CURSOR_SIDE || wire_height > max_h || (mono && !wire_height.is_multiple_of(2)) {
        return Err(Error::Cursor(format!("size {width}x{wire_height}")));
    }
    let min_pitch = if mono { width.div_ceil(8) } else { width * 4 };
    if pitch < min_pitch || pitch > MAX_CURSOR_SIDE * 4 {
        return Err(Error::Cursor(format!("pitch {pitch} for width {width}")));
    }
    let len = wire_height as usize * pitch as usize;
    if CURSOR_SIZE + len > msg.size as usize {
        return Err(Error::Cursor(format!(
            "{len} bytes of shape in a {} byte message",
            msg.size
        )));
    }
    let mut data = vec![0u8; len];
    view.read_bytes(msg.offset as usize + CURSOR_SIZE, &mut data)?;
    Ok(CursorShape {
        kind,
        width,
        height: if mono { wire_height / 2 } else { wire_height },
        pitch,
        hotspot: (raw[8] as i8, raw[9] as i8),
        data,
    })
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
