//! The window's side of the handoff ([`super::handoff`]): a Looking Glass frame copied from shared memory
//! straight into the presented buffer, damage only, with the cursor drawn over it; and, when a present needs
//! the canvas again (a scaled window, a banner, an expose, the SPICE display), the canvas repaired from that
//! buffer first. The buffer then is the only full copy of the picture, so the pixels under the drawn cursor
//! are kept aside ([`Under`]) to take it off again.
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::compose::{Composed, Drawn, compose_since};
use super::feed::{Shared, Shown};
use super::scale::{Placement, copy_rects};
use crate::lg::frame::{self, RowSink};
use crate::lg::kvmfr::Rect;
use crate::shm::{self, ShmView};

/// The frame's own pixels under the cursor drawn in the buffer.
#[derive(Debug, Default)]
pub(crate) struct Under {
    rect: Option<Rect>,
    pixels: Vec<u32>,
    /// `false` after a present through the canvas (the canvas holds those pixels then).
    valid: bool,
}

impl Under {
    fn save(&mut self, rect: Option<Rect>, buf: &[u32], w: u32) {
        self.pixels.clear();
        self.rect = rect;
        self.valid = true;
        if let Some(r) = rect {
            for y in r.y..r.y + r.h {
                let s = y as usize * w as usize + r.x as usize;
                if let Some(row) = buf.get(s..s + r.w as usize) {
                    self.pixels.extend_from_slice(row);
                }
            }
        }
    }

    fn restore(&self, buf: &mut [u32], w: u32) {
        let Some(r) = self.rect else { return };
        for (i, row) in self.pixels.chunks_exact(r.w.max(1) as usize).enumerate() {
            let d = (r.y as usize + i) * w as usize + r.x as usize;
            if let Some(to) = buf.get_mut(d..d + row.len()) {
                to.copy_from_slice(row);
            }
        }
    }
}

/// Rows of a BGRA frame straight into a `w`-wide buffer of 0x00RRGGBB (the same bytes in memory).
struct BufSink<'a> {
    buf: &'a mut [u32],
    w: u32,
}

impl RowSink for BufSink<'_> {
    fn row(&mut self, view: ShmView<'_>, src: usize, x: u32, y: u32, w: u32) -> shm::Result<()> {
        let start = y as usize * self.w as usize + x as usize;
        match self.buf.get_mut(start..start + w as usize) {
            Some(dst) => view.copy_to_u32s(src, dst),
            None => Ok(()),
        }
    }
}

/// Brings `buf` (`w × h`, holding what was presented `age` presents ago, `before` describing it when known)
/// up to date: straight from shared memory when the feed handed a frame over and the buffer holds the previous
/// picture at 1:1 (`partial`: a redraw the feed asked for), else through the canvas ([`compose_since`]),
/// repairing the canvas from the buffer first when frames went past it. Returns what was drawn, the rects
/// changed (`None`: all) and whether the window can take the next frame straight.
pub(crate) fn draw(
    shared: &Shared,
    buf: &mut [u32],
    (w, h): (u32, u32),
    age: u8,
    before: Option<&Drawn>,
    partial: bool,
    under: &mut Under,
) -> (Composed, Option<Vec<Rect>>) {
    let behind = shared.handoff.behind();
    if let Some(b) = before.filter(|_| partial && age == 1)
        && let Some(done) = straight(shared, buf, (w, h), b, behind, under)
    {
        return done;
    }
    // Repaired before the posted frame (if any) goes back to the feed, whose ingest must come after it.
    if behind && age == 1 {
        repair(shared, buf, (w, h), before, under);
    }
    shared.handoff.reject();
    under.valid = false;
    compose_since(shared, buf, w, h, before.filter(|_| partial))
}

/// The canvas from the buffer (which holds the picture the last direct present left, cursor included).
fn repair(shared: &Shared, buf: &[u32], (w, h): (u32, u32), b: Option<&Drawn>, under: &Under) {
    let mut canvas = shared.canvas();
    let fits = shared.handoff.behind()
        && b.is_some_and(|b| b.size == (w, h) && b.frame == (w, h))
        && (canvas.width, canvas.height) == (w, h)
        && canvas.pixels.len() == buf.len();
    if !fits {
        return;
    }
    canvas.pixels.copy_from_slice(buf);
    if under.valid {
        under.restore(&mut canvas.pixels, w);
    }
    canvas.changes.record(None, w, h);
    shared.handoff.canvas_behind.store(false, Ordering::Release);
}

fn straight(
    shared: &Shared,
    buf: &mut [u32],
    (w, h): (u32, u32),
    b: &Drawn,
    behind: bool,
    under: &mut Under,
) -> Option<(Composed, Option<Vec<Rect>>)> {
    let info = shared.info().clone();
    let banner = info
        .banner
        .as_ref()
        .is_some_and(|b| b.visible(Instant::now()));
    if banner || shared.shown().0 != Shown::LookingGlass || b.size != (w, h) || b.frame != (w, h) {
        return None;
    }
    let canvas = shared.canvas();
    // The buffer must hold exactly the canvas's last ingest (plus any frames that went past it).
    if (canvas.width, canvas.height) != (w, h) || canvas.changes.generation() != b.generation {
        return None;
    }
    let job = shared.handoff.take((w, h));
    if job.is_none() && !behind {
        return None; // the canvas is current: the ordinary damage-only present costs the same
    }
    // Take the cursor off: its saved pixels, or the canvas's when the last present went through it.
    let mut rects: Vec<Rect> = b.cursor.into_iter().collect();
    if under.valid {
        under.restore(buf, w);
    } else {
        copy_rects(
            &canvas.pixels,
            w,
            buf,
            w,
            Placement::fit((w, h), (w, h)),
            &rects,
        );
    }
    let generation = canvas.changes.generation();
    drop(canvas);
    let mut serial = info.serial;
    let mut all = false;
    if let Some(job) = job {
        let mut sink = BufSink { buf, w };
        let result = frame::ingest(
            job.region.view(),
            &job.info,
            job.rects.as_deref(),
            &mut sink,
        );
        shared.handoff.canvas_behind.store(true, Ordering::Release);
        shared.handoff.finish(result);
        serial = Some(job.info.serial);
        match &job.rects {
            Some(r) => rects.extend_from_slice(r),
            None => all = true,
        }
    }
    let cursor = shared.cursor();
    let p = Placement::fit((w, h), (w, h));
    let cursor_box = cursor.bounds((w, h), p);
    under.save(cursor_box, buf, w);
    cursor.draw(buf, w, (w, h), p);
    rects.extend(cursor_box);
    let composed = Composed {
        serial,
        cursor_updates: cursor.updates,
        connects: info.connects,
        resubscribes: info.resubscribes,
        banner_height: 0,
        shown: Shown::LookingGlass,
        spice_updates: 0,
        drawn: Some(Drawn {
            size: (w, h),
            frame: (w, h),
            generation,
            cursor: cursor_box,
        }),
    };
    Some((composed, (!all).then_some(rects)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lg::kvmfr::{FrameInfo, FrameType};
    use crate::shm::{HeapRegion, Region};
    use crate::viewer::handoff::Job;
    use std::sync::Arc;

    const W: u32 = 64;
    const H: u32 = 40;
    const DATA: usize = 64;

    /// Shared state showing `pixels` as the LG frame, the arrow cursor at `cursor`.
    fn state(pixels: &[u32], cursor: (i32, i32)) -> Shared {
        let shared = Shared::default();
        {
            let mut c = shared.canvas();
            (c.width, c.height) = (W, H);
            c.pixels = pixels.to_vec();
            c.changes.record(None, W, H);
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

    /// What a full compose of `pixels` with the cursor at `cursor` gives.
    fn expected(pixels: &[u32], cursor: (i32, i32)) -> Vec<u32> {
        let mut out = vec![0; pixels.len()];
        super::super::compose::compose(&state(pixels, cursor), &mut out, W, H);
        out
    }

    fn frame(region: &HeapRegion, pixels: &[u32], serial: u32, rects: Option<Vec<Rect>>) -> Job {
        let view = region.view();
        let bytes: Vec<u8> = pixels.iter().flat_map(|p| p.to_le_bytes()).collect();
        view.write_bytes(DATA, &bytes).unwrap();
        view.write_u32(0, bytes.len() as u32).unwrap();
        let info = FrameInfo {
            format_ver: 1,
            serial,
            kind: FrameType::Bgra,
            screen: (W, H),
            width: W,
            height: H,
            data_height: H,
            pitch: W * 4,
            wp_offset: 0,
            data_offset: DATA,
            damage: rects.clone().unwrap_or_default(),
            flags: 0,
            rotation: 0,
        };
        Job {
            info,
            rects,
            region: Arc::new(CopyOf(region_bytes(view))),
        }
    }

    /// A region holding a copy of another's bytes (each job owns its frame, as a held LGMP message does).
    struct CopyOf(HeapRegion);
    impl Region for CopyOf {
        fn view(&self) -> ShmView<'_> {
            self.0.view()
        }
    }
    fn region_bytes(view: ShmView<'_>) -> HeapRegion {
        let copy = HeapRegion::new(view.len());
        let mut bytes = vec![0u8; view.len()];
        view.read_bytes(0, &mut bytes).unwrap();
        copy.view().write_bytes(0, &bytes).unwrap();
        copy
    }

    /// Hands `job` over from a feed thread and presents until the window took it.
    fn present_job(
        shared: &Arc<Shared>,
        job: Job,
        buf: &mut [u32],
        drawn: &mut Drawn,
        under: &mut Under,
    ) -> Option<Vec<Rect>> {
        shared.handoff.accept(Some((W, H)));
        let feed = {
            let shared = shared.clone();
            std::thread::spawn(move || shared.handoff.offer(job, &|| {}))
        };
        loop {
            if let Some(job) = peek(shared) {
                let (c, rects) = draw(shared, buf, (W, H), 1, Some(drawn), true, under);
                assert_eq!(c.serial, Some(job));
                *drawn = c.drawn.expect("1:1");
                let handed = feed.join().unwrap();
                assert!(matches!(handed, Some(Ok(_))), "the window took the frame");
                return rects;
            }
            std::thread::yield_now();
        }
    }

    fn peek(shared: &Shared) -> Option<u32> {
        let job = shared.handoff.take((W, H))?;
        let serial = job.info.serial;
        // put it back as posted: `draw` takes it for real
        shared.handoff.repost(job);
        Some(serial)
    }

    #[test]
    fn straight_presents_equal_full_composes() {
        let a: Vec<u32> = (0..W * H).collect();
        let b: Vec<u32> = (0..W * H).map(|i| 0x0055_0000 | (i * 3)).collect();
        let shared = Arc::new(state(&a, (3, 2)));
        let mut buf = vec![0u32; (W * H) as usize];
        let mut under = Under::default();
        let (c, _) = draw(&shared, &mut buf, (W, H), 0, None, false, &mut under);
        let mut drawn = c.drawn.expect("1:1, no banner");
        assert!(buf == expected(&a, (3, 2)));

        // A whole new frame straight into the buffer.
        let region = HeapRegion::new(DATA + (W * H * 4) as usize);
        let rects = present_job(
            &shared,
            frame(&region, &b, 2, None),
            &mut buf,
            &mut drawn,
            &mut under,
        );
        assert_eq!(rects, None, "a full frame");
        assert!(buf == expected(&b, (3, 2)), "full frame");
        assert!(shared.handoff.behind(), "the canvas still holds a");

        // Then only a damaged rect.
        let mut c2 = b.clone();
        for y in 30..35 {
            for x in 40..50 {
                c2[y * W as usize + x] = 0xAB_CDEF;
            }
        }
        let rect = Rect {
            x: 40,
            y: 30,
            w: 10,
            h: 5,
        };
        let rects = present_job(
            &shared,
            frame(&region, &c2, 3, Some(vec![rect])),
            &mut buf,
            &mut drawn,
            &mut under,
        );
        assert_eq!(rects.map(|r| r.contains(&rect)), Some(true));
        assert!(buf == expected(&c2, (3, 2)), "damage-only frame");

        // The cursor moves: only the cursor boxes, from the saved pixels.
        shared.cursor().position = (20, 10);
        let (c, rects) = draw(&shared, &mut buf, (W, H), 1, Some(&drawn), true, &mut under);
        assert_eq!(rects.map(|r| r.len()), Some(2));
        drawn = c.drawn.unwrap();
        assert!(buf == expected(&c2, (20, 10)), "cursor move");

        // An expose: the canvas is repaired from the buffer, then everything is drawn from it.
        let (_, rects) = draw(
            &shared,
            &mut buf,
            (W, H),
            1,
            Some(&drawn),
            false,
            &mut under,
        );
        assert_eq!(rects, None);
        assert!(!shared.handoff.behind());
        assert!(
            shared.canvas().pixels == c2,
            "the repaired canvas is the frame, no cursor"
        );
        assert!(buf == expected(&c2, (20, 10)), "expose");
    }
}
