//! The window's scaling step (measure, never assert). Run: `cargo bench --bench downscale` (prints a table).
//! For each frame size shown at 75 % (1080p at 1440×810 and so on): a memcpy of the frame's canvas (what a 1:1
//! present costs, and about what ingesting the frame costs), the old nearest-neighbour downscale, and the area
//! average the window uses now; median of interleaved runs, in one process.
// Tests, benches and the build script may write files and start programs directly (clippy.toml).
#![allow(clippy::disallowed_methods)]
use std::time::Instant;

use vmgpu::viewer::scale::{Placement, blit, blit_nearest};

const RUNS: usize = 41;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo test --all-targets` runs this binary with `--bench` absent: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("downscale: run with `cargo bench --bench downscale`");
        return;
    }
    println!("| frame | window | memcpy of the frame | nearest | area (used) | area ÷ memcpy |");
    println!("|---|---|---|---|---|---|");
    for (sw, sh) in [(1920u32, 1080u32), (2560, 1440), (3840, 2160)] {
        let (ow, oh) = (sw * 3 / 4, sh * 3 / 4);
        let src: Vec<u32> = (0..sw * sh)
            .map(|i| i.wrapping_mul(2_654_435_761))
            .collect();
        let mut copy = vec![0u32; src.len()];
        let mut out = vec![0u32; (ow * oh) as usize];
        let p = Placement::fit((sw, sh), (ow, oh));
        let (mut t_copy, mut t_near, mut t_area) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let t = Instant::now();
            copy.copy_from_slice(&src);
            std::hint::black_box(&copy);
            t_copy.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            blit_nearest(&src, sw, sh, &mut out, ow, oh, p);
            std::hint::black_box(&out);
            t_near.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            blit(&src, sw, sh, &mut out, ow, oh, p);
            std::hint::black_box(&out);
            t_area.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (c, n, a) = (median(t_copy), median(t_near), median(t_area));
        println!(
            "| {sw}×{sh} | {ow}×{oh} | {c:.3} ms | {n:.3} ms | {a:.3} ms | {:.2}× |",
            a / c
        );
    }
}
