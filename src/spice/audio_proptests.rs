//! Property tests of the audio channels: arbitrary bytes and mutated valid playback streams give messages or
//! one-line drops, never a panic, and the jitter buffer never holds more than its bound, whatever arrives.
use std::sync::Arc;

use proptest::prelude::*;

use super::audio_sink::{HostAudio, MAX_MS, PcmInput, PcmOutput, Player};
use super::jitter::JitterBuffer;
use super::playback::{self, MAX_DATA_BYTES, PcmFormat, PlaybackMsg};
use super::playback_thread::{Negotiated, OnceLog, PLAYBACK_MAX_BODY, apply};
use super::record;
use super::wire::{self, MINI_HEADER_LEN};

/// A host without a sound server (the "audio is dropped" path).
struct NoServer;

impl HostAudio for NoServer {
    fn open_output(&self, _: PcmFormat) -> Result<Box<dyn PcmOutput>, String> {
        Err("no sound server".into())
    }
    fn open_input(&self, _: PcmFormat) -> Result<Box<dyn PcmInput>, String> {
        Err("no sound server".into())
    }
}

fn start(channels: u32, rate: u32) -> Vec<u8> {
    let mut b = channels.to_le_bytes().to_vec();
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    wire::frame(103, &b)
}

fn data(pcm_len: usize) -> Vec<u8> {
    let mut b = 5u32.to_le_bytes().to_vec();
    b.extend((0..pcm_len).map(|i| i as u8));
    wire::frame(101, &b)
}

/// MODE raw, START 2×48 kHz, 30 DATA of 10 ms, VOLUME, MUTE, STOP, START 1×8 kHz, DATA.
fn valid_stream() -> Vec<u8> {
    let mut s = wire::frame(102, &[0, 0, 0, 0, 1, 0]);
    s.extend(start(2, 48_000));
    for _ in 0..30 {
        s.extend(data(1920));
    }
    s.extend(wire::frame(105, &[2, 0xff, 0xff, 0, 0x80]));
    s.extend(wire::frame(106, &[1]));
    s.extend(wire::frame(104, &[]));
    s.extend(start(1, 8_000));
    s.extend(data(160));
    s
}

/// Walks a byte stream the way [`super::channel::Channel::next`] does (a body over the limit ends it) and
/// applies every message; checks the bound after each.
fn play(stream: &[u8]) {
    let player = Player::new(Arc::new(NoServer)).unwrap();
    let mut neg = Negotiated::default();
    let mut log = OnceLog::default();
    let mut rest = stream;
    while rest.len() >= MINI_HEADER_LEN {
        let h: [u8; MINI_HEADER_LEN] = rest[..MINI_HEADER_LEN].try_into().unwrap();
        let (kind, size) = wire::parse_mini_header(&h);
        if size > PLAYBACK_MAX_BODY || rest.len() - MINI_HEADER_LEN < size as usize {
            break;
        }
        let body = &rest[MINI_HEADER_LEN..MINI_HEADER_LEN + size as usize];
        rest = &rest[MINI_HEADER_LEN + size as usize..];
        if let Ok(msg) = playback::parse(kind, body) {
            apply(&player, &mut neg, msg, &mut log);
        }
        // Bound: the largest format we accept, for MAX_MS.
        let bound = PcmFormat::checked(8, 1, 192_000)
            .unwrap()
            .bytes_for_ms(MAX_MS);
        assert!(player.queued_bytes() <= bound);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bodies_never_panic(kind in 99u16..110, body in proptest::collection::vec(any::<u8>(), 0..4096)) {
        match playback::parse(kind, &body) {
            Ok(PlaybackMsg::Data { pcm, .. }) => prop_assert!(pcm.len() + 4 == body.len()),
            Ok(PlaybackMsg::Volume(v)) => prop_assert!(2 * v.len() < body.len()),
            _ => {}
        }
        let _ = record::parse(kind, &body);
        if let Ok(f) = PcmFormat::checked(u32::from(body.first().copied().unwrap_or(0)), 1, 48_000) {
            let _ = playback::check_data(f, &body);
        }
    }

    #[test]
    fn mutated_valid_streams_stay_bounded(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..16),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut s = valid_stream();
        for (at, v) in flips {
            let i = at.index(s.len());
            s[i] = v;
        }
        let len = cut.index(s.len() + 1);
        play(&s[..len]);
    }

    #[test]
    fn jitter_buffer_is_bounded_and_whole_frames(
        channels in 1u32..=8,
        rate in 8_000u32..=192_000,
        ops in proptest::collection::vec((any::<bool>(), 0usize..(MAX_DATA_BYTES * 2)), 0..64),
    ) {
        let f = PcmFormat::checked(channels, 1, rate).unwrap();
        let mut j = JitterBuffer::new(f, 40, MAX_MS, 20);
        let mut out = Vec::new();
        for (push, n) in ops {
            if push {
                j.push(&vec![1u8; n]);
            } else {
                j.pop(&mut out, n);
                prop_assert_eq!(out.len() % f.frame_bytes(), 0);
            }
            prop_assert!(j.len() <= f.bytes_for_ms(MAX_MS));
            prop_assert_eq!(j.len() % f.frame_bytes(), 0);
        }
    }
}

#[test]
fn hostile_starts_and_data_are_dropped() {
    // START with 0 channels, 10 MHz, DATA larger than negotiated, DATA with a partial frame, DATA before START.
    let mut s = data(1920);
    s.extend(start(0, 48_000));
    s.extend(data(1920));
    s.extend(start(2, 10_000_000));
    s.extend(data(1920));
    s.extend(start(2, 48_000));
    s.extend(data(48_000 * 4));
    s.extend(data(1921));
    play(&s);
}
