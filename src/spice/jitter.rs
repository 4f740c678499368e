//! The jitter buffer between the playback channel and the host's sound server: whole frames in arrival order,
//! bounded, draining toward a target. Above `target` each push drops [`DRAIN_STEP_MS`] of the oldest audio (a
//! 1 ms skip per 10 ms message: a backlog left by a stall melts in a few hundred ms instead of staying as
//! latency); a push that would leave more than `max` queued drops the oldest frames down to `target` at once.
//! An empty buffer is an underrun: the reader waits for `prefill` before it plays again.
use std::collections::VecDeque;

use super::playback::PcmFormat;

/// Audio dropped per push while more than the target is queued.
pub(crate) const DRAIN_STEP_MS: u32 = 1;

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pushed {
    /// Frames dropped (oldest first) to get back to the target.
    pub dropped_frames: usize,
}

/// A bounded queue of interleaved S16LE frames.
#[derive(Debug)]
pub(crate) struct JitterBuffer {
    format: PcmFormat,
    bytes: VecDeque<u8>,
    target: usize,
    max: usize,
    prefill: usize,
    drain_step: usize,
    /// Set after an underrun (and at the start) until `prefill` bytes are queued again.
    filling: bool,
    /// The stream ended (STOP): what is queued plays out without waiting for `prefill`, nothing more is taken.
    closed: bool,
}

impl JitterBuffer {
    /// A buffer for `format` that drains toward `target_ms` once it holds more than `max_ms`, and plays after
    /// an underrun once it holds `prefill_ms`.
    pub(crate) fn new(format: PcmFormat, target_ms: u32, max_ms: u32, prefill_ms: u32) -> Self {
        let target = format.bytes_for_ms(target_ms);
        let max = format.bytes_for_ms(max_ms).max(target);
        Self {
            format,
            bytes: VecDeque::with_capacity(max),
            target,
            max,
            prefill: format.bytes_for_ms(prefill_ms).min(target),
            drain_step: format.bytes_for_ms(DRAIN_STEP_MS).max(format.frame_bytes()),
            filling: true,
            closed: false,
        }
    }

    /// The format queued.
    pub(crate) fn format(&self) -> PcmFormat {
        self.format
    }

    /// Queues whole frames (a partial trailing frame is ignored: [`super::playback::check_data`] refuses it
    /// before).
    pub(crate) fn push(&mut self, pcm: &[u8]) -> Pushed {
        let frame = self.format.frame_bytes();
        let whole = pcm.len() - pcm.len() % frame;
        if self.closed {
            // Audio after STOP (a server that breaks the protocol): counted, never queued.
            return Pushed {
                dropped_frames: whole / frame,
            };
        }
        // A single push larger than the bound keeps only its newest `target` bytes.
        let pcm = &pcm[whole.saturating_sub(self.max)..whole];
        self.bytes.extend(pcm);
        let excess = self.bytes.len().saturating_sub(self.target);
        let drop = if self.bytes.len() > self.max {
            excess
        } else {
            excess.min(self.drain_step)
        };
        let drop = drop - drop % frame;
        self.bytes.drain(..drop);
        Pushed {
            dropped_frames: drop / frame,
        }
    }

    /// Takes up to `max_bytes` (whole frames) into `out`; nothing while refilling after an underrun.
    pub(crate) fn pop(&mut self, out: &mut Vec<u8>, max_bytes: usize) -> usize {
        out.clear();
        if self.filling && !self.closed {
            if self.bytes.len() < self.prefill.max(1) {
                return 0;
            }
            self.filling = false;
        }
        let frame = self.format.frame_bytes();
        let n = self.bytes.len().min(max_bytes);
        let n = n - n % frame;
        out.extend(self.bytes.drain(..n));
        if self.bytes.is_empty() {
            self.filling = true;
        }
        n
    }

    /// The stream ended: the rest plays out (see `closed`).
    pub(crate) fn close(&mut self) {
        self.closed = true;
    }

    /// True after [`Self::close`].
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Bytes queued.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Drops everything queued.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.filling = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stereo48() -> PcmFormat {
        PcmFormat::checked(2, 1, 48_000).unwrap()
    }

    #[test]
    fn drains_toward_the_target_and_snaps_back_over_the_bound() {
        let mut j = JitterBuffer::new(stereo48(), 40, 80, 20);
        for _ in 0..4 {
            assert_eq!(j.push(&[1; 1920]).dropped_frames, 0);
        }
        // Above 40 ms: 1 ms (48 frames) per push.
        for n in 1..=4 {
            assert_eq!(j.push(&[1; 1920]).dropped_frames, 48);
            assert_eq!(j.len(), (4 + n) * 1920 - n * 192);
        }
        // 76 ms + 10 ms goes over 80 ms: back to 40 ms at once (46 ms, 2208 frames).
        assert_eq!(j.push(&[2; 1920]).dropped_frames, 2208);
        assert_eq!(j.len(), 4 * 1920);
        let mut out = Vec::new();
        j.pop(&mut out, usize::MAX);
        assert_eq!(
            &out[out.len() - 1920..],
            &[2; 1920][..],
            "newest audio kept"
        );
    }

    #[test]
    fn keeps_order_and_waits_for_prefill_after_underrun() {
        let mut j = JitterBuffer::new(stereo48(), 40, 80, 20);
        let mut out = Vec::new();
        j.push(&[1; 1920]);
        assert_eq!(j.pop(&mut out, 1920), 0, "10 ms is under the 20 ms prefill");
        j.push(&[2; 1920]);
        assert_eq!(j.pop(&mut out, 1920), 1920);
        assert_eq!(out, [1; 1920]);
        assert_eq!(j.pop(&mut out, 4000), 1920);
        assert_eq!(out, [2; 1920]);
        j.push(&[3; 1920]);
        assert_eq!(j.pop(&mut out, 1920), 0, "refilling after the underrun");
    }

    #[test]
    fn a_closed_buffer_plays_out_under_the_prefill_and_takes_nothing_more() {
        let mut j = JitterBuffer::new(stereo48(), 40, 80, 20);
        let mut out = Vec::new();
        j.push(&[1; 1920]);
        assert_eq!(j.pop(&mut out, 1920), 0, "10 ms is under the 20 ms prefill");
        j.close();
        assert_eq!(j.push(&[2; 400]).dropped_frames, 100);
        assert_eq!(j.pop(&mut out, 4000), 1920);
        assert_eq!(out, [1; 1920]);
        assert_eq!(j.pop(&mut out, 4000), 0);
    }

    #[test]
    fn a_huge_push_is_bounded_and_frames_stay_whole() {
        let mut j = JitterBuffer::new(stereo48(), 40, 80, 20);
        j.push(&vec![0; 10 << 20]);
        assert!(j.len() <= stereo48().bytes_for_ms(80));
        j.push(&[0; 7]);
        assert_eq!(j.len() % 4, 0);
    }
}
