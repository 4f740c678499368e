//! Viewer benchmarks (measure, never assert). Run: `cargo bench --bench frame_ingest` (prints a table).
//! 1. Ingest cost: shared memory → presentable buffer for 1080p/1440p/4K BGRA, against a plain memcpy of the
//!    same bytes out of the same region, measured in the same run (median of interleaved runs).
//! 2. Damage-only frames: ingest cost against the damaged share of a 4K frame.
//! 3. Latency: producer post → frame ready in the canvas, through the real feed thread, p50/p99.
//! 4. CPU of the feed thread while waiting: for the host, and connected with no new frames.
use std::sync::Arc;
use std::time::{Duration, Instant};

use vmgpu::lg::client::{Client, Handler, Status};
use vmgpu::lg::frame;
use vmgpu::lg::kvmfr::{CursorUpdate, FrameInfo, FrameType, Rect};
use vmgpu::lg::producer::{Producer, ProducerConfig};
use vmgpu::lg::scene;
use vmgpu::shm::{HeapRegion, Region, ShmView};
use vmgpu::viewer::convert::Canvas;
use vmgpu::viewer::feed::{self, Shared, Source};

const MIB: usize = 1 << 20;
const RUNS: usize = 61;

/// Writes 64 MiB so that the next copy starts with a cold cache, as a frame the guest just wrote does.
fn evict(scratch: &mut [u8], round: usize) {
    scratch.fill(round as u8);
    std::hint::black_box(&scratch);
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// One frame: full ingest and memcpy (median, min), and (damaged share, median ingest) pairs.
type Timings = ((f64, f64), (f64, f64), Vec<(f64, f64)>);

/// Times ingest and memcpy of the frame the client is handed.
struct Timer {
    damage: Vec<(f64, Rect)>,
    result: Option<Timings>,
}

impl Handler for Timer {
    fn status(&mut self, _: Status) {}
    fn bad_frame(&mut self, why: String) {
        eprintln!("bad frame: {why}");
    }
    fn cursor(&mut self, _: CursorUpdate) {}
    fn frame(
        &mut self,
        view: ShmView<'_>,
        info: &FrameInfo,
        _: Option<&[Rect]>,
    ) -> frame::Result<()> {
        let mut canvas = Canvas::default();
        canvas.ingest(view, info, None)?;
        let mut plain = vec![0u8; info.data_size()];
        let (mut ingest, mut memcpy) = (Vec::new(), Vec::new());
        let mut scratch = vec![0u8; 64 * MIB];
        for i in 0..RUNS {
            evict(&mut scratch, i);
            let t = Instant::now();
            view.read_bytes(info.data_offset, &mut plain)?;
            memcpy.push(t.elapsed().as_secs_f64());
            evict(&mut scratch, i);
            let t = Instant::now();
            canvas.ingest(view, info, None)?;
            ingest.push(t.elapsed().as_secs_f64());
        }
        let full = (median(ingest.clone()), min(&ingest));
        let mut damaged = Vec::new();
        for (share, rect) in &self.damage {
            let mut times = Vec::new();
            for i in 0..RUNS {
                evict(&mut scratch, i);
                let t = Instant::now();
                canvas.ingest(view, info, Some(std::slice::from_ref(rect)))?;
                times.push(t.elapsed().as_secs_f64());
            }
            damaged.push((*share, median(times)));
        }
        std::hint::black_box(&plain);
        self.result = Some((full, (median(memcpy.clone()), min(&memcpy)), damaged));
        Ok(())
    }
}

fn connect(region: &HeapRegion, h: &mut impl Handler) -> Client {
    let mut client = Client::new(region.view()).unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while !client.connected() && Instant::now() < end {
        client.step(region.view(), h);
        std::thread::sleep(Duration::from_millis(5));
    }
    client
}

fn ingest_table() {
    println!(
        "## Ingest: shared memory → presentable buffer (BGRA, full frame, cold cache), median of {RUNS}\n"
    );
    println!(
        "| frame | bytes | memcpy median | ingest median | ratio of medians | memcpy min | ingest min | ratio of minima |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut damage_rows = Vec::new();
    for (w, h) in [(1920u32, 1080u32), (2560, 1440), (3840, 2160)] {
        let region = Arc::new(HeapRegion::new(128 * MIB));
        let producer = Producer::start(region.clone(), ProducerConfig::default()).unwrap();
        let damage = {
            [0.01f64, 0.1, 0.25, 0.5, 1.0]
                .iter()
                .map(|&share| {
                    let rh = ((h as f64 * share).round() as u32).max(1);
                    (
                        share,
                        Rect {
                            x: 0,
                            y: 0,
                            w,
                            h: rh,
                        },
                    )
                })
                .collect()
        };
        let mut timer = Timer {
            damage,
            result: None,
        };
        let mut client = connect(&region, &mut timer);
        producer.wait_for_client(Duration::from_secs(2));
        let (desc, pixels) = scene::test_pattern(FrameType::Bgra, w, h, 0, 1);
        producer.send_frame(&desc, &pixels).unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        while timer.result.is_none() && Instant::now() < end {
            client.step(region.view(), &mut timer);
        }
        let (ingest, memcpy, damaged) = timer.result.take().expect("no frame arrived");
        let bytes = w as usize * h as usize * 4;
        println!(
            "| {w}×{h} | {:.1} MiB | {:.3} ms | {:.3} ms | {:.2}× | {:.3} ms | {:.3} ms | {:.2}× |",
            bytes as f64 / MIB as f64,
            memcpy.0 * 1e3,
            ingest.0 * 1e3,
            ingest.0 / memcpy.0,
            memcpy.1 * 1e3,
            ingest.1 * 1e3,
            ingest.1 / memcpy.1
        );
        damage_rows.extend(
            damaged
                .into_iter()
                .map(|(s, t)| (format!("{w}×{h}"), s, t, ingest.0)),
        );
        client.shutdown(region.view());
    }
    println!(
        "\n## Damage-only frames (BGRA, one rect of full rows, cold cache), median of {RUNS}\n"
    );
    println!("| frame | damaged area | ingest | share of the full-frame ingest |");
    println!("|---|---|---|---|");
    for (frame, share, t, full) in damage_rows {
        println!(
            "| {frame} | {:.0} % | {:.3} ms | {:.1} % |",
            share * 100.0,
            t * 1e3,
            t / full * 100.0
        );
    }
}

fn latency_table() {
    println!(
        "\n## Latency: producer post → frame ready in the canvas (feed thread, 60 frames/s)\n"
    );
    println!("| frames | n | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    let cases: [(&str, u32, u32, Option<Rect>); 3] = [
        ("1920×1080 full", 1920, 1080, None),
        (
            "1920×1080, 128×128 damage",
            1920,
            1080,
            Some(Rect {
                x: 300,
                y: 300,
                w: 128,
                h: 128,
            }),
        ),
        ("3840×2160 full", 3840, 2160, None),
    ];
    for (name, w, h, damage) in cases {
        let region = Arc::new(HeapRegion::new(128 * MIB));
        let producer = Producer::start(region.clone(), ProducerConfig::default()).unwrap();
        let shared = Arc::new(Shared::default());
        let feed = feed::spawn(
            Source::Region(region.clone()),
            shared.clone(),
            Arc::new(|| {}),
        )
        .unwrap();
        assert!(producer.wait_for_client(Duration::from_secs(5)));
        let (mut desc, mut pixels) = scene::test_pattern(FrameType::Bgra, w, h, 0, 2);
        let mut lat = Vec::new();
        for i in 0..240u32 {
            if let Some(r) = damage
                && i > 0
            {
                desc.damage = vec![r];
                scene::fill_rect(&mut pixels, desc.pitch, r, [i as u8, 0, 0, 255]);
            }
            let sent = producer.send_frame(&desc, &pixels).unwrap();
            let end = Instant::now() + Duration::from_secs(2);
            let ready = loop {
                let info = shared.info();
                if info.serial == Some(sent.serial)
                    && let Some(at) = info.frame_ready_at
                {
                    break Some(at);
                }
                drop(info);
                if Instant::now() > end {
                    break None;
                }
                std::hint::spin_loop();
            };
            if let Some(at) = ready
                && i >= 10
            {
                lat.push(at.duration_since(sent.posted_at).as_secs_f64());
            }
            std::thread::sleep(
                Duration::from_micros(16_667).saturating_sub(sent.posted_at.elapsed()),
            );
        }
        let n = lat.len();
        let max = lat.iter().cloned().fold(0.0, f64::max);
        println!(
            "| {name} | {n} | {:.3} ms | {:.3} ms | {:.3} ms |",
            percentile(lat.clone(), 0.5) * 1e3,
            percentile(lat, 0.99) * 1e3,
            max * 1e3
        );
        shared
            .stop
            .store(true, std::sync::atomic::Ordering::Release);
        feed.join().unwrap();
    }
}

/// utime + stime of the thread named `name` in this process, in seconds (from /proc, 10 ms resolution).
fn thread_cpu(name: &str) -> Option<f64> {
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            let rest = stat.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            return Some(ticks / 100.0);
        }
    }
    None
}

fn idle_table() {
    println!("\n## CPU of the feed thread while waiting (5 s each)\n");
    println!("| state | CPU (% of one core) |");
    println!("|---|---|");
    for connected in [false, true] {
        let region = Arc::new(HeapRegion::new(32 * MIB));
        let producer =
            connected.then(|| Producer::start(region.clone(), ProducerConfig::default()).unwrap());
        let shared = Arc::new(Shared::default());
        let feed = feed::spawn(
            Source::Region(region.clone()),
            shared.clone(),
            Arc::new(|| {}),
        )
        .unwrap();
        if let Some(p) = &producer {
            assert!(p.wait_for_client(Duration::from_secs(5)));
        }
        std::thread::sleep(Duration::from_millis(1500));
        let (c0, t0) = (thread_cpu("lg-feed").unwrap_or(0.0), Instant::now());
        std::thread::sleep(Duration::from_secs(5));
        let (c1, dt) = (
            thread_cpu("lg-feed").unwrap_or(0.0),
            t0.elapsed().as_secs_f64(),
        );
        let state = if connected {
            "connected, no new frames"
        } else {
            "waiting for the host"
        };
        println!("| {state} | {:.2} % |", (c1 - c0) / dt * 100.0);
        shared
            .stop
            .store(true, std::sync::atomic::Ordering::Release);
        feed.join().unwrap();
    }
}

fn main() {
    // `cargo test --benches` runs this binary with `--bench` absent: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("frame_ingest: run with `cargo bench --bench frame_ingest`");
        return;
    }
    ingest_table();
    latency_table();
    idle_table();
}
