//! How the feed thread waits between polls of the shared memory, and what the waits cost.
//!
//! LGMP has no wake-up signal: the client polls. Latency is the poll interval plus how late the kernel wakes
//! us (the overshoot, milliseconds on a loaded machine), and CPU is the number of wake-ups. [`Pacer`] learns
//! the frame interval and polls finely (every [`FINE`]) only in a short window around the expected next frame,
//! at the plain interval outside it (an early or irregular frame is never later than plain polling would
//! be) and plainly alone when frames stop. It never spins: a yielding spin burns a core for as long as the
//! window is open (about 1 ms of CPU per frame in `benches/view_path.rs`), a fine sleep costs a few µs.
//! [`sleep_until`] sleeps to an absolute `CLOCK_MONOTONIC` time (`clock_nanosleep` with `TIMER_ABSTIME`, no
//! drift across interrupted sleeps) and records its overshoot in a [`WaitStats`] histogram that the benchmark prints.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::time::TimeSpec;
use nix::time::{ClockId, ClockNanosleepFlags, clock_gettime, clock_nanosleep};

/// Upper bounds (µs) of the overshoot histogram's buckets; the last bucket takes everything above.
pub const BUCKETS_US: [u64; 10] = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000];

/// Overshoot of the feed thread's sleeps: how much later than asked it woke up.
#[derive(Debug, Default)]
pub struct WaitStats {
    counts: [AtomicU64; BUCKETS_US.len() + 1],
    total_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl WaitStats {
    fn record(&self, overshoot: Duration) {
        let us = overshoot.as_micros() as u64;
        let bucket = BUCKETS_US
            .iter()
            .position(|&b| us < b)
            .unwrap_or(BUCKETS_US.len());
        if let Some(c) = self.counts.get(bucket) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let ns = overshoot.as_nanos() as u64;
        self.total_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// Sleeps per bucket (`BUCKETS_US`, then one for everything above the last bound).
    pub fn counts(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// Number of sleeps, their mean and their largest overshoot.
    pub fn summary(&self) -> (u64, Duration, Duration) {
        let n: u64 = self.counts().iter().sum();
        let total = self.total_ns.load(Ordering::Relaxed);
        let mean = Duration::from_nanos(total.checked_div(n).unwrap_or(0));
        (
            n,
            mean,
            Duration::from_nanos(self.max_ns.load(Ordering::Relaxed)),
        )
    }

    /// Forgets everything recorded so far.
    pub fn reset(&self) {
        for c in &self.counts {
            c.store(0, Ordering::Relaxed);
        }
        self.total_ns.store(0, Ordering::Relaxed);
        self.max_ns.store(0, Ordering::Relaxed);
    }
}

/// Asks the kernel to wake this thread's timers without the default 50 µs of slack (a latency-sensitive
/// poller; costs nothing while the thread sleeps long).
pub(crate) fn tighten_timer_slack() {
    let _ = nix::sys::prctl::set_timerslack(1_000);
}

/// Sleeps until `deadline` (an absolute `CLOCK_MONOTONIC` time, which is what `Instant` reads on Linux) and
/// records how late it woke up.
pub(crate) fn sleep_until(deadline: Instant, stats: &WaitStats) {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return;
    }
    let Ok(now) = clock_gettime(ClockId::CLOCK_MONOTONIC) else {
        std::thread::sleep(left);
        return;
    };
    let target = now + TimeSpec::from_duration(left);
    // EINTR: sleep again to the same absolute time.
    while let Err(nix::errno::Errno::EINTR) = clock_nanosleep(
        ClockId::CLOCK_MONOTONIC,
        ClockNanosleepFlags::TIMER_ABSTIME,
        &target,
    ) {}
    stats.record(Instant::now().saturating_duration_since(deadline));
}

/// Never expect frames faster than this (a burst of back-to-back frames says nothing about the rate).
const MIN_INTERVAL: Duration = Duration::from_millis(2);
/// Slower than this the frames are not a stream (a blinking cursor): no fine polling for them.
const MAX_INTERVAL: Duration = Duration::from_millis(100);
/// The fine-polling window opens this long before the expected frame (covers the wake-up delay and jitter).
const LEAD: Duration = Duration::from_micros(1000);
/// …and closes this long after it when no frame came; then interval polling takes over until the next frame.
const LATE: Duration = Duration::from_micros(1000);
/// The poll interval inside the window: bounds the added latency of an expected frame.
pub(crate) const FINE: Duration = Duration::from_micros(50);
/// Intervals kept for the estimate (their median is the frame interval).
const HISTORY: usize = 9;

/// Learns when frames arrive and says how long to wait for the next one.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    last: Option<Instant>,
    /// The last [`HISTORY`] intervals, a ring (`filled` of them valid, the next written at `at`).
    intervals: [Duration; HISTORY],
    filled: usize,
    at: usize,
    /// Their median when it looks like a stream, computed once per frame (not on every poll).
    interval: Option<Duration>,
    /// The predicted arrival of the last frame (never later than it arrived): keeps the phase from drifting
    /// late when one frame was picked up late.
    anchor: Option<Instant>,
}

impl Pacer {
    /// A frame arrived at `at`.
    pub(crate) fn frame_arrived(&mut self, at: Instant) {
        if let Some(last) = self.last {
            let gap = at.saturating_duration_since(last);
            if gap >= MIN_INTERVAL {
                self.intervals[self.at] = gap;
                self.at = (self.at + 1) % HISTORY;
                self.filled = (self.filled + 1).min(HISTORY);
                self.interval = self.median();
            }
        }
        self.anchor = match (self.anchor, self.interval()) {
            (Some(anchor), Some(interval)) => {
                // the anchor advanced by whole intervals to just before `at`, if that is earlier than `at`
                let periods = (at.saturating_duration_since(anchor).as_nanos()
                    / interval.as_nanos().max(1)) as u32;
                let predicted = anchor + interval * periods;
                Some(if at.saturating_duration_since(predicted) < LEAD {
                    predicted.min(at)
                } else {
                    at
                })
            }
            _ => Some(at),
        };
        self.last = Some(at);
    }

    /// The frame interval: the median of the recent ones, when they look like a stream.
    pub(crate) fn interval(&self) -> Option<Duration> {
        self.interval
    }

    fn median(&self) -> Option<Duration> {
        if self.filled < 3 {
            return None;
        }
        let mut sorted = self.intervals;
        let sorted = sorted.get_mut(..self.filled)?;
        sorted.sort_unstable();
        let median = sorted.get(sorted.len() / 2).copied()?;
        (MIN_INTERVAL..=MAX_INTERVAL)
            .contains(&median)
            .then_some(median)
    }

    /// Until when to sleep at `now` when the last poll found nothing; `fallback` is the plain poll interval.
    pub(crate) fn next(&self, now: Instant, fallback: Duration) -> Instant {
        let plain = now + fallback;
        let (Some(anchor), Some(interval)) = (self.anchor, self.interval) else {
            return plain;
        };
        // Frames stopped (a still desktop): plain polling until they come back.
        if now.saturating_duration_since(anchor) > interval * 3 {
            return plain;
        }
        let mut expected = anchor + interval;
        while expected + LATE < now {
            expected += interval;
        }
        let open = expected.checked_sub(LEAD).unwrap_or(expected);
        if now >= open {
            return now + FINE;
        }
        // Asleep until the window opens, but never longer than the plain interval: a frame that comes early
        // (or after a missed window) is picked up as fast as plain polling would.
        open.min(now + fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_micros(16_667);

    fn pacer_with_frames(start: Instant, n: u32) -> Pacer {
        let mut p = Pacer::default();
        for i in 0..n {
            p.frame_arrived(start + FRAME * i);
        }
        p
    }

    #[test]
    fn test_pacer_polls_plainly_until_it_knows_the_interval() {
        let t = Instant::now();
        let p = pacer_with_frames(t, 2);
        let fallback = Duration::from_micros(500);
        assert_eq!(p.next(t, fallback), t + fallback);
    }

    #[test]
    fn test_pacer_sleeps_until_the_window_then_polls_finely() {
        let t = Instant::now();
        let p = pacer_with_frames(t, 10);
        assert_eq!(p.interval(), Some(FRAME));
        let last = t + FRAME * 9;
        let fallback = Duration::from_micros(500);
        // just after a frame: plain polling (never a longer sleep than that) until the window opens
        let early = last + Duration::from_millis(1);
        assert_eq!(p.next(early, fallback), early + fallback);
        let close = last + FRAME - LEAD - Duration::from_micros(200);
        assert_eq!(p.next(close, fallback), last + FRAME - LEAD);
        let open = last + FRAME - LEAD;
        assert_eq!(p.next(open, fallback), open + FINE);
        let late = last + FRAME + LATE;
        assert_eq!(p.next(late, fallback), late + FINE);
        // the frame did not come: plain polling again, the next window opens before the frame after
        let missed = last + FRAME + LATE * 2;
        assert_eq!(p.next(missed, fallback), missed + fallback);
        let before_next = last + FRAME * 2 - LEAD - Duration::from_micros(100);
        assert_eq!(p.next(before_next, fallback), last + FRAME * 2 - LEAD);
    }

    #[test]
    fn test_pacer_falls_back_when_frames_stop() {
        let t = Instant::now();
        let p = pacer_with_frames(t, 10);
        let later = t + FRAME * 9 + FRAME * 4;
        let fallback = Duration::from_millis(5);
        assert_eq!(p.next(later, fallback), later + fallback);
    }

    #[test]
    fn test_pacer_keeps_the_phase_when_a_frame_is_picked_up_late() {
        let t = Instant::now();
        let mut p = pacer_with_frames(t, 10);
        // frame 10 is seen 0.8 ms late: the next window still opens relative to the on-time phase
        p.frame_arrived(t + FRAME * 10 + Duration::from_micros(800));
        let fallback = Duration::from_millis(20);
        let at = p.next(t + FRAME * 10 + Duration::from_millis(2), fallback);
        assert_eq!(at, t + FRAME * 11 - LEAD);
    }

    #[test]
    fn test_slow_or_bursty_frames_are_not_a_stream() {
        let t = Instant::now();
        let mut p = Pacer::default();
        for i in 0..10 {
            p.frame_arrived(t + Duration::from_millis(500) * i);
        }
        assert_eq!(p.interval(), None);
        let mut burst = Pacer::default();
        for i in 0..10 {
            burst.frame_arrived(t + Duration::from_micros(100) * i);
        }
        assert_eq!(burst.interval(), None);
    }

    #[test]
    fn test_sleep_until_records_the_overshoot() {
        let stats = WaitStats::default();
        sleep_until(Instant::now() + Duration::from_millis(1), &stats);
        sleep_until(Instant::now() - Duration::from_millis(1), &stats); // past: no sleep, not recorded
        let (n, _, max) = stats.summary();
        assert_eq!(n, 1);
        assert!(max < Duration::from_secs(5));
        assert_eq!(stats.counts().iter().sum::<u64>(), 1);
        stats.reset();
        assert_eq!(stats.summary().0, 0);
    }
}
