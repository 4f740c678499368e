//! SPICE audio against a scripted server. Without a sound server (always run): hostile playback messages (START
//! with 0 channels or 10 MHz, DATA larger than negotiated, lying sizes) cost one log line each, never the
//! session or the playback link. With a real sound server this test starts as a private instance
//! (`sound_server.rs`: PulseAudio, or PipeWire with pipewire-pulse when `VMGPU_SOUND_SERVER=pipewire`; null sinks,
//! a private socket; ignored, run by tests/harness/42-audio-pulse.sh for both): a 1 kHz sine with a counter
//! channel and a marker click comes out of the sink's monitor (`parec`) bit-exact and in order, nothing
//! repeated, every loss covered by the jitter buffer's count or as much silence, muted when the guest mutes;
//! the marker's arrival gives the added latency (printed, never asserted); and a tone played into a null sink
//! whose monitor is the default source reaches the scripted server on the record channel with `--mic`.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::sound_server::SoundServer;
use super::spice_display_fake::read_msg;
use super::spice_fake::{accept_link, init, msg, serve, wait_for};
use vmgpu::spice::{AudioConfig, Endpoint, PulseAudio, Session, Status, Target};

const RATE: u32 = 48_000;
/// Frames per DATA (10 ms, as the server sends).
const FRAMES: usize = 480;

/// A client message: (type, body).
type Message = (u16, Vec<u8>);

/// A script for the playback (kind 5) or record (kind 6) link.
type AudioScript = dyn Fn(&mut TcpStream) + Send + Sync;

/// Main (INIT, CHANNELS_LIST: inputs, playback, record), inputs (silent), and the audio links handed to the
/// scripts. Returns the port and the number of main and playback links.
fn serve_audio(
    playback: Arc<AudioScript>,
    record: Arc<AudioScript>,
) -> (u16, Arc<AtomicU32>, Arc<AtomicU32>) {
    let mains = Arc::new(AtomicU32::new(0));
    let playbacks = Arc::new(AtomicU32::new(0));
    let (m, p) = (mains.clone(), playbacks.clone());
    let (port, _) = serve(move |mut s| {
        let Ok(kind) = accept_link(&mut s, 0x0a) else {
            return;
        };
        // Quiet main and inputs channels are normal (no 20 s limit: a long playback run would end the session).
        let _ = s.set_read_timeout(None);
        match kind {
            1 => {
                m.fetch_add(1, Ordering::SeqCst);
                let _ = s.write_all(&init(0x55, 3, 2));
                while let Ok((k, _)) = read_msg(&mut s) {
                    if k == 104 {
                        let _ = s.write_all(&msg(104, &[3, 0, 0, 0, 3, 0, 5, 0, 6, 0]));
                    }
                }
            }
            5 => {
                p.fetch_add(1, Ordering::SeqCst);
                playback(&mut s);
            }
            6 => record(&mut s),
            _ => while read_msg(&mut s).is_ok() {},
        }
    });
    (port, mains, playbacks)
}

fn audio_session(port: u16, server: &str, playback: bool, mic: bool) -> Session {
    let ep = Endpoint {
        target: Target::Tcp {
            host: "127.0.0.1".into(),
            port,
        },
        password: Vec::new(),
    };
    let audio = AudioConfig {
        host: Arc::new(PulseAudio {
            server: Some(server.to_string()),
        }),
        playback,
        mic,
    };
    Session::start_with(
        Box::new(move || Ok(ep.clone())),
        Arc::new(|| {}),
        None,
        Some(audio),
    )
    .unwrap()
}

fn start(channels: u32, rate: u32) -> Vec<u8> {
    let mut b = channels.to_le_bytes().to_vec();
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    msg(103, &b)
}

fn data(pcm: &[u8]) -> Vec<u8> {
    let mut b = 0u32.to_le_bytes().to_vec();
    b.extend_from_slice(pcm);
    msg(101, &b)
}

/// Frame `n` of the test signal: left a 1 kHz sine (a full-scale click for 48 frames at `marker`), right a
/// counter 1..=32000 (never 0, so silence is told apart).
fn frame(n: usize, marker: usize) -> (i16, i16) {
    let left = if (marker..marker + 48).contains(&n) {
        30_000
    } else {
        (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / f64::from(RATE)).sin()).round()
            as i16
    };
    (left, (n % 32_000 + 1) as i16)
}

/// MODE raw, VOLUME full on 2 channels, START 2×48 kHz: how a playback link begins.
fn playback_head() -> Vec<u8> {
    let mut head = msg(102, &[0, 0, 0, 0, 1, 0]);
    head.extend(msg(105, &[2, 0xff, 0xff, 0xff, 0xff]));
    head.extend(start(2, RATE));
    head
}

/// Sleeps until DATA `k` is due, 10 ms apart from `t0` (a real server's pace).
fn pace(t0: Instant, k: usize) {
    let due = t0 + Duration::from_millis(10 * k as u64);
    if let Some(wait) = due.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
}

/// The end of a playback script: STOP, mark it done, then read until the client goes.
fn stop_and_wait(s: &mut TcpStream, done: &AtomicU32) {
    s.write_all(&msg(104, &[])).unwrap();
    done.store(1, Ordering::SeqCst);
    while read_msg(s).is_ok() {}
}

/// A playback session on `server` that has run the script to its STOP (within `secs`).
fn play_until_done(port: u16, server: &str, done: &AtomicU32, secs: u64) -> Session {
    let session = audio_session(port, server, true, false);
    wait_for(&session, "connected", |s| *s == Status::Connected);
    let end = Instant::now() + Duration::from_secs(secs);
    while done.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < end, "the script did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    session
}

fn pcm(first: usize, frames: usize, marker: usize) -> Vec<u8> {
    (first..first + frames)
        .flat_map(|n| {
            let (l, r) = frame(n, marker);
            [l.to_le_bytes(), r.to_le_bytes()].concat()
        })
        .collect()
}

#[test]
fn spice_audio_hostile_playback_keeps_the_session() {
    let (port, mains, playbacks) = serve_audio(
        Arc::new(|s: &mut TcpStream| {
            let mut out = data(&[0; 1920]); // DATA before START
            out.extend(start(0, RATE));
            out.extend(start(2, 10_000_000));
            out.extend(start(2, RATE));
            out.extend(data(&vec![0; 48_000 * 4])); // 1 s: larger than negotiated
            out.extend(data(&[0; 1921])); // a partial frame
            out.extend(msg(105, &[200, 1, 0])); // VOLUME: 200 channels announced, 1 present
            out.extend(msg(103, &[2, 0])); // a START cut short
            out.extend(msg(106, &[])); // MUTE without its byte
            out.extend(data(&[0; 1920])); // a good one
            out.extend(msg(104, &[]));
            let _ = s.write_all(&out);
            while read_msg(s).is_ok() {}
        }),
        Arc::new(|s: &mut TcpStream| while read_msg(s).is_ok() {}),
    );
    // No sound server at this address: audio is dropped, nothing else changes.
    let session = audio_session(port, "unix:/nonexistent/vmgpu-test", true, false);
    wait_for(&session, "connected", |s| *s == Status::Connected);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(session.state().status, Status::Connected);
    assert_eq!(
        mains.load(Ordering::SeqCst),
        1,
        "the session was never redone"
    );
    assert_eq!(
        playbacks.load(Ordering::SeqCst),
        1,
        "bad items are dropped, the link stays"
    );
}

#[test]
fn spice_audio_oversized_body_relinks_playback_only() {
    // A DATA header announcing 64 MiB (over the channel's fixed cap, refused before any allocation), and a
    // record START with 0 channels: the playback channel is relinked, the session stays, nothing is captured.
    let record_msgs = Arc::new(AtomicU32::new(u32::MAX));
    let rm = record_msgs.clone();
    let (port, mains, playbacks) = serve_audio(
        Arc::new(|s: &mut TcpStream| {
            let mut out = start(2, RATE);
            out.extend_from_slice(&101u16.to_le_bytes());
            out.extend_from_slice(&(64u32 << 20).to_le_bytes());
            let _ = s.write_all(&out);
            while read_msg(s).is_ok() {}
        }),
        Arc::new(move |s: &mut TcpStream| {
            let mut b = 0u32.to_le_bytes().to_vec();
            b.extend_from_slice(&1u16.to_le_bytes());
            b.extend_from_slice(&RATE.to_le_bytes());
            let _ = s.write_all(&msg(101, &b));
            let _ = s.set_read_timeout(Some(Duration::from_millis(1500)));
            let mut n = 0;
            while read_msg(s).is_ok() {
                n += 1;
            }
            rm.store(n, Ordering::SeqCst);
        }),
    );
    let session = audio_session(port, "unix:/nonexistent/vmgpu-test", true, true);
    wait_for(&session, "connected", |s| *s == Status::Connected);
    let end = Instant::now() + Duration::from_secs(10);
    while playbacks.load(Ordering::SeqCst) < 2 {
        assert!(
            Instant::now() < end,
            "the playback channel was not relinked"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(session.state().status, Status::Connected);
    assert_eq!(
        mains.load(Ordering::SeqCst),
        1,
        "the session was never redone"
    );
    while record_msgs.load(Ordering::SeqCst) == u32::MAX {
        assert!(Instant::now() < end, "the record script did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        record_msgs.load(Ordering::SeqCst),
        0,
        "no capture for a START with 0 channels"
    );
}

#[test]
fn spice_audio_channels_linked_only_when_asked() {
    let records = Arc::new(AtomicU32::new(0));
    let r = records.clone();
    let (port, _, playbacks) = serve_audio(
        Arc::new(|s: &mut TcpStream| while read_msg(s).is_ok() {}),
        Arc::new(move |s: &mut TcpStream| {
            r.fetch_add(1, Ordering::SeqCst);
            while read_msg(s).is_ok() {}
        }),
    );
    let session = audio_session(port, "unix:/nonexistent/vmgpu-test", false, false);
    wait_for(&session, "connected", |s| *s == Status::Connected);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(playbacks.load(Ordering::SeqCst), 0, "--no-audio");
    assert_eq!(records.load(Ordering::SeqCst), 0, "no --mic");
    drop(session);
    let session = audio_session(port, "unix:/nonexistent/vmgpu-test", true, true);
    wait_for(&session, "connected", |s| *s == Status::Connected);
    let end = Instant::now() + Duration::from_secs(10);
    while playbacks.load(Ordering::SeqCst) == 0 || records.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < end, "playback and record are linked");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `parec` of the `out` sink's monitor: the bytes and, per read, (when, bytes so far).
struct Recording {
    child: Child,
    bytes: Arc<Mutex<Vec<u8>>>,
    reads: Arc<Mutex<Vec<(Instant, usize)>>>,
}

impl Recording {
    fn start(pulse: &SoundServer) -> Self {
        let mut child = pulse
            .tool("parec", "out.monitor")
            .stdout(Stdio::piped())
            .spawn()
            .expect("parec (pulseaudio-utils)");
        let mut out = child.stdout.take().unwrap();
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let reads = Arc::new(Mutex::new(Vec::new()));
        let (b, r) = (bytes.clone(), reads.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let now = Instant::now();
                let mut b = b.lock().unwrap();
                b.extend_from_slice(&buf[..n]);
                r.lock().unwrap().push((now, b.len()));
            }
        });
        let end = Instant::now() + Duration::from_secs(15);
        while reads.lock().unwrap().is_empty() {
            assert!(Instant::now() < end, "parec records nothing");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            bytes,
            reads,
        }
    }

    fn frames(&self) -> Vec<(i16, i16)> {
        self.bytes
            .lock()
            .unwrap()
            .chunks_exact(4)
            .map(|f| {
                (
                    i16::from_le_bytes([f[0], f[1]]),
                    i16::from_le_bytes([f[2], f[3]]),
                )
            })
            .collect()
    }

    /// When the read holding frame `index` arrived.
    fn arrival(&self, index: usize) -> Option<Instant> {
        let byte = index * 4;
        self.reads
            .lock()
            .unwrap()
            .iter()
            .find(|(_, len)| *len > byte)
            .map(|(t, _)| *t)
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Zero crossings (sign changes) per second of `samples` at 48 kHz, halved: the frequency of a sine.
fn frequency(samples: &[i16]) -> f64 {
    let crossings = samples
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    crossings as f64 / 2.0 / (samples.len() as f64 / f64::from(RATE))
}

/// DATA messages sent before MUTE: 3 s, or `VMGPU_AUDIO_SECONDS` (a longer run shows the latency's drift).
fn sent_count() -> usize {
    let secs = std::env::var("VMGPU_AUDIO_SECONDS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(3);
    secs.clamp(3, 1200) * 100
}

/// Then MUTE and this many more (muted).
const MUTED: usize = 20;
const MARKER_MSG: usize = 150;

#[test]
#[ignore = "needs a sound server (pulseaudio or pipewire) and parec: tests/harness/42-audio-pulse.sh"]
fn audio_pulse_sine_is_played_exactly() {
    let sent_n = sent_count();
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let pulse = SoundServer::start();
    let recording = Recording::start(&pulse);
    let sent: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let done = Arc::new(AtomicU32::new(0));
    let (sm, d) = (sent.clone(), done.clone());
    let marker = MARKER_MSG * FRAMES;
    let (port, _, _) = serve_audio(
        Arc::new(move |s: &mut TcpStream| {
            let _ = s.set_nodelay(true);
            s.write_all(&playback_head()).unwrap();
            // The player opens the sound server at START; the guest's first audio follows a little later.
            std::thread::sleep(Duration::from_millis(300));
            let t0 = Instant::now();
            for k in 0..sent_n + MUTED {
                pace(t0, k);
                if k == sent_n {
                    s.write_all(&msg(106, &[1])).unwrap();
                }
                s.write_all(&data(&pcm(k * FRAMES, FRAMES, marker)))
                    .unwrap();
                sm.lock().unwrap().push(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(300));
            stop_and_wait(s, &d);
        }),
        Arc::new(|s: &mut TcpStream| while read_msg(s).is_ok() {}),
    );
    let session = play_until_done(port, &pulse.server, &done, 30 + sent_n as u64 / 100);
    std::thread::sleep(Duration::from_millis(300));
    let frames = recording.frames();
    // Our audio: every frame whose counter channel is not 0 (silence and underruns are 0).
    let ours: Vec<(usize, (i16, i16))> = frames
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, (_, r))| *r != 0)
        .collect();
    let stats = session.playback_stats();
    drop(session);
    // Every frame once, in order: a step in the counter channel may only skip forward, never repeat or go back.
    let mut skipped = 0usize;
    let mut skips = Vec::new();
    for (k, w) in ours.windows(2).enumerate() {
        let (before, after) = (w[0].1.1 as usize - 1, w[1].1.1 as usize - 1);
        let step = (after + 32_000 - before) % 32_000;
        assert!(step >= 1, "frame after our frame {k} repeated");
        if step > 1 {
            skipped += step - 1;
            skips.push((k, step - 1, w[1].0 - w[0].0 - 1));
        }
    }
    // The monitor does not see the sink's rewinds: a span that was rendered as silence and then rewritten (the
    // stream's first frames, audio that came late after an underrun) shows as silence there, and the audio
    // rewritten over it is missing from the recording (a real device plays it).
    let lead = ours.first().map_or(0, |o| o.1.1 as usize - 1);
    let played = lead + ours.len() + skipped;
    eprintln!(
        "recorded {} frames: {} of ours (counters {:?} to {:?}), {skipped} skipped at {skips:?}; player: {stats:?}",
        frames.len(),
        ours.len(),
        ours.first().map(|o| o.1.1),
        ours.last().map(|o| o.1.1)
    );
    assert!(
        lead <= ours[0].0,
        "{lead} first frames lost without silence before them"
    );
    // Every lost frame is accounted for: by the jitter buffer's count of dropped frames (its drain toward the
    // target and its bound), or by as much silence in its place (a sound server underrun while our writer was
    // starved). (The player's count also holds drops in the muted tail, which the recording cannot show.)
    let silence: usize = skips.iter().map(|s| s.2).sum();
    assert!(
        skipped as u64 <= stats.dropped_frames + silence as u64,
        "{skipped} frames lost: more than the jitter buffer's {} drops and {silence} frames of silence",
        stats.dropped_frames
    );
    assert_eq!(
        played,
        sent_n * FRAMES,
        "every frame before MUTE played or dropped, the muted ones silent"
    );
    // Exact samples: rebuild each frame's index from the counter and the skips.
    let mut n = lead;
    let mut skip = skips.iter().peekable();
    let mut recorded_at = vec![None; sent_n * FRAMES];
    let mut after_marker = Vec::new();
    for (k, (at, got)) in ours.iter().enumerate() {
        assert_eq!(
            *got,
            frame(n, marker),
            "our frame {k} (signal frame {n}) changed"
        );
        recorded_at[n] = Some(*at);
        if n >= marker + 48 {
            after_marker.push(got.0);
        }
        n += 1;
        if let Some((_, extra, _)) = skip.next_if(|(at, _, _)| *at == k) {
            n += extra;
        }
    }
    let f = frequency(&after_marker);
    assert!((f - 1000.0).abs() < 5.0, "frequency {f} Hz");
    report_latency(
        &pulse.kind,
        &recording,
        &recorded_at,
        &sent.lock().unwrap(),
        marker,
    );
}

/// Prints the added latency (measured, never asserted): DATA written by the server → its first frame read from
/// the sink's monitor, for the marker and for every DATA (median, 95th percentile, drift first → last second).
fn report_latency(
    server: &str,
    recording: &Recording,
    recorded_at: &[Option<usize>],
    sent: &[Instant],
    marker: usize,
) {
    // The first frame of DATA k that was recorded (a frame lost to a skip is replaced by the next, minus its
    // offset in the message).
    let ms = |k: usize| {
        let (j, at) = (0..FRAMES).find_map(|j| Some((j, recorded_at[k * FRAMES + j]?)))?;
        let arrived = recording.arrival(at)?;
        let offset = j as f64 * 1000.0 / f64::from(RATE);
        Some(arrived.saturating_duration_since(sent[k]).as_secs_f64() * 1000.0 - offset)
    };
    let Some(click) = ms(marker / FRAMES) else {
        return;
    };
    let mut all: Vec<f64> = (0..(recorded_at.len() / FRAMES).min(sent.len()))
        .filter_map(ms)
        .collect();
    if all.len() < 200 {
        return;
    }
    let first: f64 = all[..100].iter().sum::<f64>() / 100.0;
    let last: f64 = all[all.len() - 100..].iter().sum::<f64>() / 100.0;
    all.sort_by(f64::total_cmp);
    let line = format!(
        "{server}: audio latency, DATA sent → read from the sink's monitor: marker click {click:.1} ms; every DATA: median \
         {:.1} ms, p95 {:.1} ms, max {:.1} ms; mean of the first second {first:.1} ms, of the last {last:.1} ms",
        all[all.len() / 2],
        all[all.len() * 95 / 100],
        all[all.len() - 1]
    );
    eprintln!("{line}");
    if let Ok(path) = std::env::var("VMGPU_AUDIO_LATENCY_OUT") {
        // Appended: the harness runs one server after the other.
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        writeln!(f, "{line}").unwrap();
    }
}

/// DATA messages of the short sound in the STOP test (half a second).
const SHORT: usize = 50;

#[test]
#[ignore = "needs a sound server (pulseaudio or pipewire) and parec: tests/harness/42-audio-pulse.sh"]
fn audio_pulse_stop_plays_out_what_the_sound_server_holds() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let pulse = SoundServer::start();
    let recording = Recording::start(&pulse);
    let done = Arc::new(AtomicU32::new(0));
    let d = done.clone();
    let (port, _, _) = serve_audio(
        Arc::new(move |s: &mut TcpStream| {
            let _ = s.set_nodelay(true);
            s.write_all(&playback_head()).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            let t0 = Instant::now();
            for k in 0..SHORT {
                pace(t0, k);
                s.write_all(&data(&pcm(k * FRAMES, FRAMES, usize::MAX / 2)))
                    .unwrap();
            }
            // STOP right behind the last DATA, as a guest closing its device at the end of a sound.
            stop_and_wait(s, &d);
        }),
        Arc::new(|s: &mut TcpStream| while read_msg(s).is_ok() {}),
    );
    let session = play_until_done(port, &pulse.server, &done, 30);
    std::thread::sleep(Duration::from_millis(600));
    let stats = session.playback_stats();
    let ours: Vec<(usize, u16)> = recording
        .frames()
        .iter()
        .enumerate()
        .filter(|(_, (_, r))| *r != 0)
        .map(|(at, (_, r))| (at, *r as u16))
        .collect();
    drop(session);
    assert!(!ours.is_empty(), "nothing of the sound was heard");
    // The counter of the last frame heard: it must be that of the last frame the player handed to the sound
    // server. The queue left at STOP plays out, then the sound server plays what it holds before its stream is
    // released (releasing it at once cut up to its 20 ms of latency; dropping the queue cut 10–20 ms more).
    let last = u64::from(ours[ours.len() - 1].1);
    eprintln!(
        "short sound: {} frames sent, {} heard (counters {} to {last}); player: {stats:?}",
        SHORT * FRAMES,
        ours.len(),
        ours[0].1
    );
    assert_eq!(
        stats.played_frames + stats.dropped_frames,
        (SHORT * FRAMES) as u64,
        "every frame played or counted as dropped"
    );
    assert!(
        last + 96 >= stats.played_frames,
        "the sound's end was cut at STOP: the player handed over {} frames, the sink played up to frame {last}",
        stats.played_frames
    );
}

#[test]
#[ignore = "needs a sound server (pulseaudio or pipewire) and pacat: tests/harness/42-audio-pulse.sh"]
fn audio_pulse_mic_reaches_the_server() {
    let pulse = SoundServer::start();
    // A 1 kHz tone into the `mic` sink, whose monitor is the default source.
    let mut player = pulse
        .tool("pacat", "mic")
        .stdin(Stdio::piped())
        .spawn()
        .expect("pacat (pulseaudio-utils)");
    // The tone is playing before the guest starts capturing.
    std::thread::sleep(Duration::from_secs(1));
    let mut stdin = player.stdin.take().unwrap();
    std::thread::spawn(move || {
        let tone = pcm(0, RATE as usize, usize::MAX - 48);
        for _ in 0..20 {
            if stdin.write_all(&tone).is_err() {
                break;
            }
        }
    });
    let received: Arc<Mutex<Vec<Message>>> = Arc::default();
    let after_stop = Arc::new(AtomicU32::new(0));
    let (rc, stop_count) = (received.clone(), after_stop.clone());
    let (port, _, _) = serve_audio(
        Arc::new(|s: &mut TcpStream| while read_msg(s).is_ok() {}),
        Arc::new(move |s: &mut TcpStream| {
            let mut b = 2u32.to_le_bytes().to_vec();
            b.extend_from_slice(&1u16.to_le_bytes());
            b.extend_from_slice(&RATE.to_le_bytes());
            s.write_all(&msg(101, &b)).unwrap();
            let end = Instant::now() + Duration::from_secs(20);
            let mut data_bytes = 0;
            while data_bytes < RATE as usize * 4 * 3 && Instant::now() < end {
                let Ok(m) = read_msg(s) else { return };
                if m.0 == 101 {
                    data_bytes += m.1.len() - 4;
                }
                rc.lock().unwrap().push(m);
            }
            s.write_all(&msg(102, &[])).unwrap();
            let _ = s.set_read_timeout(Some(Duration::from_millis(700)));
            while read_msg(s).is_ok() {
                stop_count.fetch_add(1, Ordering::SeqCst);
            }
            stop_count.fetch_add(1000, Ordering::SeqCst);
        }),
    );
    let session = audio_session(port, &pulse.server, false, true);
    wait_for(&session, "connected", |s| *s == Status::Connected);
    let end = Instant::now() + Duration::from_secs(30);
    while after_stop.load(Ordering::SeqCst) < 1000 {
        assert!(Instant::now() < end, "the record script did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(session);
    let _ = player.kill();
    let _ = player.wait();
    let got = received.lock().unwrap();
    assert_eq!(got[0].0, 102, "MODE first");
    assert_eq!(&got[0].1[4..], &[1, 0], "raw PCM");
    assert_eq!(got[1].0, 103, "START_MARK");
    let pcm: Vec<u8> = got[2..]
        .iter()
        .inspect(|(k, _)| assert_eq!(*k, 101))
        .flat_map(|(_, b)| b[4..].to_vec())
        .collect();
    // The tone's frames (its counter channel is never 0; a capture gap on a starved host is silence).
    let lefts: Vec<i16> = pcm
        .chunks_exact(4)
        .filter(|f| f[2] != 0 || f[3] != 0)
        .map(|f| i16::from_le_bytes([f[0], f[1]]))
        .collect();
    assert!(
        lefts.len() > RATE as usize,
        "{} tone frames received",
        lefts.len()
    );
    let f = frequency(&lefts);
    assert!((f - 1000.0).abs() < 20.0, "frequency {f} Hz");
    assert!(
        after_stop.load(Ordering::SeqCst) - 1000 <= 5,
        "DATA stops after STOP"
    );
}
