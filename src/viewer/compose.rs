//! What one presented picture is: the message screen, or the frame scaled into the window with the cursor and
//! any banner on top.
use std::time::Instant;

use super::feed::{Shared, Shown};
use super::scale::{Placement, blit};
use super::text;

/// What was composed (the test mode reports it).
#[derive(Debug, Clone, Copy, Default)]
pub struct Composed {
    /// Serial of the frame shown, if a frame was shown.
    pub serial: Option<u32>,
    /// Cursor updates applied so far.
    pub cursor_updates: u64,
    /// Sessions so far.
    pub connects: u64,
    /// Resubscriptions so far.
    pub resubscribes: u64,
    /// Height of the banner drawn over the frame's top, 0 when none.
    pub banner_height: u32,
    /// The source shown.
    pub shown: Shown,
    /// SPICE display updates applied so far.
    pub spice_updates: u64,
}

/// The full-screen message when no source has a picture: the LG status, and what to do when the VM has no
/// virtual display either.
fn message(shared: &Shared, lg: &str) -> String {
    if shared
        .spice_no_display
        .load(std::sync::atomic::Ordering::Acquire)
    {
        let vm = shared.vm.get().map_or("NAME", String::as_str);
        format!(
            "{lg}; no virtual display: `vmgpu define {vm} --update --display install` to see the VM before Looking Glass runs"
        )
    } else {
        lg.to_string()
    }
}

/// Fills `out` (`w × h`) from the shared state.
pub fn compose(shared: &Shared, out: &mut [u32], w: u32, h: u32) -> Composed {
    let info = shared.info().clone();
    let mut composed = Composed {
        serial: None,
        cursor_updates: 0,
        connects: info.connects,
        resubscribes: info.resubscribes,
        shown: Shown::Message,
        spice_updates: 0,
        banner_height: 0,
    };
    let (shown, _) = shared.shown();
    if shown == Shown::Spice
        && let Some(screen) = shared.spice_screen.get()
    {
        let screen = screen.lock().unwrap_or_else(|e| e.into_inner());
        composed.spice_updates = screen.updates;
        if let Some(p) = screen.primary() {
            composed.shown = Shown::Spice;
            let place = Placement::fit((p.width, p.height), (w, h));
            blit(&p.pixels, p.width, p.height, out, w, h, place);
            let frame = (p.width, p.height);
            drop(screen);
            if let Some(cursor) = shared.spice_cursor.get() {
                let cursor = cursor.lock().unwrap_or_else(|e| e.into_inner());
                cursor.state.draw(out, w, frame, place);
                composed.cursor_updates = cursor.state.updates;
            }
            composed.banner_height = draw_banner(&info, out, w, h);
            return composed;
        }
    }
    if shown != Shown::LookingGlass {
        out.fill(0x0010_1418);
        let lg = info
            .message
            .as_deref()
            .unwrap_or("waiting for the first frame");
        text::draw_panel(out, w, h, &message(shared, lg), false);
        return composed;
    }
    composed.shown = Shown::LookingGlass;
    let canvas = shared.canvas();
    let frame = (canvas.width, canvas.height);
    let p = Placement::fit(frame, (w, h));
    blit(&canvas.pixels, canvas.width, canvas.height, out, w, h, p);
    drop(canvas);
    let cursor = shared.cursor();
    cursor.draw(out, w, frame, p);
    composed.cursor_updates = cursor.updates;
    drop(cursor);
    composed.serial = info.serial;
    composed.banner_height = draw_banner(&info, out, w, h);
    composed
}

/// Draws the banner, if one is visible; returns its height (0 when none).
fn draw_banner(info: &super::feed::FeedInfo, out: &mut [u32], w: u32, h: u32) -> u32 {
    match &info.banner {
        Some(banner) if banner.visible(Instant::now()) => {
            text::draw_panel(out, w, h, &banner.text, true)
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Mutex};

    use crate::spice::display::{self, DisplayMsg};
    use crate::spice::screen::Screen;

    #[test]
    fn no_virtual_display_says_what_to_do() {
        let shared = Shared::default();
        assert_eq!(message(&shared, "waiting"), "waiting");
        shared.spice_no_display.store(true, Ordering::Release);
        let text = message(&shared, "waiting");
        assert!(
            text.contains("no virtual display: `vmgpu define NAME --update --display install`")
        );
    }

    #[test]
    fn spice_display_is_shown_until_lg_frames_flow() {
        let shared = Shared::default();
        let screen = Arc::new(Mutex::new(Screen::default()));
        let _ = shared.spice_screen.set(screen.clone());
        shared.info().message = Some("waiting for the guest".into());
        let mut out = vec![0u32; 4 * 2];
        assert_eq!(compose(&shared, &mut out, 4, 2).shown, Shown::Message);
        let create: Vec<u8> = [0u32, 2, 1, 32, 1]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        {
            let mut s = screen.lock().unwrap();
            s.apply(&display::parse(display::server::SURFACE_CREATE, &create).unwrap())
                .unwrap();
            s.apply(&DisplayMsg::Mark).unwrap();
        }
        assert_eq!(compose(&shared, &mut out, 4, 2).shown, Shown::Spice);
        // An LG frame arrived: LG wins.
        {
            let mut info = shared.info();
            info.message = None;
            info.serial = Some(1);
        }
        assert_eq!(shared.shown().0, Shown::LookingGlass);
        // The LG host stopped: back to SPICE.
        shared.info().message = Some("waiting for the guest's Looking Glass host".into());
        assert_eq!(compose(&shared, &mut out, 4, 2).shown, Shown::Spice);
    }
}
