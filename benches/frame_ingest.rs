//! Viewer benchmarks (measure, never assert). Run: `cargo bench --bench frame_ingest` (prints a table).
//! 1. Ingest cost: shared memory → presentable buffer for 1080p/1440p/4K BGRA, against a plain memcpy of the
//!    same bytes out of the same region, measured in the same run (median of interleaved runs).
//! 2. Damage-only frames: ingest cost against the damaged share of a 4K frame.
//! 3. Latency: producer post → frame ready in the canvas, through the real feed thread, p50/p99, plain
//!    interval polling against the adaptive pacing side by side, and the feed thread's sleep overshoot.
//! 4. CPU of the feed thread while waiting: for the host, and connected with no new frames.
// Tests, benches and the build script may write files and start programs directly (clippy.toml).
#![allow(clippy::disallowed_methods)]
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use vmgpu::lg::client::{Client, Handler, Status};
use vmgpu::lg::frame;
use vmgpu::lg::kvmfr::{CursorUpdate, FrameInfo, FrameType, Rect};
use vmgpu::lg::producer::{Producer, ProducerConfig};
use vmgpu::lg::scene;
use vmgpu::shm::{HeapRegion, Region, ShmView};
use vmgpu::viewer::convert::Canvas;
use vmgpu::viewer::feed::{self, Pacing, Shared, Source};
use vmgpu::viewer::wait::BUCKETS_US;

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

/// One latency run: `frames` frames at 60 frames/s into a fresh feed with `pacing`.
struct LatencyRun {
    /// post → frame ready in the canvas, seconds
    latency: Vec<f64>,
    /// post → the producer's own write finished (the floor for full frames: the host posts, then writes)
    write: Vec<f64>,
    /// CPU of the feed thread while frames flowed, share of one core
    cpu: f64,
    /// the feed thread's sleep overshoot
    waits: Waits,
}

/// The feed thread's sleep overshoot histogram (`BUCKETS_US`), number of sleeps and largest overshoot.
#[derive(Clone, Default)]
struct Waits {
    counts: Vec<u64>,
    n: u64,
    max: Duration,
}

impl Waits {
    fn add(&mut self, other: &Waits) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.n += other.n;
        self.max = self.max.max(other.max);
    }
}

impl LatencyRun {
    fn add(&mut self, other: LatencyRun) {
        self.latency.extend(other.latency);
        self.write.extend(other.write);
        self.cpu += other.cpu;
        self.waits.add(&other.waits);
    }
}

fn latency_run(w: u32, h: u32, damage: Option<Rect>, pacing: Pacing, frames: u32) -> LatencyRun {
    let region = Arc::new(HeapRegion::new(128 * MIB));
    let producer = Producer::start(region.clone(), ProducerConfig::default()).unwrap();
    let shared = Arc::new(Shared::default());
    // the feed signals each ready frame: this thread sleeps instead of spinning beside the feed
    let ready = Arc::new((Mutex::new(()), Condvar::new()));
    let signal = ready.clone();
    let feed = feed::spawn_with(
        Source::Region(region.clone()),
        shared.clone(),
        Arc::new(move || signal.1.notify_all()),
        pacing,
    )
    .unwrap();
    assert!(producer.wait_for_client(Duration::from_secs(5)));
    let (mut desc, mut pixels) = scene::test_pattern(FrameType::Bgra, w, h, 0, 2);
    let warm_up = 20;
    let (mut latency, mut write) = (Vec::new(), Vec::new());
    let mut cpu0 = None;
    let mut next_post = Instant::now();
    for i in 0..warm_up + frames {
        if i == warm_up {
            shared.waits.reset();
            cpu0 = Some((thread_cpu("lg-feed").unwrap_or(0.0), Instant::now()));
        }
        if let Some(r) = damage
            && i > 0
        {
            desc.damage = vec![r];
            scene::fill_rect(&mut pixels, desc.pitch, r, [i as u8, 0, 0, 255]);
        }
        let sent = producer.send_frame(&desc, &pixels).unwrap();
        let written = sent.posted_at.elapsed().as_secs_f64();
        let end = Instant::now() + Duration::from_secs(2);
        let mut guard = ready.0.lock().unwrap();
        let at = loop {
            let info = shared.info();
            if info.serial == Some(sent.serial)
                && let Some(at) = info.frame_ready_at
            {
                break Some(at);
            }
            drop(info);
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break None;
            }
            guard = ready
                .1
                .wait_timeout(guard, left.min(Duration::from_millis(5)))
                .unwrap()
                .0;
        };
        drop(guard);
        if let Some(at) = at
            && i >= warm_up
        {
            latency.push(at.duration_since(sent.posted_at).as_secs_f64());
            write.push(written);
        }
        next_post += Duration::from_micros(16_667);
        std::thread::sleep(next_post.saturating_duration_since(Instant::now()));
    }
    let (c0, t0) = cpu0.unwrap_or((0.0, Instant::now()));
    let cpu = (thread_cpu("lg-feed").unwrap_or(0.0) - c0) / t0.elapsed().as_secs_f64();
    let (n, _mean, max) = shared.waits.summary();
    let waits = Waits {
        counts: shared.waits.counts(),
        n,
        max,
    };
    shared
        .stop
        .store(true, std::sync::atomic::Ordering::Release);
    feed.join().unwrap();
    LatencyRun {
        latency,
        write,
        cpu,
        waits,
    }
}

fn latency_table() {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\n## Latency: producer post → frame ready in the canvas (feed thread, 60 frames/s), plain polling vs adaptive\n"
    );
    println!(
        "Load average at the start: {} (4 blocks of 60 frames per row, the two pacings alternating block by block).\n",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "| frames | pacing | n | p50 | p99 | max | producer write p50 | feed CPU while streaming |"
    );
    println!("|---|---|---|---|---|---|---|---|");
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
    let mut histograms: Vec<(Pacing, Waits)> = Vec::new();
    for (name, w, h, damage) in cases {
        let mut by_pacing: Vec<(Pacing, LatencyRun)> = Vec::new();
        for _block in 0..4 {
            for pacing in [Pacing::Plain, Pacing::Adaptive] {
                let run = latency_run(w, h, damage, pacing, 60);
                match by_pacing.iter_mut().find(|(p, _)| *p == pacing) {
                    Some((_, all)) => all.add(run),
                    None => by_pacing.push((pacing, run)),
                }
            }
        }
        for (pacing, run) in by_pacing {
            let n = run.latency.len();
            let max = run.latency.iter().cloned().fold(0.0, f64::max);
            println!(
                "| {name} | {pacing:?} | {n} | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {:.1} % |",
                percentile(run.latency.clone(), 0.5) * 1e3,
                percentile(run.latency, 0.99) * 1e3,
                max * 1e3,
                percentile(run.write, 0.5) * 1e3,
                run.cpu / 4.0 * 100.0
            );
            match histograms.iter_mut().find(|(p, _)| *p == pacing) {
                Some((_, h)) => h.add(&run.waits),
                None => histograms.push((pacing, run.waits)),
            }
        }
    }
    println!(
        "\n## Sleep overshoot of the feed thread during those runs (how much later than asked a sleep woke)\n"
    );
    let bounds: Vec<String> = BUCKETS_US
        .iter()
        .map(|b| format!("< {b} µs"))
        .chain([format!("≥ {} µs", BUCKETS_US[BUCKETS_US.len() - 1])])
        .collect();
    println!("| pacing | sleeps | max | {} |", bounds.join(" | "));
    println!("|---|---|---|{}", "---|".repeat(bounds.len()));
    for (pacing, Waits { counts, n, max }) in histograms {
        let cells: Vec<String> = counts
            .iter()
            .map(|c| format!("{:.1} %", *c as f64 / n.max(1) as f64 * 100.0))
            .collect();
        println!(
            "| {pacing:?} | {n} | {:.3} ms | {} |",
            max.as_secs_f64() * 1e3,
            cells.join(" | ")
        );
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
    // `cargo bench --bench frame_ingest -- latency idle` runs only those sections
    let sections: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| sections.is_empty() || sections.iter().any(|s| s == name);
    if wanted("ingest") {
        ingest_table();
    }
    if wanted("latency") {
        latency_table();
    }
    if wanted("idle") {
        idle_table();
    }
}
