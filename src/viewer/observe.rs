//! The seam test harnesses use to watch the window, set up by `vmgpu view` from the environment, so the window
//! itself has no test branches: it takes a [`Placement`] and reports every present to an [`Observer`].
//!
//! `VMGPU_VIEW_TEST=1` (see [`from_env`]): the window opens at (0, 0) without decorations and follows the frame
//! size exactly (`VMGPU_VIEW_TEST_WINDOW=WxH` keeps it at that size instead, to see the frame scaled), and
//! [`PresentLines`] prints one line `presented serial=S size=WxH cursor=C connects=N resub=R banner=B
//! source=SRC spice=U` on stdout after each present that changed one of them, so a harness knows when to take
//! a screenshot.
use std::io::Write;

use super::feed::Shown;

/// Where the window opens and how it follows the frame size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Where the window manager puts it, decorated; it takes the frame size, shrunk to 90 % of the monitor.
    #[default]
    Fit,
    /// At (0, 0) without decorations, at exactly the frame size, or at `size` when given.
    Exact {
        /// A fixed inner size.
        size: Option<(u32, u32)>,
    },
}

/// One present, as an observer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Presented {
    /// Serial of the Looking Glass frame shown, if one was.
    pub serial: Option<u32>,
    /// The window's inner size.
    pub size: (u32, u32),
    /// Cursor updates applied so far.
    pub cursor_updates: u64,
    /// Looking Glass sessions so far.
    pub connects: u64,
    /// Resubscriptions so far.
    pub resubscribes: u64,
    /// A banner is drawn.
    pub banner: bool,
    /// The source shown.
    pub shown: Shown,
    /// SPICE display updates applied so far.
    pub spice_updates: u64,
}

/// Told about every present.
pub(crate) trait Observer {
    /// The window presented `p`.
    fn presented(&mut self, p: &Presented);
}

/// Prints a line on stdout for each present that differs from the last one printed.
#[derive(Debug, Default)]
pub(crate) struct PresentLines {
    last: Option<Presented>,
}

impl PresentLines {
    /// The line for `p`.
    pub(crate) fn line(p: &Presented) -> String {
        let serial = p.serial.map_or("none".to_string(), |s| s.to_string());
        format!(
            "presented serial={serial} size={}x{} cursor={} connects={} resub={} banner={} source={} spice={}",
            p.size.0,
            p.size.1,
            p.cursor_updates,
            p.connects,
            p.resubscribes,
            u8::from(p.banner),
            p.shown.name(),
            p.spice_updates
        )
    }
}

impl Observer for PresentLines {
    fn presented(&mut self, p: &Presented) {
        if self.last.as_ref() == Some(p) {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", Self::line(p));
        let _ = out.flush();
        self.last = Some(*p);
    }
}

/// The placement and observer the environment asks for: [`Placement::Fit`] and none, unless
/// `VMGPU_VIEW_TEST` is set (and not `0`).
pub(crate) fn from_env() -> (Placement, Option<Box<dyn Observer>>) {
    if std::env::var_os("VMGPU_VIEW_TEST").is_none_or(|v| v == "0") {
        return (Placement::Fit, None);
    }
    let size = std::env::var("VMGPU_VIEW_TEST_WINDOW")
        .ok()
        .and_then(|v| parse_size(&v));
    let lines: Box<dyn Observer> = Box::new(PresentLines::default());
    (Placement::Exact { size }, Some(lines))
}

/// `WxH`.
fn parse_size(text: &str) -> Option<(u32, u32)> {
    let (w, h) = text.split_once('x')?;
    Some((w.parse().ok()?, h.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_line_has_the_fields_harnesses_read() {
        let p = Presented {
            serial: Some(7),
            size: (1280, 720),
            cursor_updates: 3,
            connects: 1,
            resubscribes: 0,
            banner: true,
            shown: Shown::LookingGlass,
            spice_updates: 0,
        };
        assert_eq!(
            PresentLines::line(&p),
            "presented serial=7 size=1280x720 cursor=3 connects=1 resub=0 banner=1 source=looking-glass spice=0"
        );
    }

    #[test]
    fn test_parse_size_wants_w_x_h() {
        assert_eq!(parse_size("720x405"), Some((720, 405)));
        assert_eq!(parse_size("720"), None);
        assert_eq!(parse_size("ax1"), None);
    }
}
