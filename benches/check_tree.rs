//! Benchmark (measures, never asserts): `Host::read` plus every check on a tree with ≥ 100 PCI functions
//! (`tests/fixtures/hosts/bench-many-devices`, 152 functions), the work one `vmgpu check` does.
//!
//!     cargo bench --no-default-features --bench check_tree
//!
//! Prints the minimum, median and maximum of 200 runs after 20 warm-up runs (page cache warm).
// Tests, benches and the build script may write files and start programs directly (clippy.toml).
#![allow(clippy::disallowed_methods)]
use std::path::Path;
use std::time::{Duration, Instant};

use vmgpu::check::{Context, Report};
use vmgpu::host::{Host, HostRoot};

fn once(root: &HostRoot) -> (usize, usize) {
    let host = Host::read(root).expect("the bench tree reads");
    let ctx = Context::new(&host, None);
    let report = Report::build(&ctx);
    (host.pci.len(), report.findings.len())
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hosts/bench-many-devices");
    let root = HostRoot::new(&dir);
    // `cargo test --all-targets` runs this without `--bench`: one smoke run, no measuring.
    if !std::env::args().any(|a| a == "--bench") {
        let (devices, findings) = once(&root);
        println!("check_tree smoke run: {devices} PCI functions, {findings} findings");
        return;
    }
    for _ in 0..20 {
        once(&root);
    }
    let mut times: Vec<Duration> = Vec::new();
    let mut sizes = (0, 0);
    for _ in 0..200 {
        let t = Instant::now();
        sizes = once(&root);
        times.push(t.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "check_tree: {} PCI functions, {} findings: min {:.2} ms, median {:.2} ms, max {:.2} ms (200 runs)",
        sizes.0,
        sizes.1,
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
}
