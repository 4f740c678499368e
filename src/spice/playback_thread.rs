//! The `spice-playback` thread: links the playback channel (raw PCM only, VOLUME cap) and feeds what it plays
//! into a [`Player`]. A message that is malformed or does not fit the negotiated format (START with 0 channels
//! or 10 MHz, DATA larger than negotiated, DATA before START, a non-raw MODE) is one log line and dropped; the
//! link goes on. Only a broken channel (a body over [`PLAYBACK_MAX_BODY`], a socket error) relinks it.
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use super::audio_sink::{HostAudio, Player};
use super::channel::{Channel, LinkParams};
use super::error::Error;
use super::link::ChannelType;
use super::playback::{self, PcmFormat, PlaybackMsg, mode};
use super::relink::{FailureLog, RELINK_AFTER_ERROR, pause, spawn_channel_thread};
use super::session::{Endpoint, Shared};

/// Largest playback channel message: the largest DATA we take, plus room.
pub(super) const PLAYBACK_MAX_BODY: u32 = playback::MAX_DATA_BYTES as u32 + 1024;
/// Distinct dropped-item lines logged per session (a hostile server cannot flood the log).
pub(super) const MAX_LOGGED: usize = 32;

/// Logs a line once per distinct text, at most [`MAX_LOGGED`] lines.
#[derive(Default)]
pub(super) struct OnceLog(HashSet<String>);

impl OnceLog {
    pub(super) fn warn(&mut self, channel: &str, line: String) {
        if self.0.len() < MAX_LOGGED && self.0.insert(line.clone()) {
            tracing::warn!("SPICE {channel}: {line}; dropped");
        }
    }
}

/// Starts the playback thread; it relinks on its own until `done` is set.
pub(super) fn spawn(
    shared: Arc<Shared>,
    host: Arc<dyn HostAudio>,
    ep: Endpoint,
    session_id: u32,
    done: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, Error> {
    spawn_channel_thread("playback", move || {
        let player = match Player::new(host) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("SPICE playback: cannot start the audio thread: {e}");
                return;
            }
        };
        *shared
            .playback_stats
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(player.stats_view());
        run(&shared, &player, &ep, session_id, &done);
    })
}

fn run(shared: &Shared, player: &Player, ep: &Endpoint, session_id: u32, done: &AtomicBool) {
    let mut log = OnceLog::default();
    let mut failures = FailureLog::new("playback");
    while !done.load(Ordering::Acquire) && !shared.stop.load(Ordering::Acquire) {
        let err = serve(player, ep, session_id, done, &mut log);
        player.stop();
        if matches!(err, Error::Stopped) {
            break;
        }
        failures.failed(err);
        pause(RELINK_AFTER_ERROR, done);
    }
}

/// What one link has negotiated.
#[derive(Default)]
pub(super) struct Negotiated {
    /// Not raw: DATA is not played.
    mode_unplayable: bool,
    /// The format of the last valid START.
    format: Option<PcmFormat>,
}

fn serve(
    player: &Player,
    ep: &Endpoint,
    session_id: u32,
    done: &AtomicBool,
    log: &mut OnceLog,
) -> Error {
    let params = LinkParams {
        channel: ChannelType::Playback,
        channel_id: 0,
        connection_id: session_id,
        caps: playback::CLIENT_CAPS.to_vec(),
        max_body: PLAYBACK_MAX_BODY,
    };
    let mut chan = match Channel::open(&ep.target, &params, &ep.password, done) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let writer = chan.writer();
    let mut neg = Negotiated::default();
    let err = loop {
        let (kind, body) = match chan.next(done) {
            Ok(m) => m,
            Err(e) => break e,
        };
        match playback::parse(kind, &body) {
            Ok(msg) => apply(player, &mut neg, msg, log),
            Err(e) => log.warn("playback", e.to_string()),
        }
    };
    writer.shutdown();
    err
}

/// Applies one parsed message to the player (bad items are logged and dropped).
pub(super) fn apply(player: &Player, neg: &mut Negotiated, msg: PlaybackMsg, log: &mut OnceLog) {
    match msg {
        PlaybackMsg::Mode { mode: m, .. } => {
            neg.mode_unplayable = m != mode::RAW;
            if neg.mode_unplayable {
                log.warn("playback", format!("data mode {m} is not raw PCM"));
            }
        }
        PlaybackMsg::Start {
            channels,
            format,
            frequency,
            ..
        } => match PcmFormat::checked(channels, format, frequency) {
            Ok(f) => {
                neg.format = Some(f);
                player.start(f);
            }
            Err(e) => {
                neg.format = None;
                player.stop();
                log.warn("playback", e.to_string());
            }
        },
        PlaybackMsg::Data { pcm, .. } => match neg.format {
            _ if neg.mode_unplayable => {}
            None => log.warn("playback", "DATA before a valid START".into()),
            Some(f) => match playback::check_data(f, &pcm) {
                Ok(()) => player.push(&pcm),
                Err(e) => log.warn("playback", e.to_string()),
            },
        },
        PlaybackMsg::Stop => {
            neg.format = None;
            player.stop();
        }
        PlaybackMsg::Volume(v) => player.volume(v),
        PlaybackMsg::Mute(m) => player.mute(m),
        PlaybackMsg::Latency(_) | PlaybackMsg::Other(_) => {}
    }
}
