//! The link handshake's bytes: the client's `SpiceLinkHeader` + `SpiceLinkMess` with capability words, the
//! server's reply (error, RSA public key, capabilities) and the link result codes.
use super::error::{LinkError, ProtocolError};
use super::wire::Reader;

/// "REDQ" as a little-endian u32.
pub(crate) const MAGIC: u32 = 0x5144_4552;
/// Protocol major version.
pub(crate) const MAJOR: u32 = 2;
/// Protocol minor version.
pub(crate) const MINOR: u32 = 2;
/// Size of `SpiceLinkHeader`.
pub(crate) const HEADER_LEN: usize = 16;
/// Fixed part of `SpiceLinkReply` (error, 162-byte key, three u32).
pub(crate) const REPLY_FIXED_LEN: usize = 178;
/// The largest link reply accepted (the fixed part plus 64 capability words; observed: 186).
pub(crate) const REPLY_MAX_LEN: u32 = (REPLY_FIXED_LEN + 64 * 4) as u32;
/// Size of the public key field in the reply.
pub(crate) const PUB_KEY_LEN: usize = 162;

/// Common capability bits.
pub(crate) mod common_caps {
    /// The client sends the auth mechanism word.
    pub(crate) const AUTH_SELECTION: u32 = 0;
    /// SPICE ticket auth.
    pub(crate) const AUTH_SPICE: u32 = 1;
    /// 6-byte data headers.
    pub(crate) const MINI_HEADER: u32 = 3;
}

/// Channel types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelType {
    /// Session control, agent data.
    Main,
    /// Surfaces and drawing.
    Display,
    /// Keyboard and mouse.
    Inputs,
    /// Pointer shape.
    Cursor,
    /// Guest audio out.
    Playback,
    /// Guest audio in.
    Record,
    /// Anything else (kept by number).
    Other(u8),
}

impl ChannelType {
    /// The wire value.
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Main => 1,
            Self::Display => 2,
            Self::Inputs => 3,
            Self::Cursor => 4,
            Self::Playback => 5,
            Self::Record => 6,
            Self::Other(n) => n,
        }
    }

    /// From the wire value.
    pub(crate) fn from_code(n: u8) -> Self {
        match n {
            1 => Self::Main,
            2 => Self::Display,
            3 => Self::Inputs,
            4 => Self::Cursor,
            5 => Self::Playback,
            6 => Self::Record,
            n => Self::Other(n),
        }
    }

    /// A name for messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Main => "main",
            Self::Display => "display",
            Self::Inputs => "inputs",
            Self::Cursor => "cursor",
            Self::Playback => "playback",
            Self::Record => "record",
            Self::Other(_) => "other",
        }
    }
}

/// Capability words (bit n in word n/32).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Caps(pub Vec<u32>);

impl Caps {
    /// Caps with these bits set.
    pub(crate) fn with(bits: &[u32]) -> Self {
        let mut c = Self::default();
        for &b in bits {
            let w = (b / 32) as usize;
            if c.0.len() <= w {
                c.0.resize(w + 1, 0);
            }
            c.0[w] |= 1 << (b % 32);
        }
        c
    }

    /// True when bit `b` is set.
    pub(crate) fn has(&self, b: u32) -> bool {
        self.0
            .get((b / 32) as usize)
            .is_some_and(|w| w & (1 << (b % 32)) != 0)
    }
}

/// The client's link message for one channel.
#[derive(Debug, Clone)]
pub(crate) struct LinkRequest {
    /// 0 for main; the session id for the others.
    pub connection_id: u32,
    /// Channel type.
    pub channel: ChannelType,
    /// Channel id (from CHANNELS_LIST).
    pub channel_id: u8,
    /// Common caps.
    pub common: Caps,
    /// Channel caps.
    pub channel_caps: Caps,
}

impl LinkRequest {
    /// The client's common caps: auth selection, SPICE auth, mini header.
    pub(crate) fn client_common_caps() -> Caps {
        Caps::with(&[
            common_caps::AUTH_SELECTION,
            common_caps::AUTH_SPICE,
            common_caps::MINI_HEADER,
        ])
    }

    /// Header + message + caps, ready to send.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let ncommon = self.common.0.len() as u32;
        let nchan = self.channel_caps.0.len() as u32;
        let size = 18 + 4 * (ncommon + nchan);
        let mut out = Vec::with_capacity(HEADER_LEN + size as usize);
        for v in [MAGIC, MAJOR, MINOR, size] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.connection_id.to_le_bytes());
        out.push(self.channel.code());
        out.push(self.channel_id);
        for v in [ncommon, nchan, 18] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for w in self.common.0.iter().chain(&self.channel_caps.0) {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }
}

/// Checks a link header from the server; returns the size of what follows.
pub(crate) fn parse_reply_header(h: &[u8; HEADER_LEN]) -> Result<u32, ProtocolError> {
    let mut r = Reader::new("link reply header", h);
    let (magic, major, _minor, size) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
    if magic != MAGIC {
        return Err(ProtocolError::BadMagic);
    }
    if major != MAJOR {
        return Err(ProtocolError::Version { major });
    }
    if size > REPLY_MAX_LEN {
        return Err(ProtocolError::Invalid {
            what: "link reply",
            detail: format!("size {size} exceeds {REPLY_MAX_LEN}"),
        });
    }
    Ok(size)
}

/// The server's link reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkReply {
    /// The link error (None = OK).
    pub error: Option<LinkError>,
    /// DER `SubjectPublicKeyInfo` of the server's RSA key.
    pub pub_key: Vec<u8>,
    /// Server's common caps.
    pub common: Caps,
    /// Server's channel caps.
    pub channel_caps: Caps,
}

/// Parses the reply body (after the link header).
pub(crate) fn parse_reply(body: &[u8]) -> Result<LinkReply, ProtocolError> {
    let mut r = Reader::new("link reply", body);
    let error = LinkError::from_code(r.u32()?);
    let pub_key = r.take(PUB_KEY_LEN)?.to_vec();
    let (ncommon, nchan, offset) = (r.u32()?, r.u32()?, r.u32()?);
    if error.is_some() {
        // A rejecting server sends zeros after the error; nothing else matters.
        return Ok(LinkReply {
            error,
            pub_key,
            common: Caps::default(),
            channel_caps: Caps::default(),
        });
    }
    let offset = offset as usize;
    if offset < REPLY_FIXED_LEN || offset > body.len() {
        return Err(ProtocolError::Invalid {
            what: "link reply",
            detail: format!("caps offset {offset} outside the reply"),
        });
    }
    let mut caps = Reader::new("link reply caps", &body[offset..]);
    let words = ncommon.checked_add(nchan).ok_or(ProtocolError::BadCount {
        what: "link reply caps",
        count: u32::MAX,
    })?;
    caps.count(words, 4)?;
    let common = (0..ncommon).map(|_| caps.u32()).collect::<Result<_, _>>()?;
    let channel_caps = (0..nchan).map(|_| caps.u32()).collect::<Result<_, _>>()?;
    Ok(LinkReply {
        error,
        pub_key,
        common: Caps(common),
        channel_caps: Caps(channel_caps),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_link_bytes_match_the_live_capture() {
        let req = LinkRequest {
            connection_id: 0,
            channel: ChannelType::Main,
            channel_id: 0,
            common: LinkRequest::client_common_caps(),
            channel_caps: Caps(vec![6]),
        };
        let hex = "524544510200000002000000 1a000000 00000000 01 00 01000000 01000000 12000000 0b000000 06000000";
        let expect: Vec<u8> = hex
            .split_whitespace()
            .collect::<String>()
            .as_bytes()
            .chunks(2)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
            .collect();
        assert_eq!(req.encode(), expect);
    }

    #[test]
    fn reply_with_error_and_caps() {
        let mut body = vec![0u8; REPLY_FIXED_LEN];
        body[166..170].copy_from_slice(&1u32.to_le_bytes());
        body[170..174].copy_from_slice(&1u32.to_le_bytes());
        body[174..178].copy_from_slice(&178u32.to_le_bytes());
        body.extend_from_slice(&0x0bu32.to_le_bytes());
        body.extend_from_slice(&0x0fu32.to_le_bytes());
        let r = parse_reply(&body).unwrap();
        assert_eq!(r.error, None);
        assert!(r.common.has(common_caps::MINI_HEADER));
        assert!(r.channel_caps.has(3));
        body[0] = 7;
        assert_eq!(
            parse_reply(&body).unwrap().error,
            Some(LinkError::PermissionDenied)
        );
        body[0] = 0;
        body[166..170].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_reply(&body).is_err());
    }

    #[test]
    fn reply_header_checks() {
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(b"REDQ");
        h[4] = 2;
        h[8] = 2;
        h[12] = 186;
        assert_eq!(parse_reply_header(&h).unwrap(), 186);
        h[4] = 1;
        assert_eq!(
            parse_reply_header(&h),
            Err(ProtocolError::Version { major: 1 })
        );
        h[0] = b'H';
        assert_eq!(parse_reply_header(&h), Err(ProtocolError::BadMagic));
    }
}
