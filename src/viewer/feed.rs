//! The frame feed: a thread that maps the shared memory (retrying while it is missing or too small), runs the
//! LG client and writes what it reads into state the window presents: the canvas, the cursor and the status.
//! No window code, so benchmarks and tests can drive it too.
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::convert::Canvas;
use super::cursor::CursorState;
use crate::lg::client::{Client, Handler, Status};
use crate::lg::frame;
use crate::lg::kvmfr::{CursorUpdate, FrameInfo, HostInfo, Rect, flags};
use crate::lg::layout::HEADER_SIZE;
use crate::shm::{Region, ShmMap, ShmView};

/// Poll interval while frames or cursor updates are flowing: bounds the post → frame-ready latency (about this
/// plus the copy).
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
    /// The SPICE display, shown while no Looking Glass frames flow (set once the SPICE session starts).
    pub spice_screen: OnceLock<Arc<Mutex<crate::spice::screen::Screen>>>,
    /// The guest cursor from the SPICE cursor channel, drawn over the SPICE display.
    pub spice_cursor: OnceLock<Arc<Mutex<crate::spice::cursor::Cursors>>>,
    /// The VM's name, for the hints the window shows.
    pub vm_name: OnceLock<String>,
    /// Set when the connected SPICE server offers no display channel (the domain has no virtual display).
    pub spice_no_display: AtomicBool,
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

    /// True while Looking Glass frames are shown: the host is connected and a frame arrived.
    pub fn lg_live(&self) -> bool {
        let info = self.info();
        info.message.is_none() && info.serial.is_some()
    }

    /// What the window shows now and its size in pixels (0×0 for the message screen).
    pub fn shown(&self) -> (Shown, (u32, u32)) {
        if self.lg_live() {
            let c = self.canvas();
            return (Shown::LookingGlass, (c.width, c.height));
        }
        if let Some(screen) = self.spice_screen.get() {
            let screen = screen.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(p) = screen.primary() {
                return (Shown::Spice, (p.width, p.height));
            }
        }
        (Shown::Message, (0, 0))
    }
}

/// Which source the window shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shown {
    /// The waiting / error screen.
    #[default]
    Message,
    /// Looking Glass frames.
    LookingGlass,
    /// The SPICE display (the VM's virtual display).
    Spice,
}

impl Shown {
    /// The word for the title and the test line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Message => "none",
            Self::LookingGlass => "looking-glass",
            Self::Spice => "spice",
        }
    }
}

/// Called after each change the window should show.
pub type Notify = Arc<dyn Fn() + Send + Sync>;

struct FeedHandler {
    shared: Arc<Shared>,
    notify: Notify,
    last_said: String,
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
        info.frame_ready_at = Some(Instant::now());
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

/// Starts the feed thread.
pub fn spawn(
    source: Source,
    shared: Arc<Shared>,
    notify: Notify,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("lg-feed".into())
        .spawn(move || run(source, shared, notify))
}

fn run(source: Source, shared: Arc<Shared>, notify: Notify) {
    let mut handler = FeedHandler {
        shared: Arc::clone(&shared),
        notify,
        last_said: String::new(),
    };
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
        pump(region.view(), &shared, &mut handler);
    }
}

fn pump(view: ShmView<'_>, shared: &Shared, handler: &mut FeedHandler) {
    let Ok(mut client) = Client::new(view) else {
        return;
    };
    let mut last_activity = Instant::now();
    let mut resubscribes = 0;
    while !shared.stop.load(Ordering::Acquire) {
        let busy = client.step(view, handler);
        if client.resubscribes != resubscribes {
            resubscribes = client.resubscribes;
            shared.info().resubscribes = resubscribes;
        }
        if busy {
            last_activity = Instant::now();
            continue;
        }
        let interval = if !client.connected() {
            POLL_WAITING
        } else if last_activity.elapsed() < ACTIVE_WINDOW {
            POLL_ACTIVE
        } else {
            POLL_IDLE
        };
        std::thread::sleep(interval);
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
