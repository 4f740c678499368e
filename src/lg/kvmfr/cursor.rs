//! Cursor messages: position, visibility and shape, each field checked against the region.
use super::*;

/// What a client last heard about the cursor (from LGMP cursor messages or the SPICE cursor channel); the viewer
/// draws it (`viewer::cursor`).
#[derive(Debug, Clone, Default)]
pub struct CursorState {
    /// Visible.
    pub visible: bool,
    /// Top-left of the image in guest pixels.
    pub position: (i32, i32),
    /// Current shape.
    pub shape: Option<CursorShape>,
    /// Updates received (for the test mode's report).
    pub updates: u64,
}

impl CursorState {
    /// Applies an update.
    pub(crate) fn apply(&mut self, u: CursorUpdate) {
        self.visible = u.visible;
        if let Some((x, y)) = u.position {
            self.position = (x as i32, y as i32);
        }
        if let Some(s) = u.shape {
            self.shape = Some(s);
        }
        self.updates += 1;
    }
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
