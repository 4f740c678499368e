//! The host side of SPICE audio: [`HostAudio`] opens the host's sound server (the real one is
//! [`super::pulse::PulseAudio`]), and [`Player`] sits between the playback channel and it. The channel thread
//! only pushes into the player's [`JitterBuffer`] and never waits on the sound server; the `spice-audio-out`
//! thread takes 10 ms at a time from the buffer and writes it (a write blocks at the sink's pace). At STOP the
//! queue plays out and the sound server's stream is drained before it is released, so the end of a sound is
//! heard. Without a sound server, or while it fails, the queued audio is dropped and an open is tried again
//! every [`REOPEN_AFTER`].
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::jitter::JitterBuffer;
use super::playback::PcmFormat;

/// Latency the jitter buffer drains toward (1 ms per 10 ms message while above it).
pub(crate) const TARGET_MS: u32 = 20;
/// Queued audio above which the buffer drops the oldest frames down to [`TARGET_MS`].
pub(crate) const MAX_MS: u32 = 60;
/// Queued audio needed to start (or restart after an underrun).
pub(crate) const PREFILL_MS: u32 = 10;
/// Audio written to the sound server per write.
pub(crate) const CHUNK_MS: u32 = 10;
/// Wait before trying a failed sound server again.
pub(crate) const REOPEN_AFTER: Duration = Duration::from_secs(5);

/// The host's sound server.
pub trait HostAudio: Send + Sync {
    /// Opens a playback stream in `format`.
    fn open_output(&self, format: PcmFormat) -> Result<Box<dyn PcmOutput>, String>;
    /// Opens a capture stream of the default source in `format`.
    fn open_input(&self, format: PcmFormat) -> Result<Box<dyn PcmInput>, String>;
}

/// An open playback stream (used only by the thread that opened it).
pub trait PcmOutput {
    /// Writes interleaved S16LE; blocks while the sound server's buffer is full.
    fn write(&mut self, pcm: &[u8]) -> Result<(), String>;
    /// Plays out what the sound server still holds, with a bounded wait, before the stream is released at
    /// STOP (releasing it at once cuts the last tens of ms of every sound).
    fn drain(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// An open capture stream.
pub trait PcmInput: Send {
    /// Fills `pcm` with interleaved S16LE; blocks until it is full.
    fn read(&mut self, pcm: &mut [u8]) -> Result<(), String>;
}

/// The guest's volume and mute, applied in software to the samples as they arrive (SPICE volume is 0..=65535
/// per channel; we scale linearly, so 65535 leaves samples untouched).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Gain {
    /// Per-channel volume; empty = full volume.
    pub volume: Vec<u16>,
    /// Muted: silence.
    pub mute: bool,
}

impl Gain {
    /// True when samples pass unchanged.
    pub(crate) fn is_unity(&self) -> bool {
        !self.mute && self.volume.iter().all(|&v| v == u16::MAX)
    }

    /// Applies the gain to interleaved S16LE frames of `channels` channels, in place.
    pub(crate) fn apply(&self, pcm: &mut [u8], channels: usize) {
        if self.mute {
            pcm.fill(0);
            return;
        }
        if self.is_unity() || channels == 0 {
            return;
        }
        for (i, s) in pcm.chunks_exact_mut(2).enumerate() {
            let v = i64::from(
                self.volume
                    .get(i % channels)
                    .or(self.volume.last())
                    .copied()
                    .unwrap_or(u16::MAX),
            );
            let x = i64::from(i16::from_le_bytes([s[0], s[1]]));
            s.copy_from_slice(&((x * v / 65535) as i16).to_le_bytes());
        }
    }
}

/// Counters for tests and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlayerStats {
    /// Frames handed to the sound server.
    pub played_frames: u64,
    /// Frames the jitter buffer dropped to stay under its bound, those a new START found still queued, and
    /// DATA after STOP.
    pub dropped_frames: u64,
    /// Frames dropped because no sound server was open.
    pub discarded_frames: u64,
}

struct PlayerState {
    buffer: Option<JitterBuffer>,
    gain: Gain,
    stats: PlayerStats,
    last_drop_log: Option<Instant>,
}

struct PlayerShared {
    state: Mutex<PlayerState>,
    wake: Condvar,
    quit: AtomicBool,
}

impl PlayerShared {
    fn state(&self) -> MutexGuard<'_, PlayerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Plays one playback channel's audio on the host; dropping it stops the output thread.
pub(crate) struct Player {
    shared: Arc<PlayerShared>,
    thread: Option<JoinHandle<()>>,
}

impl Player {
    /// Starts the output thread (the sound server is opened at the first START).
    pub(crate) fn new(host: Arc<dyn HostAudio>) -> std::io::Result<Self> {
        let shared = Arc::new(PlayerShared {
            state: Mutex::new(PlayerState {
                buffer: None,
                gain: Gain::default(),
                stats: PlayerStats::default(),
                last_drop_log: None,
            }),
            wake: Condvar::new(),
            quit: AtomicBool::new(false),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("spice-audio-out".into())
                .spawn(move || output(&shared, host.as_ref()))?
        };
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// The guest opened its device: a fresh buffer in `format` (what the previous stream still had queued is
    /// counted as dropped).
    pub(crate) fn start(&self, format: PcmFormat) {
        let mut st = self.shared.state();
        if let Some(old) = st.buffer.take() {
            st.stats.dropped_frames += (old.len() / old.format().frame_bytes()) as u64;
            if old.is_closed() {
                log_stopped(&st.stats);
            }
        }
        st.buffer = Some(JitterBuffer::new(format, TARGET_MS, MAX_MS, PREFILL_MS));
        drop(st);
        self.shared.wake.notify_all();
    }

    /// Queues audio with the guest's volume and mute as they are now (never blocks on the sound server).
    pub(crate) fn push(&self, pcm: &[u8]) {
        let mut st = self.shared.state();
        let st = &mut *st;
        let Some(buffer) = st.buffer.as_mut() else {
            return;
        };
        let pushed = if st.gain.is_unity() {
            buffer.push(pcm)
        } else {
            let mut scaled = pcm.to_vec();
            st.gain
                .apply(&mut scaled, usize::from(buffer.format().channels));
            buffer.push(&scaled)
        };
        if pushed.dropped_frames > 0 {
            st.stats.dropped_frames += pushed.dropped_frames as u64;
            if st
                .last_drop_log
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
            {
                st.last_drop_log = Some(Instant::now());
                tracing::info!(
                    "SPICE playback: more than {TARGET_MS} ms queued, skipped {} frames to drain toward it",
                    pushed.dropped_frames
                );
            }
        }
        self.shared.wake.notify_all();
    }

    /// The guest closed its device: what is still queued plays out, the sound server plays what it holds, and
    /// then its stream is released; the totals are logged once per stream when the last frame was handed over
    /// (a harness checks a real guest's playback against them).
    pub(crate) fn stop(&self) {
        if let Some(buffer) = self.shared.state().buffer.as_mut() {
            buffer.close();
        }
        self.shared.wake.notify_all();
    }

    /// A live view of the counters, for the session to read while this player runs and after.
    pub(crate) fn stats_view(&self) -> PlayerStatsView {
        PlayerStatsView(self.shared.clone())
    }

    /// The guest's volume.
    pub(crate) fn volume(&self, volume: Vec<u16>) {
        self.shared.state().gain.volume = volume;
    }

    /// The guest's mute.
    pub(crate) fn mute(&self, mute: bool) {
        self.shared.state().gain.mute = mute;
    }

    /// Bytes waiting in the jitter buffer.
    #[cfg(test)]
    pub(crate) fn queued_bytes(&self) -> usize {
        self.shared
            .state()
            .buffer
            .as_ref()
            .map_or(0, JitterBuffer::len)
    }
}

/// The counters of a [`Player`], readable from another thread (see [`Player::stats_view`]).
pub(crate) struct PlayerStatsView(Arc<PlayerShared>);

impl PlayerStatsView {
    /// The counters now.
    pub(crate) fn get(&self) -> PlayerStats {
        self.0.state().stats
    }
}

/// The once-per-stream totals line.
fn log_stopped(s: &PlayerStats) {
    tracing::info!(
        "SPICE playback: stream stopped; so far {} frames played, {} dropped by the jitter buffer (its drain \
         toward the target and its bound), {} discarded without a sound server",
        s.played_frames,
        s.dropped_frames,
        s.discarded_frames
    );
}

/// A closed stream has played out: its buffer goes, the totals are logged, and the output thread then drains
/// the sound server and releases it.
fn finish(st: &mut PlayerState) {
    st.buffer = None;
    log_stopped(&st.stats);
}

impl Drop for Player {
    fn drop(&mut self) {
        self.shared.quit.store(true, Ordering::Release);
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The `spice-audio-out` thread: opens the sound server at START (so the first audio does not wait for it),
/// then moves 10 ms at a time from the buffer to it.
fn output(shared: &PlayerShared, host: &dyn HostAudio) {
    let mut out: Option<(PcmFormat, Box<dyn PcmOutput>)> = None;
    let mut failed_at: Option<Instant> = None;
    let mut last_error = String::new();
    let mut chunk = Vec::new();
    while !shared.quit.load(Ordering::Acquire) {
        let format = {
            let st = shared.state();
            match st.buffer.as_ref() {
                Some(b) => b.format(),
                None => {
                    if let Some((_, mut o)) = out.take() {
                        // After STOP played out: the sound server plays what it holds, then its stream goes.
                        drop(st);
                        if let Err(e) = o.drain() {
                            tracing::debug!("SPICE playback: drain at STOP: {e}");
                        }
                        continue;
                    }
                    let _ = shared.wake.wait_timeout(st, Duration::from_millis(100));
                    continue;
                }
            }
        };
        if out.as_ref().is_none_or(|(f, _)| *f != format)
            && failed_at.is_none_or(|t| t.elapsed() >= REOPEN_AFTER)
        {
            out = None;
            match host.open_output(format) {
                Ok(o) => {
                    out = Some((format, o));
                    failed_at = None;
                    last_error.clear();
                }
                Err(e) => {
                    if e != last_error {
                        tracing::warn!(
                            "SPICE playback: cannot open the sound server ({e}); the guest's audio is dropped"
                        );
                        last_error = e;
                    }
                    failed_at = Some(Instant::now());
                }
            }
        }
        let mut st = shared.state();
        let Some(buffer) = st.buffer.as_mut().filter(|b| b.format() == format) else {
            continue;
        };
        let Some((_, o)) = out.as_mut().filter(|(f, _)| *f == format) else {
            // No sound server: drop what came, never let it pile up.
            let frames = (buffer.len() / format.frame_bytes()) as u64;
            buffer.clear();
            let closed = buffer.is_closed();
            st.stats.discarded_frames += frames;
            if closed {
                finish(&mut st);
                continue;
            }
            let _ = shared.wake.wait_timeout(st, Duration::from_millis(20));
            continue;
        };
        if buffer.pop(&mut chunk, format.bytes_for_ms(CHUNK_MS)) == 0 {
            if buffer.is_closed() {
                finish(&mut st);
                continue;
            }
            let _ = shared.wake.wait_timeout(st, Duration::from_millis(20));
            continue;
        }
        drop(st);
        let frames = (chunk.len() / format.frame_bytes()) as u64;
        match o.write(&chunk) {
            Ok(()) => shared.state().stats.played_frames += frames,
            Err(e) => {
                tracing::warn!("SPICE playback: the sound server failed ({e}); reopening");
                out = None;
                failed_at = Some(Instant::now());
                shared.state().stats.discarded_frames += frames;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a fake sound server was given: the bytes written, and the writes seen when each drain came.
    #[derive(Default)]
    struct Heard {
        bytes: Vec<u8>,
        drained_after: Vec<usize>,
    }

    struct FakeServer(Arc<Mutex<Heard>>);

    struct FakeOutput(Arc<Mutex<Heard>>);

    impl HostAudio for FakeServer {
        fn open_output(&self, _: PcmFormat) -> Result<Box<dyn PcmOutput>, String> {
            Ok(Box::new(FakeOutput(self.0.clone())))
        }
        fn open_input(&self, _: PcmFormat) -> Result<Box<dyn PcmInput>, String> {
            Err("no capture here".into())
        }
    }

    impl PcmOutput for FakeOutput {
        fn write(&mut self, pcm: &[u8]) -> Result<(), String> {
            self.0.lock().unwrap().bytes.extend_from_slice(pcm);
            Ok(())
        }
        fn drain(&mut self) -> Result<(), String> {
            let mut h = self.0.lock().unwrap();
            let n = h.bytes.len();
            h.drained_after.push(n);
            Ok(())
        }
    }

    #[test]
    fn stop_plays_out_the_queue_then_drains_the_sound_server_once() {
        let heard = Arc::new(Mutex::new(Heard::default()));
        let player = Player::new(Arc::new(FakeServer(heard.clone()))).unwrap();
        let stats = player.stats_view();
        let format = PcmFormat::checked(2, 1, 48_000).unwrap();
        player.start(format);
        // 5 ms: under the 10 ms prefill, so nothing plays until STOP.
        let pcm: Vec<u8> = (0..960u32).map(|i| i as u8).collect();
        player.push(&pcm);
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            heard.lock().unwrap().bytes.is_empty(),
            "waits for the prefill"
        );
        player.stop();
        let end = Instant::now() + Duration::from_secs(5);
        while heard.lock().unwrap().drained_after.is_empty() {
            assert!(Instant::now() < end, "no drain after STOP");
            std::thread::sleep(Duration::from_millis(5));
        }
        let h = heard.lock().unwrap();
        assert_eq!(h.bytes, pcm, "the queue left at STOP is played");
        assert_eq!(h.drained_after, [960], "one drain, after the last write");
        assert_eq!(
            stats.get(),
            PlayerStats {
                played_frames: 240,
                dropped_frames: 0,
                discarded_frames: 0
            }
        );
    }

    #[test]
    fn gain_full_is_exact_mute_is_silence_half_halves() {
        let pcm: Vec<u8> = [1000i16, -1000, 32767, -32768]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let mut p = pcm.clone();
        Gain {
            volume: vec![65535, 65535],
            mute: false,
        }
        .apply(&mut p, 2);
        assert_eq!(p, pcm);
        let mut p = pcm.clone();
        Gain {
            volume: vec![32768, 0],
            mute: false,
        }
        .apply(&mut p, 2);
        assert_eq!(&p[..2], &500i16.to_le_bytes());
        assert_eq!(&p[2..4], &0i16.to_le_bytes());
        let mut p = pcm.clone();
        Gain {
            volume: vec![],
            mute: true,
        }
        .apply(&mut p, 2);
        assert!(p.iter().all(|&b| b == 0));
    }
}
