//! Pictures for the producer: deterministic test patterns in every frame format (tests and benchmarks) and the
//! moving demo scene of `vmgpu view --demo`.
use super::kvmfr::{CursorShape, CursorType, FrameType, Rect};
use super::producer::FrameDesc;

/// f32 → IEEE half, round to nearest even (the producer's RGBA16F encoder).
pub(crate) fn f32_to_f16(v: f32) -> u16 {
    let b = v.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 255 {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 31 {
        return sign | 0x7c00;
    }
    let (half, rem, halfway) = if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        (m >> shift, m & ((1 << shift) - 1), 1u32 << (shift - 1))
    } else {
        (((e as u32) << 10) | (man >> 13), man & 0x1fff, 0x1000)
    };
    let rounded = if rem > halfway || (rem == halfway && half & 1 == 1) {
        half + 1
    } else {
        half
    };
    sign | rounded as u16
}

/// The pattern value of pixel (x, y) as four channels in [0, 1023] (scaled per format below).
fn channels(x: u32, y: u32, seed: u32) -> [u32; 3] {
    [
        (x * 7 + seed * 13) & 1023,
        (y * 11 + seed) & 1023,
        ((x ^ y) * 3 + seed * 5) & 1023,
    ]
}

/// One pixel of the test pattern in `kind`'s memory layout.
pub fn pattern_pixel(kind: FrameType, x: u32, y: u32, seed: u32) -> [u8; 8] {
    let [r, g, b] = channels(x, y, seed);
    let mut out = [0u8; 8];
    match kind {
        FrameType::Bgra => {
            out[..4].copy_from_slice(&[(b >> 2) as u8, (g >> 2) as u8, (r >> 2) as u8, 255])
        }
        FrameType::Rgba => {
            out[..4].copy_from_slice(&[(r >> 2) as u8, (g >> 2) as u8, (b >> 2) as u8, 255])
        }
        FrameType::Rgba10 => {
            out[..4].copy_from_slice(&(r | (g << 10) | (b << 20) | (3 << 30)).to_le_bytes())
        }
        FrameType::Rgba16f => {
            // 0 … 4.0 in red (HDR highlights), 0 … 1.0 in green and blue.
            let hs = [r as f32 / 256.0, g as f32 / 1023.0, b as f32 / 1023.0, 1.0].map(f32_to_f16);
            for (i, h) in hs.into_iter().enumerate() {
                out[2 * i..2 * i + 2].copy_from_slice(&h.to_le_bytes());
            }
        }
    }
    out
}

/// A `width × height` test pattern with `pitch = width × bpp + extra` bytes per row.
pub fn test_pattern(
    kind: FrameType,
    width: u32,
    height: u32,
    extra_pitch: u32,
    seed: u32,
) -> (FrameDesc, Vec<u8>) {
    let bpp = kind.bytes_per_pixel() as usize;
    let pitch = width as usize * bpp + extra_pitch as usize;
    let mut pixels = vec![0u8; pitch * height as usize];
    for y in 0..height {
        let row = &mut pixels[y as usize * pitch..][..width as usize * bpp];
        for (x, px) in row.chunks_exact_mut(bpp).enumerate() {
            px.copy_from_slice(&pattern_pixel(kind, x as u32, y, seed)[..bpp]);
        }
    }
    let desc = FrameDesc {
        kind,
        width,
        height,
        pitch: pitch as u32,
        damage: Vec::new(),
        flags: 0,
    };
    (desc, pixels)
}

/// Fills `rect` of a BGRA/RGBA/RGBA10 (4 bytes per pixel) image with one 32-bit value.
pub fn fill_rect(pixels: &mut [u8], pitch: u32, rect: Rect, value: [u8; 4]) {
    for y in rect.y..rect.y + rect.h {
        let start = y as usize * pitch as usize + rect.x as usize * 4;
        if let Some(row) = pixels.get_mut(start..start + rect.w as usize * 4) {
            for px in row.chunks_exact_mut(4) {
                px.copy_from_slice(&value);
            }
        }
    }
}

/// A 32×32 arrow as a colour (premultiplied BGRA) cursor.
pub fn arrow_cursor() -> CursorShape {
    let (w, h) = (32u32, 32u32);
    let mut data = vec![0u8; (w * h * 4) as usize];
    for y in 0..h {
        for x in 0..w {
            let inside = x <= y / 2 + 1 && y < 28;
            let edge = inside && (x == 0 || x == y / 2 + 1 || y == 27);
            let px = if edge {
                [0, 0, 0, 255]
            } else if inside {
                [255, 255, 255, 255]
            } else if x <= y / 2 + 3 && y < 30 {
                [0, 0, 0, 96]
            } else {
                [0, 0, 0, 0]
            };
            data[((y * w + x) * 4) as usize..][..4].copy_from_slice(&px);
        }
    }
    CursorShape {
        kind: CursorType::Color,
        width: w,
        height: h,
        pitch: w * 4,
        hotspot: (0, 0),
        data,
    }
}

/// The demo: a static background with a bouncing square (damage-only updates) and a circling cursor.
pub struct DemoScene {
    width: u32,
    height: u32,
    background: Vec<u8>,
    pixels: Vec<u8>,
    square: Rect,
    velocity: (i32, i32),
    tick: u32,
}

impl DemoScene {
    /// A scene of `width × height` BGRA pixels.
    pub fn new(width: u32, height: u32) -> Self {
        let (_, background) = test_pattern(FrameType::Bgra, width, height, 0, 0);
        let side = (width.min(height) / 6).max(8);
        Self {
            width,
            height,
            pixels: background.clone(),
            background,
            square: Rect {
                x: 0,
                y: 0,
                w: side,
                h: side,
            },
            velocity: (7, 5),
            tick: 0,
        }
    }

    /// The next frame: the square moves; damage = where it was ∪ where it is.
    pub fn next_frame(&mut self) -> (FrameDesc, &[u8]) {
        let pitch = self.width * 4;
        let old = self.square;
        for y in old.y..old.y + old.h {
            let at = (y * pitch + old.x * 4) as usize;
            let len = (old.w * 4) as usize;
            self.pixels[at..at + len].copy_from_slice(&self.background[at..at + len]);
        }
        let (mut x, mut y) = (
            old.x as i32 + self.velocity.0,
            old.y as i32 + self.velocity.1,
        );
        if x < 0 || x + old.w as i32 > self.width as i32 {
            self.velocity.0 = -self.velocity.0;
            x = x.clamp(0, (self.width - old.w) as i32);
        }
        if y < 0 || y + old.h as i32 > self.height as i32 {
            self.velocity.1 = -self.velocity.1;
            y = y.clamp(0, (self.height - old.h) as i32);
        }
        self.square = Rect {
            x: x as u32,
            y: y as u32,
            w: old.w,
            h: old.h,
        };
        self.tick = self.tick.wrapping_add(1);
        let shade = (self.tick * 4 % 256) as u8;
        fill_rect(
            &mut self.pixels,
            pitch,
            self.square,
            [255 - shade, 64, shade, 255],
        );
        let desc = FrameDesc {
            kind: FrameType::Bgra,
            width: self.width,
            height: self.height,
            pitch,
            damage: vec![old, self.square],
            flags: 0,
        };
        (desc, &self.pixels)
    }

    /// The whole current picture (for the first frame).
    pub fn full_frame(&self) -> (FrameDesc, &[u8]) {
        let desc = FrameDesc {
            kind: FrameType::Bgra,
            width: self.width,
            height: self.height,
            pitch: self.width * 4,
            damage: Vec::new(),
            flags: 0,
        };
        (desc, &self.pixels)
    }

    /// The cursor for this tick (shape on the first call).
    #[cfg(feature = "viewer")]
    pub(crate) fn cursor(&self, with_shape: bool) -> super::producer::CursorSend {
        let t = self.tick as f32 / 40.0;
        let (cx, cy) = (self.width as f32 / 2.0, self.height as f32 / 2.0);
        let r = self.height as f32 / 3.0;
        let shape = with_shape.then(arrow_cursor);
        super::producer::CursorSend {
            position: Some(((cx + r * t.cos()) as i16, (cy + r * t.sin()) as i16)),
            visible: true,
            shape,
        }
    }
}
