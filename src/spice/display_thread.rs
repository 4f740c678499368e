//! The `spice-display` thread: links the display channel, asks for uncompressed bitmaps and draws what
//! arrives into the session's [`Screen`]. SPICE has no "send everything again" message, so a refresh is a new
//! link of the display channel (the server then sends every surface in full). That is what happens after
//! anything we cannot draw (one log line per kind, at most one refresh per [`REFRESH_MIN`]) and after a
//! malformed message (the screen is dropped first, so garbage is never shown). The main and inputs channels
//! are not touched: keyboard and mouse keep working.
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::channel::{Channel, LinkParams};
use super::display::{self, client};
use super::error::Error;
use super::link::ChannelType;
use super::relink::{FailureLog, RELINK_AFTER_ERROR, pause, spawn_channel_thread};
use super::screen::{Applied, Screen};
use super::session::{DISPLAY_MAX_BODY, Endpoint, Shared};

/// Least time between two refreshes (relinks) asked for by undecodable messages.
pub(super) const REFRESH_MIN: Duration = Duration::from_secs(5);
/// Distinct "cannot draw" lines logged per session (a hostile server cannot flood the log).
const MAX_LOGGED_KINDS: usize = 32;

fn lock(m: &Mutex<Screen>) -> MutexGuard<'_, Screen> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the display thread; it relinks on its own until `done` is set.
pub(super) fn spawn(
    shared: Arc<Shared>,
    ep: Endpoint,
    session_id: u32,
    done: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, Error> {
    spawn_channel_thread("display", move || run(&shared, &ep, session_id, &done))
}

fn run(shared: &Shared, ep: &Endpoint, session_id: u32, done: &AtomicBool) {
    let mut logged = HashSet::new();
    let mut last_refresh: Option<Instant> = None;
    let mut failures = FailureLog::new("display");
    while !done.load(Ordering::Acquire) && !shared.stop.load(Ordering::Acquire) {
        let end = serve(shared, ep, session_id, done, &mut logged, &mut last_refresh);
        let wait = match end {
            End::Refresh => Duration::ZERO,
            End::Failed(Error::Stopped) => break,
            End::Failed(e) => {
                failures.failed(e);
                lock(&shared.screen).clear();
                (shared.notify)();
                RELINK_AFTER_ERROR
            }
        };
        pause(wait, done);
    }
    lock(&shared.screen).clear();
    (shared.notify)();
}

enum End {
    /// Relink to get every surface again.
    Refresh,
    /// The channel failed or the session stopped.
    Failed(Error),
}

/// One display link: INIT, PREFERRED_COMPRESSION(OFF), then draw until it ends.
fn serve(
    shared: &Shared,
    ep: &Endpoint,
    session_id: u32,
    done: &AtomicBool,
    logged: &mut HashSet<String>,
    last_refresh: &mut Option<Instant>,
) -> End {
    let params = LinkParams {
        channel: ChannelType::Display,
        channel_id: 0,
        connection_id: session_id,
        caps: display::CLIENT_CAPS.to_vec(),
        max_body: DISPLAY_MAX_BODY,
    };
    let mut chan = match Channel::open(&ep.target, &params, &ep.password, done) {
        Ok(c) => c,
        Err(e) => return End::Failed(e),
    };
    let writer = chan.writer();
    let started = writer.send_all(&[
        (client::INIT, display::init_body().to_vec()),
        (
            client::PREFERRED_COMPRESSION,
            vec![display::COMPRESSION_OFF],
        ),
    ]);
    if let Err(e) = started {
        return End::Failed(e);
    }
    lock(&shared.screen).clear();
    let end = loop {
        let (kind, body) = match chan.next(done) {
            Ok(m) => m,
            Err(e) => break End::Failed(e),
        };
        let applied = display::parse(kind, &body).and_then(|m| lock(&shared.screen).apply(&m));
        match applied {
            Ok(Applied::Drawn) => (shared.notify)(),
            Ok(Applied::Nothing) => {}
            Ok(Applied::Unsupported(what)) => {
                if logged.len() < MAX_LOGGED_KINDS && logged.insert(what.clone()) {
                    tracing::warn!(
                        "SPICE display: cannot draw {what}; skipped, asking for a full refresh"
                    );
                }
                if last_refresh.is_none_or(|t| t.elapsed() >= REFRESH_MIN) {
                    *last_refresh = Some(Instant::now());
                    break End::Refresh;
                }
            }
            Err(e) => break End::Failed(e.into()),
        }
    };
    writer.shutdown();
    end
}
