//! Messages every channel receives (types 1–99): SET_ACK, PING, NOTIFY, DISCONNECTING and the migration and
//! wait messages this client skips; and the client's answers (ACK_SYNC, ACK, PONG).
use super::error::LinkError;
use super::error::ProtocolError;
use super::wire::Reader;

/// Longest NOTIFY text kept (the rest is cut).
pub(crate) const NOTIFY_MAX_CHARS: usize = 300;

/// A common server message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CommonMsg {
    /// Start ACK flow control.
    SetAck {
        /// Generation to echo in ACK_SYNC.
        generation: u32,
        /// ACK every `window` messages.
        window: u32,
    },
    /// Answer with PONG.
    Ping {
        /// Ping id.
        id: u32,
        /// Server timestamp.
        timestamp: u64,
    },
    /// A server notice.
    Notify {
        /// 0 info, 1 warn, 2 error.
        severity: u32,
        /// The text (lossy UTF-8, cut to [`NOTIFY_MAX_CHARS`]).
        text: String,
    },
    /// The server closes this channel.
    Disconnecting {
        /// Why (a link error code, 0 = none given).
        reason: u32,
    },
    /// Migration, WAIT_FOR_CHANNELS, LIST: nothing to do.
    Skipped(u16),
}

/// Client message types shared by all channels.
pub(crate) mod client {
    /// Echo of SET_ACK's generation.
    pub(crate) const ACK_SYNC: u16 = 1;
    /// One window of messages received.
    pub(crate) const ACK: u16 = 2;
    /// Answer to PING.
    pub(crate) const PONG: u16 = 3;
    // 6 DISCONNECTING: this client just closes the socket.
}

/// Parses a common message; `Ok(None)` for channel-specific types (≥ 101) and unknown ones.
pub(crate) fn parse(kind: u16, body: &[u8]) -> Result<Option<CommonMsg>, ProtocolError> {
    Ok(Some(match kind {
        3 => {
            let mut r = Reader::new("SET_ACK", body);
            CommonMsg::SetAck {
                generation: r.u32()?,
                window: r.u32()?,
            }
        }
        4 => {
            let mut r = Reader::new("PING", body);
            CommonMsg::Ping {
                id: r.u32()?,
                timestamp: r.u64()?,
            }
        }
        6 => {
            let mut r = Reader::new("DISCONNECTING", body);
            let _time = r.u64()?;
            CommonMsg::Disconnecting { reason: r.u32()? }
        }
        7 => {
            let mut r = Reader::new("NOTIFY", body);
            let _time = r.u64()?;
            let severity = r.u32()?;
            let _visibility = r.u32()?;
            let _what = r.u32()?;
            let len = r.u32()?;
            let len = r.count(len, 1)?;
            let raw = r.take(len)?;
            let raw = raw.split(|&b| b == 0).next().unwrap_or_default();
            let text: String = String::from_utf8_lossy(raw)
                .chars()
                .filter(|c| !c.is_control())
                .take(NOTIFY_MAX_CHARS)
                .collect();
            CommonMsg::Notify { severity, text }
        }
        1 | 2 | 5 | 8 => CommonMsg::Skipped(kind),
        _ => return Ok(None),
    }))
}

/// The reason a DISCONNECTING carried, as a link error (None for 0).
pub(crate) fn disconnect_reason(reason: u32) -> Option<LinkError> {
    LinkError::from_code(reason)
}

/// PONG body for a PING.
pub(crate) fn pong(id: u32, timestamp: u64) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..4].copy_from_slice(&id.to_le_bytes());
    out[4..].copy_from_slice(&timestamp.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_with_filler_parses_and_pong_drops_it() {
        let mut body = vec![3, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        body.resize(256_012, 0xaa);
        let m = parse(4, &body).unwrap().unwrap();
        assert_eq!(
            m,
            CommonMsg::Ping {
                id: 3,
                timestamp: 0x0807_0605_0403_0201
            }
        );
        assert_eq!(pong(3, 0x0807_0605_0403_0201), body[..12]);
    }

    #[test]
    fn notify_text_is_bounded_by_the_body() {
        let mut body = vec![0u8; 20];
        body[8] = 1;
        body.extend_from_slice(&1000u32.to_le_bytes());
        body.extend_from_slice(b"keyboard channel is insecure\0");
        assert!(parse(7, &body).is_err(), "length 1000 > body");
        body[20..24].copy_from_slice(&29u32.to_le_bytes());
        assert_eq!(
            parse(7, &body).unwrap().unwrap(),
            CommonMsg::Notify {
                severity: 1,
                text: "keyboard channel is insecure".into()
            }
        );
    }

    #[test]
    fn short_bodies_are_errors() {
        assert!(parse(3, &[1, 0, 0, 0]).is_err());
        assert!(parse(6, &[0; 11]).is_err());
        assert_eq!(parse(101, &[]).unwrap(), None);
    }
}
