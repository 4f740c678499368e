//! The window as the VM's console: keyboard and mouse events from winit → the SPICE inputs channel.
//!
//! - Keys go by physical position ([`super::keymap`]) whenever the window has focus; key repeats resend the
//!   make code. Focus loss, releasing the capture and the session ending lift every key still down.
//! - Client mouse mode (absolute): the host pointer's position is mapped through the same letterbox as the
//!   picture ([`Placement`]) to guest pixels. Server mode (relative): a click captures the pointer (grabbed,
//!   hidden) and raw motion is sent.
//! - The escape key (default Scroll Lock) toggles the capture; it never reaches the guest. While captured every
//!   key goes to the guest, F11 included; otherwise F11 stays the viewer's fullscreen key.
//! - On focus the guest's lock keys are set to the host's (from the keyboard LEDs in sysfs, where there are any),
//!   and the clipboard is synced by demand ([`super::clipboard`]).
use std::sync::Arc;

use winit::event::{DeviceEvent, ElementState, MouseButton, MouseScrollDelta, WindowEvent};
use winit::keyboard::{KeyCode, PhysicalKey};
use winit::window::{CursorGrabMode, Window};

use super::clipboard::HostBoard;
use super::keymap;
use super::scale::Placement;
use crate::host::root::HostRoot;
use crate::spice::inputs::{Button, modifiers};
use crate::spice::session::Notify;
use crate::spice::{Endpoint, Session, Status};

/// The banner when the guest has no SPICE agent.
pub const NO_AGENT: &str = "no SPICE agent in the guest: copy and paste need spice-vdagent (Linux) or the SPICE guest tools (Windows)";

/// Pixels of a smooth-scroll delta per wheel notch.
const PIXELS_PER_NOTCH: f64 = 40.0;

/// Finds the SPICE server before each connection attempt.
pub(crate) type ResolveFn = dyn Fn() -> Result<Endpoint, String> + Send + Sync;

/// What the window needs to drive a VM: where its SPICE server is and the escape key.
#[derive(Clone)]
pub struct SpiceConfig {
    /// Asked before every attempt (a restarted QEMU may listen elsewhere).
    pub resolve: Arc<ResolveFn>,
    /// The key that toggles the capture.
    pub escape: KeyCode,
    /// Copy and paste with the guest through its SPICE agent (`--no-clipboard` or the VM's metadata turn it
    /// off).
    pub clipboard: bool,
    /// Play the guest's sound on the desktop's sound server (`--no-audio` turns it off).
    pub playback: bool,
    /// Send the host's default microphone to the guest (`--mic`).
    pub mic: bool,
}

impl std::fmt::Debug for SpiceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SpiceConfig {{ escape: {:?}, clipboard: {}, playback: {}, mic: {} }}",
            self.escape, self.clipboard, self.playback, self.mic
        )
    }
}

impl SpiceConfig {
    /// Starts the session; `notify` wakes the window when its state changes.
    pub fn start(&self, notify: Notify) -> std::io::Result<Controller> {
        let resolve = self.resolve.clone();
        let board = self.clipboard.then(HostBoard::new);
        let host = board
            .clone()
            .map(|b| Box::new(b) as Box<dyn crate::spice::HostClipboard>);
        let audio = (self.playback || self.mic).then(|| crate::spice::AudioConfig {
            host: Arc::new(crate::spice::PulseAudio::default()),
            playback: self.playback,
            mic: self.mic,
        });
        let session = Session::start_with(Box::new(move || resolve()), notify, host, audio)?;
        let mut controller = Controller::new(session, self.escape);
        controller.board = board;
        Ok(controller)
    }
}

/// Input state of one window.
pub struct Controller {
    session: Session,
    last_hint: String,
    escape: KeyCode,
    captured: bool,
    focused: bool,
    motion_rest: (f64, f64),
    wheel_rest: f64,
    /// The host clipboard (`None`: clipboard off).
    board: Option<HostBoard>,
    /// The no-agent notice was shown for the current absence.
    agent_notice_shown: bool,
}

impl Controller {
    /// Drives `session` with the window's input; `escape` toggles the capture.
    pub(crate) fn new(session: Session, escape: KeyCode) -> Self {
        Self {
            session,
            escape,
            last_hint: String::new(),
            captured: false,
            focused: false,
            motion_rest: (0.0, 0.0),
            wheel_rest: 0.0,
            board: None,
            agent_notice_shown: false,
        }
    }

    /// The session (state for the title).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// One line for the title and the on-window hint: connection and capture state.
    pub(crate) fn hint(&self) -> String {
        let key = format!("{:?}", self.escape);
        let state = self.session.state();
        match &state.status {
            Status::Connecting => "SPICE: connecting…".to_string(),
            Status::Failed(reason) => format!("SPICE: {reason}"),
            Status::Connected if self.captured => format!("input captured ({key} releases)"),
            Status::Connected if self.session.client_mouse() => {
                format!("input: keys and mouse go to the VM ({key} captures)")
            }
            Status::Connected => format!("input: click or {key} to capture the mouse"),
        }
    }

    /// The hint when it changed since the last call (for a banner on the window).
    pub(crate) fn changed_hint(&mut self) -> Option<String> {
        let hint = self.hint();
        (hint != self.last_hint).then(|| {
            self.last_hint = hint.clone();
            hint
        })
    }

    /// Once per absence of the guest agent (clipboard on, session connected, no agent): the hint that copy
    /// and paste needs the guest tools. Everything else works without the agent.
    pub fn agent_notice(&mut self) -> Option<String> {
        self.board.as_ref()?;
        let state = self.session.state();
        if state.agent_connected {
            self.agent_notice_shown = false;
            return None;
        }
        if state.status != Status::Connected || self.agent_notice_shown {
            return None;
        }
        self.agent_notice_shown = true;
        Some(NO_AGENT.to_string())
    }

    /// Handles a window event; returns true when it was input for the guest (the window must not act on it).
    pub(crate) fn window_event(
        &mut self,
        window: &Window,
        event: &WindowEvent,
        frame: (u32, u32),
    ) -> bool {
        match event {
            WindowEvent::Focused(true) => {
                self.focused = true;
                if let Some(flags) = host_lock_keys(&HostRoot::new("/")) {
                    self.session.inputs().sync_locks(flags);
                }
                if let Some(board) = &self.board {
                    board.focus_changed(true, &self.session.clipboard());
                }
                false
            }
            WindowEvent::Focused(false) => {
                self.focused = false;
                if let Some(board) = &self.board {
                    board.focus_changed(false, &self.session.clipboard());
                }
                self.set_capture(window, false);
                self.session.inputs().release_all();
                false
            }
            // winit makes up releases for held keys when focus goes (in keycode order): the focus-loss
            // handler releases them itself, newest first, so a chord unwinds the way it was pressed.
            WindowEvent::KeyboardInput {
                is_synthetic: true, ..
            } => true,
            WindowEvent::KeyboardInput { event, .. } => {
                let PhysicalKey::Code(code) = event.physical_key else {
                    return false;
                };
                if code == self.escape {
                    if event.state == ElementState::Pressed && !event.repeat {
                        let on = !self.captured;
                        self.set_capture(window, on);
                    }
                    return true;
                }
                // Unlinked (no SPICE server yet) or F11 outside capture: the window's own keys (Esc hides the
                // banner, F11 toggles full screen).
                if !self.session.inputs().is_linked() || (!self.captured && code == KeyCode::F11) {
                    return false;
                }
                let Some(codes) = keymap::key_codes(code) else {
                    return true;
                };
                match event.state {
                    ElementState::Pressed => self.session.inputs().key_down(codes),
                    ElementState::Released => self.session.inputs().key_up(codes),
                }
                true
            }
            WindowEvent::CursorMoved { position, .. } => {
                if self.session.client_mouse() {
                    let size = window.inner_size();
                    let p = Placement::fit(frame, (size.width, size.height));
                    let (x, y) = (position.x.max(0.0) as u32, position.y.max(0.0) as u32);
                    if frame.0 > 0
                        && let Some((fx, fy)) = p.to_frame(x, y, frame)
                    {
                        self.session.inputs().position(fx, fy);
                    }
                }
                true
            }
            WindowEvent::MouseInput { state, button, .. } => {
                if !self.session.client_mouse() && !self.captured {
                    if *state == ElementState::Pressed && self.session.inputs().is_linked() {
                        self.set_capture(window, true);
                    }
                    return true;
                }
                let Some(b) = map_button(*button) else {
                    return true;
                };
                match state {
                    ElementState::Pressed => self.session.inputs().press(b),
                    ElementState::Released => self.session.inputs().release(b),
                }
                true
            }
            WindowEvent::MouseWheel { delta, .. } => {
                let lines = match delta {
                    MouseScrollDelta::LineDelta(_, y) => *y as f64,
                    MouseScrollDelta::PixelDelta(p) => p.y / PIXELS_PER_NOTCH,
                };
                self.wheel_rest += lines;
                let notches = self.wheel_rest.trunc();
                self.wheel_rest -= notches;
                if notches != 0.0 {
                    self.session.inputs().wheel(notches as i32);
                }
                true
            }
            _ => false,
        }
    }

    /// Raw pointer motion: relative mouse while captured in server mode.
    pub(crate) fn device_event(&mut self, event: &DeviceEvent) {
        if let DeviceEvent::MouseMotion { delta } = event
            && self.captured
            && !self.session.client_mouse()
        {
            let x = self.motion_rest.0 + delta.0;
            let y = self.motion_rest.1 + delta.1;
            let (dx, dy) = (x.trunc(), y.trunc());
            self.motion_rest = (x - dx, y - dy);
            if dx != 0.0 || dy != 0.0 {
                self.session.inputs().motion(dx as i32, dy as i32);
            }
        }
    }

    fn set_capture(&mut self, window: &Window, on: bool) {
        if on == self.captured {
            return;
        }
        self.captured = on;
        if on {
            // Locked is Wayland/macOS; X11 can only confine (raw motion still arrives as device events).
            if window.set_cursor_grab(CursorGrabMode::Locked).is_err() {
                let _ = window.set_cursor_grab(CursorGrabMode::Confined);
            }
            window.set_cursor_visible(self.session.client_mouse());
        } else {
            let _ = window.set_cursor_grab(CursorGrabMode::None);
            window.set_cursor_visible(true);
            self.session.inputs().release_all();
        }
        tracing::info!(captured = on, "input capture");
    }
}

fn map_button(b: MouseButton) -> Option<Button> {
    Some(match b {
        MouseButton::Left => Button::Left,
        MouseButton::Middle => Button::Middle,
        MouseButton::Right => Button::Right,
        MouseButton::Back => Button::Side,
        MouseButton::Forward => Button::Extra,
        MouseButton::Other(_) => return None,
    })
}

/// The host's lock keys from the keyboard LEDs (`/sys/class/leds/inputN::capslock` …); `None` when the host
/// has no keyboard LEDs (a virtual display), so the guest's state is left alone.
pub(crate) fn host_lock_keys(root: &HostRoot) -> Option<u16> {
    let leds = root.list_dir("/sys/class/leds").ok()?;
    let mut found = false;
    let mut flags = 0;
    for led in leds {
        let flag = match led.rsplit_once("::").map(|(_, f)| f) {
            Some("capslock") => modifiers::CAPS_LOCK,
            Some("numlock") => modifiers::NUM_LOCK,
            Some("scrolllock") => modifiers::SCROLL_LOCK,
            _ => continue,
        };
        found = true;
        if root
            .read_u64(format!("/sys/class/leds/{led}/brightness"))
            .is_ok_and(|v| v > 0)
        {
            flags |= flag;
        }
    }
    found.then_some(flags)
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.session.inputs().release_all();
    }
}
