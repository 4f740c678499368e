//! Handing a frame from the feed thread to the window thread, so that the window copies it from shared memory
//! straight into its presented buffer (one copy of the frame instead of two: shared memory → canvas →
//! buffer). The feed still holds the frame's LGMP message while the window copies, so the host cannot reuse
//! the frame's memory under it; it waits at most [`WAIT`] for the window to take the frame, else ingests it into
//! the canvas itself as before. The window says which frame size it can take ([`Handoff::accept`]) after each
//! present that left a 1:1 Looking Glass picture with no banner in a buffer that the next present gets back
//! (X11's MIT-SHM buffer, age 1); anything else (scaled, a banner, weston's two buffers) keeps the canvas path.
use std::sync::atomic::{AtomicBool, Ordering};
// Without the window only the canvas flag is left.
#[cfg(feature = "viewer")]
use {
    crate::lg::frame,
    crate::lg::kvmfr::{FrameInfo, FrameType, Rect, flags},
    crate::shm::Region,
    std::sync::{Arc, Condvar, Mutex, MutexGuard},
    std::time::{Duration, Instant},
};

/// How long the feed waits for the window to take a frame before ingesting it itself (a window that does not
/// redraw: minimized, or a slow display server). Well below the host's 1 s timeout for the message.
#[cfg(feature = "viewer")]
pub(crate) const WAIT: Duration = Duration::from_millis(50);

/// A frame for the window: its validated description, the damage to copy (`None`: all of it) and the mapping
/// it lies in (kept alive by the `Arc` while the window copies).
#[cfg(feature = "viewer")]
pub(crate) struct Job {
    /// The frame.
    pub info: FrameInfo,
    /// The rects that changed since the previous frame, when it was in order.
    pub rects: Option<Vec<Rect>>,
    /// The shared memory.
    pub region: Arc<dyn Region>,
}

#[cfg(feature = "viewer")]
#[derive(Default)]
enum Slot {
    #[default]
    Empty,
    Posted(Job),
    Taken,
    Done(frame::Result<u64>),
    Rejected,
}

/// The feed ↔ window slot for one frame at a time.
#[derive(Default)]
pub struct Handoff {
    #[cfg(feature = "viewer")]
    accept: Mutex<Option<(u32, u32)>>,
    #[cfg(feature = "viewer")]
    slot: Mutex<Slot>,
    #[cfg(feature = "viewer")]
    cond: Condvar,
    /// Frames went straight to the window since the canvas last held the whole picture: the canvas is behind
    /// the window's buffer (the window repairs it from the buffer, or the feed's next ingest is a full one).
    pub canvas_behind: AtomicBool,
}

#[cfg(feature = "viewer")]
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// The window's side: only with the window.
#[cfg(feature = "viewer")]
impl Handoff {
    /// The window can take frames of `size` straight into its buffer (`None`: it cannot).
    pub(crate) fn accept(&self, size: Option<(u32, u32)>) {
        *lock(&self.accept) = size;
    }

    /// Whether `info` may go straight to the window: plain BGRA (no conversion), complete (a truncated frame
    /// shows a banner), of the size the window takes.
    pub(crate) fn wants(&self, info: &FrameInfo) -> bool {
        info.kind == FrameType::Bgra
            && info.flags & flags::TRUNCATED == 0
            && *lock(&self.accept) == Some((info.width, info.height))
    }

    /// Offers `job` to the window and waits until it copied it: `Some(result)` then; `None` when the window
    /// refused it or did not take it within [`WAIT`] (the caller ingests it itself).
    pub(crate) fn offer(&self, job: Job, notify: &dyn Fn()) -> Option<frame::Result<u64>> {
        *lock(&self.slot) = Slot::Posted(job);
        notify();
        let deadline = Instant::now() + WAIT;
        let mut slot = lock(&self.slot);
        loop {
            match std::mem::take(&mut *slot) {
                Slot::Done(result) => return Some(result),
                Slot::Rejected | Slot::Empty => return None,
                Slot::Posted(_) if Instant::now() >= deadline => {
                    // Not answering: no more offers until the window presents again.
                    drop(slot);
                    self.accept(None);
                    return None;
                }
                other => *slot = other,
            }
            // Once taken, the copy is bounded by the frame's own write deadline: wait for it.
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            slot = self
                .cond
                .wait_timeout(slot, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The window takes the posted frame, if there is one of `size`.
    pub(crate) fn take(&self, size: (u32, u32)) -> Option<Job> {
        let mut slot = lock(&self.slot);
        match std::mem::take(&mut *slot) {
            Slot::Posted(job) if (job.info.width, job.info.height) == size => {
                *slot = Slot::Taken;
                Some(job)
            }
            other => {
                *slot = other;
                None
            }
        }
    }

    /// Puts a taken frame back as posted (the window's tests peek at the slot with it).
    #[cfg(test)]
    pub(crate) fn repost(&self, job: Job) {
        *lock(&self.slot) = Slot::Posted(job);
    }

    /// The window copied the frame it took.
    pub(crate) fn finish(&self, result: frame::Result<u64>) {
        *lock(&self.slot) = Slot::Done(result);
        self.cond.notify_all();
    }

    /// The window will not take the posted frame (if any): the feed ingests it into the canvas.
    pub(crate) fn reject(&self) {
        let mut slot = lock(&self.slot);
        if matches!(*slot, Slot::Posted(_)) {
            *slot = Slot::Rejected;
            self.cond.notify_all();
        }
    }
}

impl Handoff {
    /// Whether the canvas is behind the window's buffer.
    pub(crate) fn behind(&self) -> bool {
        self.canvas_behind.load(Ordering::Acquire)
    }
}

#[cfg(all(test, feature = "viewer"))]
mod tests {
    use super::*;
    use crate::shm::HeapRegion;

    fn job(w: u32, h: u32) -> Job {
        let info = FrameInfo {
            format_ver: 1,
            serial: 7,
            kind: FrameType::Bgra,
            screen: (w, h),
            width: w,
            height: h,
            data_height: h,
            pitch: w * 4,
            wp_offset: 0,
            data_offset: 0,
            damage: Vec::new(),
            flags: 0,
            rotation: 0,
        };
        Job {
            info,
            rects: None,
            region: Arc::new(HeapRegion::new(4096)),
        }
    }

    #[test]
    fn the_window_takes_a_frame_of_the_size_it_accepts() {
        let h = Arc::new(Handoff::default());
        assert!(!h.wants(&job(4, 2).info), "nothing accepted yet");
        h.accept(Some((4, 2)));
        assert!(h.wants(&job(4, 2).info));
        assert!(!h.wants(&job(5, 2).info), "another size");
        let window = {
            let h = h.clone();
            std::thread::spawn(move || {
                loop {
                    if let Some(j) = h.take((4, 2)) {
                        h.finish(Ok(u64::from(j.info.serial)));
                        return;
                    }
                    std::thread::yield_now();
                }
            })
        };
        let got = h.offer(job(4, 2), &|| {});
        window.join().unwrap();
        assert_eq!(got.map(|r| r.ok()), Some(Some(7)));
    }

    #[test]
    fn a_refused_or_unanswered_frame_comes_back() {
        let h = Arc::new(Handoff::default());
        h.accept(Some((4, 2)));
        let rejecter = h.clone();
        assert!(h.offer(job(4, 2), &move || rejecter.reject()).is_none());
        let t = Instant::now();
        assert!(h.offer(job(4, 2), &|| {}).is_none(), "nobody took it");
        assert!(t.elapsed() >= WAIT);
        assert!(
            !h.wants(&job(4, 2).info),
            "no offers until the window accepts again"
        );
        assert!(h.take((4, 2)).is_none(), "the slot is empty again");
    }
}
