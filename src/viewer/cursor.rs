//! The guest cursor drawn over the frame from cursor messages: colour (premultiplied alpha), monochrome
//! (AND/XOR masks, height doubled on the wire) and masked colour (replace or XOR).
use super::scale::Placement;
use crate::lg::kvmfr::{CursorShape, CursorState, CursorType, Rect};

/// Drawing the state the Looking Glass and SPICE clients keep ([`CursorState`], `lg::kvmfr`).
impl CursorState {
    /// The cursor's box in output pixels (`x0..x1`, `y0..y1`), clipped to the placed frame; `None` when hidden.
    fn span(&self, frame: (u32, u32), p: Placement) -> Option<(&CursorShape, [i64; 4])> {
        let shape = self.shape.as_ref().filter(|_| self.visible)?;
        if frame.0 == 0 || frame.1 == 0 || p.w == 0 || p.h == 0 {
            return None;
        }
        let to_out_x = |fx: i64| p.x as i64 + fx * p.w as i64 / frame.0 as i64;
        let to_out_y = |fy: i64| p.y as i64 + fy * p.h as i64 / frame.1 as i64;
        let (cx, cy) = (self.position.0 as i64, self.position.1 as i64);
        let x0 = to_out_x(cx).max(p.x as i64);
        let x1 = to_out_x(cx + shape.width as i64).min((p.x + p.w) as i64);
        let y0 = to_out_y(cy).max(p.y as i64);
        let y1 = to_out_y(cy + shape.height as i64).min((p.y + p.h) as i64);
        Some((shape, [x0, x1, y0, y1]))
    }

    /// The output pixels [`draw`](Self::draw) may change, if any (what a damage-only present must redraw).
    pub(crate) fn bounds(&self, frame: (u32, u32), p: Placement) -> Option<Rect> {
        let (_, [x0, x1, y0, y1]) = self.span(frame, p)?;
        (x1 > x0 && y1 > y0).then(|| Rect {
            x: x0 as u32,
            y: y0 as u32,
            w: (x1 - x0) as u32,
            h: (y1 - y0) as u32,
        })
    }

    /// Draws the cursor into `out` (`ow` wide) where the frame (`frame` size) is placed at `p`.
    pub(crate) fn draw(&self, out: &mut [u32], ow: u32, frame: (u32, u32), p: Placement) {
        let Some((shape, [x0, x1, y0, y1])) = self.span(frame, p) else {
            return;
        };
        let (cx, cy) = (self.position.0 as i64, self.position.1 as i64);
        for oy in y0..y1 {
            for ox in x0..x1 {
                let Some((fx, fy)) = p.to_frame(ox as u32, oy as u32, frame) else {
                    continue;
                };
                let (tx, ty) = (fx as i64 - cx, fy as i64 - cy);
                if tx < 0 || ty < 0 || tx >= shape.width as i64 || ty >= shape.height as i64 {
                    continue;
                }
                if let Some(d) = out.get_mut(oy as usize * ow as usize + ox as usize) {
                    *d = blend(shape, tx as u32, ty as u32, *d);
                }
            }
        }
    }
}

fn bgra_at(shape: &CursorShape, x: u32, y: u32) -> [u8; 4] {
    let at = y as usize * shape.pitch as usize + x as usize * 4;
    shape
        .data
        .get(at..at + 4)
        .map_or([0; 4], |s| [s[0], s[1], s[2], s[3]])
}

fn bit_at(shape: &CursorShape, x: u32, row: u32) -> bool {
    let at = row as usize * shape.pitch as usize + x as usize / 8;
    shape
        .data
        .get(at)
        .is_some_and(|b| b & (0x80 >> (x % 8)) != 0)
}

/// One cursor texel over one screen pixel (0x00RRGGBB).
pub(crate) fn blend(shape: &CursorShape, x: u32, y: u32, dst: u32) -> u32 {
    match shape.kind {
        CursorType::Color => {
            let [b, g, r, a] = bgra_at(shape, x, y);
            let mix = |s: u8, shift: u32| {
                let d = (dst >> shift) & 0xFF;
                ((s as u32 + (d * (255 - a as u32) + 127) / 255).min(255)) << shift
            };
            (dst & 0xFF00_0000) | mix(r, 16) | mix(g, 8) | mix(b, 0)
        }
        CursorType::Monochrome => {
            let and = bit_at(shape, x, y);
            let xor = bit_at(shape, x, y + shape.height);
            let base = if and { dst } else { dst & 0xFF00_0000 };
            if xor { base ^ 0x00FF_FFFF } else { base }
        }
        CursorType::MaskedColor => {
            let [b, g, r, a] = bgra_at(shape, x, y);
            let rgb = (r as u32) << 16 | (g as u32) << 8 | b as u32;
            if a == 0 {
                (dst & 0xFF00_0000) | rgb
            } else {
                dst ^ rgb
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mono(and: u8, xor: u8) -> CursorShape {
        CursorShape {
            kind: CursorType::Monochrome,
            width: 1,
            height: 1,
            pitch: 1,
            hotspot: (0, 0),
            data: vec![and, xor],
        }
    }

    #[test]
    fn test_mono_and1_xor0_is_transparent() {
        assert_eq!(blend(&mono(0x80, 0), 0, 0, 0x123456), 0x123456);
    }

    #[test]
    fn test_mono_and1_xor1_inverts() {
        assert_eq!(blend(&mono(0x80, 0x80), 0, 0, 0x123456), 0xEDCBA9);
    }

    #[test]
    fn test_mono_and0_xor1_is_white() {
        assert_eq!(blend(&mono(0, 0x80), 0, 0, 0x123456), 0xFFFFFF);
    }

    #[test]
    fn test_color_opaque_replaces() {
        let s = CursorShape {
            kind: CursorType::Color,
            width: 1,
            height: 1,
            pitch: 4,
            hotspot: (0, 0),
            data: vec![1, 2, 3, 255],
        };
        assert_eq!(blend(&s, 0, 0, 0xFFFFFF), 0x030201);
    }
}
