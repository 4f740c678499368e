//! SPICE display benchmark (measures, never asserts). Run: `cargo bench --no-default-features --bench
//! spice_display`. One full 1920×1080 32-bit DRAW_COPY as QEMU sends it with compression off: parse + draw into
//! the surface (the display thread's work per update), then the blit of the surface into a 1920×1080 presented
//! buffer (the window's work per present), against a plain memcpy of the 8.3 MB, median of interleaved runs.
// Tests, benches and the build script may write files and start programs directly (clippy.toml).
#![allow(clippy::disallowed_methods)]
use std::time::Instant;

use vmgpu::spice::display;
use vmgpu::spice::screen::Screen;
use vmgpu::viewer::scale::{Placement, blit};

const W: u32 = 1920;
const H: u32 = 1080;
const RUNS: usize = 41;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn draw_copy() -> Vec<u8> {
    let mut b = 0u32.to_le_bytes().to_vec();
    for v in [0i32, 0, H as i32, W as i32] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.push(0);
    b.extend_from_slice(&57u32.to_le_bytes());
    for v in [0i32, 0, H as i32, W as i32] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&8u16.to_le_bytes());
    b.extend_from_slice(&[0; 14]);
    b.extend_from_slice(&[0; 10]);
    b.extend_from_slice(&W.to_le_bytes());
    b.extend_from_slice(&H.to_le_bytes());
    b.extend_from_slice(&[8, 4]);
    for v in [W, H, W * 4, 0] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend((0..W * H * 4).map(|i| (i * 7) as u8));
    b
}

fn main() {
    // `cargo test --all-targets` runs this binary with `--bench` absent: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("spice_display: run with `cargo bench --bench spice_display`");
        return;
    }
    let body = draw_copy();
    let mut screen = Screen::default();
    let create: Vec<u8> = [0u32, W, H, 32, 1]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    screen
        .apply(&display::parse(display::server::SURFACE_CREATE, &create).unwrap())
        .unwrap();
    screen.apply(&display::DisplayMsg::Mark).unwrap();
    let mut out = vec![0u32; (W * H) as usize];
    let mut copy_dst = vec![0u8; (W * H * 4) as usize];
    let src = &body[body.len() - (W * H * 4) as usize..];
    let (mut decode, mut present, mut memcpy) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let t = Instant::now();
        let msg = display::parse(display::server::DRAW_COPY, &body).unwrap();
        screen.apply(&msg).unwrap();
        decode.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let p = screen.primary().unwrap();
        blit(
            &p.pixels,
            W,
            H,
            &mut out,
            W,
            H,
            Placement::fit((W, H), (W, H)),
        );
        present.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        copy_dst.copy_from_slice(src);
        std::hint::black_box(&copy_dst);
        memcpy.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!("| 1920x1080 32-bit update | median ms |");
    println!("|---|---|");
    println!("| parse + draw into the surface | {:.2} |", median(decode));
    println!(
        "| blit surface → presented buffer | {:.2} |",
        median(present)
    );
    println!(
        "| memcpy of the 8.3 MB (reference) | {:.2} |",
        median(memcpy)
    );
}
