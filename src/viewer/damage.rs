//! Which pixels changed: the canvas remembers the rects of its last few ingests, so that a present whose
//! buffer still holds an older picture redraws only what changed since then (the damage-only present).
use std::collections::VecDeque;

use crate::lg::kvmfr::Rect;

/// Ingests remembered: a present whose buffer is older than that redraws everything.
const KEPT: usize = 8;
/// More rects than this since a present: redraw everything (a few large copies beat many small ones).
const MAX_RECTS: usize = 64;

/// The changes of the last [`KEPT`] ingests.
#[derive(Debug, Default)]
pub struct Changes {
    generation: u64,
    /// `(generation, rects)`, oldest first; `None` is the whole canvas.
    recent: VecDeque<(u64, Option<Vec<Rect>>)>,
}

impl Changes {
    /// Records one ingest into a `w × h` canvas: `rects` (clipped to it), or all of it when `None`.
    pub(crate) fn record(&mut self, rects: Option<&[Rect]>, w: u32, h: u32) {
        self.generation += 1;
        let rects = rects.and_then(|rects| {
            let clipped: Vec<Rect> = rects.iter().filter_map(|r| clip(*r, w, h)).collect();
            (clipped.len() <= MAX_RECTS).then_some(clipped)
        });
        self.recent.push_back((self.generation, rects));
        if self.recent.len() > KEPT {
            self.recent.pop_front();
        }
    }

    /// The number of the last ingest.
    #[cfg(any(test, feature = "viewer"))]
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// What changed after ingest `since`; `None` when that is not known (too old, or a whole-canvas change).
    #[cfg(any(test, feature = "viewer"))]
    pub(crate) fn since(&self, since: u64) -> Option<Vec<Rect>> {
        if since > self.generation {
            return None;
        }
        let needed = (self.generation - since) as usize;
        if needed > self.recent.len() {
            return None;
        }
        let mut all = Vec::new();
        for (_, rects) in self.recent.iter().skip(self.recent.len() - needed) {
            all.extend_from_slice(rects.as_deref()?);
            if all.len() > MAX_RECTS {
                return None;
            }
        }
        Some(all)
    }
}

/// `r` clipped to `w × h`; `None` when nothing is left.
pub(crate) fn clip(r: Rect, w: u32, h: u32) -> Option<Rect> {
    let x1 = r.x.saturating_add(r.w).min(w);
    let y1 = r.y.saturating_add(r.h).min(h);
    (r.x < x1 && r.y < y1).then(|| Rect {
        x: r.x,
        y: r.y,
        w: x1 - r.x,
        h: y1 - r.y,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: u32, y: u32, w: u32, h: u32) -> Rect {
        Rect { x, y, w, h }
    }

    #[test]
    fn changes_since_collect_the_rects_of_later_ingests() {
        let mut c = Changes::default();
        c.record(None, 100, 100);
        let base = c.generation();
        assert_eq!(c.since(base), Some(vec![]));
        c.record(Some(&[rect(1, 2, 3, 4)]), 100, 100);
        c.record(Some(&[rect(90, 90, 20, 20)]), 100, 100);
        assert_eq!(
            c.since(base),
            Some(vec![rect(1, 2, 3, 4), rect(90, 90, 10, 10)])
        );
        assert_eq!(c.since(base - 1), None, "a whole-canvas ingest since");
        assert_eq!(c.since(base + 5), None, "a generation from the future");
    }

    #[test]
    fn changes_too_old_or_too_many_are_unknown() {
        let mut c = Changes::default();
        for _ in 0..KEPT + 1 {
            c.record(Some(&[rect(0, 0, 1, 1)]), 10, 10);
        }
        assert_eq!(c.since(0), None);
        assert!(c.since(1).is_some());
        let many = vec![rect(0, 0, 1, 1); MAX_RECTS + 1];
        c.record(Some(&many), 10, 10);
        assert_eq!(c.since(c.generation() - 1), None);
    }

    #[test]
    fn hostile_rects_are_clipped_or_dropped() {
        assert_eq!(
            clip(rect(u32::MAX, 0, u32::MAX, 5), 10, 10),
            None,
            "outside"
        );
        assert_eq!(clip(rect(5, 5, u32::MAX, 0), 10, 10), None, "empty");
        assert_eq!(
            clip(rect(5, 5, u32::MAX, u32::MAX), 10, 10),
            Some(rect(5, 5, 5, 5))
        );
    }
}
