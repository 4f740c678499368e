//! Display channel messages: what the client sends to stay on the uncompressed path, and the parser of what the
//! server draws. Only what [`super::screen`] can apply is decoded into drawing commands; every other drawing
//! message parses to [`DisplayMsg::Unsupported`] (the caller logs it once and asks for a full refresh).
//! Every count, offset and size comes from a hostile server and is checked against the body here.
use super::error::ProtocolError;
use super::wire::Reader;

/// Display channel capabilities we advertise: PREF_COMPRESSION (bit 6) only, so the server sends no streams,
/// GL scanouts, composites or A8 surfaces.
pub(crate) const CLIENT_CAPS: [u32; 1] = [1 << 6];

/// Client message types.
pub(crate) mod client {
    /// DISPLAY_INIT (no pixmap cache, no GLZ dictionary).
    pub(crate) const INIT: u16 = 101;
    /// PREFERRED_COMPRESSION.
    pub(crate) const PREFERRED_COMPRESSION: u16 = 103;
}

/// PREFERRED_COMPRESSION value: send bitmaps uncompressed.
pub(crate) const COMPRESSION_OFF: u8 = 1;

/// DISPLAY_INIT body: cache id, cache size, GLZ dictionary id and window all zero (nothing cached).
pub(crate) fn init_body() -> [u8; 14] {
    [0; 14]
}

/// Server message types.
pub mod server {
    /// Legacy MODE.
    pub(crate) const MODE: u16 = 101;
    /// The primary surface has its full content.
    pub(crate) const MARK: u16 = 102;
    /// Drop every surface.
    pub(crate) const RESET: u16 = 103;
    /// Copy inside a surface.
    pub(crate) const COPY_BITS: u16 = 104;
    /// Cache invalidations (nothing is cached: skipped).
    pub(crate) const INVAL_LIST: u16 = 105;
    /// See [`INVAL_LIST`].
    pub(crate) const INVAL_ALL_PIXMAPS: u16 = 106;
    /// See [`INVAL_LIST`].
    pub(crate) const INVAL_PALETTE: u16 = 107;
    /// See [`INVAL_LIST`].
    pub(crate) const INVAL_ALL_PALETTES: u16 = 108;
    /// Solid fill.
    pub(crate) const DRAW_FILL: u16 = 302;
    /// Bitmap copy.
    pub const DRAW_COPY: u16 = 304;
    /// New surface.
    pub const SURFACE_CREATE: u16 = 314;
    /// Surface gone.
    pub(crate) const SURFACE_DESTROY: u16 = 315;
    /// Monitor layout (not asked for; skipped).
    pub(crate) const MONITORS_CONFIG: u16 = 317;
}

/// Largest surface side accepted.
pub(crate) const MAX_SIDE: u32 = 16_384;
/// Largest surface area accepted (8K UHD): bounds the allocation a SURFACE_CREATE can cause.
pub(crate) const MAX_AREA: u64 = 7680 * 4320;
/// Most clip rectangles accepted in one message.
pub(crate) const MAX_CLIP_RECTS: usize = 4096;

/// A rectangle as the server sends it: exclusive right and bottom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rect {
    /// Top row.
    pub top: i32,
    /// Left column.
    pub left: i32,
    /// One past the bottom row.
    pub bottom: i32,
    /// One past the right column.
    pub right: i32,
}

impl Rect {
    fn read(r: &mut Reader<'_>) -> Result<Self, ProtocolError> {
        Ok(Self {
            top: r.u32()? as i32,
            left: r.u32()? as i32,
            bottom: r.u32()? as i32,
            right: r.u32()? as i32,
        })
    }

    /// Width (0 when empty or inverted).
    pub(crate) fn width(&self) -> u32 {
        (i64::from(self.right) - i64::from(self.left)).clamp(0, u32::MAX as i64) as u32
    }

    /// Height (0 when empty or inverted).
    pub(crate) fn height(&self) -> u32 {
        (i64::from(self.bottom) - i64::from(self.top)).clamp(0, u32::MAX as i64) as u32
    }

    /// True when it covers no pixel.
    pub(crate) fn is_empty(&self) -> bool {
        self.width() == 0 || self.height() == 0
    }

    /// The common part (possibly empty).
    pub(crate) fn intersect(&self, o: &Rect) -> Rect {
        Rect {
            top: self.top.max(o.top),
            left: self.left.max(o.left),
            bottom: self.bottom.min(o.bottom),
            right: self.right.min(o.right),
        }
    }
}

/// Target, destination box and clip of a drawing message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    /// Surface drawn on.
    pub surface_id: u32,
    /// Destination box.
    pub bbox: Rect,
    /// Clip rectangles; `None` = draw the whole box.
    pub clip: Option<Vec<Rect>>,
}

impl Base {
    fn read(r: &mut Reader<'_>) -> Result<Self, ProtocolError> {
        let surface_id = r.u32()?;
        let bbox = Rect::read(r)?;
        let clip = match r.u8()? {
            0 => None,
            1 => {
                let raw = r.u32()?;
                let n = r.count(raw, 16)?;
                if n > MAX_CLIP_RECTS {
                    return Err(ProtocolError::BadCount {
                        what: "clip rects",
                        count: raw,
                    });
                }
                Some((0..n).map(|_| Rect::read(r)).collect::<Result<_, _>>()?)
            }
            t => {
                return Err(ProtocolError::Invalid {
                    what: "clip",
                    detail: format!("unknown clip type {t}"),
                });
            }
        };
        Ok(Self {
            surface_id,
            bbox,
            clip,
        })
    }
}

/// Pixel layouts of the bitmaps we decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// 16 bits, x555 little-endian.
    X555,
    /// 24 bits, bytes B, G, R.
    Bgr24,
    /// 32 bits, bytes B, G, R, x (alpha ignored: the screen is opaque).
    Bgrx32,
}

impl PixelFormat {
    /// Bytes per pixel.
    pub(crate) fn bytes(self) -> usize {
        match self {
            Self::X555 => 2,
            Self::Bgr24 => 3,
            Self::Bgrx32 => 4,
        }
    }

    fn from_bitmap(code: u8) -> Option<Self> {
        match code {
            6 => Some(Self::X555),
            7 => Some(Self::Bgr24),
            8 | 9 => Some(Self::Bgrx32),
            _ => None,
        }
    }
}

/// An uncompressed bitmap whose rows are checked to lie inside the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap<'a> {
    /// Pixel layout.
    pub format: PixelFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in rows.
    pub height: u32,
    /// Bytes per row.
    pub stride: usize,
    /// Row 0 is the top row (else the bottom one).
    pub top_down: bool,
    /// `stride × height` bytes.
    pub data: &'a [u8],
}

impl Bitmap<'_> {
    /// The bytes of image row `y` (counted from the top), `width` pixels long; `None` past the last row.
    pub(crate) fn row(&self, y: u32) -> Option<&[u8]> {
        let r = if self.top_down {
            y
        } else {
            self.height.checked_sub(y)?.checked_sub(1)?
        } as usize;
        let start = r.checked_mul(self.stride)?;
        self.data
            .get(start..start.checked_add(self.width as usize * self.format.bytes())?)
    }
}

/// A drawing command with everything it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisplayMsg<'a> {
    /// The primary surface is complete.
    Mark,
    /// Drop all surfaces.
    Reset,
    /// A new surface.
    SurfaceCreate {
        /// Its id.
        id: u32,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// The screen (PRIMARY flag).
        primary: bool,
    },
    /// A surface is gone.
    SurfaceDestroy(u32),
    /// Copy `src` (same size as the box) of `bitmap` to the box.
    Copy {
        /// Where.
        base: Base,
        /// Source area inside the bitmap.
        src: Rect,
        /// The pixels.
        bitmap: Bitmap<'a>,
    },
    /// Fill the box with one colour (0x00RRGGBB).
    Fill {
        /// Where.
        base: Base,
        /// Colour.
        color: u32,
    },
    /// Copy the box-sized area at `src` of the same surface to the box.
    CopyBits {
        /// Where.
        base: Base,
        /// Source top-left (x, y).
        src: (i32, i32),
    },
    /// Nothing to draw (cache invalidations, monitor layout).
    Skip(u16),
    /// Well-formed, but not something this client decodes: skip it and refresh.
    Unsupported {
        /// Message type.
        kind: u16,
        /// What exactly (for the one log line).
        what: String,
    },
}

/// ROP descriptor bit: plain copy.
const OP_PUT: u16 = 8;
/// Surface flag: the screen.
const SURFACE_PRIMARY: u32 = 1;
/// Surface formats we keep (32 xRGB, 32 ARGB, 16 555, 16 565): all shown as opaque 0x00RRGGBB.
const SURFACE_FORMATS: [u32; 4] = [32, 96, 16, 80];

fn unsupported(kind: u16, what: impl Into<String>) -> DisplayMsg<'static> {
    DisplayMsg::Unsupported {
        kind,
        what: what.into(),
    }
}

/// Parses one display channel message (types ≥ 101).
pub fn parse(kind: u16, body: &[u8]) -> Result<DisplayMsg<'_>, ProtocolError> {
    Ok(match kind {
        server::MARK => DisplayMsg::Mark,
        server::RESET => DisplayMsg::Reset,
        server::SURFACE_CREATE => surface_create(body)?,
        server::SURFACE_DESTROY => {
            DisplayMsg::SurfaceDestroy(Reader::new("SURFACE_DESTROY", body).u32()?)
        }
        server::DRAW_COPY => draw_copy(body)?,
        server::DRAW_FILL => draw_fill(body)?,
        server::COPY_BITS => {
            let mut r = Reader::new("COPY_BITS", body);
            let base = Base::read(&mut r)?;
            let src = (r.u32()? as i32, r.u32()? as i32);
            DisplayMsg::CopyBits { base, src }
        }
        server::INVAL_LIST
        | server::INVAL_ALL_PIXMAPS
        | server::INVAL_PALETTE
        | server::INVAL_ALL_PALETTES
        | server::MONITORS_CONFIG => DisplayMsg::Skip(kind),
        server::MODE => unsupported(kind, "legacy MODE"),
        _ => unsupported(kind, format!("drawing message type {kind}")),
    })
}

fn surface_create(body: &[u8]) -> Result<DisplayMsg<'_>, ProtocolError> {
    let mut r = Reader::new("SURFACE_CREATE", body);
    let (id, width, height, format, flags) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?, r.u32()?);
    check_size("SURFACE_CREATE", width, height)?;
    if !SURFACE_FORMATS.contains(&format) {
        return Ok(unsupported(
            server::SURFACE_CREATE,
            format!("surface format {format}"),
        ));
    }
    Ok(DisplayMsg::SurfaceCreate {
        id,
        width,
        height,
        primary: flags & SURFACE_PRIMARY != 0,
    })
}

/// A surface or bitmap size: not empty, each side at most [`MAX_SIDE`], the area at most [`MAX_AREA`].
pub(crate) fn check_size(what: &'static str, width: u32, height: u32) -> Result<(), ProtocolError> {
    let ok = width > 0
        && height > 0
        && width <= MAX_SIDE
        && height <= MAX_SIDE
        && u64::from(width) * u64::from(height) <= MAX_AREA;
    if ok {
        Ok(())
    } else {
        Err(ProtocolError::Invalid {
            what,
            detail: format!(
                "size {width}x{height} (1x1 up to {MAX_SIDE} a side and 7680x4320 in area)"
            ),
        })
    }
}

fn draw_copy(body: &[u8]) -> Result<DisplayMsg<'_>, ProtocolError> {
    let kind = server::DRAW_COPY;
    let mut r = Reader::new("DRAW_COPY", body);
    let base = Base::read(&mut r)?;
    let image_at = r.u32()?;
    let src = Rect::read(&mut r)?;
    let rop = r.u16()?;
    let _scale_mode = r.u8()?;
    let _mask_flags = r.u8()?;
    let _mask_pos = (r.u32()?, r.u32()?);
    let mask = r.u32()?;
    if image_at == 0 {
        return Ok(unsupported(kind, "copy without an image"));
    }
    if rop != OP_PUT {
        return Ok(unsupported(kind, format!("raster operation {rop:#x}")));
    }
    if mask != 0 {
        return Ok(unsupported(kind, "masked copy"));
    }
    if src.width() != base.bbox.width() || src.height() != base.bbox.height() {
        return Ok(unsupported(kind, "scaled copy"));
    }
    let image = body
        .get(image_at as usize..)
        .ok_or(ProtocolError::Invalid {
            what: "DRAW_COPY",
            detail: format!(
                "image offset {image_at} is past the message end ({})",
                body.len()
            ),
        })?;
    let bitmap = match bitmap(image)? {
        Ok(b) => b,
        Err(what) => return Ok(unsupported(kind, what)),
    };
    let inside = src.left >= 0
        && src.top >= 0
        && src.right as i64 <= i64::from(bitmap.width)
        && src.bottom as i64 <= i64::from(bitmap.height);
    if !inside {
        return Err(ProtocolError::Invalid {
            what: "DRAW_COPY",
            detail: format!(
                "source area {src:?} is outside the {}x{} image",
                bitmap.width, bitmap.height
            ),
        });
    }
    Ok(DisplayMsg::Copy { base, src, bitmap })
}

/// Parses a SpiceImage; the inner `Err` names an image kind we do not decode.
fn bitmap(image: &[u8]) -> Result<Result<Bitmap<'_>, String>, ProtocolError> {
    let mut r = Reader::new("image", image);
    let _id = r.u64()?;
    let kind = r.u8()?;
    let _flags = r.u8()?;
    let (_w, _h) = (r.u32()?, r.u32()?);
    if kind != 0 {
        return Ok(Err(format!("compressed image type {kind}")));
    }
    let code = r.u8()?;
    let flags = r.u8()?;
    let (width, height, stride) = (r.u32()?, r.u32()?, r.u32()?);
    let Some(format) = PixelFormat::from_bitmap(code) else {
        return Ok(Err(format!("bitmap format {code} (palette or alpha-only)")));
    };
    if flags & 2 != 0 {
        return Ok(Err("cached palette".into()));
    }
    let _palette = r.u32()?;
    check_size("bitmap", width, height)?;
    let row = width as usize * format.bytes();
    let stride = stride as usize;
    if stride < row {
        return Err(ProtocolError::Invalid {
            what: "bitmap",
            detail: format!("stride {stride} is shorter than a {width}-pixel row"),
        });
    }
    let need = stride
        .checked_mul(height as usize)
        .filter(|&n| n <= r.remaining())
        .ok_or_else(|| ProtocolError::Invalid {
            what: "bitmap",
            detail: format!(
                "stride {stride} x {height} rows does not fit the {} bytes sent",
                r.remaining()
            ),
        })?;
    Ok(Ok(Bitmap {
        format,
        width,
        height,
        stride,
        top_down: flags & 4 != 0,
        data: r.take(need)?,
    }))
}

fn draw_fill(body: &[u8]) -> Result<DisplayMsg<'_>, ProtocolError> {
    let kind = server::DRAW_FILL;
    let mut r = Reader::new("DRAW_FILL", body);
    let base = Base::read(&mut r)?;
    let brush = r.u8()?;
    if brush != 1 {
        return Ok(unsupported(kind, format!("brush type {brush}")));
    }
    let color = r.u32()? & 0x00ff_ffff;
    let rop = r.u16()?;
    let _mask_flags = r.u8()?;
    let _mask_pos = (r.u32()?, r.u32()?);
    let mask = r.u32()?;
    if rop != OP_PUT {
        return Ok(unsupported(kind, format!("raster operation {rop:#x}")));
    }
    if mask != 0 {
        return Ok(unsupported(kind, "masked fill"));
    }
    Ok(DisplayMsg::Fill { base, color })
}
