//! Aspect-correct placement of the frame in the window (letterboxed, centred) and the blit: a 1:1 placement is
//! a plain row copy, an upscale is nearest-neighbour (crisp at integer factors), a downscale is an area
//! average (each output pixel is the mean of the source pixels it covers), so one-pixel lines of text do not
//! drop out of a 1080p desktop shown at 1440×810.
#[cfg(any(test, feature = "viewer"))]
use crate::lg::kvmfr::Rect;

/// Where the frame lands in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Left of the frame in the output.
    pub x: u32,
    /// Top.
    pub y: u32,
    /// Scaled width.
    pub w: u32,
    /// Scaled height.
    pub h: u32,
}

impl Placement {
    /// The largest aspect-correct fit of `src` into `dst`, centred.
    pub fn fit(src: (u32, u32), dst: (u32, u32)) -> Self {
        let (sw, sh) = (src.0.max(1) as u64, src.1.max(1) as u64);
        let (dw, dh) = (dst.0 as u64, dst.1 as u64);
        let (w, h) = if dw * sh <= dh * sw {
            (dw, (dw * sh / sw).max(1))
        } else {
            ((dh * sw / sh).max(1), dh)
        };
        let (w, h) = (w.min(dw) as u32, h.min(dh) as u32);
        Self {
            x: (dst.0 - w) / 2,
            y: (dst.1 - h) / 2,
            w,
            h,
        }
    }

    /// Maps an output pixel to the frame pixel it shows, if inside the frame.
    pub fn to_frame(&self, ox: u32, oy: u32, src: (u32, u32)) -> Option<(u32, u32)> {
        if ox < self.x || oy < self.y || ox >= self.x + self.w || oy >= self.y + self.h {
            return None;
        }
        let fx = ((ox - self.x) as u64 * src.0 as u64 / self.w as u64) as u32;
        let fy = ((oy - self.y) as u64 * src.1 as u64 / self.h as u64) as u32;
        Some((fx, fy))
    }
}

/// Draws `src` (`sw × sh`) into `out` (`ow × oh`) at `p`, black around it.
pub fn blit(src: &[u32], sw: u32, sh: u32, out: &mut [u32], ow: u32, oh: u32, p: Placement) {
    if sw == 0 || sh == 0 || p.w == 0 || p.h == 0 || src.len() < sw as usize * sh as usize {
        out.fill(0);
        return;
    }
    // Only the margins are cleared: the frame covers the rest (one pass over the buffer, not two).
    fill_outside(out, ow, oh, p);
    let (sw_, ow_) = (sw as usize, ow as usize);
    if p.w == sw && p.h == sh {
        for y in 0..sh.min(oh.saturating_sub(p.y)) as usize {
            let dst = (p.y as usize + y) * ow_ + p.x as usize;
            let n = sw_.min(ow_ - p.x as usize);
            out[dst..dst + n].copy_from_slice(&src[y * sw_..y * sw_ + n]);
        }
        return;
    }
    if p.w < sw || p.h < sh {
        area_downscale(src, sw, sh, out, ow, oh, p);
        return;
    }
    nearest(src, sw, sh, out, ow, oh, p);
}

/// Blackens what lies outside `p` in `out` (`ow × oh`); all of it when `p` does not fit inside.
fn fill_outside(out: &mut [u32], ow: u32, oh: u32, p: Placement) {
    let (ow_, oh_) = (ow as usize, oh as usize);
    let fits = p.x.checked_add(p.w).is_some_and(|r| r <= ow)
        && p.y.checked_add(p.h).is_some_and(|b| b <= oh)
        && out.len() >= ow_ * oh_;
    if !fits {
        out.fill(0);
        return;
    }
    let (top, bottom) = (p.y as usize * ow_, (p.y + p.h) as usize * ow_);
    out[..top].fill(0);
    out[bottom..ow_ * oh_].fill(0);
    if p.w < ow {
        let (left, right) = (p.x as usize, (p.x + p.w) as usize);
        for row in out[top..bottom].chunks_exact_mut(ow_) {
            row[..left].fill(0);
            row[right..].fill(0);
        }
    }
}

/// Copies the window rects `rects` (inside `p`, a 1:1 placement of `src`, `sw` wide) from `src` into `out`
/// (`ow` wide): the damage-only present. Parts outside `p` or the buffers are skipped.
#[cfg(any(test, feature = "viewer"))]
pub(crate) fn copy_rects(
    src: &[u32],
    sw: u32,
    out: &mut [u32],
    ow: u32,
    p: Placement,
    rects: &[Rect],
) {
    let (sw_, ow_) = (sw as usize, ow as usize);
    for r in rects {
        let x0 = r.x.max(p.x);
        let x1 = r.x.saturating_add(r.w).min(p.x.saturating_add(p.w)).min(ow);
        let y0 = r.y.max(p.y);
        let y1 = r.y.saturating_add(r.h).min(p.y.saturating_add(p.h));
        if x0 >= x1 {
            continue;
        }
        let n = (x1 - x0) as usize;
        for y in y0..y1 {
            let s = (y - p.y) as usize * sw_ + (x0 - p.x) as usize;
            let d = y as usize * ow_ + x0 as usize;
            let (Some(from), Some(to)) = (src.get(s..s + n), out.get_mut(d..d + n)) else {
                break;
            };
            to.copy_from_slice(from);
        }
    }
}

/// Nearest-neighbour at any factor (what [`blit`] does for upscales); public for the benchmark.
pub fn blit_nearest(
    src: &[u32],
    sw: u32,
    sh: u32,
    out: &mut [u32],
    ow: u32,
    oh: u32,
    p: Placement,
) {
    out.fill(0);
    if sw == 0 || sh == 0 || p.w == 0 || p.h == 0 || src.len() < sw as usize * sh as usize {
        return;
    }
    nearest(src, sw, sh, out, ow, oh, p);
}

fn nearest(src: &[u32], sw: u32, sh: u32, out: &mut [u32], ow: u32, oh: u32, p: Placement) {
    let (sw_, ow_) = (sw as usize, ow as usize);
    let xmap: Vec<usize> = (0..p.w as u64)
        .map(|x| (x * sw as u64 / p.w as u64) as usize)
        .collect();
    for y in 0..p.h.min(oh.saturating_sub(p.y)) as u64 {
        let sy = (y * sh as u64 / p.h as u64) as usize;
        let row = &src[sy * sw_..(sy + 1) * sw_];
        let dst = (p.y as usize + y as usize) * ow_ + p.x as usize;
        for (d, &sx) in out[dst..dst + xmap.len().min(ow_ - p.x as usize)]
            .iter_mut()
            .zip(&xmap)
        {
            *d = row[sx];
        }
    }
}

/// Weights of the source pixels each output pixel covers along one axis, in 1/256ths summing to 256.
struct Taps {
    /// First source index per output index.
    first: Vec<usize>,
    /// `per` weights per output index (zeros past its last tap).
    weights: Vec<u32>,
    /// The most source pixels one output pixel covers.
    per: usize,
}

impl Taps {
    fn new(src: u32, dst: u32) -> Self {
        let (s, d) = (src as u64, dst.max(1) as u64);
        // Source interval of output o in 1/d units: [o·s, (o+1)·s); each tap weighs its overlap.
        let spans: Vec<(usize, Vec<u32>)> = (0..d)
            .map(|o| {
                let (lo, hi) = (o * s, (o + 1) * s);
                let i0 = lo / d;
                let mut w: Vec<u32> = (i0..s.min(hi.div_ceil(d)))
                    .map(|i| ((hi.min((i + 1) * d) - lo.max(i * d)) * 256 / s) as u32)
                    .collect();
                // Rounding leftovers go to the last tap, so a flat colour stays exactly that colour.
                let given: u32 = w.iter().sum();
                if let Some(last) = w.last_mut() {
                    *last += 256 - given.min(256);
                }
                (i0 as usize, w)
            })
            .collect();
        let per = spans.iter().map(|(_, w)| w.len()).max().unwrap_or(1).max(1);
        let mut weights = vec![0u32; spans.len() * per];
        for (chunk, (_, w)) in weights.chunks_exact_mut(per).zip(&spans) {
            chunk[..w.len()].copy_from_slice(w);
        }
        Self {
            first: spans.iter().map(|(i, _)| *i).collect(),
            weights,
            per,
        }
    }
}

/// `Σ w·px` over the taps, per channel (R|B and G in packed lanes; weights in 1/256ths sum to 256, so no lane
/// overflows), back to one 0x00RRGGBB pixel.
#[inline(always)]
fn weigh(px: &[u32], w: &[u32]) -> u32 {
    let (mut a, mut b) = (0u32, 0u32);
    for (&p, &w) in px.iter().zip(w) {
        a += (p & 0x00FF_00FF) * w;
        b += (p & 0x0000_FF00) * w;
    }
    ((a >> 8) & 0x00FF_00FF) | ((b >> 8) & 0x0000_FF00)
}

/// Area-average scaling, separable: each output row first sums its source rows (the same weight across a
/// row, so this part vectorises), then each output pixel sums its columns of that row.
fn area_downscale(src: &[u32], sw: u32, sh: u32, out: &mut [u32], ow: u32, oh: u32, p: Placement) {
    let (xt, yt) = (Taps::new(sw, p.w), Taps::new(sh, p.h));
    let sw_ = sw as usize;
    let cols = (p.w as usize).min((ow - p.x) as usize);
    let mut row = vec![0u32; sw_];
    let (mut rb, mut g) = (vec![0u32; sw_], vec![0u32; sw_]);
    let rows = (p.h.min(oh.saturating_sub(p.y))) as usize;
    for (oy, wy) in yt.weights.chunks_exact(yt.per).take(rows).enumerate() {
        let y0 = yt.first[oy];
        rb.fill(0);
        g.fill(0);
        for (line, &w) in src[y0 * sw_..].chunks_exact(sw_).zip(wy) {
            for ((a, b), &px) in rb.iter_mut().zip(g.iter_mut()).zip(line) {
                *a += (px & 0x00FF_00FF) * w;
                *b += (px & 0x0000_FF00) * w;
            }
        }
        for ((r, a), b) in row.iter_mut().zip(&rb).zip(&g) {
            *r = ((a >> 8) & 0x00FF_00FF) | ((b >> 8) & 0x0000_FF00);
        }
        let dst = (p.y as usize + oy) * ow as usize + p.x as usize;
        let taps = xt.first.iter().zip(xt.weights.chunks_exact(xt.per));
        for (d, (&x0, wx)) in out[dst..dst + cols].iter_mut().zip(taps) {
            *d = weigh(&row[x0..], wx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_fit_wide_frame_in_square_window_letterboxes() {
        let p = Placement::fit((1920, 1080), (1000, 1000));
        assert_eq!(
            p,
            Placement {
                x: 0,
                y: 219,
                w: 1000,
                h: 562
            }
        );
    }

    #[test]
    fn test_fit_same_size_is_one_to_one() {
        assert_eq!(
            Placement::fit((640, 480), (640, 480)),
            Placement {
                x: 0,
                y: 0,
                w: 640,
                h: 480
            }
        );
    }

    #[test]
    fn test_blit_upscale_two_times_repeats_pixels() {
        let mut out = vec![9u32; 4];
        blit(&[1], 1, 1, &mut out, 2, 2, Placement::fit((1, 1), (2, 2)));
        assert_eq!(out, vec![1, 1, 1, 1]);
    }

    #[test]
    fn test_downscale_keeps_a_one_pixel_line_visible() {
        // A white 1-px horizontal line every 4 rows on black, 16×16 → 12×12: every line must leave a trace.
        let (sw, sh) = (16u32, 16u32);
        let src: Vec<u32> = (0..sh)
            .flat_map(|y| (0..sw).map(move |_| if y % 4 == 1 { 0xFF_FFFF } else { 0 }))
            .collect();
        let mut out = vec![0u32; 144];
        blit(
            &src,
            sw,
            sh,
            &mut out,
            12,
            12,
            Placement::fit((sw, sh), (12, 12)),
        );
        let lit_rows = (0..12)
            .filter(|y| out[y * 12..(y + 1) * 12].iter().any(|&p| p & 0xFF > 0x40))
            .count();
        assert!(lit_rows >= 4, "only {lit_rows} rows show a line: {out:x?}");
    }

    #[test]
    fn test_blit_letterboxed_clears_only_the_margins_and_copies_rects() {
        let src: Vec<u32> = (1..=4).collect();
        let mut out = vec![9u32; 4 * 4];
        let p = Placement {
            x: 1,
            y: 1,
            w: 2,
            h: 2,
        };
        blit(&src, 2, 2, &mut out, 4, 4, p);
        assert_eq!(out, [0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 0]);
        let changed: Vec<u32> = vec![5, 6, 7, 8];
        let rect = Rect {
            x: 2,
            y: 2,
            w: 100,
            h: 100,
        };
        copy_rects(&changed, 2, &mut out, 4, p, &[rect]);
        assert_eq!(out, [0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 8, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn test_downscale_of_a_flat_colour_is_that_colour() {
        let src = vec![0x12_3456u32; 1920 * 1080];
        let mut out = vec![0u32; 1440 * 810];
        let p = Placement::fit((1920, 1080), (1440, 810));
        blit(&src, 1920, 1080, &mut out, 1440, 810, p);
        assert!(out.iter().all(|&px| px == 0x12_3456));
    }
}
