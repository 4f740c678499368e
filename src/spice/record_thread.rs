//! The `spice-record` thread (only with `--mic`): links the record channel (raw PCM only, VOLUME cap). At the
//! guest's START it starts a `spice-mic` thread that captures the host's default source in the guest's
//! format and sends it as MODE(raw), START_MARK, then DATA of 10 ms each; STOP ends it. The guest's volume and
//! mute for its input are applied to what we send. Bad input is one log line and dropped, as on playback.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use super::audio_sink::{CHUNK_MS, Gain, HostAudio};
use super::channel::{Channel, LinkParams, Writer};
use super::error::Error;
use super::link::ChannelType;
use super::playback::PcmFormat;
use super::playback_thread::OnceLog;
use super::record::{self, RecordMsg, client};
use super::relink::{FailureLog, RELINK_AFTER_ERROR, pause, spawn_channel_thread};
use super::session::{Endpoint, Shared, chain};

/// Largest record channel message (the server sends only small control messages).
pub(super) const RECORD_MAX_BODY: u32 = 4096;

/// Starts the record thread; it relinks on its own until `done` is set.
pub(super) fn spawn(
    shared: Arc<Shared>,
    host: Arc<dyn HostAudio>,
    ep: Endpoint,
    session_id: u32,
    done: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, Error> {
    spawn_channel_thread("record", move || {
        run(&shared, &host, &ep, session_id, &done)
    })
}

fn run(
    shared: &Shared,
    host: &Arc<dyn HostAudio>,
    ep: &Endpoint,
    session_id: u32,
    done: &AtomicBool,
) {
    let mut log = OnceLog::default();
    let mut failures = FailureLog::new("record");
    while !done.load(Ordering::Acquire) && !shared.stop.load(Ordering::Acquire) {
        let err = serve(host, ep, session_id, done, &mut log);
        if matches!(err, Error::Stopped) {
            break;
        }
        failures.failed(err);
        pause(RELINK_AFTER_ERROR, done);
    }
}

fn serve(
    host: &Arc<dyn HostAudio>,
    ep: &Endpoint,
    session_id: u32,
    done: &AtomicBool,
    log: &mut OnceLog,
) -> Error {
    let params = LinkParams {
        channel: ChannelType::Record,
        channel_id: 0,
        connection_id: session_id,
        caps: record::CLIENT_CAPS.to_vec(),
        max_body: RECORD_MAX_BODY,
    };
    let mut chan = match Channel::open(&ep.target, &params, &ep.password, done) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let writer = chan.writer();
    let gain = Arc::new(Mutex::new(Gain::default()));
    let mut capture: Option<Capture> = None;
    let err = loop {
        let (kind, body) = match chan.next(done) {
            Ok(m) => m,
            Err(e) => break e,
        };
        match record::parse(kind, &body) {
            Ok(RecordMsg::Start {
                channels,
                format,
                frequency,
            }) => {
                capture = None;
                match PcmFormat::checked(channels, format, frequency) {
                    Ok(f) => match Capture::start(host.clone(), f, writer.clone(), gain.clone()) {
                        Ok(c) => capture = Some(c),
                        Err(e) => log.warn("record", format!("cannot start capturing: {e}")),
                    },
                    Err(e) => log.warn("record", e.to_string()),
                }
            }
            Ok(RecordMsg::Stop) => capture = None,
            Ok(RecordMsg::Volume(v)) => lock(&gain).volume = v,
            Ok(RecordMsg::Mute(m)) => lock(&gain).mute = m,
            Ok(RecordMsg::Other(_)) => {}
            Err(e) => log.warn("record", e.to_string()),
        }
    };
    drop(capture);
    writer.shutdown();
    err
}

fn lock(g: &Mutex<Gain>) -> MutexGuard<'_, Gain> {
    g.lock().unwrap_or_else(|e| e.into_inner())
}

/// One capture, from the guest's START to its STOP (dropping it stops the `spice-mic` thread).
struct Capture {
    quit: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    fn start(
        host: Arc<dyn HostAudio>,
        format: PcmFormat,
        writer: Writer,
        gain: Arc<Mutex<Gain>>,
    ) -> std::io::Result<Self> {
        let quit = Arc::new(AtomicBool::new(false));
        let thread = {
            let quit = quit.clone();
            std::thread::Builder::new()
                .name("spice-mic".into())
                .spawn(move || capture(host.as_ref(), format, &writer, &gain, &quit))?
        };
        Ok(Self {
            quit,
            thread: Some(thread),
        })
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The `spice-mic` thread: the host's default source → record DATA.
fn capture(
    host: &dyn HostAudio,
    format: PcmFormat,
    writer: &Writer,
    gain: &Mutex<Gain>,
    quit: &AtomicBool,
) {
    let mut input = match host.open_input(format) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(
                "SPICE record: cannot open the host's microphone ({e}); the guest hears silence"
            );
            return;
        }
    };
    let started = Instant::now();
    let time = || started.elapsed().as_millis() as u32;
    let (m, b) = client::mode_raw(time());
    let (s, sb) = client::start_mark(time());
    if let Err(e) = writer.send_all(&[(m, b), (s, sb)]) {
        tracing::debug!("SPICE record: {}", chain(e));
        return;
    }
    let mut pcm = vec![0u8; format.bytes_for_ms(CHUNK_MS)];
    while !quit.load(Ordering::Acquire) {
        if let Err(e) = input.read(&mut pcm) {
            tracing::warn!("SPICE record: the host's microphone failed ({e}); capture stopped");
            return;
        }
        lock(gain).apply(&mut pcm, usize::from(format.channels));
        let (k, body) = client::data(time(), &pcm);
        if let Err(e) = writer.send(k, &body) {
            tracing::debug!("SPICE record: {}", chain(e));
            return;
        }
    }
}
