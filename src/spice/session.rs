//! A SPICE session: the supervisor thread that links the main channel, opens the inputs channel from
//! CHANNELS_LIST, keeps the session state (mouse modes, agent tokens, the guest's lock keys) and reconnects
//! with backoff when the server goes away (QEMU restarted) or refuses us. The window never waits on it: it
//! reads [`Session::state`] and sends through [`Session::inputs`].
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::agent_link::{AgentLink, Clipboard, HostClipboard};
use super::audio_sink::{HostAudio, PlayerStats, PlayerStatsView};
use super::channel::{Channel, LinkParams, Writer};
use super::cursor::Cursors;
use super::error::{Error, ProtocolError};
use super::input_sink::Inputs;
use super::inputs::{self, InputsMsg};
use super::link::ChannelType;
use super::main_channel::{self, Init, MainMsg, mouse_mode};
use super::screen::Screen;
use super::transport::Target;
use super::{cursor_thread, display_thread, playback_thread, record_thread};

/// Largest main channel message (the bandwidth-test PING is 256 012 bytes; agent data ≤ 2 KiB per message).
pub(crate) const MAIN_MAX_BODY: u32 = 1 << 20;
/// Largest display channel message: an uncompressed 8K 32-bit bitmap plus its headers and clip list.
pub(crate) const DISPLAY_MAX_BODY: u32 = 7680 * 4320 * 4 + (128 << 10);
/// Largest inputs channel message.
pub(crate) const INPUTS_MAX_BODY: u32 = 64 << 10;
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// A session that lasted this long resets the backoff.
const STABLE: Duration = Duration::from_secs(10);

/// The guest's sound on the host: which channels to link and the sound server they use.
#[derive(Clone)]
pub struct AudioConfig {
    /// The host's sound server.
    pub host: Arc<dyn HostAudio>,
    /// Link the playback channel (the guest's output) when offered.
    pub playback: bool,
    /// Link the record channel (the host's default source to the guest) when offered.
    pub mic: bool,
}

/// Where to connect and with which password; asked again before every attempt (the port of a restarted
/// QEMU may change).
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The server.
    pub target: Target,
    /// The ticket password (empty when the server has none).
    pub password: Vec<u8>,
}

/// Finds the endpoint (a fixed one, or the live domain read again).
pub(crate) type Resolve = Box<dyn FnMut() -> Result<Endpoint, String> + Send>;
/// Called (from the session thread) after the state changed.
pub(crate) type Notify = Arc<dyn Fn() + Send + Sync>;

/// Connection status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Status {
    /// Connecting (first attempt or retry).
    #[default]
    Connecting,
    /// Main and inputs channels are linked.
    Connected,
    /// The last attempt failed; retrying.
    Failed(String),
}

/// What the session knows (copied out for the window).
#[derive(Debug, Clone, Default)]
pub struct State {
    /// Connection status.
    pub status: Status,
    /// Where we connect.
    pub target: Option<String>,
    /// MAIN_INIT of the current session.
    pub init: Option<Init>,
    /// Supported mouse modes (flags).
    pub mouse_supported: u16,
    /// Current mouse mode.
    pub mouse_current: u16,
    /// A guest agent is connected.
    pub agent_connected: bool,
    /// Tokens the server granted for client → agent data (at connect; the agent link counts them down).
    pub agent_tokens: u32,
    /// The VM name the server reported.
    pub name: Option<String>,
    /// Channels the server offers.
    pub channels: Vec<(ChannelType, u8)>,
    /// The guest's lock keys (inputs INIT / KEY_MODIFIERS).
    pub guest_locks: u16,
    /// Sessions linked so far.
    pub sessions: u64,
}

pub(super) struct Shared {
    pub(super) stop: AtomicBool,
    pub(super) screen: Arc<Mutex<Screen>>,
    pub(super) cursor: Arc<Mutex<Cursors>>,
    state: Mutex<State>,
    mouse_current: AtomicU16,
    inputs: Inputs,
    main: Mutex<Option<Writer>>,
    agent: Arc<AgentLink>,
    audio: Option<AudioConfig>,
    /// The playback thread's player, once it runs.
    pub(super) playback_stats: Mutex<Option<PlayerStatsView>>,
    pub(super) notify: Notify,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state());
        (self.notify)();
    }

    fn close_main(&self) {
        if let Some(w) = self.main.lock().unwrap_or_else(|e| e.into_inner()).take() {
            w.shutdown();
        }
    }
}

/// A running session; dropping it releases held keys and closes every channel.
pub struct Session {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Session {
    /// Starts the supervisor thread (no clipboard).
    pub fn start(resolve: Resolve, notify: Notify) -> std::io::Result<Self> {
        Self::start_with_clipboard(resolve, notify, None)
    }

    /// Starts the supervisor thread; `clipboard` is the host side of the guest agent's clipboard (`None`
    /// turns the clipboard off: the agent is still started, with no clipboard capabilities).
    pub fn start_with_clipboard(
        resolve: Resolve,
        notify: Notify,
        clipboard: Option<Box<dyn HostClipboard>>,
    ) -> std::io::Result<Self> {
        Self::start_with(resolve, notify, clipboard, None)
    }

    /// Starts the supervisor thread with the clipboard as in [`Self::start_with_clipboard`] and the guest's
    /// sound as `audio` says (`None`: neither audio channel is linked).
    pub fn start_with(
        resolve: Resolve,
        notify: Notify,
        clipboard: Option<Box<dyn HostClipboard>>,
        audio: Option<AudioConfig>,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            screen: Arc::default(),
            cursor: Arc::default(),
            state: Mutex::new(State::default()),
            mouse_current: AtomicU16::new(mouse_mode::SERVER),
            inputs: Inputs::default(),
            main: Mutex::new(None),
            agent: Arc::new(AgentLink::new(clipboard)),
            audio,
            playback_stats: Mutex::default(),
            notify,
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("spice-main".into())
                .spawn(move || supervise(&shared, resolve))?
        };
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// A copy of the state.
    pub fn state(&self) -> State {
        self.shared.state().clone()
    }

    /// True when the server is in client (absolute) mouse mode.
    pub fn client_mouse(&self) -> bool {
        self.shared.mouse_current.load(Ordering::Acquire) == mouse_mode::CLIENT
    }

    /// The input handle.
    pub fn inputs(&self) -> &Inputs {
        &self.shared.inputs
    }

    /// The guest cursor from the cursor channel (drawn over the SPICE display).
    pub fn cursor(&self) -> Arc<Mutex<Cursors>> {
        self.shared.cursor.clone()
    }

    /// The clipboard side of the guest agent (announce, release, request).
    pub fn clipboard(&self) -> Clipboard {
        Clipboard(self.shared.agent.clone())
    }

    /// The playback counters (frames played, dropped by the jitter buffer, dropped without a sound server).
    pub fn playback_stats(&self) -> PlayerStats {
        self.shared
            .playback_stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(PlayerStatsView::get)
            .unwrap_or_default()
    }

    /// The SPICE display (its primary surface is shown once MARKed).
    pub fn screen(&self) -> Arc<Mutex<Screen>> {
        self.shared.screen.clone()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.inputs.release_all();
        self.shared.stop.store(true, Ordering::Release);
        self.shared.inputs.detach();
        self.shared.close_main();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn supervise(shared: &Arc<Shared>, mut resolve: Resolve) {
    let mut backoff = BACKOFF_MIN;
    let mut last_error = String::new();
    while !shared.stop.load(Ordering::Acquire) {
        let started = Instant::now();
        let result = match resolve() {
            Ok(endpoint) => {
                shared.update(|s| s.target = Some(endpoint.target.to_string()));
                run_once(shared, &endpoint)
            }
            Err(e) => Err(e),
        };
        shared.inputs.detach();
        shared.close_main();
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        let reason = match result {
            Ok(()) => "the SPICE session ended".to_string(),
            Err(e) => e,
        };
        if reason != last_error {
            tracing::warn!("SPICE: {reason} (retrying)");
            last_error = reason.clone();
        }
        shared
            .mouse_current
            .store(mouse_mode::SERVER, Ordering::Release);
        shared.update(|s| s.status = Status::Failed(reason));
        if started.elapsed() > STABLE {
            backoff = BACKOFF_MIN;
        }
        let until = Instant::now() + backoff;
        while Instant::now() < until && !shared.stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(50));
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One session: link main, INIT, attach, open inputs, serve main until it ends.
fn run_once(shared: &Arc<Shared>, ep: &Endpoint) -> Result<(), String> {
    let stop = &shared.stop;
    shared.update(|s| s.status = Status::Connecting);
    let params = LinkParams {
        channel: ChannelType::Main,
        channel_id: 0,
        connection_id: 0,
        caps: main_channel::CLIENT_CAPS.to_vec(),
        max_body: MAIN_MAX_BODY,
    };
    let mut main = Channel::open(&ep.target, &params, &ep.password, stop).map_err(chain)?;
    *shared.main.lock().unwrap_or_else(|e| e.into_inner()) = Some(main.writer());
    let (kind, body) = main.next(stop).map_err(chain)?;
    let init = match main_channel::parse(kind, &body).map_err(|e| chain(e.into()))? {
        MainMsg::Init(init) => init,
        _ => {
            return Err(chain(
                ProtocolError::Invalid {
                    what: "main channel",
                    detail: format!("first message is type {kind}, not MAIN_INIT"),
                }
                .into(),
            ));
        }
    };
    let writer = main.writer();
    writer
        .send(main_channel::client::ATTACH_CHANNELS, &[])
        .map_err(chain)?;
    shared.agent.session_started(writer.clone());
    shared.update(|s| {
        s.init = Some(init);
        s.agent_connected = init.agent_connected != 0;
        s.agent_tokens = init.agent_tokens;
    });
    set_mouse_modes(
        shared,
        &writer,
        init.supported_mouse_modes as u16,
        init.current_mouse_mode as u16,
    )
    .map_err(chain)?;
    let mut threads = Threads::default();
    let result = if init.agent_connected != 0 {
        shared.agent.connected(init.agent_tokens)
    } else {
        Ok(())
    };
    let result =
        result.and_then(|()| serve_main(shared, ep, &mut main, init.session_id, &mut threads));
    shared.agent.session_ended();
    shared.inputs.detach();
    shared.close_main();
    threads.display_done.store(true, Ordering::Release);
    for t in [
        threads.inputs,
        threads.display,
        threads.cursor,
        threads.playback,
        threads.record,
    ]
    .into_iter()
    .flatten()
    {
        let _ = t.join();
    }
    result.map_err(chain)
}

/// The channel threads of one session.
#[derive(Default)]
struct Threads {
    inputs: Option<JoinHandle<()>>,
    display: Option<JoinHandle<()>>,
    cursor: Option<JoinHandle<()>>,
    playback: Option<JoinHandle<()>>,
    record: Option<JoinHandle<()>>,
    /// Ends the display, cursor, playback and record threads (each relinks on its own until then).
    display_done: Arc<AtomicBool>,
}

fn serve_main(
    shared: &Arc<Shared>,
    ep: &Endpoint,
    main: &mut Channel,
    session_id: u32,
    threads: &mut Threads,
) -> Result<(), Error> {
    let writer = main.writer();
    loop {
        let (kind, body) = main.next(&shared.stop)?;
        match main_channel::parse(kind, &body)? {
            MainMsg::ChannelsList(list) => {
                let has_inputs = list.iter().any(|(t, _)| *t == ChannelType::Inputs);
                shared.update(|s| s.channels = list.clone());
                let has_display = list.iter().any(|(t, _)| *t == ChannelType::Display);
                if has_display && threads.display.is_none() {
                    threads.display = Some(display_thread::spawn(
                        shared.clone(),
                        ep.clone(),
                        session_id,
                        threads.display_done.clone(),
                    )?);
                }
                let has_cursor = list.iter().any(|(t, _)| *t == ChannelType::Cursor);
                if has_cursor && has_display && threads.cursor.is_none() {
                    threads.cursor = Some(cursor_thread::spawn(
                        shared.clone(),
                        ep.clone(),
                        session_id,
                        threads.display_done.clone(),
                    )?);
                }
                open_audio(shared, ep, session_id, &list, threads)?;
                if has_inputs && threads.inputs.is_none() {
                    threads.inputs = Some(open_inputs(shared, ep, session_id)?);
                    shared.update(|s| {
                        s.status = Status::Connected;
                        s.sessions += 1;
                    });
                } else if !has_inputs {
                    return Err(ProtocolError::Invalid {
                        what: "CHANNELS_LIST",
                        detail: "the server offers no inputs channel".into(),
                    }
                    .into());
                }
            }
            MainMsg::MouseMode { supported, current } => {
                set_mouse_modes(shared, &writer, supported, current)?;
            }
            MainMsg::AgentConnected => {
                // The old form carries no tokens: the server's window (REDS_AGENT_WINDOW_SIZE).
                let tokens = shared.state().init.map_or(10, |i| i.agent_tokens);
                shared.update(|s| s.agent_connected = true);
                shared.agent.connected(tokens)?;
            }
            MainMsg::AgentConnectedTokens(n) => {
                shared.update(|s| {
                    s.agent_connected = true;
                    s.agent_tokens = n;
                });
                shared.agent.connected(n)?;
            }
            MainMsg::AgentDisconnected(_) => {
                shared.update(|s| s.agent_connected = false);
                shared.agent.disconnected();
            }
            MainMsg::AgentToken(n) => shared.agent.tokens(n)?,
            MainMsg::AgentData(body) => shared.agent.data(&body)?,
            MainMsg::Name(name) => shared.update(|s| s.name = Some(name)),
            MainMsg::Init(_) => {
                return Err(ProtocolError::Invalid {
                    what: "main channel",
                    detail: "a second MAIN_INIT".into(),
                }
                .into());
            }
            MainMsg::MultiMediaTime(_) | MainMsg::Uuid(_) | MainMsg::Other(_) => {}
        }
    }
}

/// Starts the playback and record threads for the channels the server offers and the user wants.
fn open_audio(
    shared: &Arc<Shared>,
    ep: &Endpoint,
    session_id: u32,
    list: &[(ChannelType, u8)],
    threads: &mut Threads,
) -> Result<(), Error> {
    let Some(audio) = shared.audio.clone() else {
        return Ok(());
    };
    let offered = |t| list.iter().any(|(c, _)| *c == t);
    if audio.playback && offered(ChannelType::Playback) && threads.playback.is_none() {
        threads.playback = Some(playback_thread::spawn(
            shared.clone(),
            audio.host.clone(),
            ep.clone(),
            session_id,
            threads.display_done.clone(),
        )?);
    }
    if audio.mic && offered(ChannelType::Record) && threads.record.is_none() {
        threads.record = Some(record_thread::spawn(
            shared.clone(),
            audio.host,
            ep.clone(),
            session_id,
            threads.display_done.clone(),
        )?);
    }
    Ok(())
}

/// Records the modes and asks for client (absolute) mode whenever the server offers it.
fn set_mouse_modes(
    shared: &Shared,
    main: &Writer,
    supported: u16,
    current: u16,
) -> Result<(), Error> {
    shared.mouse_current.store(current, Ordering::Release);
    shared.update(|s| {
        s.mouse_supported = supported;
        s.mouse_current = current;
    });
    if supported & mouse_mode::CLIENT != 0 && current != mouse_mode::CLIENT {
        main.send(
            main_channel::client::MOUSE_MODE_REQUEST,
            &mouse_mode::CLIENT.to_le_bytes(),
        )?;
    }
    Ok(())
}

/// Links the inputs channel and starts its reader thread.
fn open_inputs(
    shared: &Arc<Shared>,
    ep: &Endpoint,
    session_id: u32,
) -> Result<JoinHandle<()>, Error> {
    let params = LinkParams {
        channel: ChannelType::Inputs,
        channel_id: 0,
        connection_id: session_id,
        caps: inputs::CLIENT_CAPS.to_vec(),
        max_body: INPUTS_MAX_BODY,
    };
    let mut chan = Channel::open(&ep.target, &params, &ep.password, &shared.stop)?;
    shared.inputs.attach(chan.writer());
    let shared = shared.clone();
    std::thread::Builder::new()
        .name("spice-inputs".into())
        .spawn(move || {
            let err = loop {
                let msg = chan
                    .next(&shared.stop)
                    .and_then(|(k, b)| inputs::parse(k, &b).map_err(Error::from));
                match msg {
                    Ok(InputsMsg::MotionAck) => shared.inputs.on_motion_ack(),
                    Ok(InputsMsg::Init { modifiers } | InputsMsg::KeyModifiers(modifiers)) => {
                        shared.update(|s| s.guest_locks = modifiers)
                    }
                    Ok(InputsMsg::Other(_)) => {}
                    Err(e) => break e,
                }
            };
            if !matches!(err, Error::Stopped) {
                tracing::debug!("SPICE inputs channel: {}", chain(err));
                // Losing inputs loses the session's point: end it so the supervisor reconnects.
                shared.inputs.detach();
                shared.close_main();
            }
        })
        .map_err(|e| Error::io("cannot start the inputs thread", e))
}

/// The error with its causes on one line (`report::one_line`, by value for `map_err`).
pub(super) fn chain(e: Error) -> String {
    crate::report::one_line(&e)
}
