//! The playback channel's messages (server → client only): MODE, START, DATA, STOP, VOLUME, MUTE, LATENCY,
//! parsed into owned structs with checked lengths. A START outside what we play ([`PcmFormat::checked`]) and a
//! DATA that does not fit the negotiated format ([`check_data`]) are refused here, so the thread above only
//! logs one line and drops the item.
use super::error::ProtocolError;
use super::wire::Reader;

/// Playback caps this client sets: VOLUME (1). Not OPUS (we do not decode it), not CELT (removed), not
/// LATENCY (we keep our own jitter buffer).
pub(crate) const CLIENT_CAPS: [u32; 1] = [1 << 1];

/// Audio data modes (u16).
pub(crate) mod mode {
    /// Raw interleaved PCM.
    pub(crate) const RAW: u16 = 1;
    // 3 OPUS: Opus packets, never asked for.
}

/// Sample format S16 (the only one SPICE defines).
pub(crate) const FORMAT_S16: u16 = 1;
/// Most channels accepted in a START.
pub(crate) const MAX_CHANNELS: u32 = 8;
/// Lowest and highest sample rate accepted in a START.
pub(crate) const RATES: std::ops::RangeInclusive<u32> = 8_000..=192_000;
/// Largest DATA accepted, in milliseconds of the negotiated format (the server sends 10 ms per message).
pub(crate) const MAX_DATA_MS: u32 = 100;
/// Largest DATA body in bytes whatever the format: 100 ms of 8 channels at 192 kHz, plus the time stamp.
pub(crate) const MAX_DATA_BYTES: usize = 192_000 / 10 * 8 * 2 + 4;

/// A negotiated PCM format: interleaved signed 16-bit little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcmFormat {
    /// Channels (1..=[`MAX_CHANNELS`]).
    pub channels: u8,
    /// Frames per second (in [`RATES`]).
    pub rate: u32,
}

impl PcmFormat {
    /// The format of a START, or why we refuse it.
    pub(crate) fn checked(channels: u32, format: u16, rate: u32) -> Result<Self, ProtocolError> {
        let invalid = |detail: String| ProtocolError::Invalid {
            what: "audio START",
            detail,
        };
        if format != FORMAT_S16 {
            return Err(invalid(format!("sample format {format} is not S16")));
        }
        if channels == 0 || channels > MAX_CHANNELS {
            return Err(invalid(format!(
                "{channels} channels (1 to {MAX_CHANNELS} played)"
            )));
        }
        if !RATES.contains(&rate) {
            return Err(invalid(format!(
                "{rate} Hz (from {} to {} Hz played)",
                RATES.start(),
                RATES.end()
            )));
        }
        Ok(Self {
            channels: channels as u8,
            rate,
        })
    }

    /// Bytes per frame (one sample of every channel).
    pub(crate) fn frame_bytes(self) -> usize {
        usize::from(self.channels) * 2
    }

    /// Bytes of `ms` milliseconds, whole frames.
    pub(crate) fn bytes_for_ms(self, ms: u32) -> usize {
        (self.rate as usize * ms as usize / 1000) * self.frame_bytes()
    }
}

/// A playback channel message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PlaybackMsg {
    /// The data mode the server chose.
    Mode {
        /// Multimedia time.
        time: u32,
        /// [`mode`] value.
        mode: u16,
    },
    /// The guest opened its device.
    Start {
        /// Raw values as sent (checked by [`PcmFormat::checked`] when used).
        channels: u32,
        /// Sample format.
        format: u16,
        /// Frames per second.
        frequency: u32,
        /// Multimedia time.
        time: u32,
    },
    /// Audio bytes (one codec frame).
    Data {
        /// Multimedia time.
        time: u32,
        /// Interleaved S16LE in RAW mode.
        pcm: Vec<u8>,
    },
    /// The guest closed its device.
    Stop,
    /// Per-channel volume (0..=65535).
    Volume(Vec<u16>),
    /// Muted or not.
    Mute(bool),
    /// The server's latency hint (only with the LATENCY cap).
    Latency(u32),
    /// Anything else: skipped.
    Other(u16),
}

/// Parses a playback message (types ≥ 101).
pub(crate) fn parse(kind: u16, body: &[u8]) -> Result<PlaybackMsg, ProtocolError> {
    Ok(match kind {
        101 => {
            if body.len() > MAX_DATA_BYTES {
                return Err(ProtocolError::Oversized {
                    kind,
                    size: body.len() as u32,
                    limit: MAX_DATA_BYTES as u32,
                });
            }
            let mut r = Reader::new("PLAYBACK_DATA", body);
            PlaybackMsg::Data {
                time: r.u32()?,
                pcm: r.rest().to_vec(),
            }
        }
        102 => {
            let mut r = Reader::new("PLAYBACK_MODE", body);
            PlaybackMsg::Mode {
                time: r.u32()?,
                mode: r.u16()?,
            }
        }
        103 => {
            let mut r = Reader::new("PLAYBACK_START", body);
            PlaybackMsg::Start {
                channels: r.u32()?,
                format: r.u16()?,
                frequency: r.u32()?,
                time: r.u32()?,
            }
        }
        104 => PlaybackMsg::Stop,
        105 => PlaybackMsg::Volume(parse_volume("PLAYBACK_VOLUME", body)?),
        106 => PlaybackMsg::Mute(Reader::new("PLAYBACK_MUTE", body).u8()? != 0),
        107 => PlaybackMsg::Latency(Reader::new("PLAYBACK_LATENCY", body).u32()?),
        other => PlaybackMsg::Other(other),
    })
}

/// VOLUME: `u8 nchannels`, `u16 volume[nchannels]` (the count checked against the bytes present).
pub(crate) fn parse_volume(what: &'static str, body: &[u8]) -> Result<Vec<u16>, ProtocolError> {
    let mut r = Reader::new(what, body);
    let n = r.u8()?;
    let n = r.count(u32::from(n), 2)?;
    (0..n).map(|_| r.u16()).collect()
}

/// Checks a DATA body against the negotiated format: whole frames, at most [`MAX_DATA_MS`].
pub(crate) fn check_data(format: PcmFormat, pcm: &[u8]) -> Result<(), ProtocolError> {
    let invalid = |detail: String| ProtocolError::Invalid {
        what: "PLAYBACK_DATA",
        detail,
    };
    let max = format.bytes_for_ms(MAX_DATA_MS);
    if pcm.len() > max {
        return Err(invalid(format!(
            "{} bytes, more than {MAX_DATA_MS} ms ({max} bytes) of the negotiated format",
            pcm.len()
        )));
    }
    if !pcm.len().is_multiple_of(format.frame_bytes()) {
        return Err(invalid(format!(
            "{} bytes is not a whole number of {}-byte frames",
            pcm.len(),
            format.frame_bytes()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(channels: u32, format: u16, rate: u32) -> Vec<u8> {
        let mut b = channels.to_le_bytes().to_vec();
        b.extend_from_slice(&format.to_le_bytes());
        b.extend_from_slice(&rate.to_le_bytes());
        b.extend_from_slice(&7u32.to_le_bytes());
        b
    }

    #[test]
    fn start_is_parsed_and_checked() {
        let m = parse(103, &start(2, 1, 48_000)).unwrap();
        assert_eq!(
            m,
            PlaybackMsg::Start {
                channels: 2,
                format: 1,
                frequency: 48_000,
                time: 7
            }
        );
        assert_eq!(
            PcmFormat::checked(2, 1, 48_000).unwrap(),
            PcmFormat {
                channels: 2,
                rate: 48_000
            }
        );
        assert!(PcmFormat::checked(0, 1, 48_000).is_err());
        assert!(PcmFormat::checked(2, 1, 10_000_000).is_err());
        assert!(PcmFormat::checked(2, 2, 48_000).is_err());
        assert!(PcmFormat::checked(u32::MAX, 1, 48_000).is_err());
        assert!(parse(103, &start(2, 1, 48_000)[..13]).is_err());
    }

    #[test]
    fn data_is_checked_against_the_format() {
        let f = PcmFormat::checked(2, 1, 48_000).unwrap();
        assert_eq!(f.bytes_for_ms(10), 1920);
        assert!(check_data(f, &[0; 1920]).is_ok());
        assert!(check_data(f, &[0; 19_200]).is_ok());
        assert!(check_data(f, &[0; 19_204]).is_err());
        assert!(check_data(f, &[0; 1918 + 1]).is_err());
        let big = vec![0; MAX_DATA_BYTES + 1];
        assert!(parse(101, &big).is_err());
        assert!(parse(101, &[1, 2, 3]).is_err());
        assert_eq!(
            parse(101, &[1, 0, 0, 0, 9, 9]).unwrap(),
            PlaybackMsg::Data {
                time: 1,
                pcm: vec![9, 9]
            }
        );
    }

    #[test]
    fn volume_mute_and_others() {
        assert_eq!(
            parse(105, &[2, 0xff, 0xff, 0, 0x80]).unwrap(),
            PlaybackMsg::Volume(vec![0xffff, 0x8000])
        );
        assert!(parse(105, &[3, 0xff, 0xff, 0, 0x80]).is_err());
        assert!(parse(105, &[]).is_err());
        assert_eq!(parse(106, &[1]).unwrap(), PlaybackMsg::Mute(true));
        assert!(parse(106, &[]).is_err());
        assert_eq!(parse(104, &[]).unwrap(), PlaybackMsg::Stop);
        assert_eq!(
            parse(102, &[0, 0, 0, 0, 1, 0]).unwrap(),
            PlaybackMsg::Mode { time: 0, mode: 1 }
        );
        assert_eq!(parse(199, &[1]).unwrap(), PlaybackMsg::Other(199));
    }
}
