//! The Looking Glass protocol end to end in one process: the producer (host side) and the client over a heap
//! region and a real /dev/shm-style file, including slow clients, host restarts and bad regions.
use std::sync::Arc;
use std::time::{Duration, Instant};

use vmgpu::lg::client::{Client, Handler, Status};
use vmgpu::lg::frame;
use vmgpu::lg::kvmfr::{CursorType, CursorUpdate, FrameInfo, FrameType, Rect};
use vmgpu::lg::layout;
use vmgpu::lg::producer::{CursorSend, FrameDesc, Producer, ProducerConfig, Sent};
use vmgpu::lg::scene;
use vmgpu::shm::{HeapRegion, Region, ShmMap, ShmView};
use vmgpu::viewer::convert::Canvas;

pub const MIB: usize = 1 << 20;

/// Records what the client reports.
#[derive(Default)]
pub struct Recorder {
    pub canvas: Canvas,
    pub statuses: Vec<Status>,
    pub frames: Vec<(u32, bool)>,
    pub cursors: Vec<CursorUpdate>,
    pub bad: Vec<String>,
}

impl Handler for Recorder {
    fn status(&mut self, status: Status) {
        self.statuses.push(status);
    }
    fn frame(
        &mut self,
        view: ShmView<'_>,
        info: &FrameInfo,
        rects: Option<&[Rect]>,
    ) -> frame::Result<()> {
        self.canvas.ingest(view, info, rects)?;
        self.frames.push((info.serial, rects.is_some()));
        Ok(())
    }
    fn bad_frame(&mut self, why: String) {
        self.bad.push(why);
    }
    fn cursor(&mut self, update: CursorUpdate) {
        self.cursors.push(update);
    }
}

/// Steps the client until `done` or the timeout; returns whether `done` became true.
pub fn pump(
    client: &mut Client,
    view: ShmView<'_>,
    rec: &mut Recorder,
    timeout: Duration,
    done: impl Fn(&Recorder) -> bool,
) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if done(rec) {
            return true;
        }
        if !client.step(view, rec) {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    done(rec)
}

/// Sends a frame and steps the client until it has ingested it; returns what the producer said.
pub fn send_and_see(
    producer: &Producer,
    client: &mut Client,
    view: ShmView<'_>,
    rec: &mut Recorder,
    frame: (&FrameDesc, &[u8]),
) -> Sent {
    let sent = producer.send_frame(frame.0, frame.1).unwrap();
    let seen = pump(client, view, rec, Duration::from_secs(10), |r| {
        r.frames.iter().any(|f| f.0 == sent.serial)
    });
    assert!(seen, "frame {} never arrived: {:?}", sent.serial, rec.bad);
    sent
}

/// Polls `done` every 10 ms until it holds or the timeout passes; returns its last value.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while !done() {
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Steps a fresh client until it reports its first status.
fn first_status(client: &mut Client, region: &HeapRegion, ms: u64) -> Recorder {
    let mut rec = Recorder::default();
    pump(
        client,
        region.view(),
        &mut rec,
        Duration::from_millis(ms),
        |r| !r.statuses.is_empty(),
    );
    rec
}

fn connected(rec: &Recorder) -> bool {
    matches!(rec.statuses.last(), Some(Status::Connected(_)))
}

fn start(size: usize) -> (Arc<HeapRegion>, Producer) {
    let region = Arc::new(HeapRegion::new(size));
    let producer = Producer::start(region.clone(), ProducerConfig::default()).unwrap();
    (region, producer)
}

/// The reference conversion of a test-pattern pixel, computed from the pattern's definition.
pub fn expected_pixel(kind: FrameType, x: u32, y: u32, seed: u32) -> u32 {
    let px = scene::pattern_pixel(kind, x, y, seed);
    let (r, g, b) = match kind {
        FrameType::Bgra => return u32::from_le_bytes([px[0], px[1], px[2], px[3]]),
        FrameType::Rgba => (px[0], px[1], px[2]),
        FrameType::Rgba10 => {
            let v = u32::from_le_bytes([px[0], px[1], px[2], px[3]]);
            let c = |s: u32| ((((v >> s) & 1023) as f64 / 1023.0 * 255.0).round()) as u8;
            (c(0), c(10), c(20))
        }
        FrameType::Rgba16f => {
            let c = |i: usize| {
                vmgpu::viewer::convert::tone_map(vmgpu::viewer::convert::f16_to_f32(
                    u16::from_le_bytes([px[2 * i], px[2 * i + 1]]),
                ))
            };
            (c(0), c(1), c(2))
        }
    };
    0xFF00_0000 | (r as u32) << 16 | (g as u32) << 8 | b as u32
}

fn connect(region: &HeapRegion, producer: &Producer) -> (Client, Recorder) {
    let view = region.view();
    let mut client = Client::new(view).unwrap();
    let mut rec = Recorder::default();
    assert!(
        pump(
            &mut client,
            view,
            &mut rec,
            Duration::from_secs(10),
            connected
        ),
        "{:?}",
        rec.statuses
    );
    assert!(producer.wait_for_client(Duration::from_secs(10)));
    (client, rec)
}

#[test]
fn test_every_frame_format_arrives_pixel_exact() {
    let (region, producer) = start(32 * MIB);
    let (mut client, mut rec) = connect(&region, &producer);
    for (seed, kind) in [
        FrameType::Bgra,
        FrameType::Rgba,
        FrameType::Rgba10,
        FrameType::Rgba16f,
    ]
    .into_iter()
    .enumerate()
    {
        let (desc, pixels) = scene::test_pattern(kind, 320, 200, 64, seed as u32);
        send_and_see(
            &producer,
            &mut client,
            region.view(),
            &mut rec,
            (&desc, &pixels),
        );
        for (x, y) in [(0, 0), (319, 0), (17, 113), (319, 199)] {
            assert_eq!(
                rec.canvas.pixel(x, y),
                Some(expected_pixel(kind, x, y, seed as u32)),
                "{kind:?} at {x},{y}"
            );
        }
    }
}

#[test]
fn test_damage_only_frame_copies_only_the_rects() {
    let (region, producer) = start(32 * MIB);
    let (mut client, mut rec) = connect(&region, &producer);
    let (desc, pixels) = scene::test_pattern(FrameType::Bgra, 256, 128, 0, 1);
    // Damage rects are relative to the previous frame: the client must have taken the first one before the
    // second is posted, or it rightly falls back to a full copy (seen on a loaded CI machine).
    send_and_see(
        &producer,
        &mut client,
        region.view(),
        &mut rec,
        (&desc, &pixels),
    );
    let (mut desc2, mut garbage) = scene::test_pattern(FrameType::Bgra, 256, 128, 0, 9);
    let rect = Rect {
        x: 10,
        y: 20,
        w: 30,
        h: 40,
    };
    scene::fill_rect(&mut garbage, desc2.pitch, rect, [1, 2, 3, 255]);
    desc2.damage = vec![rect];
    let sent = send_and_see(
        &producer,
        &mut client,
        region.view(),
        &mut rec,
        (&desc2, &garbage),
    );
    assert_eq!(rec.frames.last(), Some(&(sent.serial, true)));
    assert_eq!(rec.canvas.pixel(15, 25), Some(0xFF03_0201));
    assert_eq!(
        rec.canvas.pixel(100, 100),
        Some(expected_pixel(FrameType::Bgra, 100, 100, 1))
    );
}

#[test]
fn test_cursor_shape_and_position_arrive() {
    let (region, producer) = start(32 * MIB);
    let (mut client, mut rec) = connect(&region, &producer);
    let shape = scene::arrow_cursor();
    producer
        .send_cursor(&CursorSend {
            position: Some((-5, 7)),
            visible: true,
            shape: Some(shape.clone()),
        })
        .unwrap();
    assert!(pump(
        &mut client,
        region.view(),
        &mut rec,
        Duration::from_secs(10),
        |r| r
            .cursors
            .iter()
            .any(|c| c.shape.is_some() && c.position == Some((-5, 7)))
    ));
    let got = rec
        .cursors
        .iter()
        .rev()
        .find_map(|c| c.shape.clone())
        .unwrap();
    assert_eq!(
        (got.kind, got.width, got.data),
        (CursorType::Color, shape.width, shape.data)
    );
}

#[test]
fn test_stalled_client_marked_bad_resubscribes_and_recovers() {
    let (region, producer) = start(32 * MIB);
    let (mut client, mut rec) = connect(&region, &producer);
    let (desc, pixels) = scene::test_pattern(FrameType::Bgra, 64, 64, 0, 2);
    producer.send_frame(&desc, &pixels).unwrap();
    // The host marks it BAD once the frame is pending for more than 1 s (longer on a loaded machine).
    let marked = wait_until(Duration::from_secs(10), || {
        producer.subscribers().0 as u32 != 0
    });
    assert!(marked, "the stalled client was not marked BAD");
    let resub = client.resubscribes;
    pump(
        &mut client,
        region.view(),
        &mut rec,
        Duration::from_millis(300),
        |_| false,
    );
    send_and_see(
        &producer,
        &mut client,
        region.view(),
        &mut rec,
        (&desc, &pixels),
    );
    assert!(client.resubscribes > resub);
}

#[test]
fn test_producer_restart_gives_new_session_and_client_reconnects() {
    let (region, producer) = start(32 * MIB);
    let (mut client, mut rec) = connect(&region, &producer);
    let old = producer.session_id();
    drop(producer);
    let producer = Producer::start(region.clone(), ProducerConfig::default()).unwrap();
    assert_ne!(producer.session_id(), old);
    rec.statuses.clear();
    assert!(pump(
        &mut client,
        region.view(),
        &mut rec,
        Duration::from_secs(10),
        connected
    ));
    assert!(matches!(rec.statuses.first(), Some(Status::Waiting(_))));
    let (desc, pixels) = scene::test_pattern(FrameType::Bgra, 64, 64, 0, 3);
    send_and_see(
        &producer,
        &mut client,
        region.view(),
        &mut rec,
        (&desc, &pixels),
    );
}

#[test]
fn test_stopped_heartbeat_turns_into_waiting() {
    let (region, producer) = start(32 * MIB);
    let (mut client, mut rec) = connect(&region, &producer);
    producer.set_heartbeat(false);
    assert!(pump(
        &mut client,
        region.view(),
        &mut rec,
        Duration::from_secs(10),
        |r| matches!(r.statuses.last(), Some(Status::Waiting(_)))
    ));
}

#[test]
fn test_new_subscriber_gets_the_last_frame_reposted() {
    let (region, producer) = start(32 * MIB);
    let (_first, _rec) = connect(&region, &producer);
    let (desc, pixels) = scene::test_pattern(FrameType::Bgra, 64, 64, 0, 4);
    let sent = producer.send_frame(&desc, &pixels).unwrap();
    let view = region.view();
    let mut late = Client::new(view).unwrap();
    let mut rec = Recorder::default();
    assert!(pump(
        &mut late,
        view,
        &mut rec,
        Duration::from_secs(10),
        |r| r.frames.iter().any(|f| f.0 == sent.serial)
    ));
}

#[test]
fn test_set_cursor_pos_reaches_the_host() {
    let (region, producer) = start(32 * MIB);
    let (client, _rec) = connect(&region, &producer);
    let serial = client.set_cursor_pos(region.view(), 100, -3).unwrap();
    let mut got = Vec::new();
    wait_until(Duration::from_secs(10), || {
        got.extend(producer.take_received());
        !got.is_empty()
    });
    assert_eq!(serial, 1);
    assert_eq!(
        got,
        vec![
            [
                0u32.to_le_bytes(),
                100i32.to_le_bytes(),
                (-3i32).to_le_bytes()
            ]
            .concat()
        ]
    );
}

#[test]
fn test_layout_follows_the_b7_allocation_order() {
    let (region, _producer) = start(32 * MIB);
    let view = region.view();
    let udata = view.read_u32(layout::OFF_UDATA_SIZE).unwrap() as usize;
    let frame_ring = view
        .read_u32(layout::queue_base(0) + layout::Q_MESSAGES_OFFSET)
        .unwrap() as usize;
    let pointer_ring = view
        .read_u32(layout::queue_base(1) + layout::Q_MESSAGES_OFFSET)
        .unwrap() as usize;
    assert_eq!(view.read_u32(layout::queue_base(0)).unwrap(), 2);
    assert_eq!(frame_ring, layout::align4(5760 + udata));
    assert_eq!(pointer_ring, frame_ring + 48);
}

#[test]
fn test_truncated_frame_is_flagged_and_shown_partially() {
    let (region, producer) = start(4 * MIB);
    let (mut client, mut rec) = connect(&region, &producer);
    let (desc, pixels) = scene::test_pattern(FrameType::Bgra, 1024, 768, 0, 5);
    send_and_see(
        &producer,
        &mut client,
        region.view(),
        &mut rec,
        (&desc, &pixels),
    );
    assert_eq!(rec.canvas.height, 768);
    assert_eq!(
        rec.canvas.pixel(3, 3),
        Some(expected_pixel(FrameType::Bgra, 3, 3, 5))
    );
}

#[test]
fn test_shm_file_roundtrip_through_a_real_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lg");
    let map = Arc::new(ShmMap::create(&path, 8 * MIB as u64).unwrap());
    let producer = Producer::start(map.clone(), ProducerConfig::default()).unwrap();
    let reader = ShmMap::open(&path, layout::HEADER_SIZE as u64).unwrap();
    let view = reader.view();
    let mut client = Client::new(view).unwrap();
    let mut rec = Recorder::default();
    assert!(pump(
        &mut client,
        view,
        &mut rec,
        Duration::from_secs(10),
        connected
    ));
    producer.wait_for_client(Duration::from_secs(10));
    let (desc, pixels) = scene::test_pattern(FrameType::Bgra, 100, 50, 0, 6);
    send_and_see(&producer, &mut client, view, &mut rec, (&desc, &pixels));
}

#[test]
fn test_region_without_lgmp_magic_says_not_looking_glass() {
    let region = HeapRegion::new(MIB);
    region.view().write_bytes(0, b"ELF\x7fjunk").unwrap();
    region.view().write_bytes(16, &1u64.to_le_bytes()).unwrap();
    let mut client = Client::new(region.view()).unwrap();
    let rec = first_status(&mut client, &region, 5000);
    assert!(
        matches!(rec.statuses.last(), Some(Status::Waiting(t)) if t.contains("not a Looking Glass region")),
        "{:?}",
        rec.statuses
    );
}

#[test]
fn test_wrong_lgmp_version_is_incompatible() {
    let (region, producer) = start(32 * MIB);
    drop(producer);
    region.view().write_u32(layout::OFF_VERSION, 10).unwrap();
    let mut client = Client::new(region.view()).unwrap();
    region
        .view()
        .write_bytes(layout::OFF_TIMESTAMP, &12345u64.to_le_bytes())
        .unwrap();
    let rec = first_status(&mut client, &region, 5000);
    assert!(
        matches!(rec.statuses.last(), Some(Status::Incompatible(t)) if t.contains("LGMP version 10")),
        "{:?}",
        rec.statuses
    );
}

#[test]
fn test_wrong_kvmfr_version_is_incompatible() {
    let region = Arc::new(HeapRegion::new(32 * MIB));
    let producer = Producer::start(region.clone(), ProducerConfig::default()).unwrap();
    region.view().write_u32(layout::OFF_UDATA + 8, 34).unwrap();
    let mut client = Client::new(region.view()).unwrap();
    let rec = first_status(&mut client, &region, 5000);
    drop(producer);
    assert!(
        matches!(rec.statuses.last(), Some(Status::Incompatible(t)) if t.contains("KVMFR version 34")),
        "{:?}",
        rec.statuses
    );
}
