//! Frame messages (v20 = B7, v19 = B6): the frame record and its damage, checked against the region.
use super::*;

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
    pub(crate) fn wire(self) -> u32 {
        match self {
            Self::Bgra => 1,
            Self::Rgba => 2,
            Self::Rgba10 => 3,
            Self::Rgba16f => 4,
        }
    }

    /// From the wire value (BGR_32 and RGB_24 are not supported).
    pub(crate) fn from_wire(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Bgra),
            2 => Some(Self::Rgba),
            3 => Some(Self::Rgba10),
            4 => Some(Self::Rgba16f),
            _ => None,
        }
    }

    /// Bytes per pixel in shared memory.
    pub(crate) fn bytes_per_pixel(self) -> u32 {
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
    pub(crate) fn needed_mib(&self) -> u64 {
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
