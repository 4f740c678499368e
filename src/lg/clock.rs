//! Millisecond clocks: the host's heartbeat clock (CLOCK_MONOTONIC in ms, as a Linux LG host uses) and the
//! client's own.
use nix::time::{ClockId, clock_gettime};

/// Monotonic milliseconds, never 0 (LGMP treats a 0 clock as a failure).
pub(crate) fn now_ms() -> u64 {
    let ts = clock_gettime(ClockId::CLOCK_MONOTONIC)
        .unwrap_or_else(|_| nix::sys::time::TimeSpec::new(0, 0));
    let ms = (ts.tv_sec() as u64)
        .saturating_mul(1000)
        .saturating_add(ts.tv_nsec() as u64 / 1_000_000);
    ms.max(1)
}
