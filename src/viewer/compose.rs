//! What one presented picture is: the message screen, or the frame scaled into the window with the cursor and
//! any banner on top.
use std::time::Instant;

use super::feed::{Shared, Shown};
use super::scale::{Placement, blit, copy_rects};
use super::text;
use crate::lg::kvmfr::Rect;

/// What was composed (the test mode reports it).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Composed {
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
    /// What the buffer now holds, when a later present may redraw only what changed since (a Looking Glass
    /// frame at 1:1 with no banner); `None` otherwise.
    pub drawn: Option<Drawn>,
}

/// What a presented buffer holds: enough to know what changed since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Drawn {
    /// The window size.
    pub size: (u32, u32),
    /// The frame size.
    pub frame: (u32, u32),
    /// The canvas ingest shown ([`Changes::generation`](super::damage::Changes::generation)).
    pub generation: u64,
    /// Where the cursor was drawn, in window pixels.
    pub cursor: Option<Rect>,
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
#[cfg(test)]
pub(crate) fn compose(shared: &Shared, out: &mut [u32], w: u32, h: u32) -> Composed {
    compose_since(shared, out, w, h, None).0
}

/// Brings `out` (`w × h`), which holds `before` (`None`: unknown), up to date with the shared state: only the
/// pixels that changed since when it can tell (a Looking Glass frame at 1:1, no banner then or now), else all.
/// Returns what it composed and the window rects it redrew (`None`: all of them).
pub(crate) fn compose_since(
    shared: &Shared,
    out: &mut [u32],
    w: u32,
    h: u32,
    before: Option<&Drawn>,
) -> (Composed, Option<Vec<Rect>>) {
    let info = shared.info().clone();
    let mut composed = Composed {
        serial: None,
        cursor_updates: 0,
        connects: info.connects,
        resubscribes: info.resubscribes,
        shown: Shown::Message,
        spice_updates: 0,
        banner_height: 0,
        drawn: None,
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
            return (composed, None);
        }
    }
    if shown != Shown::LookingGlass {
        out.fill(0x0010_1418);
        let lg = info
            .message
            .as_deref()
            .unwrap_or("waiting for the first frame");
        text::draw_panel(out, w, h, &message(shared, lg), false);
        return (composed, None);
    }
    composed.shown = Shown::LookingGlass;
    let canvas = shared.canvas();
    let frame = (canvas.width, canvas.height);
    let p = Placement::fit(frame, (w, h));
    let one_to_one = (p.w, p.h) == frame;
    let cursor = shared.cursor();
    let cursor_box = cursor.bounds(frame, p);
    let banner = info
        .banner
        .as_ref()
        .is_some_and(|b| b.visible(Instant::now()));
    let changed = before
        .filter(|b| one_to_one && !banner && b.size == (w, h) && b.frame == frame)
        .and_then(|b| {
            let mut rects = canvas.changes.since(b.generation)?;
            for r in &mut rects {
                (r.x, r.y) = (r.x + p.x, r.y + p.y);
            }
            rects.extend(b.cursor);
            rects.extend(cursor_box);
            Some(rects)
        });
    match &changed {
        Some(rects) => copy_rects(&canvas.pixels, canvas.width, out, w, p, rects),
        None => blit(&canvas.pixels, canvas.width, canvas.height, out, w, h, p),
    }
    let generation = canvas.changes.generation();
    drop(canvas);
    cursor.draw(out, w, frame, p);
    composed.cursor_updates = cursor.updates;
    drop(cursor);
    composed.serial = info.serial;
    composed.banner_height = draw_banner(&info, out, w, h);
    if one_to_one && composed.banner_height == 0 {
        composed.drawn = Some(Drawn {
            size: (w, h),
            frame,
            generation,
            cursor: cursor_box,
        });
    }
    (composed, changed)
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

    /// A 64×40 LG frame with the arrow cursor at `cursor`.
    fn lg_state(cursor: (i32, i32)) -> Shared {
        let shared = Shared::default();
        {
            let mut c = shared.canvas();
            (c.width, c.height) = (64, 40);
            c.pixels = (0..64 * 40).collect();
            c.changes.record(None, 64, 40);
        }
        {
            let mut k = shared.cursor();
            k.visible = true;
            k.position = cursor;
            k.shape = Some(crate::lg::scene::arrow_cursor());
        }
        let mut info = shared.info();
        (info.message, info.serial) = (None, Some(1));
        drop(info);
        shared
    }

    #[test]
    fn damage_only_compose_equals_a_full_compose() {
        let shared = lg_state((3, 2));
        let mut buf = vec![0u32; 64 * 40];
        let (first, changed) = compose_since(&shared, &mut buf, 64, 40, None);
        assert_eq!(changed, None);
        let drawn = first.drawn.expect("1:1, no banner");
        // A damaged rect and a cursor that moved: only those are redrawn, and the result is the full picture.
        {
            let mut c = shared.canvas();
            for y in 30..35 {
                for x in 40..50 {
                    c.pixels[y * 64 + x] = 0xAB_CDEF;
                }
            }
            let rect = Rect {
                x: 40,
                y: 30,
                w: 10,
                h: 5,
            };
            c.changes.record(Some(&[rect]), 64, 40);
        }
        shared.cursor().position = (20, 10);
        let (_, changed) = compose_since(&shared, &mut buf, 64, 40, Some(&drawn));
        let changed = changed.expect("damage-only");
        assert!(
            changed.len() == 3,
            "the rect and both cursor boxes: {changed:?}"
        );
        let mut full = vec![0u32; 64 * 40];
        compose(&shared, &mut full, 64, 40);
        assert!(buf == full, "damage-only differs from a full compose");
        // Another window size, or a banner: everything.
        assert_eq!(
            compose_since(&shared, &mut buf, 64, 39, Some(&drawn)).1,
            None
        );
        shared.info().banner = Some(crate::viewer::feed::Banner {
            text: "hello".into(),
            since: Instant::now(),
            sticky: false,
        });
        let (c, changed) = compose_since(&shared, &mut buf, 64, 40, Some(&drawn));
        assert_eq!((changed, c.drawn), (None, None));
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
