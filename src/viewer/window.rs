//! The viewer window (winit): presents the feed's state through [`Present`], resizes to the guest's frame
//! size, toggles fullscreen with F11, and shows the VM name, the source and what it is doing (the waiting
//! reason, or the updates per second) in the title. Esc or a click on a banner hides it. SIGTERM and SIGINT
//! close the window the same way the close button does.
//!
//! Two sources, one window: Looking Glass frames while they flow, else the SPICE display (the VM's virtual
//! display: firmware, installer, a guest without the LG host app), else the waiting message. The switch is
//! decided at every present ([`Shared::shown`]), so it costs no more than one frame.
//!
//! Where the window opens and how it follows the frame size is its [`Placement`]; what test harnesses see of
//! it is an [`Observer`] told about every present (both in [`super::observe`]).
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use winit::application::ApplicationHandler;
use winit::dpi::{PhysicalPosition, PhysicalSize};
use winit::event::{ElementState, MouseButton, WindowEvent};
use winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoop};
use winit::keyboard::{Key, NamedKey};
use winit::window::{Fullscreen, UserAttentionType, Window, WindowId};

use super::compose::{Composed, Drawn};
use super::feed::{self, Banner, Shared, Shown, Source};
use super::input::{Controller, SpiceConfig};
use super::instance::Instance;
use super::observe::{Observer, Placement, Presented};
use super::present::{Present, Softbuffer};
use super::straight::{self, Under};

/// Window errors.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// No display (no X11 or Wayland server reachable).
    #[error(
        "cannot open a window: {0}; run it in a desktop session, or set DISPLAY or WAYLAND_DISPLAY"
    )]
    NoDisplay(String),
    /// The event loop failed while running.
    #[error("the window's event loop failed: {0}")]
    EventLoop(String),
    /// The feed thread could not start.
    #[error("cannot start the frame thread")]
    Thread(#[source] std::io::Error),
    /// The window could not be created.
    #[error("cannot create the window: {0}")]
    Window(String),
}

/// How to open the window.
#[derive(Default)]
pub(crate) struct Options {
    /// Shown in the title (the VM name or the shm path).
    pub name: String,
    /// Start fullscreen.
    pub fullscreen: bool,
    /// Where it opens and how it follows the frame size.
    pub placement: Placement,
    /// Told about every present (a test harness's view of the window).
    pub observer: Option<Box<dyn Observer>>,
    /// The VM, for the fixes the viewer suggests.
    pub vm: Option<String>,
    /// The single-instance slot: second launches for this VM raise this window.
    pub instance: Option<Arc<Instance>>,
    /// Files to remove if a signal forces the process out before the window closes cleanly.
    pub remove_on_exit: Vec<PathBuf>,
    /// Drive the VM's keyboard and mouse through its SPICE server.
    pub spice: Option<SpiceConfig>,
}

struct App {
    opts: Options,
    shared: Arc<Shared>,
    wake_pending: Arc<AtomicBool>,
    window: Option<Rc<Window>>,
    presenter: Option<Box<dyn Present>>,
    frame_size: (u32, u32),
    ups_since: (Instant, u64),
    ups: Option<f64>,
    title: String,
    pointer: (f64, f64),
    banner_height: u32,
    error: Option<String>,
    input: Option<Controller>,
    /// What the last presents left in their buffers, newest first (a buffer of age N holds entry N − 1).
    drawn: VecDeque<Option<Drawn>>,
    /// The next redraw was asked for by the feed (a new frame or cursor), not by the window system (an
    /// expose wants everything redrawn).
    feed_redraw: bool,
    /// When everything was last redrawn.
    last_full: Instant,
    /// The frame's pixels under the cursor in the presented buffer.
    under: Under,
}

/// A damage-only present happens only within this of a full one: heals an expose that coincided with a frame.
const FULL_EVERY: Duration = Duration::from_secs(1);

/// The inner size the window asks for to show a `frame`: its placement's fixed size; else the frame size,
/// shrunk (never grown) to fit 90 % of the `monitor` when the placement fits.
fn inner_size(placement: Placement, frame: (u32, u32), monitor: Option<(u32, u32)>) -> (u32, u32) {
    match (placement, monitor) {
        (Placement::Exact { size: Some(size) }, _) => size,
        (Placement::Exact { size: None }, _) | (Placement::Fit, None) => frame,
        (Placement::Fit, Some((mw, mh))) => {
            let k = (mw as f64 * 0.9 / frame.0 as f64)
                .min(mh as f64 * 0.9 / frame.1 as f64)
                .min(1.0);
            ((frame.0 as f64 * k) as u32, (frame.1 as f64 * k) as u32)
        }
    }
}

/// Longest waiting reason put in the title.
const TITLE_REASON: usize = 72;

/// `text` cut to `max` characters at a word, with an ellipsis.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    let at = cut.rfind(' ').unwrap_or(cut.len());
    format!("{}…", &cut[..at])
}

/// winit's OS errors read `os error at /path/to/winit/src/….rs:LINE: what`: keep only `what`.
fn without_source_location(text: &str) -> String {
    let text = match text.find(".rs:") {
        Some(at) => text[at..].split_once(": ").map_or(text, |(_, rest)| rest),
        None => text,
    };
    // Our message goes on after it ("…; run it in a desktop session"), so no full stop in between.
    text.trim_end_matches('.').to_string()
}

impl App {
    /// The title says what the window shows: the waiting reason, or the updates per second once frames flow
    /// (counted over a second; until then, "connected").
    fn update_title(&mut self) {
        let Some(window) = &self.window else { return };
        let elapsed = self.ups_since.0.elapsed();
        let (shown, _) = self.shared.shown();
        let info = self.shared.info();
        if elapsed >= Duration::from_secs(1) {
            self.ups = Some((info.frames - self.ups_since.1) as f64 / elapsed.as_secs_f64());
            self.ups_since = (Instant::now(), info.frames);
        }
        let lg = match (&info.message, self.ups) {
            (Some(m), _) => shorten(m, TITLE_REASON),
            (None, Some(ups)) if info.frames > 0 => format!("{ups:.0} UPS"),
            (None, _) => "connected".to_string(),
        };
        let state = match shown {
            Shown::Spice => format!("SPICE display (Looking Glass: {lg})"),
            Shown::LookingGlass | Shown::Message => lg,
        };
        drop(info);
        let hint = self.input.as_ref().map(|i| format!(" — {}", i.hint()));
        let hint = hint.unwrap_or_default();
        let title = format!("{} — {state}{hint} — vmgpu", self.opts.name);
        if title != self.title {
            window.set_title(&title);
            self.title = title;
        }
    }

    /// A second `vmgpu view` for this VM asked for the window.
    fn raise(&self) {
        if let Some(w) = &self.window {
            w.set_minimized(false);
            w.focus_window();
            w.request_user_attention(Some(UserAttentionType::Informational));
        }
        eprintln!(
            "vmgpu view: another `vmgpu view` for {} was started; showing this window instead",
            self.opts.name
        );
    }

    fn dismiss_banner(&self) {
        if self.shared.dismiss_banner()
            && let Some(w) = &self.window
        {
            w.request_redraw();
        }
    }

    fn follow_frame_size(&mut self) {
        let (_, size) = self.shared.shown();
        if size == self.frame_size || size.0 == 0 {
            return;
        }
        self.frame_size = size;
        if let Some(window) = &self.window
            && window.fullscreen().is_none()
        {
            let monitor = window.current_monitor().map(|m| m.size());
            let (w, h) = inner_size(
                self.opts.placement,
                size,
                monitor.map(|m| (m.width, m.height)),
            );
            let _ = window.request_inner_size(PhysicalSize::new(w, h));
        }
    }

    fn redraw(&mut self) {
        let (Some(window), Some(presenter)) = (&self.window, &mut self.presenter) else {
            return;
        };
        let size = window.inner_size();
        let shared = &self.shared;
        let mut composed = Composed::default();
        let partial =
            std::mem::take(&mut self.feed_redraw) && self.last_full.elapsed() < FULL_EVERY;
        let (drawn, under, mut full, mut aged) = (&self.drawn, &mut self.under, false, false);
        let result = presenter.present(size.width, size.height, &mut |buf, w, h, age| {
            let before = match age {
                1.. => drawn.get(usize::from(age) - 1).copied().flatten(),
                0 => None,
            };
            let (c, changed) =
                straight::draw(shared, buf, (w, h), age, before.as_ref(), partial, under);
            (composed, full, aged) = (c, changed.is_none(), age == 1);
            changed
        });
        // The next frame may go straight into this buffer when it comes back as it is now (age 1).
        let straight = composed.drawn.filter(|d| aged && d.size == d.frame);
        self.shared.handoff.accept(straight.map(|d| d.size));
        if let Err(e) = result {
            self.drawn.clear();
            self.shared.handoff.accept(None);
            tracing::warn!("{e}");
            return;
        }
        if full {
            self.last_full = Instant::now();
        }
        self.drawn.push_front(composed.drawn);
        self.drawn.truncate(3);
        self.banner_height = composed.banner_height;
        if let Some(observer) = &mut self.opts.observer {
            observer.presented(&Presented {
                serial: composed.serial,
                size: (size.width, size.height),
                cursor_updates: composed.cursor_updates,
                connects: composed.connects,
                resubscribes: composed.resubscribes,
                banner: composed.banner_height > 0,
                shown: composed.shown,
                spice_updates: composed.spice_updates,
            });
        }
    }

    fn toggle_fullscreen(&self) {
        if let Some(w) = &self.window {
            w.set_fullscreen(if w.fullscreen().is_some() {
                None
            } else {
                Some(Fullscreen::Borderless(None))
            });
        }
    }
}

impl ApplicationHandler for App {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.window.is_some() {
            return;
        }
        let state = self
            .shared
            .info()
            .message
            .as_deref()
            .map_or("starting".to_string(), |m| shorten(m, TITLE_REASON));
        self.title = format!("{} — {state} — vmgpu", self.opts.name);
        let mut attrs = Window::default_attributes()
            .with_title(self.title.clone())
            .with_inner_size(PhysicalSize::new(1280u32, 720u32));
        if let Placement::Exact { .. } = self.opts.placement {
            attrs = attrs
                .with_position(PhysicalPosition::new(0, 0))
                .with_decorations(false);
        }
        if self.opts.fullscreen {
            attrs = attrs.with_fullscreen(Some(Fullscreen::Borderless(None)));
        }
        let window = match event_loop.create_window(attrs) {
            Ok(w) => Rc::new(w),
            Err(e) => {
                self.error = Some(e.to_string());
                event_loop.exit();
                return;
            }
        };
        match Softbuffer::new(window.clone()) {
            Ok(p) => self.presenter = Some(Box::new(p)),
            Err(e) => {
                self.error = Some(e.to_string());
                event_loop.exit();
                return;
            }
        }
        window.request_redraw();
        self.window = Some(window);
    }

    fn user_event(&mut self, event_loop: &ActiveEventLoop, _event: ()) {
        self.wake_pending.store(false, Ordering::Release);
        if self.shared.stop.load(Ordering::Acquire) {
            event_loop.exit();
            return;
        }
        if let Some(input) = &self.input {
            let st = input.session().state();
            let no_display = st.status == crate::spice::Status::Connected
                && !st
                    .channels
                    .iter()
                    .any(|(t, _)| *t == crate::spice::link::ChannelType::Display);
            self.shared
                .spice_no_display
                .store(no_display, Ordering::Release);
        }
        if self.shared.raise.swap(false, Ordering::AcqRel) {
            self.raise();
        }
        let hint = self
            .input
            .as_mut()
            .map(|i| (i.changed_hint(), i.agent_notice()));
        let hint = match hint {
            Some((Some(h), Some(n))) => Some(format!("{h} — {n}")),
            Some((h, n)) => h.or(n),
            None => None,
        };
        if let Some(hint) = hint {
            self.shared.info().banner = Some(Banner {
                text: hint,
                since: Instant::now(),
                sticky: false,
            });
        }
        self.update_title();
        self.follow_frame_size();
        if let Some(w) = &self.window {
            self.feed_redraw = true;
            w.request_redraw();
        }
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        // The banner is the viewer's own: a click on it hides it and never reaches the VM.
        match &event {
            WindowEvent::CursorMoved { position, .. } => self.pointer = (position.x, position.y),
            WindowEvent::MouseInput {
                state: ElementState::Pressed,
                button: MouseButton::Left,
                ..
            } if self.banner_height > 0 && self.pointer.1 < self.banner_height as f64 => {
                self.dismiss_banner();
                return;
            }
            _ => {}
        }
        if let (Some(input), Some(window)) = (&mut self.input, &self.window) {
            let (_, frame) = self.shared.shown();
            if input.window_event(window, &event, frame) {
                return;
            }
        }
        match event {
            WindowEvent::CloseRequested => event_loop.exit(),
            WindowEvent::Resized(_) => {
                if let Some(w) = &self.window {
                    w.request_redraw();
                }
            }
            WindowEvent::RedrawRequested => self.redraw(),
            WindowEvent::KeyboardInput { event, .. }
                if event.state == ElementState::Pressed
                    && event.logical_key == Key::Named(NamedKey::F11) =>
            {
                self.toggle_fullscreen()
            }
            WindowEvent::KeyboardInput { event, .. }
                if event.state == ElementState::Pressed
                    && event.logical_key == Key::Named(NamedKey::Escape) =>
            {
                self.dismiss_banner()
            }
            _ => {}
        }
    }

    fn device_event(
        &mut self,
        _event_loop: &ActiveEventLoop,
        _id: winit::event::DeviceId,
        event: winit::event::DeviceEvent,
    ) {
        if let Some(input) = &mut self.input {
            input.device_event(&event);
        }
    }

    fn about_to_wait(&mut self, event_loop: &ActiveEventLoop) {
        if self.shared.stop.load(Ordering::Acquire) {
            event_loop.exit();
            return;
        }
        self.update_title();
        // An expired banner goes away now, not at the next frame (a still SPICE screen may send none).
        let expired = {
            let mut info = self.shared.info();
            let old = info
                .banner
                .as_ref()
                .is_some_and(|b| !b.visible(Instant::now()));
            if old {
                info.banner = None;
            }
            old
        };
        if expired && let Some(w) = &self.window {
            w.request_redraw();
        }
        event_loop.set_control_flow(ControlFlow::WaitUntil(
            Instant::now() + Duration::from_millis(500),
        ));
    }
}

/// Opens the window and runs until it is closed.
pub(crate) fn run(source: Source, opts: Options) -> Result<(), Error> {
    let event_loop = EventLoop::<()>::with_user_event()
        .build()
        .map_err(|e| Error::NoDisplay(without_source_location(&e.to_string())))?;
    let proxy = event_loop.create_proxy();
    let wake_pending = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared::default());
    let notify: feed::Notify = {
        let (pending, proxy) = (wake_pending.clone(), std::sync::Mutex::new(proxy));
        Arc::new(move || {
            if !pending.swap(true, Ordering::AcqRel)
                && let Ok(p) = proxy.lock()
            {
                let _ = p.send_event(());
            }
        })
    };
    on_termination(&shared, &notify, opts.remove_on_exit.clone());
    if let Some(instance) = &opts.instance {
        let (shared, notify) = (shared.clone(), notify.clone());
        let served = instance.serve(move || {
            shared.raise.store(true, Ordering::Release);
            notify();
        });
        if let Err(e) = served {
            tracing::warn!("cannot answer other `vmgpu view` launches: {e}");
        }
    }
    if let Some(vm) = &opts.vm {
        let _ = shared.vm.set(vm.clone());
    }
    let input = match &opts.spice {
        Some(spice) => Some(spice.start(notify.clone()).map_err(Error::Thread)?),
        None => None,
    };
    if let Some(input) = &input {
        let _ = shared.spice_screen.set(input.session().screen());
        let _ = shared.spice_cursor.set(input.session().cursor());
    }
    let feed = feed::spawn(source, shared.clone(), notify).map_err(Error::Thread)?;
    let mut app = App {
        opts,
        shared: shared.clone(),
        wake_pending,
        window: None,
        presenter: None,
        frame_size: (0, 0),
        ups_since: (Instant::now(), 0),
        ups: None,
        title: String::new(),
        pointer: (0.0, 0.0),
        banner_height: 0,
        error: None,
        input,
        drawn: VecDeque::new(),
        feed_redraw: false,
        last_full: Instant::now(),
        under: Under::default(),
    };
    let result = event_loop.run_app(&mut app);
    drop(app.input.take()); // releases held keys, closes the SPICE session
    shared.stop.store(true, Ordering::Release);
    let _ = feed.join();
    result.map_err(|e| Error::EventLoop(without_source_location(&e.to_string())))?;
    match app.error {
        Some(e) => Err(Error::Window(e)),
        None => Ok(()),
    }
}

/// SIGTERM/SIGINT (and SIGHUP) close the window like its close button: stop the feed (which leaves the queues)
/// and end the event loop. Should that not finish within [`FORCED_EXIT`] (a display server that does not
/// answer), the process removes `remove_on_exit` and exits anyway.
fn on_termination(shared: &Arc<Shared>, notify: &feed::Notify, remove_on_exit: Vec<PathBuf>) {
    let (shared, notify) = (shared.clone(), notify.clone());
    let set = ctrlc::set_handler(move || {
        shared.stop.store(true, Ordering::Release);
        notify();
        let remove = remove_on_exit.clone();
        let _ = std::thread::Builder::new()
            .name("forced-exit".into())
            .spawn(move || {
                std::thread::sleep(FORCED_EXIT);
                for path in &remove {
                    let _ = crate::ops::files::remove_file(path);
                }
                std::process::exit(143);
            });
    });
    if let Err(e) = set {
        tracing::debug!("no termination handler: {e}");
    }
}

/// How long a signalled viewer may take to close cleanly.
const FORCED_EXIT: Duration = Duration::from_millis(300);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_os_error_loses_its_source_path() {
        let text = "os error at /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/winit-0.30.12/src/platform_impl/linux/mod.rs:765: neither WAYLAND_DISPLAY nor WAYLAND_SOCKET nor DISPLAY is set.";
        assert_eq!(
            without_source_location(text),
            "neither WAYLAND_DISPLAY nor WAYLAND_SOCKET nor DISPLAY is set"
        );
    }

    #[test]
    fn test_inner_size_follows_the_placement() {
        let frame = (3840, 2160);
        assert_eq!(
            inner_size(Placement::Fit, frame, Some((1920, 1080))),
            (1728, 972)
        );
        assert_eq!(
            inner_size(Placement::Fit, (800, 600), Some((1920, 1080))),
            (800, 600)
        );
        assert_eq!(
            inner_size(Placement::Exact { size: None }, frame, Some((1920, 1080))),
            frame
        );
        let fixed = Placement::Exact {
            size: Some((720, 405)),
        };
        assert_eq!(inner_size(fixed, frame, None), (720, 405));
    }

    #[test]
    fn test_shorten_cuts_at_a_word() {
        assert_eq!(shorten("waiting for the host", 12), "waiting for…");
        assert_eq!(shorten("short", 12), "short");
    }
}
