//! Property tests over every parser of server bytes: arbitrary bytes and mutated valid messages give a value
//! or an error, never a panic, and counts never size an allocation beyond the body.
use proptest::prelude::*;

use super::screen::Screen;
use super::{common, display, inputs, link, main_channel};

fn parse_all(kind: u16, body: &[u8]) {
    let _ = common::parse(kind, body);
    let _ = main_channel::parse(kind, body);
    let _ = inputs::parse(kind, body);
}

fn valid_messages() -> Vec<(u16, Vec<u8>)> {
    let mut init = vec![];
    for v in [7u32, 1, 3, 2, 1, 10, 1000, 0x0100_0000] {
        init.extend_from_slice(&v.to_le_bytes());
    }
    let mut notify = vec![0u8; 20];
    notify.extend_from_slice(&5u32.to_le_bytes());
    notify.extend_from_slice(b"hello");
    let mut name = 4u32.to_le_bytes().to_vec();
    name.extend_from_slice(b"vm1\0");
    vec![
        (3, vec![1, 0, 0, 0, 20, 0, 0, 0]),
        (4, vec![1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]),
        (6, vec![0; 12]),
        (7, notify),
        (103, init),
        (104, vec![2, 0, 0, 0, 3, 0, 2, 0]),
        (105, vec![3, 0, 2, 0]),
        (113, name),
        (115, vec![10, 0, 0, 0]),
        (101, vec![4, 0]),
    ]
}

fn valid_reply() -> Vec<u8> {
    let mut body = vec![0u8; link::REPLY_FIXED_LEN];
    body[166..170].copy_from_slice(&1u32.to_le_bytes());
    body[170..174].copy_from_slice(&1u32.to_le_bytes());
    body[174..178].copy_from_slice(&178u32.to_le_bytes());
    body.extend_from_slice(&0x0bu32.to_le_bytes());
    body.extend_from_slice(&0x0fu32.to_le_bytes());
    body
}

/// A drawing message (DRAW_COPY of a 3×2 32-bit bitmap with two clip rects, or DRAW_FILL, or COPY_BITS).
fn valid_drawing(kind: u16) -> Vec<u8> {
    let mut b = 0u32.to_le_bytes().to_vec();
    let rect = |b: &mut Vec<u8>, t: i32, l: i32, bo: i32, r: i32| {
        for v in [t, l, bo, r] {
            b.extend_from_slice(&v.to_le_bytes());
        }
    };
    rect(&mut b, 1, 1, 3, 4);
    b.push(1);
    b.extend_from_slice(&2u32.to_le_bytes());
    rect(&mut b, 0, 0, 2, 2);
    rect(&mut b, 2, 2, 9, 9);
    match kind {
        display::server::DRAW_COPY => {
            let at = b.len() as u32 + 36;
            b.extend_from_slice(&at.to_le_bytes());
            rect(&mut b, 0, 0, 2, 3);
            b.extend_from_slice(&8u16.to_le_bytes());
            b.extend_from_slice(&[0; 14]);
            b.extend_from_slice(&[0; 10]);
            b.extend_from_slice(&3u32.to_le_bytes());
            b.extend_from_slice(&2u32.to_le_bytes());
            b.extend_from_slice(&[8, 4]);
            for v in [3u32, 2, 12, 0] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b.extend_from_slice(&[0x55; 24]);
        }
        display::server::DRAW_FILL => {
            b.push(1);
            b.extend_from_slice(&0x00ff_00ffu32.to_le_bytes());
            b.extend_from_slice(&8u16.to_le_bytes());
            b.extend_from_slice(&[0; 13]);
        }
        _ => b.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]),
    }
    b
}

fn screen_4x4() -> Screen {
    let mut s = Screen::default();
    let create: Vec<u8> = [0u32, 4, 4, 32, 1]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let msg = display::parse(display::server::SURFACE_CREATE, &create).unwrap();
    s.apply(&msg).unwrap();
    s.apply(&display::DisplayMsg::Mark).unwrap();
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bodies_never_panic(kind in 0u16..130, body in proptest::collection::vec(any::<u8>(), 0..600)) {
        parse_all(kind, &body);
    }

    #[test]
    fn mutated_valid_messages_never_panic(
        pick in 0usize..10,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let (kind, mut body) = valid_messages()[pick].clone();
        if !body.is_empty() {
            for (at, v) in &flips {
                let i = at.index(body.len());
                body[i] = *v;
            }
            body.truncate(cut.index(body.len() + 1));
        }
        parse_all(kind, &body);
    }

    #[test]
    fn link_replies_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
        header in any::<[u8; 16]>(),
    ) {
        let mut body = valid_reply();
        for (at, v) in &flips {
            let i = at.index(body.len());
            body[i] = *v;
        }
        body.truncate(cut.index(body.len() + 1));
        let _ = link::parse_reply(&body);
        let _ = link::parse_reply_header(&header);
    }

    #[test]
    fn mutated_drawing_messages_never_panic(
        pick in 0usize..3,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let kind = [display::server::DRAW_COPY, display::server::DRAW_FILL, display::server::COPY_BITS][pick];
        let mut body = valid_drawing(kind);
        let mut screen = screen_4x4();
        prop_assert!(display::parse(kind, &body).and_then(|m| screen.apply(&m)).is_ok());
        for (at, v) in &flips {
            let i = at.index(body.len());
            body[i] = *v;
        }
        body.truncate(cut.index(body.len() + 1));
        let _ = display::parse(kind, &body).and_then(|m| screen.apply(&m));
        prop_assert_eq!(screen.primary().map(|p| p.pixels.len()), Some(16));
    }

    #[test]
    fn arbitrary_display_bodies_never_panic(
        kind in prop::sample::select(vec![102u16, 103, 104, 302, 304, 314, 315, 317, 305]),
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut screen = screen_4x4();
        let _ = display::parse(kind, &body).and_then(|m| screen.apply(&m));
    }

    #[test]
    fn arbitrary_cursor_bodies_never_panic(
        kind in 100u16..110,
        body in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut c = super::cursor::Cursors::default();
        if let Ok(m) = super::cursor::parse(kind, &body) {
            let _ = c.apply(m);
        }
    }

    #[test]
    fn lying_counts_are_errors(count in 1u32.., extra in 0usize..40) {
        let mut list = count.to_le_bytes().to_vec();
        list.extend(std::iter::repeat_n(2u8, extra));
        let fits = (count as u64) * 2 <= extra as u64;
        prop_assert_eq!(main_channel::parse(104, &list).is_ok(), fits);
    }
}
