//! Aspect-correct placement of the frame in the window (letterboxed, centred) and the blit: a 1:1 placement is
//! a plain row copy, an upscale is nearest-neighbour (crisp at integer factors), a downscale is an area
//! average (each output pixel is the mean of the source pixels it covers), so one-pixel lines of text do not
//! drop out of a 1080p desktop shown at 1440×810.

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
    out.fill(0);
    if sw == 0 || sh == 0 || p.w == 0 || p.h == 0 || src.len() < sw as usize * sh as usize {
        return;
    }
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
    /// `per` weights per output index (zeros past the last tap).
    weights: Vec<u32>,
    per: usize,
}

impl Taps {
    fn new(src: u32, dst: u32) -> Self {
        let (s, d) = (src as u64, dst.max(1) as u64);
        // Source interval of output o in 1/d units: [o·s, (o+1)·s).
        let per = (s.div_ceil(d) + 1) as usize;
        let mut first = Vec::with_capacity(d as usize);
        let mut weights = vec![0u32; d as usize * per];
        for o in 0..d {
            let (lo, hi) = (o * s, (o + 1) * s);
            let i0 = lo / d;
            first.push(i0 as usize);
            let mut given = 0u32;
            let mut last = 0;
            for (k, i) in (i0..s.min(hi.div_ceil(d))).enumerate().take(per) {
                let overlap = hi.min((i + 1) * d) - lo.max(i * d);
                let w = (overlap * 256 / s) as u32;
                weights[o as usize * per + k] = w;
                given += w;
                last = k;
            }
            // Rounding leftovers go to the last tap, so a flat colour stays exactly that colour.
            weights[o as usize * per + last] += 256 - given.min(256);
        }
        Self {
            first,
            weights,
            per,
        }
    }

    fn of(&self, o: usize) -> (usize, &[u32]) {
        (
            self.first[o],
            &self.weights[o * self.per..(o + 1) * self.per],
        )
    }
}

/// Area-average scaling, separable: each output row sums its source rows (R|B and G in packed lanes, weights
/// in 1/256ths so no lane overflows), then each output pixel sums its columns of that row.
fn area_downscale(src: &[u32], sw: u32, sh: u32, out: &mut [u32], ow: u32, oh: u32, p: Placement) {
    let (xt, yt) = (Taps::new(sw, p.w), Taps::new(sh, p.h));
    let sw_ = sw as usize;
    let cols = (p.w as usize).min((ow - p.x) as usize);
    let mut row = vec![0u32; sw_];
    let (mut rb, mut g) = (vec![0u32; sw_], vec![0u32; sw_]);
    for oy in 0..(p.h.min(oh.saturating_sub(p.y))) as usize {
        let (y0, wy) = yt.of(oy);
        rb.fill(0);
        g.fill(0);
        for (k, &w) in wy.iter().enumerate() {
            let sy = y0 + k;
            if w == 0 || sy >= sh as usize {
                continue;
            }
            let line = &src[sy * sw_..(sy + 1) * sw_];
            for ((a, b), &px) in rb.iter_mut().zip(g.iter_mut()).zip(line) {
                *a += (px & 0x00FF_00FF) * w;
                *b += (px & 0x0000_FF00) * w;
            }
        }
        for ((r, a), b) in row.iter_mut().zip(&rb).zip(&g) {
            *r = ((a >> 8) & 0x00FF_00FF) | ((b >> 8) & 0x0000_FF00);
        }
        let dst = (p.y as usize + oy) * ow as usize + p.x as usize;
        for (ox, d) in out[dst..dst + cols].iter_mut().enumerate() {
            let (x0, wx) = xt.of(ox);
            let (mut a, mut b) = (0u32, 0u32);
            for (k, &w) in wx.iter().enumerate() {
                if let Some(&px) = row.get(x0 + k) {
                    a += (px & 0x00FF_00FF) * w;
                    b += (px & 0x0000_FF00) * w;
                }
            }
            *d = ((a >> 8) & 0x00FF_00FF) | ((b >> 8) & 0x0000_FF00);
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
    fn test_downscale_of_a_flat_colour_is_that_colour() {
        let src = vec![0x12_3456u32; 1920 * 1080];
        let mut out = vec![0u32; 1440 * 810];
        let p = Placement::fit((1920, 1080), (1440, 810));
        blit(&src, 1920, 1080, &mut out, 1440, 810, p);
        assert!(out.iter().all(|&px| px == 0x12_3456));
    }
}
