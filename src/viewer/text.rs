//! Messages drawn into the window with an 8×8 bitmap font (no font files, no GPU).
use font8x8::legacy::BASIC_LEGACY;

/// Pixel scale of the font.
const SCALE: u32 = 2;
/// Glyph cell size after scaling.
pub(crate) const CELL: u32 = 8 * SCALE;

/// Splits `text` into lines of at most `cols` characters at spaces.
pub(crate) fn wrap(text: &str, cols: usize) -> Vec<String> {
    let cols = cols.max(8);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > cols {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
        while line.len() > cols {
            let rest = line.split_off(cols);
            lines.push(std::mem::replace(&mut line, rest));
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Draws one line at (x, y) in `color` (0x00RRGGBB), clipped to the buffer.
pub(crate) fn draw_line(out: &mut [u32], w: u32, h: u32, x: u32, y: u32, text: &str, color: u32) {
    for (i, ch) in text.chars().enumerate() {
        let glyph = BASIC_LEGACY
            .get(ch as usize)
            .copied()
            .unwrap_or(BASIC_LEGACY[b'?' as usize]);
        let gx = x + i as u32 * CELL;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8u32 {
                if bits & (1 << col) == 0 {
                    continue;
                }
                for dy in 0..SCALE {
                    for dx in 0..SCALE {
                        let (px, py) = (gx + col * SCALE + dx, y + row as u32 * SCALE + dy);
                        if px < w && py < h {
                            out[(py * w + px) as usize] = color;
                        }
                    }
                }
            }
        }
    }
}

/// Draws `text` wrapped and centred on a dark panel; `top` puts it at the top edge instead of the middle.
/// Returns the panel's height.
pub(crate) fn draw_panel(out: &mut [u32], w: u32, h: u32, text: &str, top: bool) -> u32 {
    let lines = wrap(text, (w.saturating_sub(2 * CELL) / CELL) as usize);
    let line_h = CELL + 4;
    let panel_h = (lines.len() as u32 * line_h + CELL).min(h);
    let y0 = if top {
        0
    } else {
        h.saturating_sub(panel_h) / 2
    };
    for y in y0..(y0 + panel_h).min(h) {
        let row = &mut out[(y * w) as usize..((y + 1) * w) as usize];
        row.fill(0x0020_2830);
    }
    for (i, line) in lines.iter().enumerate() {
        let lw = line.chars().count() as u32 * CELL;
        let x = w.saturating_sub(lw) / 2;
        draw_line(
            out,
            w,
            h,
            x,
            y0 + CELL / 2 + i as u32 * line_h,
            line,
            0x00F0_F0F0,
        );
    }
    panel_h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_wrap_breaks_at_spaces() {
        assert_eq!(wrap("aaaa bbbb cccc", 9), vec!["aaaa bbbb", "cccc"]);
    }

    #[test]
    fn test_draw_panel_in_tiny_buffer_does_not_panic() {
        let mut out = vec![0u32; 9];
        draw_panel(&mut out, 3, 3, "a long message that cannot fit", false);
    }
}
