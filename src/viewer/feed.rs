//! The frame feed: a thread that maps the shared memory (retrying while it is missing or too small), runs the
//! LG client and writes what it reads into state the window presents: the canvas, the cursor and the status.
//! No window code, so benchmarks and tests can drive it too.
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::convert::Canvas;
use super::handoff::Handoff;
#[cfg(feature = "viewer")]
use super::handoff::Job;
use super::wait::{self, Pacer, WaitStats};
use crate::lg::client::{Client, Handler, Status};
use crate::lg::frame;
use crate::lg::kvmfr::CursorState;
use crate::lg::kvmfr::{CursorUpdate, FrameInfo, FrameType, HostInfo, Rect, flags};
use crate::lg::layout::HEADER_SIZE;
use crate::shm::{self, Region, ShmMap, ShmView};

/// Poll interval while frames or cursor updates are flowing and no frame is due (near the expected next frame
/// of a steady stream the feed polls every [`wait::FINE`], see [`Pacer`]): bounds an unexpected frame's latency.
pub(crate) const POLL_ACTIVE: Duration = Duration::from_micros(500);
/// Poll interval once nothing arrived for [`ACTIVE_WINDOW`] (a still guest desktop): keeps the idle CPU low.
pub(crate) const POLL_IDLE: Duration = Duration::from_millis(5);
/// How long after the last message the feed keeps polling at [`POLL_ACTIVE`].
pub(crate) const ACTIVE_WINDOW: Duration = Duration::from_millis(500);
/// Poll interval while waiting for the host.
pub(crate) const POLL_WAITING: Duration = Duration::from_millis(20);
/// Retry interval while the shared-memory file is missing or unusable (an `open` call: cheap, and a restarted
/// VM's new file is picked up within this).
pub(crate) const RETRY_OPEN: Duration = Duration::from_millis(100);
/// How often the feed checks that the path still names the file it mapped (two `stat` calls).
pub(crate) const RECHECK_FILE: Duration = Duration::from_millis(100);
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
    /// A message over the frame (truncated frames, a skipped frame).
    pub banner: Option<Banner>,
    /// The text of the last banner the user dismissed: that condition is not shown again.
    pub dismissed: Option<String>,
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

/// A message over the top of the frame.
#[derive(Debug, Clone)]
pub struct Banner {
    /// What it says.
    pub text: String,
    /// Since when.
    pub since: Instant,
    /// Stays until the user dismisses it (else it goes after [`BANNER_TIME`]).
    pub sticky: bool,
}

impl Banner {
    /// Whether it is still shown at `now`.
    #[cfg(feature = "viewer")]
    pub(crate) fn visible(&self, now: Instant) -> bool {
        self.sticky || now.duration_since(self.since) < BANNER_TIME
    }
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
    /// Set when the connected SPICE server offers no display channel (the domain has no virtual display).
    pub spice_no_display: AtomicBool,
    /// Set by a second `vmgpu view` for the same VM: the window should come to the front.
    pub raise: AtomicBool,
    /// The VM's name, for the fixes the viewer suggests (set before [`spawn`]).
    pub vm: std::sync::OnceLock<String>,
    /// How late the feed thread's sleeps woke up (the benchmark prints it).
    pub waits: WaitStats,
    /// Frames handed to the window to copy straight into its buffer.
    pub handoff: Handoff,
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
    pub(crate) fn canvas(&self) -> MutexGuard<'_, Canvas> {
        lock(&self.canvas)
    }
    /// The cursor.
    pub(crate) fn cursor(&self) -> MutexGuard<'_, CursorState> {
        lock(&self.cursor)
    }

    /// Hides the banner; a sticky one's condition is not shown again. Returns whether one was shown.
    #[cfg(feature = "viewer")]
    pub(crate) fn dismiss_banner(&self) -> bool {
        let mut info = self.info();
        match info.banner.take() {
            Some(b) if b.visible(Instant::now()) => {
                if b.sticky {
                    info.dismissed = Some(b.text);
                }
                true
            }
            _ => false,
        }
    }

    /// True while Looking Glass frames are shown: the host is connected and a frame arrived.
    #[cfg(feature = "viewer")]
    pub(crate) fn lg_live(&self) -> bool {
        let info = self.info();
        info.message.is_none() && info.serial.is_some()
    }

    /// What the window shows now and its size in pixels (0×0 for the message screen).
    #[cfg(feature = "viewer")]
    pub(crate) fn shown(&self) -> (Shown, (u32, u32)) {
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
#[cfg(feature = "viewer")]
pub(crate) enum Shown {
    /// The waiting / error screen.
    #[default]
    Message,
    /// Looking Glass frames.
    LookingGlass,
    /// The SPICE display (the VM's virtual display).
    Spice,
}

#[cfg(feature = "viewer")]
impl Shown {
    /// The word for the title and the test line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Message => "none",
            Self::LookingGlass => "looking-glass",
            Self::Spice => "spice",
        }
    }
}

/// Called after each change the window should show.
pub(crate) type Notify = Arc<dyn Fn() + Send + Sync>;

struct FeedHandler {
    shared: Arc<Shared>,
    notify: Notify,
    last_said: String,
    /// When the last frame was ingested (the pacer learns the frame rate from it).
    last_frame_at: Option<Instant>,
    /// The mapping being read, for frames handed to the window.
    #[cfg(feature = "viewer")]
    region: Option<Arc<dyn Region>>,
}

impl FeedHandler {
    /// Offers the frame to the window ([`super::handoff`]): `Some` with the result when the window copied it,
    /// `None` when the feed ingests it itself.
    #[cfg(feature = "viewer")]
    fn offer_to_window(
        &self,
        fi: &FrameInfo,
        rects: Option<&[Rect]>,
    ) -> Option<frame::Result<u64>> {
        match &self.region {
            Some(region) if self.shared.handoff.wants(fi) => {
                let job = Job {
                    info: fi.clone(),
                    rects: rects.map(<[Rect]>::to_vec),
                    region: Arc::clone(region),
                };
                self.shared.handoff.offer(job, &*self.notify)
            }
            _ => None,
        }
    }

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
                // What was said about the last session's frames does not hold for this one.
                info.banner = None;
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
        #[cfg(feature = "viewer")]
        let handed = self.offer_to_window(fi, rects);
        // Without the window nobody takes a frame: the feed ingests every one itself.
        #[cfg(not(feature = "viewer"))]
        let handed: Option<frame::Result<u64>> = None;
        match handed {
            Some(result) => {
                result?;
            }
            None => {
                let mut canvas = self.shared.canvas();
                // Frames went straight to the window since the canvas last had them all: read this one whole.
                let behind = self.shared.handoff.behind();
                canvas.ingest(view, fi, if behind { None } else { rects })?;
                self.shared
                    .handoff
                    .canvas_behind
                    .store(false, Ordering::Release);
            }
        }
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
            let text = truncated_text(fi, self.shared.vm.get().map(String::as_str));
            let mut info = self.shared.info();
            let showing = info.banner.as_ref().is_some_and(|b| b.text == text);
            if !showing && info.dismissed.as_deref() != Some(text.as_str()) {
                info.banner = Some(Banner {
                    text: text.clone(),
                    since: Instant::now(),
                    sticky: true,
                });
                drop(info);
                self.say(&text);
            }
        }
        (self.notify)();
        Ok(())
    }

    fn bad_frame(&mut self, why: String) {
        self.say(&why);
        self.shared.info().banner = Some(Banner {
            text: why,
            since: Instant::now(),
            sticky: false,
        });
        (self.notify)();
    }

    fn cursor(&mut self, update: CursorUpdate) {
        self.shared.cursor().apply(update);
        (self.notify)();
    }
}

/// The banner for a truncated frame: what is wrong and the exact command that fixes it.
fn truncated_text(fi: &FrameInfo, vm: Option<&str>) -> String {
    let (w, h) = if fi.screen.0 > 0 && fi.screen.1 > 0 {
        fi.screen
    } else {
        (fi.width, fi.height)
    };
    let hdr = if fi.kind == FrameType::Rgba16f {
        ",hdr"
    } else {
        ""
    };
    format!(
        "the shared memory is too small for {w}x{h}: only {} of {} rows arrive. Give the VM {} MiB: \
         `vmgpu define {} --update --looking-glass {w}x{h}{hdr}`, then restart it. (Esc or a click hides this.)",
        fi.data_height,
        fi.height,
        fi.needed_mib(),
        vm.unwrap_or("VM"),
    )
}

/// How the feed waits for the next frame while frames flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// Learns the frame interval and polls finely near the expected next frame ([`Pacer`]); the default.
    Adaptive,
    /// Polls every [`POLL_ACTIVE`] (the benchmark's baseline).
    Plain,
}

impl Pacing {
    /// `VMGPU_VIEW_PACING=plain` picks [`Pacing::Plain`] (the benchmarks compare both in the real viewer);
    /// anything else is the default, [`Pacing::Adaptive`].
    pub(crate) fn from_env() -> Self {
        match std::env::var("VMGPU_VIEW_PACING").as_deref() {
            Ok("plain") => Self::Plain,
            _ => Self::Adaptive,
        }
    }
}

/// Starts the feed thread.
pub fn spawn(
    source: Source,
    shared: Arc<Shared>,
    notify: Notify,
) -> std::io::Result<JoinHandle<()>> {
    // Say what the window waits for from its first picture on.
    shared.info().message.get_or_insert_with(|| match &source {
        Source::Path(p) => format!("opening {}", p.display()),
        Source::Region(_) => "waiting for the Looking Glass host".to_string(),
    });
    spawn_with(source, shared, notify, Pacing::from_env())
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
        #[cfg(feature = "viewer")]
        region: None,
    };
    wait::tighten_timer_slack();
    while !shared.stop.load(Ordering::Acquire) {
        match &source {
            Source::Region(r) => {
                #[cfg(feature = "viewer")]
                {
                    handler.region = Some(Arc::clone(r));
                }
                pump(r.view(), None, &shared, &mut handler, pacing);
            }
            Source::Path(p) => match ShmMap::open(p, HEADER_SIZE as u64) {
                Ok(m) => {
                    let m = Arc::new(m);
                    #[cfg(feature = "viewer")]
                    {
                        handler.region = Some(m.clone());
                    }
                    pump(m.view(), Some(&m), &shared, &mut handler, pacing);
                    #[cfg(feature = "viewer")]
                    {
                        handler.region = None;
                    }
                }
                Err(e) => {
                    handler.status(Status::Waiting(open_failure(&e)));
                    std::thread::sleep(RETRY_OPEN);
                }
            },
        }
    }
}

/// Why the file cannot be shown yet, in one line.
fn open_failure(e: &shm::Error) -> String {
    match e {
        shm::Error::Open { path, source } if source.kind() == std::io::ErrorKind::NotFound => {
            format!(
                "{} does not exist (is the VM running?); waiting for it",
                path.display()
            )
        }
        e => format!("{}; waiting", crate::report::one_line(e)),
    }
}

/// Runs the client over one mapping until the feed stops or, for a file, until the path no longer names what
/// was mapped (see [`ShmMap::change`]); the caller then maps it again.
fn pump(
    view: ShmView<'_>,
    map: Option<&ShmMap>,
    shared: &Shared,
    handler: &mut FeedHandler,
    pacing: Pacing,
) {
    let Ok(mut client) = Client::new(view) else {
        handler.status(Status::Waiting(
            "the shared memory is smaller than a Looking Glass header; waiting".into(),
        ));
        std::thread::sleep(RETRY_OPEN);
        return;
    };
    handler.status(Status::Waiting(
        "looking for the guest's Looking Glass host".into(),
    ));
    let mut last_activity = Instant::now();
    let mut last_file_check = Instant::now();
    let mut resubscribes = 0;
    let mut pacer = Pacer::default();
    let mut last_frame = handler.last_frame_at;
    while !shared.stop.load(Ordering::Acquire) {
        let busy = client.step(view, handler);
        if let Some(map) = map
            && last_file_check.elapsed() >= RECHECK_FILE
        {
            last_file_check = Instant::now();
            // A file removed while its host still beats is still in use (QEMU keeps its mapping): keep
            // showing it until the session ends. Anything else means this mapping is no longer the VM's.
            if let Some(change) = map
                .change()
                .filter(|c| !(*c == shm::Change::Gone && client.connected()))
            {
                handler.status(Status::Waiting(format!(
                    "the shared memory {} {change}; mapping it again",
                    map.path().display()
                )));
                break;
            }
        }
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
            now + POLL_WAITING
        } else if now.duration_since(last_activity) < ACTIVE_WINDOW {
            match pacing {
                Pacing::Adaptive => pacer.next(now, POLL_ACTIVE),
                Pacing::Plain => now + POLL_ACTIVE,
            }
        } else {
            now + POLL_IDLE
        };
        wait::sleep_until(next, &shared.waits);
    }
    client.shutdown(view);
}
