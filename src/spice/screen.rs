//! The SPICE display's surfaces in client memory, drawn by the parsed display messages. The primary surface
//! is what the window shows. Pixels are 0x00RRGGBB like the Looking Glass canvas, so the window presents
//! either source the same way. Every rectangle is clipped to its surface and every surface is bounded, so no
//! message can index outside a buffer or allocate without limit.
use std::collections::BTreeMap;

use super::display::{Base, Bitmap, DisplayMsg, MAX_AREA, PixelFormat, Rect};
use super::error::ProtocolError;

/// Most surfaces kept at once (QEMU's std VGA uses one; QXL adds off-screen ones).
pub(crate) const MAX_SURFACES: usize = 64;
/// Most pixels over all surfaces (twice an 8K screen).
pub(crate) const MAX_TOTAL_PIXELS: u64 = 2 * MAX_AREA;

/// One surface.
#[derive(Debug, Clone, Default)]
pub struct Surface {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// `width × height` pixels, 0x00RRGGBB.
    pub pixels: Vec<u32>,
}

impl Surface {
    fn bounds(&self) -> Rect {
        Rect {
            top: 0,
            left: 0,
            bottom: self.height as i32,
            right: self.width as i32,
        }
    }
}

/// What applying a message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The primary surface changed (redraw).
    Drawn,
    /// Nothing visible changed.
    Nothing,
    /// Skipped: not decoded here; the caller logs `what` once and asks for a full refresh.
    Unsupported(String),
}

/// The display state.
#[derive(Debug, Default)]
pub struct Screen {
    surfaces: BTreeMap<u32, Surface>,
    primary: Option<u32>,
    /// The primary surface got its first full content (MARK).
    pub marked: bool,
    /// Drawing messages applied to the primary surface.
    pub updates: u64,
}

impl Screen {
    /// The primary surface once it has its full content.
    pub fn primary(&self) -> Option<&Surface> {
        if !self.marked {
            return None;
        }
        self.primary.and_then(|id| self.surfaces.get(&id))
    }

    /// Forgets everything (channel closed, RESET).
    pub(crate) fn clear(&mut self) {
        self.surfaces.clear();
        self.primary = None;
        self.marked = false;
    }

    /// Applies one message.
    pub fn apply(&mut self, msg: &DisplayMsg<'_>) -> Result<Applied, ProtocolError> {
        let applied = match msg {
            DisplayMsg::Mark => {
                self.marked = true;
                Applied::Drawn
            }
            DisplayMsg::Reset => {
                self.clear();
                Applied::Drawn
            }
            DisplayMsg::SurfaceCreate {
                id,
                width,
                height,
                primary,
            } => self.create(*id, *width, *height, *primary)?,
            DisplayMsg::SurfaceDestroy(id) => {
                self.surfaces.remove(id);
                if self.primary == Some(*id) {
                    self.primary = None;
                    self.marked = false;
                    Applied::Drawn
                } else {
                    Applied::Nothing
                }
            }
            DisplayMsg::Copy { base, src, bitmap } => {
                let surface = self.target(base)?;
                copy(surface, base, src, bitmap);
                self.drawn(base.surface_id)
            }
            DisplayMsg::Fill { base, color } => {
                let surface = self.target(base)?;
                for r in regions(surface, base) {
                    for y in r.top..r.bottom {
                        let start = y as usize * surface.width as usize;
                        surface.pixels[start + r.left as usize..start + r.right as usize]
                            .fill(*color);
                    }
                }
                self.drawn(base.surface_id)
            }
            DisplayMsg::CopyBits { base, src } => {
                let surface = self.target(base)?;
                copy_bits(surface, base, *src)?;
                self.drawn(base.surface_id)
            }
            DisplayMsg::Skip(_) => Applied::Nothing,
            DisplayMsg::Unsupported { what, .. } => Applied::Unsupported(what.clone()),
        };
        Ok(applied)
    }

    fn drawn(&mut self, id: u32) -> Applied {
        if self.primary == Some(id) {
            self.updates += 1;
            Applied::Drawn
        } else {
            Applied::Nothing
        }
    }

    fn create(
        &mut self,
        id: u32,
        width: u32,
        height: u32,
        primary: bool,
    ) -> Result<Applied, ProtocolError> {
        self.surfaces.remove(&id);
        let used: u64 = self
            .surfaces
            .values()
            .map(|s| u64::from(s.width) * u64::from(s.height))
            .sum();
        let area = u64::from(width) * u64::from(height);
        if self.surfaces.len() >= MAX_SURFACES || used + area > MAX_TOTAL_PIXELS {
            return Err(ProtocolError::Invalid {
                what: "SURFACE_CREATE",
                detail: format!(
                    "surface {id} ({width}x{height}) exceeds the {MAX_SURFACES} surfaces / {MAX_TOTAL_PIXELS} pixels kept"
                ),
            });
        }
        self.surfaces.insert(
            id,
            Surface {
                width,
                height,
                pixels: vec![0; area as usize],
            },
        );
        if primary {
            self.primary = Some(id);
            self.marked = false;
            return Ok(Applied::Drawn);
        }
        Ok(Applied::Nothing)
    }

    fn target(&mut self, base: &Base) -> Result<&mut Surface, ProtocolError> {
        self.surfaces
            .get_mut(&base.surface_id)
            .ok_or_else(|| ProtocolError::Invalid {
                what: "drawing message",
                detail: format!("surface {} does not exist", base.surface_id),
            })
    }
}

/// The destination pieces: box ∩ surface, split by the clip rects (each also clipped).
fn regions(surface: &Surface, base: &Base) -> Vec<Rect> {
    let area = base.bbox.intersect(&surface.bounds());
    if area.is_empty() {
        return Vec::new();
    }
    match &base.clip {
        None => vec![area],
        Some(rects) => rects
            .iter()
            .map(|c| c.intersect(&area))
            .filter(|r| !r.is_empty())
            .collect(),
    }
}

fn copy(surface: &mut Surface, base: &Base, src: &Rect, bitmap: &Bitmap<'_>) {
    let (dx, dy) = (
        i64::from(src.left) - i64::from(base.bbox.left),
        i64::from(src.top) - i64::from(base.bbox.top),
    );
    let width = surface.width as usize;
    for r in regions(surface, base) {
        for y in r.top..r.bottom {
            // The parser checked src ⊆ image and |src| = |box|, and r ⊆ box, so the row and columns exist.
            let sy = (i64::from(y) + dy) as u32;
            let sx = (i64::from(r.left) + dx) as usize;
            let n = r.width() as usize;
            let bpp = bitmap.format.bytes();
            let Some(from) = bitmap
                .row(sy)
                .and_then(|row| row.get(sx * bpp..(sx + n) * bpp))
            else {
                continue;
            };
            let start = y as usize * width + r.left as usize;
            let to = &mut surface.pixels[start..start + n];
            convert(bitmap.format, from, to);
        }
    }
}

/// One row of bitmap pixels → 0x00RRGGBB.
pub(crate) fn convert(format: PixelFormat, from: &[u8], to: &mut [u32]) {
    match format {
        PixelFormat::Bgrx32 => {
            for (d, s) in to.iter_mut().zip(from.chunks_exact(4)) {
                *d = u32::from_le_bytes([s[0], s[1], s[2], 0]);
            }
        }
        PixelFormat::Bgr24 => {
            for (d, s) in to.iter_mut().zip(from.chunks_exact(3)) {
                *d = u32::from_le_bytes([s[0], s[1], s[2], 0]);
            }
        }
        PixelFormat::X555 => {
            for (d, s) in to.iter_mut().zip(from.chunks_exact(2)) {
                let v = u32::from(u16::from_le_bytes([s[0], s[1]]));
                // 5 → 8 bits by repeating the top bits, so 31 becomes 255.
                let c = |shift: u32| {
                    let x = (v >> shift) & 31;
                    (x << 3) | (x >> 2)
                };
                *d = c(10) << 16 | c(5) << 8 | c(0);
            }
        }
    }
}

fn copy_bits(surface: &mut Surface, base: &Base, src: (i32, i32)) -> Result<(), ProtocolError> {
    let (dx, dy) = (
        i64::from(src.0) - i64::from(base.bbox.left),
        i64::from(src.1) - i64::from(base.bbox.top),
    );
    let bounds = surface.bounds();
    let src_rect = Rect {
        top: src.1,
        left: src.0,
        bottom: (i64::from(src.1) + i64::from(base.bbox.height())).min(i32::MAX as i64) as i32,
        right: (i64::from(src.0) + i64::from(base.bbox.width())).min(i32::MAX as i64) as i32,
    };
    if src_rect.intersect(&bounds) != src_rect {
        return Err(ProtocolError::Invalid {
            what: "COPY_BITS",
            detail: format!(
                "source {src_rect:?} is outside the {}x{} surface",
                surface.width, surface.height
            ),
        });
    }
    let width = surface.width as usize;
    for r in regions(surface, base) {
        let n = r.width() as usize;
        // Rows in the order that never reads a row already overwritten; columns via copy_within (memmove).
        let rows: Vec<i32> = if dy > 0 {
            (r.top..r.bottom).collect()
        } else {
            (r.top..r.bottom).rev().collect()
        };
        for y in rows {
            let sy = (i64::from(y) + dy) as usize;
            let sx = (i64::from(r.left) + dx) as usize;
            let from = sy * width + sx;
            surface
                .pixels
                .copy_within(from..from + n, y as usize * width + r.left as usize);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spice::display::{self, server};

    fn rect(left: i32, top: i32, right: i32, bottom: i32) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, v) in [top, left, bottom, right].iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    fn create(id: u32, w: u32, h: u32) -> Vec<u8> {
        [id, w, h, 32, 1]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect()
    }

    fn base(surface: u32, bbox: [u8; 16], clip: &[[u8; 16]]) -> Vec<u8> {
        let mut b = surface.to_le_bytes().to_vec();
        b.extend_from_slice(&bbox);
        if clip.is_empty() {
            b.push(0);
        } else {
            b.push(1);
            b.extend_from_slice(&(clip.len() as u32).to_le_bytes());
            for c in clip {
                b.extend_from_slice(c);
            }
        }
        b
    }

    /// A DRAW_COPY of a `w × h` bitmap (format, flags) with `rows` as its pixel data.
    fn draw_copy(
        base_bytes: Vec<u8>,
        src: [u8; 16],
        (format, flags, w, h, stride): (u8, u8, u32, u32, u32),
        data: &[u8],
    ) -> Vec<u8> {
        let mut b = base_bytes;
        let image_at = b.len() as u32 + 4 + 16 + 2 + 1 + 1 + 8 + 4;
        b.extend_from_slice(&image_at.to_le_bytes());
        b.extend_from_slice(&src);
        b.extend_from_slice(&8u16.to_le_bytes());
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&7u64.to_le_bytes());
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&w.to_le_bytes());
        b.extend_from_slice(&h.to_le_bytes());
        b.extend_from_slice(&[format, flags]);
        for v in [w, h, stride, 0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(data);
        b
    }

    fn screen(w: u32, h: u32) -> Screen {
        let mut s = Screen::default();
        for (k, b) in [
            (server::SURFACE_CREATE, create(0, w, h)),
            (server::MARK, vec![]),
        ] {
            s.apply(&display::parse(k, &b).unwrap()).unwrap();
        }
        s
    }

    fn apply(s: &mut Screen, kind: u16, body: &[u8]) -> Result<Applied, ProtocolError> {
        let msg = display::parse(kind, body)?;
        s.apply(&msg)
    }

    #[test]
    fn copy_32_24_16_top_down_and_bottom_up() {
        let mut s = screen(4, 2);
        // 32-bit, 2×2, top-down.
        let px32 = [1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9, 0, 10, 11, 12, 0];
        let b = draw_copy(
            base(0, rect(0, 0, 2, 2), &[]),
            rect(0, 0, 2, 2),
            (8, 4, 2, 2, 8),
            &px32,
        );
        assert_eq!(
            apply(&mut s, server::DRAW_COPY, &b).unwrap(),
            Applied::Drawn
        );
        let p = &s.primary().unwrap().pixels;
        assert_eq!(p[0], 0x030201);
        assert_eq!(p[1], 0x060504);
        assert_eq!(p[4], 0x090807);
        // 24-bit bottom-up, stride padded to 8: first row in memory is the bottom row.
        let px24 = [1, 1, 1, 2, 2, 2, 0, 0, 3, 3, 3, 4, 4, 4, 0, 0];
        let b = draw_copy(
            base(0, rect(2, 0, 4, 2), &[]),
            rect(0, 0, 2, 2),
            (7, 0, 2, 2, 8),
            &px24,
        );
        apply(&mut s, server::DRAW_COPY, &b).unwrap();
        let p = &s.primary().unwrap().pixels;
        assert_eq!((p[2], p[3]), (0x030303, 0x040404));
        assert_eq!((p[6], p[7]), (0x010101, 0x020202));
        // 16-bit x555: pure red, white.
        let px16 = [0x00, 0x7c, 0xff, 0x7f];
        let b = draw_copy(
            base(0, rect(0, 1, 2, 2), &[]),
            rect(0, 0, 2, 1),
            (6, 4, 2, 1, 4),
            &px16,
        );
        apply(&mut s, server::DRAW_COPY, &b).unwrap();
        let p = &s.primary().unwrap().pixels;
        assert_eq!((p[4], p[5]), (0xff0000, 0xffffff));
    }

    #[test]
    fn clip_rects_limit_the_copy_and_fill() {
        let mut s = screen(4, 4);
        let mut fill = base(0, rect(0, 0, 4, 4), &[rect(1, 1, 2, 2), rect(3, 3, 9, 9)]);
        fill.push(1);
        fill.extend_from_slice(&0x00ab_cdefu32.to_le_bytes());
        fill.extend_from_slice(&8u16.to_le_bytes());
        fill.extend_from_slice(&[0; 13]);
        apply(&mut s, server::DRAW_FILL, &fill).unwrap();
        let p = &s.primary().unwrap().pixels;
        let set: Vec<usize> = (0..16).filter(|&i| p[i] != 0).collect();
        assert_eq!(set, vec![5, 15]);
        assert_eq!(p[5], 0xabcdef);
    }

    #[test]
    fn copy_bits_handles_overlap_both_ways() {
        let mut s = screen(4, 1);
        s.surfaces.get_mut(&0).unwrap().pixels = vec![1, 2, 3, 4];
        let mut b = base(0, rect(1, 0, 4, 1), &[]);
        b.extend_from_slice(&0i32.to_le_bytes());
        b.extend_from_slice(&0i32.to_le_bytes());
        apply(&mut s, server::COPY_BITS, &b).unwrap();
        assert_eq!(s.primary().unwrap().pixels, vec![1, 1, 2, 3]);
        let mut s = screen(1, 4);
        s.surfaces.get_mut(&0).unwrap().pixels = vec![1, 2, 3, 4];
        let mut b = base(0, rect(0, 0, 1, 3), &[]);
        b.extend_from_slice(&0i32.to_le_bytes());
        b.extend_from_slice(&1i32.to_le_bytes());
        apply(&mut s, server::COPY_BITS, &b).unwrap();
        assert_eq!(s.primary().unwrap().pixels, vec![2, 3, 4, 4]);
        // A source outside the surface is refused.
        let mut b = base(0, rect(0, 0, 1, 3), &[]);
        b.extend_from_slice(&0i32.to_le_bytes());
        b.extend_from_slice(&2i32.to_le_bytes());
        assert!(apply(&mut s, server::COPY_BITS, &b).is_err());
    }

    #[test]
    fn hostile_surfaces_are_refused() {
        let mut s = Screen::default();
        for (w, h) in [
            (0, 0),
            (0, 10),
            (65536, 65536),
            (16384, 16384),
            (u32::MAX, 1),
        ] {
            let err = apply(&mut s, server::SURFACE_CREATE, &create(0, w, h)).unwrap_err();
            assert!(err.to_string().contains("size"), "{err}");
        }
        assert!(apply(&mut s, server::SURFACE_CREATE, &[0; 19]).is_err());
        // Too many pixels over all surfaces.
        for id in 0..2 {
            apply(&mut s, server::SURFACE_CREATE, &create(id, 7680, 4320)).unwrap();
        }
        assert!(apply(&mut s, server::SURFACE_CREATE, &create(2, 100, 100)).is_err());
        // A palette surface format is skipped, not drawn.
        let mut b = create(5, 8, 8);
        b[12..16].copy_from_slice(&8u32.to_le_bytes());
        assert!(matches!(
            apply(&mut s, server::SURFACE_CREATE, &b).unwrap(),
            Applied::Unsupported(_)
        ));
    }

    #[test]
    fn hostile_bitmaps_are_refused() {
        let mut s = screen(4, 4);
        let good = |stride: u32, h: u32, data: &[u8]| {
            draw_copy(
                base(0, rect(0, 0, 1, 1), &[]),
                rect(0, 0, 1, 1),
                (8, 4, 1, h, stride),
                data,
            )
        };
        // stride × height overflows, or exceeds the message, or a row is longer than the stride.
        for (stride, h, len) in [(u32::MAX, 16384, 64), (64, 2, 64), (2, 1, 8), (4, 0, 4)] {
            let b = good(stride, h, &vec![0; len]);
            assert!(
                apply(&mut s, server::DRAW_COPY, &b).is_err(),
                "{stride} {h}"
            );
        }
        // Source area outside the image.
        let b = draw_copy(
            base(0, rect(0, 0, 2, 2), &[]),
            rect(1, 1, 3, 3),
            (8, 4, 2, 2, 8),
            &[0; 16],
        );
        assert!(apply(&mut s, server::DRAW_COPY, &b).is_err());
        // Image offset past the end.
        let mut b = good(4, 1, &[0; 4]);
        let at = 21;
        b[at..at + 4].copy_from_slice(&10_000u32.to_le_bytes());
        assert!(apply(&mut s, server::DRAW_COPY, &b).is_err());
        // A box far outside the surface draws nothing and does not panic.
        let b = draw_copy(
            base(0, rect(i32::MAX - 1, i32::MIN, i32::MAX, i32::MIN + 1), &[]),
            rect(0, 0, 1, 1),
            (8, 4, 1, 1, 4),
            &[9; 4],
        );
        apply(&mut s, server::DRAW_COPY, &b).unwrap();
        assert!(s.primary().unwrap().pixels.iter().all(|&p| p == 0));
        // A copy to a surface that does not exist.
        let b = draw_copy(
            base(9, rect(0, 0, 1, 1), &[]),
            rect(0, 0, 1, 1),
            (8, 4, 1, 1, 4),
            &[9; 4],
        );
        assert!(apply(&mut s, server::DRAW_COPY, &b).is_err());
    }

    #[test]
    fn bad_clip_lists_are_refused() {
        let mut s = screen(4, 4);
        // A count larger than the body.
        let mut b = 0u32.to_le_bytes().to_vec();
        b.extend_from_slice(&rect(0, 0, 4, 4));
        b.push(1);
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        b.extend_from_slice(&[0; 40]);
        assert!(apply(&mut s, server::DRAW_FILL, &b).is_err());
        // An unknown clip type.
        let mut b = base(0, rect(0, 0, 4, 4), &[]);
        b[20] = 7;
        assert!(apply(&mut s, server::DRAW_FILL, &b).is_err());
        // Inverted and far-away clip rects draw nothing.
        let mut fill = base(
            0,
            rect(0, 0, 4, 4),
            &[rect(3, 3, 1, 1), rect(-9, -9, -1, -1)],
        );
        fill.push(1);
        fill.extend_from_slice(&1u32.to_le_bytes());
        fill.extend_from_slice(&8u16.to_le_bytes());
        fill.extend_from_slice(&[0; 13]);
        apply(&mut s, server::DRAW_FILL, &fill).unwrap();
        assert!(s.primary().unwrap().pixels.iter().all(|&p| p == 0));
    }

    #[test]
    fn unsupported_kinds_are_reported_not_drawn() {
        let mut s = screen(2, 2);
        // A compressed (LZ_RGB) image.
        let mut b = draw_copy(
            base(0, rect(0, 0, 1, 1), &[]),
            rect(0, 0, 1, 1),
            (8, 4, 1, 1, 4),
            &[9; 4],
        );
        b[57 + 8] = 101;
        assert!(matches!(
            apply(&mut s, server::DRAW_COPY, &b).unwrap(),
            Applied::Unsupported(_)
        ));
        assert!(matches!(
            apply(&mut s, 305, &[]).unwrap(),
            Applied::Unsupported(_)
        ));
        assert!(s.primary().unwrap().pixels.iter().all(|&p| p == 0));
        // RESET forgets the surfaces; destroy of the primary hides it.
        apply(&mut s, server::RESET, &[]).unwrap();
        assert!(s.primary().is_none());
    }
}
