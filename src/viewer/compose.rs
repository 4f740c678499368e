//! What one presented picture is: the message screen, or the frame scaled into the window with the cursor and
//! any banner on top.
use std::time::Instant;

use super::feed::Shared;
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
}

/// Fills `out` (`w × h`) from the shared state.
pub fn compose(shared: &Shared, out: &mut [u32], w: u32, h: u32) -> Composed {
    let info = shared.info().clone();
    let mut composed = Composed {
        serial: None,
        cursor_updates: 0,
        connects: info.connects,
        resubscribes: info.resubscribes,
        banner_height: 0,
    };
    if let Some(message) = &info.message {
        out.fill(0x0010_1418);
        text::draw_panel(out, w, h, message, false);
        return composed;
    }
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
    if let Some(banner) = &info.banner
        && banner.visible(Instant::now())
    {
        composed.banner_height = text::draw_panel(out, w, h, &banner.text, true);
    }
    composed
}
