//! Property tests over every parser of server bytes: arbitrary bytes and mutated valid messages give a value
//! or an error, never a panic, and counts never size an allocation beyond the body.
use proptest::prelude::*;

use super::{common, inputs, link, main_channel};

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
    fn lying_counts_are_errors(count in 1u32.., extra in 0usize..40) {
        let mut list = count.to_le_bytes().to_vec();
        list.extend(std::iter::repeat_n(2u8, extra));
        let fits = (count as u64) * 2 <= extra as u64;
        prop_assert_eq!(main_channel::parse(104, &list).is_ok(), fits);
    }
}
