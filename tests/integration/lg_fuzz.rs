//! Property tests ("fuzzing") of the client against hostile regions: arbitrary bytes, field mutations of a
//! valid B7 layout, and a second thread scribbling over the region while the client reads. The invariant: no
//! panic, no read outside the region (the checked view would return an error, and Miri-style UB is excluded
//! by construction), and every step returns. `PROPTEST_CASES=N` runs more cases (tests/fuzz-lg.sh).
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::lg::{MIB, Recorder, pump};
use vmgpu::lg::client::{Client, Status};
use vmgpu::lg::kvmfr::FrameType;
use vmgpu::lg::layout;
use vmgpu::lg::producer::{Producer, ProducerConfig};
use vmgpu::lg::scene;
use vmgpu::shm::{HeapRegion, Region};

/// Offsets worth hitting: the LGMP header and queues, the udata, the rings and the cursor/frame headers.
fn hot_offset(pick: u32, region_len: usize) -> usize {
    let hot = [
        (0usize, 6500usize),
        (3_150_000, 3_200_000),
        (3_140_000, 3_160_000),
    ];
    let (start, end) = hot[pick as usize % hot.len()];
    (start + (pick as usize / 3) % (end - start)).min(region_len - 8)
}

fn step_a_while(client: &mut Client, region: &HeapRegion, rec: &mut Recorder, steps: u32) {
    for _ in 0..steps {
        client.step(region.view(), rec);
    }
}

/// A region with a live producer, a connected client and one frame and cursor in flight.
fn live_setup() -> (Arc<HeapRegion>, Producer, Client, Recorder) {
    let region = Arc::new(HeapRegion::new(8 * MIB));
    let producer = Producer::start(region.clone(), ProducerConfig::default()).unwrap();
    let mut client = Client::new(region.view()).unwrap();
    let mut rec = Recorder::default();
    pump(
        &mut client,
        region.view(),
        &mut rec,
        Duration::from_secs(2),
        |r| matches!(r.statuses.last(), Some(Status::Connected(_))),
    );
    producer.wait_for_client(Duration::from_secs(1));
    let (desc, pixels) = scene::test_pattern(FrameType::Bgra, 64, 32, 0, 1);
    let _ = producer.send_frame(&desc, &pixels);
    (region, producer, client, rec)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn test_arbitrary_region_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 5760..12000), lgmp in any::<bool>()) {
        let region = HeapRegion::new(bytes.len());
        region.view().write_bytes(0, &bytes).unwrap();
        let mut client = Client::new(region.view()).unwrap();
        if lgmp {
            region.view().write_u32(0, layout::MAGIC).unwrap();
            region.view().write_u32(4, layout::VERSION_B7).unwrap();
        }
        region.view().write_bytes(16, &(u64::from_le_bytes(bytes[16..24].try_into().unwrap()) ^ 1).to_le_bytes()).unwrap();
        let mut rec = Recorder::default();
        std::thread::sleep(Duration::from_millis(1));
        // Force an immediate session attempt by stepping past the initial 200 ms wait.
        let end = Instant::now() + Duration::from_millis(230);
        while Instant::now() < end {
            client.step(region.view(), &mut rec);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn test_field_mutations_of_a_live_region_never_panic(mutations in proptest::collection::vec((any::<u32>(), any::<u32>()), 1..40)) {
        let (region, producer, mut client, mut rec) = live_setup();
        for (pick, value) in &mutations {
            let off = hot_offset(*pick, region.view().len());
            region.view().write_u32(off & !3, *value).unwrap();
        }
        step_a_while(&mut client, &region, &mut rec, 50);
        let (desc, pixels) = scene::test_pattern(FrameType::Rgba16f, 32, 16, 0, 2);
        let _ = producer.send_frame(&desc, &pixels);
        step_a_while(&mut client, &region, &mut rec, 50);
    }
}

#[test]
fn test_concurrent_scribbler_never_panics_the_client() {
    let (region, producer, mut client, mut rec) = live_setup();
    let stop = Arc::new(AtomicBool::new(false));
    let scribbler = {
        let (region, stop) = (region.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut x: u32 = 0x1234_5678;
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let off = hot_offset(x, region.view().len()) & !3;
                let _ = region.view().write_u32(off, x.rotate_left(7));
            }
        })
    };
    let end = Instant::now() + Duration::from_millis(1500);
    let (desc, pixels) = scene::test_pattern(FrameType::Bgra, 64, 32, 0, 3);
    while Instant::now() < end {
        client.step(region.view(), &mut rec);
        let _ = producer.pending_frames();
    }
    let _ = producer.send_frame(&desc, &pixels);
    stop.store(true, Ordering::Relaxed);
    scribbler.join().unwrap();
}
