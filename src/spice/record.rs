//! The record channel's messages: what the server sends (START, STOP, VOLUME, MUTE) parsed with checked
//! lengths, and the client's MODE, START_MARK and DATA, byte for byte. We send raw PCM only.
use super::error::ProtocolError;
use super::playback::parse_volume;
use super::wire::Reader;

/// Record caps this client sets: VOLUME (1). Not OPUS (we do not encode it).
pub(crate) const CLIENT_CAPS: [u32; 1] = [1 << 1];

/// A record channel message from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordMsg {
    /// The guest started capturing.
    Start {
        /// Raw values as sent (checked by [`super::playback::PcmFormat::checked`]).
        channels: u32,
        /// Sample format.
        format: u16,
        /// Frames per second.
        frequency: u32,
    },
    /// The guest stopped capturing.
    Stop,
    /// Per-channel volume the guest set on its input.
    Volume(Vec<u16>),
    /// Input muted.
    Mute(bool),
    /// Anything else: skipped.
    Other(u16),
}

/// Parses a record message (types ≥ 101).
pub(crate) fn parse(kind: u16, body: &[u8]) -> Result<RecordMsg, ProtocolError> {
    Ok(match kind {
        101 => {
            let mut r = Reader::new("RECORD_START", body);
            RecordMsg::Start {
                channels: r.u32()?,
                format: r.u16()?,
                frequency: r.u32()?,
            }
        }
        102 => RecordMsg::Stop,
        103 => RecordMsg::Volume(parse_volume("RECORD_VOLUME", body)?),
        104 => RecordMsg::Mute(Reader::new("RECORD_MUTE", body).u8()? != 0),
        other => RecordMsg::Other(other),
    })
}

/// Client messages: (type, body).
pub(crate) mod client {
    /// DATA: a time stamp, then interleaved S16LE.
    pub(crate) fn data(time: u32, pcm: &[u8]) -> (u16, Vec<u8>) {
        let mut b = Vec::with_capacity(4 + pcm.len());
        b.extend_from_slice(&time.to_le_bytes());
        b.extend_from_slice(pcm);
        (101, b)
    }

    /// MODE: raw PCM.
    pub(crate) fn mode_raw(time: u32) -> (u16, Vec<u8>) {
        let mut b = time.to_le_bytes().to_vec();
        b.extend_from_slice(&super::super::playback::mode::RAW.to_le_bytes());
        (102, b)
    }

    /// START_MARK.
    pub(crate) fn start_mark(time: u32) -> (u16, Vec<u8>) {
        (103, time.to_le_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages() {
        let mut b = 2u32.to_le_bytes().to_vec();
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&44_100u32.to_le_bytes());
        assert_eq!(
            parse(101, &b).unwrap(),
            RecordMsg::Start {
                channels: 2,
                format: 1,
                frequency: 44_100
            }
        );
        assert!(parse(101, &b[..9]).is_err());
        assert_eq!(parse(102, &[]).unwrap(), RecordMsg::Stop);
        assert_eq!(parse(103, &[1, 1, 0]).unwrap(), RecordMsg::Volume(vec![1]));
        assert_eq!(parse(104, &[0]).unwrap(), RecordMsg::Mute(false));
    }

    #[test]
    fn client_bytes() {
        assert_eq!(client::data(1, &[5, 6]), (101, vec![1, 0, 0, 0, 5, 6]));
        assert_eq!(client::mode_raw(0), (102, vec![0, 0, 0, 0, 1, 0]));
        assert_eq!(client::start_mark(2), (103, vec![2, 0, 0, 0]));
    }
}
