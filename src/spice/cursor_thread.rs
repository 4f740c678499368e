//! The `spice-cursor` thread: links the cursor channel and keeps the session's [`Cursors`] up to date. A
//! malformed message hides the cursor, logs one line and relinks the channel (the server then sends the current
//! cursor again); a shape we cannot draw keeps the previous one and is logged once per kind.
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::channel::{Channel, LinkParams};
use super::cursor::{self, Cursors};
use super::error::Error;
use super::link::ChannelType;
use super::relink::{FailureLog, RELINK_AFTER_ERROR, pause, spawn_channel_thread};
use super::session::{Endpoint, Shared};

/// Largest cursor channel message: a 256×256 ALPHA cursor plus headers.
pub(super) const CURSOR_MAX_BODY: u32 = 256 * 256 * 4 + 4096;
const MAX_LOGGED: usize = 32;

fn lock(m: &Mutex<Cursors>) -> MutexGuard<'_, Cursors> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the cursor thread; it relinks on its own until `done` is set.
pub(super) fn spawn(
    shared: Arc<Shared>,
    ep: Endpoint,
    session_id: u32,
    done: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, Error> {
    spawn_channel_thread("cursor", move || run(&shared, &ep, session_id, &done))
}

fn run(shared: &Shared, ep: &Endpoint, session_id: u32, done: &AtomicBool) {
    let mut logged = HashSet::new();
    let mut failures = FailureLog::new("cursor");
    while !done.load(Ordering::Acquire) && !shared.stop.load(Ordering::Acquire) {
        match serve(shared, ep, session_id, done, &mut logged) {
            Error::Stopped => break,
            e => {
                failures.failed(e);
                *lock(&shared.cursor) = Cursors::default();
                (shared.notify)();
            }
        }
        pause(RELINK_AFTER_ERROR, done);
    }
    *lock(&shared.cursor) = Cursors::default();
}

fn serve(
    shared: &Shared,
    ep: &Endpoint,
    session_id: u32,
    done: &AtomicBool,
    logged: &mut HashSet<String>,
) -> Error {
    let params = LinkParams {
        channel: ChannelType::Cursor,
        channel_id: 0,
        connection_id: session_id,
        caps: Vec::new(),
        max_body: CURSOR_MAX_BODY,
    };
    let mut chan = match Channel::open(&ep.target, &params, &ep.password, done) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let writer = chan.writer();
    let err = loop {
        let msg = chan
            .next(done)
            .and_then(|(k, b)| cursor::parse(k, &b).map_err(Error::from));
        match msg {
            Ok(m) => {
                let note = lock(&shared.cursor).apply(m);
                if let Some(note) = note
                    && logged.len() < MAX_LOGGED
                    && logged.insert(note.clone())
                {
                    tracing::warn!("SPICE cursor: {note}; keeping the previous cursor");
                }
                (shared.notify)();
            }
            Err(e) => break e,
        }
    };
    writer.shutdown();
    err
}
