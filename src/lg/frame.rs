//! Reading a frame's pixels: only after the host's write position (`wp`) has passed the bytes we need, and only
//! the damaged rects when the caller asks for them. The pixel conversion itself is the sink's job.
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::kvmfr::{FrameInfo, Rect};
use crate::shm::{self, ShmView};

/// How long to wait for the host to write the pixels of a posted frame before giving up on it (well below the
/// 1 s after which the host would mark us BAD).
pub(crate) const WP_DEADLINE: Duration = Duration::from_millis(250);

/// Frame reading errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The host did not write the pixels in time.
    #[error("frame data incomplete: {written} of {needed} bytes written")]
    Incomplete {
        /// The write position seen last.
        written: u32,
        /// The bytes needed.
        needed: usize,
    },
    /// Access outside the region.
    #[error("bad shared-memory access")]
    Shm(#[from] shm::Error),
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// Receives pixel rows: convert `w` pixels of frame row `y`, starting at column `x`, from `src` (absolute offset
/// of the first of those pixels in the region).
pub(crate) trait RowSink {
    /// One row segment; its bytes are complete (wp passed them).
    fn row(&mut self, view: ShmView<'_>, src: usize, x: u32, y: u32, w: u32) -> shm::Result<()>;
}

/// Waits for `wp ≥ needed`, spinning briefly and then yielding, until the deadline.
fn wait_wp(view: ShmView<'_>, info: &FrameInfo, needed: usize, deadline: Instant) -> Result<u32> {
    let wp = view.atomic_u32(info.wp_offset)?;
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        let written = wp.load(Ordering::Acquire);
        if written as usize >= needed {
            return Ok(written);
        }
        spins += 1;
        if spins < 200 {
            std::hint::spin_loop();
        } else if Instant::now() > deadline {
            return Err(Error::Incomplete { written, needed });
        } else if start.elapsed() < Duration::from_millis(2) {
            // The host is copying right now: stay close.
            std::thread::yield_now();
        } else {
            // A stalled or hostile writer: wait without costing a core.
            std::thread::sleep(Duration::from_micros(20));
        }
    }
}

/// Feeds the rows of `rects` (or of the whole frame when `rects` is `None`) to `sink`, each only once the host's
/// write position covers it. Rows past `data_height` (a truncated frame) are skipped. Returns the pixels read.
pub(crate) fn ingest(
    view: ShmView<'_>,
    info: &FrameInfo,
    rects: Option<&[Rect]>,
    sink: &mut impl RowSink,
) -> Result<u64> {
    let full = [Rect {
        x: 0,
        y: 0,
        w: info.width,
        h: info.height,
    }];
    let rects = rects.unwrap_or(&full);
    let deadline = Instant::now() + WP_DEADLINE;
    let pitch = info.pitch as usize;
    let bpp = info.kind.bytes_per_pixel() as usize;
    let mut written = 0usize;
    let mut pixels = 0u64;
    for r in rects {
        let x = r.x.min(info.width);
        let w = r.w.min(info.width - x);
        let y_end = r.y.saturating_add(r.h).min(info.data_height);
        for y in r.y..y_end {
            let row_end = (y as usize + 1) * pitch;
            if written < row_end {
                // wp only grows while we hold the message, so one load usually covers many rows.
                written = wait_wp(view, info, row_end, deadline)? as usize;
            }
            let src = info.data_offset + y as usize * pitch + x as usize * bpp;
            sink.row(view, src, x, y, w)?;
            pixels += w as u64;
        }
    }
    Ok(pixels)
}
