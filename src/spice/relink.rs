//! What the per-channel threads (display, cursor, playback, record) share: starting the named thread, one log
//! line per distinct failure reason (a server that keeps refusing cannot flood the log), and the pause before
//! the channel is linked again.
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::error::Error;
use super::session::chain;

/// Wait before relinking after a channel failed.
pub(super) const RELINK_AFTER_ERROR: Duration = Duration::from_secs(1);

/// Starts the thread `spice-<channel>` running `body`.
pub(super) fn spawn_channel_thread(
    channel: &str,
    body: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, Error> {
    std::thread::Builder::new()
        .name(format!("spice-{channel}"))
        .spawn(body)
        .map_err(|e| Error::io(format!("cannot start the {channel} thread"), e))
}

/// The failures of one channel thread, logged once per distinct reason.
pub(super) struct FailureLog {
    channel: &'static str,
    last: String,
}

impl FailureLog {
    /// A log for `channel` ("display", "cursor", …).
    pub(super) fn new(channel: &'static str) -> Self {
        Self {
            channel,
            last: String::new(),
        }
    }

    /// Logs why the link ended, unless it is the same reason as last time.
    pub(super) fn failed(&mut self, err: Error) {
        let reason = chain(err);
        if reason != self.last {
            tracing::warn!(
                "SPICE {}: {reason} (reconnecting the {} channel)",
                self.channel,
                self.channel
            );
            self.last = reason;
        }
    }
}

/// Sleeps `wait` in short steps, returning early once `done` is set.
pub(super) fn pause(wait: Duration, done: &AtomicBool) {
    let until = Instant::now() + wait;
    while Instant::now() < until && !done.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(50));
    }
}
