//! Aspect-correct placement of the frame in the window (letterboxed, centred) and the nearest-neighbour blit;
//! a 1:1 placement is a plain row copy.

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
}
