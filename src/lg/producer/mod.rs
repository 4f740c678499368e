//! The producer: the host side of LGMP + KVMFR exactly as the B7 host application lays out and writes memory
//! (docs/lg-protocol.md §3.8–3.9): allocation order, A-aligned frame slots with `offset = A − 4`, wp = 0 then post then
//! pixels with a rising wp, a 10 ms heartbeat/GC thread, reposts for new subscribers, back-pressure of 2 pending
//! frames, cursor buffers, and a new session id on every start. Tests, benchmarks and `vmgpu view --demo` use it.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::clock::now_ms;
use super::kvmfr::{
    self, CURSOR_SIZE, CursorShape, CursorType, FrameType, Rect, cursor_flags, flags,
};
use super::lgmp;
use super::lgmp_producer::{LgmpHost, Posted};
use crate::shm::{Region, ShmView};

mod heartbeat;
mod layout;

use heartbeat::tick_loop;
use layout::{merge_bands, setup, write_frame_header, write_position};

/// Frame queue length (ring of 3).
const FRAME_QUEUE_LEN: u32 = 2;
/// Pointer queue length (ring of 21).
const POINTER_QUEUE_LEN: u32 = 20;
/// Subscriber timeout of both queues.
const SUB_TIMEOUT_MS: u32 = 1000;
/// Small cursor buffers.
const SMALL_CURSORS: usize = 20;
/// Shape buffers.
const SHAPE_BUFFERS: usize = 3;
/// 24 + 512·512·4.
const SHAPE_BUFFER_SIZE: usize = 1_048_600;
/// wp is raised every time the copy crosses a MiB.
const WP_STEP: usize = 1 << 20;
/// How long a send waits for back-pressure or a full queue before giving up.
const SEND_DEADLINE: Duration = Duration::from_secs(3);

/// Producer errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// LGMP host failure.
    #[error("LGMP host")]
    Lgmp(#[from] lgmp::Error),
    /// Bad shared-memory access.
    #[error("shared memory")]
    Shm(#[from] crate::shm::Error),
    /// The region cannot hold the layout.
    #[error("shared memory of {0} bytes is too small for the Looking Glass layout")]
    TooSmall(usize),
    /// Clients did not release frames in time.
    #[error("timed out waiting for clients to release {0} messages")]
    Backpressure(&'static str),
    /// Caller error.
    #[error("{0}")]
    Invalid(String),
}

/// Result of this module.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Frame slot alignment A (4096 like DXGI, 65536 like D12).
    pub align: usize,
    /// Host build string in the KVMFR header.
    pub hostver: String,
    /// Capture backend name.
    pub capture: String,
    /// OS name.
    pub os_name: String,
    /// KVMFR feature flags.
    pub features: u32,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            align: 4096,
            hostver: "B7".into(),
            capture: "vmgpu-producer".into(),
            os_name: "vmgpu test scene".into(),
            features: kvmfr::FEATURE_SETCURSORPOS,
        }
    }
}

/// A frame to send. `damage` empty = the whole frame changed.
#[derive(Debug, Clone)]
pub struct FrameDesc {
    /// Pixel format.
    pub kind: FrameType,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row of `pixels` (and in shared memory).
    pub pitch: u32,
    /// Changed rects since the previous frame.
    pub damage: Vec<Rect>,
    /// Extra FRAME_FLAG_* bits (TRUNCATED and HDR are set by the producer where they apply).
    pub flags: u32,
}

/// What a send did.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    /// The frame serial.
    pub serial: u32,
    /// When the message was posted (before the pixels were written).
    pub posted_at: Instant,
    /// Whether anyone was subscribed.
    pub posted: bool,
}

/// A cursor update to send.
#[derive(Debug, Clone, Default)]
pub struct CursorSend {
    /// Top-left of the image, if it moved.
    pub position: Option<(i16, i16)>,
    /// Visible.
    pub visible: bool,
    /// New shape (`height` is the visible height; monochrome data holds twice as many rows).
    pub shape: Option<CursorShape>,
}

struct State {
    host: LgmpHost,
    frame_q: usize,
    pointer_q: usize,
    small: [usize; SMALL_CURSORS],
    small_next: usize,
    shapes: [usize; SHAPE_BUFFERS],
    shape_next: usize,
    last_shape: Option<usize>,
    cursor_pos: (i16, i16),
    cursor_visible: bool,
    slots: [(usize, usize); 2],
    /// Per slot, the row bands changed since it was last written (`None` = all of it).
    slot_dirty: [Option<Vec<(u32, u32)>>; 2],
    capture_index: usize,
    last_complete: Option<usize>,
    repost_frame: bool,
    serial: u32,
    format_ver: u32,
    last_format: Option<(FrameType, u32, u32, u32)>,
    received: Vec<Vec<u8>>,
}

struct Shared {
    region: Arc<dyn Region>,
    cfg: ProducerConfig,
    state: Mutex<State>,
    stop: AtomicBool,
    heartbeat: AtomicBool,
}

/// A running producer; dropping it stops the heartbeat (clients then see the host go away).
pub struct Producer {
    shared: Arc<Shared>,
    ticker: Option<JoinHandle<()>>,
    send: Mutex<()>,
}

impl Producer {
    /// Lays out the region as the B7 host does (new session id) and starts the 10 ms heartbeat.
    pub fn start(region: Arc<dyn Region>, cfg: ProducerConfig) -> Result<Self> {
        let state = setup(region.view(), &cfg)?;
        let shared = Arc::new(Shared {
            region,
            cfg,
            state: Mutex::new(state),
            stop: AtomicBool::new(false),
            heartbeat: AtomicBool::new(true),
        });
        let ticker_shared = Arc::clone(&shared);
        let ticker = std::thread::Builder::new()
            .name("lg-producer".into())
            .spawn(move || tick_loop(&ticker_shared))
            .map_err(|e| Error::Invalid(format!("cannot start the heartbeat thread: {e}")))?;
        Ok(Self {
            shared,
            ticker: Some(ticker),
            send: Mutex::new(()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock_state(&self.shared)
    }

    /// The session id this producer wrote.
    pub fn session_id(&self) -> u32 {
        self.state().host.session_id
    }

    /// Bytes a frame slot can hold (block size − A).
    pub(crate) fn frame_capacity(&self) -> usize {
        self.state().slots[0].1 - self.shared.cfg.align
    }

    /// Stops (or restarts) the heartbeat, as a frozen guest would.
    pub fn set_heartbeat(&self, on: bool) {
        self.shared.heartbeat.store(on, Ordering::Release);
    }

    /// The raw `subs` words of the frame and pointer queues.
    pub fn subscribers(&self) -> (u64, u64) {
        let st = self.state();
        let view = self.shared.region.view();
        (
            st.host.subs(view, st.frame_q).unwrap_or(0),
            st.host.subs(view, st.pointer_q).unwrap_or(0),
        )
    }

    /// Waits until both queues have a good subscriber.
    pub fn wait_for_client(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let (f, p) = self.subscribers();
            if super::layout::good(f) != 0 && super::layout::good(p) != 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }

    /// Client→host messages received so far (drained every tick).
    pub fn take_received(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.state().received)
    }

    /// Frames outstanding.
    pub fn pending_frames(&self) -> u32 {
        let st = self.state();
        st.host
            .pending(self.shared.region.view(), st.frame_q)
            .unwrap_or(0)
    }

    /// Sends one frame: waits for < 2 pending, fills the KVMFRFrame, wp = 0, posts, then writes `pixels` with a
    /// rising wp. `pixels` holds `height × pitch` bytes; rows that do not fit the slot are dropped and the frame
    /// is flagged TRUNCATED.
    pub fn send_frame(&self, desc: &FrameDesc, pixels: &[u8]) -> Result<Sent> {
        let _one_sender = self.send.lock().unwrap_or_else(|e| e.into_inner());
        let view = self.shared.region.view();
        let pitch = desc.pitch as usize;
        if pitch < desc.width as usize * desc.kind.bytes_per_pixel() as usize
            || pixels.len() < desc.height as usize * pitch
            || desc.damage.len() > kvmfr::MAX_DAMAGE_RECTS
        {
            return Err(Error::Invalid(
                "frame description does not match its pixels".into(),
            ));
        }
        let capacity = self.frame_capacity();
        let rows = (desc.height as usize).min(capacity / pitch) as u32;
        let deadline = Instant::now() + SEND_DEADLINE;
        let mut st = loop {
            let st = self.state();
            if st.host.pending(view, st.frame_q)? < 2 {
                break st;
            }
            drop(st);
            if Instant::now() > deadline {
                return Err(Error::Backpressure("frame"));
            }
            std::thread::sleep(Duration::from_micros(50));
        };
        let format = (desc.kind, desc.width, desc.height, desc.pitch);
        let slot = st.capture_index;
        if st.last_format != Some(format) || desc.damage.is_empty() {
            st.slot_dirty = [None, None];
        }
        if st.last_format != Some(format) {
            st.format_ver = st.format_ver.wrapping_add(1);
            st.last_format = Some(format);
        }
        // The slot must end up holding the whole image: write the union of the damage since it was last written.
        for dirty in &mut st.slot_dirty {
            if let Some(bands) = dirty {
                bands.extend(desc.damage.iter().map(|r| (r.y, r.y.saturating_add(r.h))));
                if bands.len() > kvmfr::MAX_DAMAGE_RECTS {
                    *dirty = None;
                }
            }
        }
        let bands = st.slot_dirty[slot].replace(Vec::new());
        // A new frame reaches new subscribers too: no repost of an older one after it.
        st.repost_frame = false;
        let (block, size) = st.slots[slot];
        let serial = st.serial;
        st.serial = st.serial.wrapping_add(1);
        let mut fl = desc.flags;
        if rows < desc.height {
            fl |= flags::TRUNCATED;
        }
        if desc.kind == FrameType::Rgba16f {
            fl |= flags::HDR;
        }
        write_frame_header(view, block, desc, st.format_ver, serial, rows, fl)?;
        let wp = block + self.shared.cfg.align - 4;
        view.atomic_u32(wp)?.store(0, Ordering::Release);
        let posted_at = Instant::now();
        let posted = matches!(
            st.host.post(view, st.frame_q, 0, (block, size), now_ms())?,
            Posted::To(_)
        );
        drop(st);
        let data = block + self.shared.cfg.align;
        let wp = view.atomic_u32(wp)?;
        for (y0, y1) in merge_bands(bands, rows) {
            let (start, end) = (y0 as usize * pitch, y1 as usize * pitch);
            let mut done = start;
            while done < end {
                let n = (end - done).min(WP_STEP);
                view.write_bytes(data + done, &pixels[done..done + n])?;
                done += n;
                // Normal stores, then a Release store of wp: the pixels are visible before wp says so.
                wp.store(done as u32, Ordering::Release);
            }
        }
        wp.store((rows as usize * pitch) as u32, Ordering::Release);
        let mut st = self.state();
        st.last_complete = Some(slot);
        st.capture_index = 1 - slot;
        Ok(Sent {
            serial,
            posted_at,
            posted,
        })
    }

    /// Sends a cursor update: position/visibility through a small buffer, a shape through a shape buffer.
    pub fn send_cursor(&self, c: &CursorSend) -> Result<()> {
        let view = self.shared.region.view();
        let mut st = self.state();
        if let Some(p) = c.position {
            st.cursor_pos = p;
        }
        st.cursor_visible = c.visible;
        let mut fl = if c.visible { cursor_flags::VISIBLE } else { 0 };
        if c.position.is_some() {
            fl |= cursor_flags::POSITION;
        }
        let (buf, size) = if let Some(shape) = &c.shape {
            let wire_h = if shape.kind == CursorType::Monochrome {
                2 * shape.height
            } else {
                shape.height
            };
            let data = &shape.data;
            if shape.width > kvmfr::MAX_CURSOR_SIDE
                || data.len() != wire_h as usize * shape.pitch as usize
                || data.len() + CURSOR_SIZE > SHAPE_BUFFER_SIZE
            {
                return Err(Error::Invalid(
                    "cursor shape does not match its bytes".into(),
                ));
            }
            let buf = st.shapes[st.shape_next];
            st.shape_next = (st.shape_next + 1) % SHAPE_BUFFERS;
            let kind = match shape.kind {
                CursorType::Color => 0u32,
                CursorType::Monochrome => 1,
                CursorType::MaskedColor => 2,
            };
            let mut head = [0u8; CURSOR_SIZE];
            head[4..8].copy_from_slice(&kind.to_le_bytes());
            head[8] = shape.hotspot.0 as u8;
            head[9] = shape.hotspot.1 as u8;
            head[12..16].copy_from_slice(&shape.width.to_le_bytes());
            head[16..20].copy_from_slice(&wire_h.to_le_bytes());
            head[20..24].copy_from_slice(&shape.pitch.to_le_bytes());
            view.write_bytes(buf, &head)?;
            view.write_bytes(buf + CURSOR_SIZE, data)?;
            st.last_shape = Some(buf);
            fl |= cursor_flags::SHAPE;
            (buf, SHAPE_BUFFER_SIZE)
        } else {
            st.next_small()
        };
        write_position(view, buf, st.cursor_pos)?;
        drop(st);
        post_retrying(&self.shared, |st| (st.pointer_q, fl, (buf, size)))
    }
}

impl State {
    /// The next small (position-only) cursor buffer, round robin.
    fn next_small(&mut self) -> (usize, usize) {
        let buf = self.small[self.small_next];
        self.small_next = (self.small_next + 1) % SMALL_CURSORS;
        (buf, CURSOR_SIZE)
    }
}

fn lock_state(shared: &Shared) -> MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Posts, retrying while the ring is full (the real host spins on a full pointer queue).
fn post_retrying(
    shared: &Shared,
    what: impl Fn(&State) -> (usize, u32, (usize, usize)),
) -> Result<()> {
    let view = shared.region.view();
    let deadline = Instant::now() + SEND_DEADLINE;
    loop {
        let st = lock_state(shared);
        let (q, udata, payload) = what(&st);
        if st.host.post(view, q, udata, payload, now_ms())? != Posted::Full {
            return Ok(());
        }
        drop(st);
        if Instant::now() > deadline {
            return Err(Error::Backpressure("pointer"));
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}
