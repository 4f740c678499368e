//! Frame ingest: shared-memory pixels → the presentable buffer (`Canvas`, one `u32` per pixel as softbuffer
//! wants it: 0x00RRGGBB, i.e. B,G,R,x bytes in memory). BGRA rows are a straight copy; RGBA is swizzled;
//! RGBA10 scales 10 → 8 bits (or, flagged HDR, decodes PQ and tone-maps); RGBA16F (scRGB) is tone-mapped to SDR
//! through a 64 K-entry table. Only damaged rects are copied when the client says the frame is in order.
use std::sync::OnceLock;

use super::damage::Changes;
use crate::lg::frame::{self, RowSink};
use crate::lg::kvmfr::{FrameInfo, FrameType, Rect, flags};
use crate::shm::{self, ShmView};

/// Where SDR white sits in the tone curve: values up to it pass through unchanged.
const KNEE: f32 = 0.8;
/// scRGB 1.0 in nits.
const SCRGB_NITS: f32 = 80.0;

/// IEEE half → f32.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = (h >> 10) & 0x1f;
    let man = (h & 0x3ff) as f32;
    match exp {
        0 => sign * man * (1.0 / 16_777_216.0),
        31 if man == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        e => sign * (1.0 + man / 1024.0) * 2f32.powi(e as i32 - 15),
    }
}

/// sRGB transfer function (linear → encoded), both in [0, 1].
fn srgb_encode(y: f32) -> f32 {
    if y <= 0.003_130_8 {
        12.92 * y
    } else {
        1.055 * y.powf(1.0 / 2.4) - 0.055
    }
}

/// Tone-maps one linear scRGB channel (1.0 = 80 nits) to an 8-bit sRGB value: identity up to the knee, then an
/// exponential shoulder that approaches 1.0, then the sRGB curve. NaN and negatives are black.
pub fn tone_map(v: f32) -> u8 {
    let x = if v.is_nan() { 0.0 } else { v.max(0.0) };
    let y = if x <= KNEE {
        x
    } else {
        KNEE + (1.0 - KNEE) * (1.0 - (-(x - KNEE) / (1.0 - KNEE)).exp())
    };
    (srgb_encode(y.min(1.0)) * 255.0 + 0.5) as u8
}

/// SMPTE ST 2084 (PQ) decode: encoded [0, 1] → nits.
fn pq_to_nits(e: f32) -> f32 {
    let (m1, m2) = (0.159_301_76, 78.843_75);
    let (c1, c2, c3) = (0.835_937_5, 18.851_563, 18.6875);
    let p = e.max(0.0).powf(1.0 / m2);
    ((p - c1).max(0.0) / (c2 - c3 * p)).powf(1.0 / m1) * 10_000.0
}

/// 10-bit → 8-bit with rounding.
pub(crate) fn ten_to_eight(v: u32) -> u8 {
    ((v.min(1023) * 255 + 511) / 1023) as u8
}

fn half_table() -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    TABLE.get_or_init(|| (0..=u16::MAX).map(|h| tone_map(f16_to_f32(h))).collect())
}

fn pq_table() -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..1024u32)
            .map(|v| tone_map(pq_to_nits(v as f32 / 1023.0) / SCRGB_NITS))
            .collect()
    })
}

/// The presentable frame.
#[derive(Debug, Default)]
pub struct Canvas {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width × height` pixels, 0x00RRGGBB.
    pub pixels: Vec<u32>,
    kind: Option<FrameType>,
    pq: bool,
    scratch: Vec<u8>,
    /// What the last ingests changed (for damage-only presents).
    pub changes: Changes,
}

impl Canvas {
    /// Reads `info`'s pixels into the canvas: only `rects` when given (and the canvas already holds the previous
    /// frame), the whole frame otherwise. A size change reallocates (bounded by `parse_frame`'s checks).
    pub fn ingest(
        &mut self,
        view: ShmView<'_>,
        info: &FrameInfo,
        rects: Option<&[Rect]>,
    ) -> frame::Result<u64> {
        let resized = self.width != info.width || self.height != info.height;
        if resized {
            self.width = info.width;
            self.height = info.height;
            self.pixels = vec![0; info.width as usize * info.height as usize];
        }
        self.kind = Some(info.kind);
        self.pq = info.flags & flags::HDR != 0 && info.flags & flags::HDR_PQ == 0;
        if info.kind == FrameType::Rgba16f {
            half_table();
        }
        let rects = if resized { None } else { rects };
        let result = frame::ingest(view, info, rects, self);
        // Recorded even when the ingest failed part-way: some of those pixels may have changed.
        self.changes.record(rects, self.width, self.height);
        result
    }

    /// The pixel at (x, y), if inside.
    pub fn pixel(&self, x: u32, y: u32) -> Option<u32> {
        (x < self.width).then(|| {
            self.pixels
                .get(y as usize * self.width as usize + x as usize)
                .copied()
        })?
    }
}

impl RowSink for Canvas {
    fn row(&mut self, view: ShmView<'_>, src: usize, x: u32, y: u32, w: u32) -> shm::Result<()> {
        let start = y as usize * self.width as usize + x as usize;
        let Some(dst) = self.pixels.get_mut(start..start + w as usize) else {
            return Ok(());
        };
        let kind = self.kind.unwrap_or(FrameType::Bgra);
        if kind == FrameType::Bgra {
            return view.copy_to_u32s(src, dst);
        }
        let bytes = w as usize * kind.bytes_per_pixel() as usize;
        self.scratch.resize(bytes, 0);
        view.read_bytes(src, &mut self.scratch)?;
        convert_row(kind, self.pq, &self.scratch, dst);
        Ok(())
    }
}

/// Converts one row of `kind` pixels into 0x00RRGGBB.
pub(crate) fn convert_row(kind: FrameType, pq: bool, src: &[u8], dst: &mut [u32]) {
    let rgb = |r: u8, g: u8, b: u8| 0xFF00_0000 | (r as u32) << 16 | (g as u32) << 8 | b as u32;
    match kind {
        FrameType::Bgra => {
            for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *d = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            }
        }
        FrameType::Rgba => {
            for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *d = rgb(s[0], s[1], s[2]);
            }
        }
        FrameType::Rgba10 => {
            let pq_lut = if pq { Some(pq_table()) } else { None };
            let ch = |v: u32| match pq_lut {
                Some(t) => t.get(v as usize).copied().unwrap_or(0),
                None => ten_to_eight(v),
            };
            for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
                let v = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
                *d = rgb(ch(v & 1023), ch((v >> 10) & 1023), ch((v >> 20) & 1023));
            }
        }
        FrameType::Rgba16f => {
            let t = half_table();
            let ch = |lo: u8, hi: u8| {
                t.get(u16::from_le_bytes([lo, hi]) as usize)
                    .copied()
                    .unwrap_or(0)
            };
            for (d, s) in dst.iter_mut().zip(src.chunks_exact(8)) {
                *d = rgb(ch(s[0], s[1]), ch(s[2], s[3]), ch(s[4], s[5]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lg::scene::f32_to_f16;

    #[test]
    fn test_f16_roundtrip_of_exact_values_is_identity() {
        for v in [0.0f32, 0.5, 1.0, 2.25, 4.0, 65504.0, 5.960_464_5e-8] {
            assert_eq!(f16_to_f32(f32_to_f16(v)), v);
        }
    }

    #[test]
    fn test_tone_map_sdr_white_is_full_scale() {
        assert!(tone_map(1.0) > 240);
    }

    #[test]
    fn test_tone_map_huge_and_nan_do_not_panic() {
        assert_eq!(tone_map(f32::NAN), 0);
        assert_eq!(tone_map(f32::INFINITY), 255);
    }

    #[test]
    fn test_ten_to_eight_endpoints() {
        assert_eq!((ten_to_eight(0), ten_to_eight(1023)), (0, 255));
    }

    #[test]
    fn test_convert_row_rgba_swizzles_to_xrgb() {
        let mut out = [0u32; 1];
        convert_row(FrameType::Rgba, false, &[1, 2, 3, 4], &mut out);
        assert_eq!(out[0] & 0xFF_FFFF, 0x01_0203);
    }
}
