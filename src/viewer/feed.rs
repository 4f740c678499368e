//! The frame feed: a thread that maps the shared memory (retrying while it is missing or too small), runs the
//! LG client and writes what it reads into state the window presents: the canvas, the cursor and the status.
//! No window code, so benchmarks and tests can drive it too.
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::convert::Canvas;
use super::cursor::CursorState;
use super::wait::{self, Next, Pacer, WaitStats};
use crate::lg::client::{Client, Handler, Status};
use crate::lg::frame;
use crate::lg::kvmfr::{CursorUpdate, FrameInfo, HostInfo, Rect, flags};
use crate::lg::layout::HEADER_SIZE;
use crate::shm::{Region, ShmMap, ShmView};

/// Poll interval while frames or cursor updates are flowing and no frame is due (near the expected next frame
/// of a steady stream the feed spins instead, see [`Pacer`]): bounds the latency of an unexpected frame.
pub const POLL_ACTIVE: Duration = Duration::from_micros(500);
/// Poll interval once nothing arrived for [`ACTIVE_WINDOW`] (a still guest desktop): keeps the idle CPU low.
pub const POLL_IDLE: Duration = Duration::from_millis(5);
/// How long after the last message the feed keeps polling at [`POLL_ACTIVE`].
pub const ACTIVE_WINDOW: Duration = Duration::from_millis(500);
/// Poll interval while waiting for the host.
pub const POLL_WAITING: Duration = Duration::from_millis(20);
/// Retry interval while the shared-memory file is missing or unusable.
pub const RETRY_OPEN: Duration = Duration::from_millis(500);
/// How long a one-off message (a bad frame) stays on screen.
pub const BANNER_TIME: Duration = Duration::from_secs(4);

/// Where the frames come from.
pub enum Source {
    /// A file or kvmfr device, opened (and reopened) by the feed.
    Path(PathBuf),
    /// A region that is already mapped (the demo, benchmarks).
    Region(Arc<dyn Region>),
}

/// What the window shows besides the pixels.
#[derive(Debug, Default, Clone)]
pub struct FeedInfo {
    /// A full-screen message (waiting for the guest, version mismatch, missing shm); `None` shows the frame.
    pub message: Option<String>,
    /// A message over the frame (truncated frames, a skipped frame) and since when.
    pub banner: Option<(String, Instant)>,
    /// Serial of the frame in the canvas.
    pub serial: Option<u32>,
    /// Frames ingested.
    pub frames: u64,
    /// Sessions started.
    pub connects: u64,
    /// Resubscriptions after the host marked us BAD.
    pub resubscribes: u64,
    /// The host, once connected.
    pub host: Option<HostInfo>,
    /// When the last frame became ready.
    pub frame_ready_at: Option<Instant>,
}

/// State shared between the feed thread and the presenter.
#[derive(Default)]
pub struct Shared {
    /// The latest frame.
    pub canvas: Mutex<Canvas>,
    /// The cursor.
    pub cursor: Mutex<CursorState>,
    /// Status and counters.
    pub info: Mutex<FeedInfo>,
    /// Asks the feed to stop.
    pub stop: AtomicBool,
    /// How late the feed thread's sleeps woke up (the benchmark prints it).
    pub waits: WaitStats,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// The status and counters.
    pub fn info(&self) -> MutexGuard<'_, FeedInfo> {
        lock(&self.info)
    }
    /// The canvas.
    pub fn canvas(&self) -> MutexGuard<'_, Canvas> {
        lock(&self.canvas)
    }
    /// The cursor.
    pub fn cursor(&self) -> MutexGuard<'_, CursorState> {
        lock(&self.cursor)
    }
}

/// Called after each change the window should show.
pub type Notify = Arc<dyn Fn() + Send + Sync>;

struct FeedHandler {
    shared: Arc<Shared>,
    notify: Notify,
    last_said: String,
    /// When the last frame was ingested (the pacer learns the frame rate from it).
    last_frame_at: Option<Instant>,
}

impl FeedHandler {
    fn say(&mut self, text: &str) {
        if self.last_said != text {
            eprintln!("vmgpu view: {text}");
            self.last_said = text.to_string();
        }
    }
}

impl Handler for FeedHandler {
    fn status(&mut self, status: Status) {
        let text = match &status {
            Status::Connected(h) => format!(
                "connected to Looking Glass host {} ({}, {})",
                h.hostver, h.capture, h.os_name
            ),
            Status::Waiting(t) => t.clone(),
            Status::Incompatible(t) => format!("cannot show this guest: {t}"),
        };
        self.say(&text);
        let mut info = self.shared.info();
        match status {
            Status::Connected(h) => {
                info.connects += 1;
                info.message = Some(format!(
                    "connected to {}; waiting for the first frame",
                    h.hostver
                ));
                info.host = Some(h);
                info.serial = None;
            }
            Status::Waiting(_) | Status::Incompatible(_) => {
                info.message = Some(text);
                info.host = None;
            }
        }
        drop(info);
        (self.notify)();
    }

    fn frame(
        &mut self,
        view: ShmView<'_>,
        fi: &FrameInfo,
        rects: Option<&[Rect]>,
    ) -> frame::Result<()> {
        self.shared.canvas().ingest(view, fi, rects)?;
        let mut info = self.shared.info();
        info.message = None;
        info.serial = Some(fi.serial);
        info.frames += 1;
        let now = Instant::now();
        info.frame_ready_at = Some(now);
        self.last_frame_at = Some(now);
        let truncated = fi.flags & flags::TRUNCATED != 0;
        drop(info);
        if truncated {
            let text = format!(
                "the shared memory is too small for {}x{}: only {} rows arrive; give the VM {} MiB of IVSHMEM",
                fi.width,
                fi.height,
                fi.data_height,
                fi.needed_mib()
            );
            self.say(&text);
            self.shared.info().banner = Some((text, Instant::now()));
        }
        (self.notify)();
        Ok(())
    }

    fn bad_frame(&mut self, why: String) {
        self.say(&why);
        self.shared.info().banner = Some((why, Instant::now()));
        (self.notify)();
    }

    fn cursor(&mut self, update: CursorUpdate) {
        self.shared.cursor().apply(update);
        (self.notify)();
    }
}

/// How the feed waits for the next frame while frames flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// Learns the frame interval and spins near the expected next frame ([`Pacer`]); the default.
    Adaptive,
    /// Polls every [`POLL_ACTIVE`] (the benchmark's baseline).
    Plain,
}

/// Starts the feed thread.
pub fn spawn(
    source: Source,
    shared: Arc<Shared>,
    notify: Notify,
) -> std::io::Result<JoinHandle<()>> {
    spawn_with(source, shared, notify, Pacing::Adaptive)
}

/// Starts the feed thread with the given pacing.
pub fn spawn_with(
    source: Source,
    shared: Arc<Shared>,
    notify: Notify,
    pacing: Pacing,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("lg-feed".into())
        .spawn(move || run(source, shared, notify, pacing))
}

fn run(source: Source, shared: Arc<Shared>, notify: Notify, pacing: Pacing) {
    let mut handler = FeedHandler {
        shared: Arc::clone(&shared),
        notify,
        last_said: String::new(),
        last_frame_at: None,
    };
    wait::tighten_timer_slack();
    while !shared.stop.load(Ordering::Acquire) {
        let region: Arc<dyn Region> = match &source {
            Source::Region(r) => Arc::clone(r),
            Source::Path(p) => match ShmMap::open(p, HEADER_SIZE as u64) {
                Ok(m) => Arc::new(m),
                Err(e) => {
                    let text = error_chain(&e);
                    handler.status(Status::Waiting(format!("{text}; waiting")));
                    std::thread::sleep(RETRY_OPEN);
                    continue;
                }
            },
        };
        pump(region.view(), &shared, &mut handler, pacing);
    }
}

fn pump(view: ShmView<'_>, shared: &Shared, handler: &mut FeedHandler, pacing: Pacing) {
    let Ok(mut client) = Client::new(view) else {
        return;
    };
    let mut last_activity = Instant::now();
    let mut resubscribes = 0;
    let mut pacer = Pacer::default();
    let mut last_frame = handler.last_frame_at;
    while !shared.stop.load(Ordering::Acquire) {
        let busy = client.step(view, handler);
        if client.resubscribes != resubscribes {
            resubscribes = client.resubscribes;
            shared.info().resubscribes = resubscribes;
        }
        if handler.last_frame_at != last_frame {
            last_frame = handler.last_frame_at;
            if let Some(at) = last_frame {
                pacer.frame_arrived(at);
            }
        }
        if busy {
            last_activity = Instant::now();
            continue;
        }
        let now = Instant::now();
        let next = if !client.connected() {
            Next::SleepUntil(now + POLL_WAITING)
        } else if now.duration_since(last_activity) < ACTIVE_WINDOW {
            match pacing {
                Pacing::Adaptive => pacer.next(now, POLL_ACTIVE),
                Pacing::Plain => Next::SleepUntil(now + POLL_ACTIVE),
            }
        } else {
            Next::SleepUntil(now + POLL_IDLE)
        };
        match next {
            Next::Spin => std::thread::yield_now(),
            Next::SleepUntil(at) => wait::sleep_until(at, &shared.waits),
        }
    }
    client.shutdown(view);
}

/// `error: cause: cause` on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
