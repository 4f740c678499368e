//! [`HostAudio`] on the desktop's sound server through libpulse: the PulseAudio native protocol, which
//! PulseAudio speaks and PipeWire speaks through pipewire-pulse, so one client covers both. The viewer runs as
//! the desktop user, so libpulse finds that user's server the usual way (`PULSE_SERVER`,
//! `$XDG_RUNTIME_DIR/pulse/native`); tests name a server explicitly. A sound server is never spawned.
//!
//! Playback is a stream on a mainloop of its own, driven by the `spice-audio-out` thread that owns it: the
//! latency we want needs `ADJUST_LATENCY` (without it the server picks the sink's largest latency, two seconds
//! on a null sink), which libpulse's simple API cannot set. Capture uses the simple API
//! (`libpulse-simple-binding`), a blocking read.
use libpulse_binding::context::{self, Context};
use libpulse_binding::def::BufferAttr;
use libpulse_binding::error::PAErr;
use libpulse_binding::mainloop::standard::{IterateResult, Mainloop};
use libpulse_binding::operation;
use libpulse_binding::sample::{Format, Spec};
use libpulse_binding::stream::{self, Direction, SeekMode, Stream};
use libpulse_simple_binding::Simple;

use super::audio_sink::{HostAudio, PcmInput, PcmOutput};
use super::playback::PcmFormat;

/// Overall playback latency we ask for (`ADJUST_LATENCY`; the sound server may round it up).
pub(crate) const PLAYBACK_LATENCY_MS: u32 = 20;
/// How long a drain may take beyond the latency we asked for before the stream is released anyway (a sink
/// that stopped consuming must not hold the output thread).
const DRAIN_GRACE_MS: u64 = 250;
/// Capture fragment we ask for.
pub(crate) const CAPTURE_FRAGMENT_MS: u32 = 10;

/// The sound server (`server`: `None` for the user's default).
#[derive(Debug, Clone, Default)]
pub struct PulseAudio {
    /// A server address such as `unix:/run/user/1000/pulse/native`; `None`: libpulse's default.
    pub server: Option<String>,
}

impl PulseAudio {
    fn server(&self) -> Option<&str> {
        self.server.as_deref().filter(|s| !s.contains('\0'))
    }
}

/// The libpulse sample spec of `format`, if libpulse takes it.
fn spec(format: PcmFormat) -> Result<Spec, String> {
    let spec = Spec {
        format: Format::S16le,
        rate: format.rate,
        channels: format.channels,
    };
    if spec.is_valid() {
        Ok(spec)
    } else {
        Err(format!("the sound server cannot take {format:?}"))
    }
}

fn describe(e: PAErr) -> String {
    format!("{e}")
}

impl HostAudio for PulseAudio {
    fn open_output(&self, format: PcmFormat) -> Result<Box<dyn PcmOutput>, String> {
        Ok(Box::new(PulseOutput::open(self.server(), format)?))
    }

    fn open_input(&self, format: PcmFormat) -> Result<Box<dyn PcmInput>, String> {
        let attr = BufferAttr {
            maxlength: u32::MAX,
            tlength: u32::MAX,
            prebuf: u32::MAX,
            minreq: u32::MAX,
            fragsize: format.bytes_for_ms(CAPTURE_FRAGMENT_MS) as u32,
        };
        let simple = Simple::new(
            self.server(),
            "vmgpu",
            Direction::Record,
            None,
            "microphone",
            &spec(format)?,
            None,
            Some(&attr),
        )
        .map_err(describe)?;
        Ok(Box::new(PulseInput(simple)))
    }
}

struct PulseInput(Simple);

impl PcmInput for PulseInput {
    fn read(&mut self, pcm: &mut [u8]) -> Result<(), String> {
        self.0.read(pcm).map_err(describe)
    }
}

/// A playback stream with its own context and mainloop (fields drop in this order: stream, context, loop).
struct PulseOutput {
    stream: Stream,
    context: Context,
    mainloop: Mainloop,
    frame: usize,
}

fn iterate(mainloop: &mut Mainloop, block: bool) -> Result<(), String> {
    match mainloop.iterate(block) {
        IterateResult::Success(_) => Ok(()),
        IterateResult::Quit(_) => Err("the libpulse mainloop quit".into()),
        IterateResult::Err(e) => Err(describe(e)),
    }
}

impl PulseOutput {
    fn open(server: Option<&str>, format: PcmFormat) -> Result<Self, String> {
        let spec = spec(format)?;
        let mut mainloop = Mainloop::new().ok_or("cannot create a libpulse mainloop")?;
        let mut context =
            Context::new(&mainloop, "vmgpu").ok_or("cannot create a libpulse context")?;
        context
            .connect(server, context::FlagSet::NOAUTOSPAWN, None)
            .map_err(describe)?;
        loop {
            match context.get_state() {
                context::State::Ready => break,
                context::State::Failed | context::State::Terminated => {
                    return Err(describe(context.errno()));
                }
                _ => iterate(&mut mainloop, true)?,
            }
        }
        let mut stream = Stream::new(&mut context, "guest audio", &spec, None)
            .ok_or("cannot create a playback stream")?;
        let attr = BufferAttr {
            maxlength: u32::MAX,
            tlength: format.bytes_for_ms(PLAYBACK_LATENCY_MS) as u32,
            prebuf: u32::MAX,
            minreq: u32::MAX,
            fragsize: u32::MAX,
        };
        stream
            .connect_playback(
                None,
                Some(&attr),
                stream::FlagSet::ADJUST_LATENCY,
                None,
                None,
            )
            .map_err(describe)?;
        loop {
            match stream.get_state() {
                stream::State::Ready => break,
                stream::State::Failed | stream::State::Terminated => {
                    return Err(describe(context.errno()));
                }
                _ => iterate(&mut mainloop, true)?,
            }
        }
        Ok(Self {
            stream,
            context,
            mainloop,
            frame: format.frame_bytes(),
        })
    }
}

impl PcmOutput for PulseOutput {
    /// Writes as the server asks for data: waits in the mainloop while the stream's buffer is full.
    fn write(&mut self, pcm: &[u8]) -> Result<(), String> {
        let mut rest = pcm;
        while !rest.is_empty() {
            if self.stream.get_state() != stream::State::Ready {
                return Err(describe(self.context.errno()));
            }
            let n = self.stream.writable_size().unwrap_or(0).min(rest.len());
            let n = n - n % self.frame;
            if n == 0 {
                iterate(&mut self.mainloop, true)?;
                continue;
            }
            self.stream
                .write_copy(&rest[..n], 0, SeekMode::Relative)
                .map_err(describe)?;
            rest = &rest[n..];
            // Sends what was queued now rather than at the next wait.
            iterate(&mut self.mainloop, false)?;
        }
        Ok(())
    }

    /// Waits until the server has played what it holds (`pa_stream_drain`), bounded by the latency we asked
    /// for plus [`DRAIN_GRACE_MS`].
    fn drain(&mut self) -> Result<(), String> {
        if self.stream.get_state() != stream::State::Ready {
            return Err(describe(self.context.errno()));
        }
        let mut op = self.stream.drain(None);
        let deadline = std::time::Instant::now()
            + std::time::Duration::from_millis(u64::from(PLAYBACK_LATENCY_MS) + DRAIN_GRACE_MS);
        while op.get_state() == operation::State::Running {
            if std::time::Instant::now() >= deadline {
                op.cancel();
                return Err(format!(
                    "the sound server did not play out its last {PLAYBACK_LATENCY_MS} ms in time"
                ));
            }
            iterate(&mut self.mainloop, false)?;
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Ok(())
    }
}

impl Drop for PulseOutput {
    fn drop(&mut self) {
        let _ = self.stream.disconnect();
        self.context.disconnect();
    }
}
