//! The viewer window (winit): presents the feed's state through [`Present`], resizes to the guest's frame
//! size, toggles fullscreen with F11, and shows the VM name, the source and updates per second in the title.
//!
//! Two sources, one window: Looking Glass frames while they flow, else the SPICE display (the VM's virtual
//! display: firmware, installer, a guest without the LG host app), else the waiting message. The switch is
//! decided at every present ([`Shared::shown`]), so it costs no more than one frame.
//!
//! Test mode (`VMGPU_VIEW_TEST=1`): the window opens at (0, 0), follows the frame size exactly, and after each
//! present prints one line `presented serial=S size=WxH cursor=C connects=N resub=R source=SRC spice=U` on
//! stdout, so a harness knows when to take a screenshot.
use std::io::Write;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use winit::application::ApplicationHandler;
use winit::dpi::{PhysicalPosition, PhysicalSize};
use winit::event::{ElementState, WindowEvent};
use winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoop};
use winit::keyboard::{Key, NamedKey};
use winit::window::{Fullscreen, Window, WindowId};

use super::compose::{Composed, compose};
use super::feed::{self, Shared, Shown, Source};
use super::input::{Controller, SpiceConfig};
use super::present::{Present, Softbuffer};

/// Window errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No display (no X11 or Wayland server reachable).
    #[error("cannot open a window (is DISPLAY or WAYLAND_DISPLAY set?)")]
    EventLoop(#[source] winit::error::EventLoopError),
    /// The feed thread could not start.
    #[error("cannot start the frame thread")]
    Thread(#[source] std::io::Error),
    /// The window could not be created.
    #[error("cannot create the window: {0}")]
    Window(String),
}

/// How to open the window.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Shown in the title (the VM name or the shm path).
    pub name: String,
    /// Start fullscreen.
    pub fullscreen: bool,
    /// Deterministic test mode (see the module docs).
    pub test_mode: bool,
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
    last_report: Option<(Composed, (u32, u32))>,
    ups_since: (Instant, u64),
    error: Option<String>,
    input: Option<Controller>,
}

impl App {
    fn update_title(&mut self) {
        let Some(window) = &self.window else { return };
        let elapsed = self.ups_since.0.elapsed();
        if elapsed < Duration::from_secs(1) {
            return;
        }
        let (shown, _) = self.shared.shown();
        let info = self.shared.info();
        let ups = (info.frames - self.ups_since.1) as f64 / elapsed.as_secs_f64();
        let state = match shown {
            Shown::LookingGlass => format!("Looking Glass {ups:.0} UPS"),
            Shown::Spice => "SPICE display (Looking Glass not running)".to_string(),
            Shown::Message => "waiting".to_string(),
        };
        self.ups_since = (Instant::now(), info.frames);
        drop(info);
        let hint = self.input.as_ref().map(|i| format!(" — {}", i.hint()));
        let hint = hint.unwrap_or_default();
        window.set_title(&format!("{} — {state}{hint} — vmgpu", self.opts.name));
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
            let mut target = PhysicalSize::new(size.0, size.1);
            if !self.opts.test_mode
                && let Some(m) = window.current_monitor()
            {
                let ms = m.size();
                let k = (ms.width as f64 * 0.9 / size.0 as f64)
                    .min(ms.height as f64 * 0.9 / size.1 as f64)
                    .min(1.0);
                target = PhysicalSize::new((size.0 as f64 * k) as u32, (size.1 as f64 * k) as u32);
            }
            let _ = window.request_inner_size(target);
        }
    }

    fn redraw(&mut self) {
        let (Some(window), Some(presenter)) = (&self.window, &mut self.presenter) else {
            return;
        };
        let size = window.inner_size();
        let shared = &self.shared;
        let mut composed = Composed::default();
        let result = presenter.present(size.width, size.height, &mut |buf, w, h| {
            composed = compose(shared, buf, w, h);
        });
        if let Err(e) = result {
            tracing::warn!("{e}");
            return;
        }
        if self.opts.test_mode {
            let now = (composed, (size.width, size.height));
            let key = |c: &Composed, s: (u32, u32)| {
                (
                    c.serial,
                    c.cursor_updates,
                    c.connects,
                    c.resubscribes,
                    c.shown,
                    c.spice_updates,
                    s,
                )
            };
            let changed = self
                .last_report
                .as_ref()
                .is_none_or(|(c, s)| key(c, *s) != key(&now.0, now.1));
            if changed {
                let serial = composed
                    .serial
                    .map_or("none".to_string(), |s| s.to_string());
                let mut out = std::io::stdout().lock();
                let _ = writeln!(
                    out,
                    "presented serial={serial} size={}x{} cursor={} connects={} resub={} source={} spice={}",
                    size.width,
                    size.height,
                    composed.cursor_updates,
                    composed.connects,
                    composed.resubscribes,
                    composed.shown.name(),
                    composed.spice_updates
                );
                let _ = out.flush();
                self.last_report = Some(now);
            }
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
        let mut attrs = Window::default_attributes()
            .with_title(format!("{} — vmgpu", self.opts.name))
            .with_inner_size(PhysicalSize::new(1280u32, 720u32));
        if self.opts.test_mode {
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

    fn user_event(&mut self, _event_loop: &ActiveEventLoop, _event: ()) {
        self.wake_pending.store(false, Ordering::Release);
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
        if let Some(hint) = self.input.as_mut().and_then(|i| i.changed_hint()) {
            self.shared.info().banner = Some((hint, Instant::now()));
            self.ups_since.0 = Instant::now() - Duration::from_secs(1); // title now
            self.update_title();
        }
        self.follow_frame_size();
        if let Some(w) = &self.window {
            w.request_redraw();
        }
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
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
        self.update_title();
        // An expired banner goes away now, not at the next frame (a still SPICE screen may send none).
        let expired = {
            let mut info = self.shared.info();
            let old = info
                .banner
                .as_ref()
                .is_some_and(|(_, since)| since.elapsed() >= feed::BANNER_TIME);
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
pub fn run(source: Source, opts: Options) -> Result<(), Error> {
    let event_loop = EventLoop::<()>::with_user_event()
        .build()
        .map_err(Error::EventLoop)?;
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
    let input = match &opts.spice {
        Some(spice) => Some(spice.start(notify.clone()).map_err(Error::Thread)?),
        None => None,
    };
    let _ = shared.vm_name.set(opts.name.clone());
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
        last_report: None,
        ups_since: (Instant::now(), 0),
        error: None,
        input,
    };
    let result = event_loop.run_app(&mut app);
    drop(app.input.take()); // releases held keys, closes the SPICE session
    shared.stop.store(true, Ordering::Release);
    let _ = feed.join();
    result.map_err(Error::EventLoop)?;
    match app.error {
        Some(e) => Err(Error::Window(e)),
        None => Ok(()),
    }
}
