//! VDAgent messages (the guest agent's protocol, carried in the main channel's AGENT_DATA): the 20-byte
//! header, capability announcements and the on-demand clipboard messages with their selection prefix.
//! Parsing copies into owned structs through [`Reader`]; every length is checked against the bytes present.
use super::error::ProtocolError;
use super::wire::Reader;

/// `VD_AGENT_PROTOCOL`: the only protocol value a header may carry.
pub(crate) const PROTOCOL: u32 = 1;
/// Size of `VDAgentMessage`: `u32 protocol, u32 type, u64 opaque, u32 size`.
pub(crate) const HEADER_LEN: usize = 20;
/// Largest clipboard item (in either direction) this client moves: 16 MiB. A bigger one is announced to the
/// user by one log line and dropped; the reassembly never holds more than this plus a message's own fields.
pub(crate) const MAX_CLIPBOARD: usize = 16 << 20;
/// Largest agent message reassembled: a clipboard item plus its selection prefix and type.
pub(crate) const MAX_MESSAGE: usize = MAX_CLIPBOARD + 8;
/// Most types one GRAB may list (the agent has seven).
const MAX_GRAB_TYPES: usize = 64;

/// Agent message types used here.
pub(crate) mod kind {
    /// Agent → client: the result of a request (monitors config, …). Only the property tests send it.
    #[cfg(test)]
    pub(crate) const REPLY: u32 = 3;
    /// Old push-style clipboard, and the data answering a REQUEST.
    pub(crate) const CLIPBOARD: u32 = 4;
    /// Both ways: `u32 request, u32 caps[]`.
    pub(crate) const ANNOUNCE_CAPABILITIES: u32 = 6;
    /// Both ways: the sender owns the clipboard, with these types.
    pub(crate) const CLIPBOARD_GRAB: u32 = 7;
    /// Both ways: send me the clipboard as this type.
    pub(crate) const CLIPBOARD_REQUEST: u32 = 8;
    /// Both ways: the sender no longer owns the clipboard.
    pub(crate) const CLIPBOARD_RELEASE: u32 = 9;
    /// Client → agent: `i32` the largest clipboard item the client takes.
    pub(crate) const MAX_CLIPBOARD: u32 = 14;
}

/// Capability bits (bit numbers in the first caps word).
pub(crate) mod cap {
    /// GRAB/REQUEST/CLIPBOARD/RELEASE (data only on demand).
    pub(crate) const CLIPBOARD_BY_DEMAND: u32 = 5;
    /// Clipboard messages carry a 4-byte selection prefix.
    pub(crate) const CLIPBOARD_SELECTION: u32 = 6;
    // 8 GUEST_LINEEND_LF: LF is what the host uses already.
    /// The guest wants CRLF line ends (Windows).
    pub(crate) const GUEST_LINEEND_CRLF: u32 = 9;
    /// The agent honours MAX_CLIPBOARD (it then sends nothing bigger, e.g. a huge PNG).
    pub(crate) const MAX_CLIPBOARD: u32 = 10;
    // 17 CLIPBOARD_GRAB_SERIAL (a GRAB carries a serial): not announced by this client, so never sent to it.

    /// The word with `bit` set.
    pub(crate) const fn bit(bit: u32) -> u32 {
        1 << bit
    }

    /// True when `caps` has `bit`.
    pub(crate) const fn has(caps: u32, bit: u32) -> bool {
        caps & (1 << bit) != 0
    }
}

/// What this client announces: clipboard by demand, with selections.
pub(crate) const CLIENT_CAPS: u32 =
    cap::bit(cap::CLIPBOARD_BY_DEMAND) | cap::bit(cap::CLIPBOARD_SELECTION);

/// Clipboard data types (`u32` on the wire).
pub(crate) mod clip_type {
    /// Nothing.
    pub(crate) const NONE: u32 = 0;
    /// UTF-8 text, no terminator required.
    pub(crate) const UTF8_TEXT: u32 = 1;
    /// A PNG image.
    pub(crate) const IMAGE_PNG: u32 = 2;
}

/// Which clipboard a message is about (the selection prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// The normal clipboard (Ctrl+C / Ctrl+V).
    Clipboard,
    /// X11's primary selection (select / middle click).
    Primary,
    /// X11's secondary selection.
    Secondary,
}

impl Selection {
    fn from_code(code: u8) -> Result<Self, ProtocolError> {
        Ok(match code {
            0 => Self::Clipboard,
            1 => Self::Primary,
            2 => Self::Secondary,
            other => {
                return Err(ProtocolError::Invalid {
                    what: "agent clipboard message",
                    detail: format!("unknown selection {other}"),
                });
            }
        })
    }

    fn code(self) -> u8 {
        match self {
            Self::Clipboard => 0,
            Self::Primary => 1,
            Self::Secondary => 2,
        }
    }
}

/// A `VDAgentMessage` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Message type.
    pub kind: u32,
    /// Data bytes after the header.
    pub size: u32,
}

/// Parses a header; a protocol other than 1 is an error (the stream is not agent messages).
pub(crate) fn parse_header(bytes: &[u8; HEADER_LEN]) -> Result<Header, ProtocolError> {
    let mut r = Reader::new("agent message header", bytes);
    let protocol = r.u32()?;
    if protocol != PROTOCOL {
        return Err(ProtocolError::Invalid {
            what: "agent message header",
            detail: format!("protocol {protocol}, not {PROTOCOL}"),
        });
    }
    let kind = r.u32()?;
    let _opaque = r.u64()?;
    let size = r.u32()?;
    Ok(Header { kind, size })
}

/// An agent message, copied out of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AgentMsg {
    /// The agent's capabilities; `request` asks us to announce ours back.
    Capabilities {
        /// Announce back.
        request: bool,
        /// The first caps word (all bits this client knows live there).
        caps: u32,
    },
    /// The agent owns a clipboard with these types.
    Grab {
        /// Which clipboard.
        selection: Selection,
        /// Offered types.
        types: Vec<u32>,
    },
    /// The agent asks for our clipboard as `kind`.
    Request {
        /// Which clipboard.
        selection: Selection,
        /// The type wanted.
        kind: u32,
    },
    /// Clipboard data (the answer to our REQUEST).
    Clipboard {
        /// Which clipboard.
        selection: Selection,
        /// The data's type.
        kind: u32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The agent dropped its clipboard.
    Release {
        /// Which clipboard.
        selection: Selection,
    },
    /// Anything else (monitor replies, file transfer, volume): skipped.
    Other(u32),
}

/// Parses the data of an agent message of type `kind`; `with_selection` when both sides announced
/// CLIPBOARD_SELECTION (the clipboard messages then start with a 4-byte selection prefix).
pub(crate) fn parse(
    kind: u32,
    data: &[u8],
    with_selection: bool,
) -> Result<AgentMsg, ProtocolError> {
    let selection = |r: &mut Reader| -> Result<Selection, ProtocolError> {
        if !with_selection {
            return Ok(Selection::Clipboard);
        }
        let prefix: [u8; 4] = r.array()?;
        Selection::from_code(prefix[0])
    };
    Ok(match kind {
        kind::ANNOUNCE_CAPABILITIES => {
            let mut r = Reader::new("agent ANNOUNCE_CAPABILITIES", data);
            let request = r.u32()? != 0;
            // Older agents may send no caps word at all: then they have none.
            let caps = if r.remaining() >= 4 { r.u32()? } else { 0 };
            AgentMsg::Capabilities { request, caps }
        }
        kind::CLIPBOARD_GRAB => {
            let mut r = Reader::new("agent CLIPBOARD_GRAB", data);
            let selection = selection(&mut r)?;
            let n = r.remaining() / 4;
            if n > MAX_GRAB_TYPES || !r.remaining().is_multiple_of(4) {
                return Err(ProtocolError::Invalid {
                    what: "agent CLIPBOARD_GRAB",
                    detail: format!("{} bytes of types", r.remaining()),
                });
            }
            let mut types = Vec::with_capacity(n);
            for _ in 0..n {
                types.push(r.u32()?);
            }
            AgentMsg::Grab { selection, types }
        }
        kind::CLIPBOARD_REQUEST => {
            let mut r = Reader::new("agent CLIPBOARD_REQUEST", data);
            let selection = selection(&mut r)?;
            AgentMsg::Request {
                selection,
                kind: r.u32()?,
            }
        }
        kind::CLIPBOARD => {
            let mut r = Reader::new("agent CLIPBOARD", data);
            let selection = selection(&mut r)?;
            let kind = r.u32()?;
            let rest = r.rest();
            if rest.len() > MAX_CLIPBOARD {
                return Err(ProtocolError::Invalid {
                    what: "agent CLIPBOARD",
                    detail: format!("{} bytes exceed the {MAX_CLIPBOARD}-byte limit", rest.len()),
                });
            }
            AgentMsg::Clipboard {
                selection,
                kind,
                data: rest.to_vec(),
            }
        }
        // spice-vdagentd releases its clipboards at exit with the selection byte alone (no reserved bytes,
        // seen from a real agent in tests/harness/55-spice-guest.sh): the byte is all that is needed.
        kind::CLIPBOARD_RELEASE if with_selection && data.len() < 4 => {
            let mut r = Reader::new("agent CLIPBOARD_RELEASE", data);
            let [code]: [u8; 1] = r.array()?;
            AgentMsg::Release {
                selection: Selection::from_code(code)?,
            }
        }
        kind::CLIPBOARD_RELEASE => {
            let mut r = Reader::new("agent CLIPBOARD_RELEASE", data);
            AgentMsg::Release {
                selection: selection(&mut r)?,
            }
        }
        other => AgentMsg::Other(other),
    })
}

/// One whole agent message (header + data) for the client → agent direction.
pub fn encode(kind: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + data.len());
    out.extend_from_slice(&PROTOCOL.to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// ANNOUNCE_CAPABILITIES with `caps` ([`CLIENT_CAPS`], or 0 with the clipboard off).
pub(crate) fn announce(request: bool, caps: u32) -> Vec<u8> {
    let mut d = u32::from(request).to_le_bytes().to_vec();
    d.extend_from_slice(&caps.to_le_bytes());
    encode(kind::ANNOUNCE_CAPABILITIES, &d)
}

fn prefix(selection: Selection, with_selection: bool) -> Vec<u8> {
    if with_selection {
        vec![selection.code(), 0, 0, 0]
    } else {
        Vec::new()
    }
}

/// CLIPBOARD_GRAB of `types`.
pub fn grab(selection: Selection, types: &[u32], with_selection: bool) -> Vec<u8> {
    let mut d = prefix(selection, with_selection);
    for t in types {
        d.extend_from_slice(&t.to_le_bytes());
    }
    encode(kind::CLIPBOARD_GRAB, &d)
}

/// CLIPBOARD_REQUEST of `kind`.
pub fn request(selection: Selection, kind: u32, with_selection: bool) -> Vec<u8> {
    let mut d = prefix(selection, with_selection);
    d.extend_from_slice(&kind.to_le_bytes());
    encode(self::kind::CLIPBOARD_REQUEST, &d)
}

/// CLIPBOARD with `data` of type `kind`.
pub fn clipboard(selection: Selection, kind: u32, data: &[u8], with_selection: bool) -> Vec<u8> {
    let mut d = prefix(selection, with_selection);
    d.reserve(4 + data.len());
    d.extend_from_slice(&kind.to_le_bytes());
    d.extend_from_slice(data);
    encode(self::kind::CLIPBOARD, &d)
}

/// MAX_CLIPBOARD: our [`MAX_CLIPBOARD`] limit, for an agent with the MAX_CLIPBOARD capability.
pub(crate) fn max_clipboard() -> Vec<u8> {
    encode(kind::MAX_CLIPBOARD, &(MAX_CLIPBOARD as i32).to_le_bytes())
}

/// CLIPBOARD_RELEASE.
#[cfg(any(test, feature = "viewer"))]
pub(crate) fn release(selection: Selection, with_selection: bool) -> Vec<u8> {
    encode(kind::CLIPBOARD_RELEASE, &prefix(selection, with_selection))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(msg: &[u8]) -> (Header, &[u8]) {
        let h: [u8; HEADER_LEN] = msg[..HEADER_LEN].try_into().unwrap();
        (parse_header(&h).unwrap(), &msg[HEADER_LEN..])
    }

    #[test]
    fn announce_is_28_bytes_with_word_0x60() {
        let m = announce(true, CLIENT_CAPS);
        assert_eq!(m.len(), 28);
        assert_eq!(&m[20..], &[1, 0, 0, 0, 0x60, 0, 0, 0]);
        let (h, d) = split(&m);
        assert_eq!((h.kind, h.size), (6, 8));
        assert_eq!(
            parse(h.kind, d, true).unwrap(),
            AgentMsg::Capabilities {
                request: true,
                caps: 0x60
            }
        );
    }

    #[test]
    fn clipboard_messages_round_trip_with_and_without_selection() {
        for with in [false, true] {
            let sel = if with {
                Selection::Primary
            } else {
                Selection::Clipboard
            };
            let m = grab(sel, &[1, 2], with);
            let (h, d) = split(&m);
            assert_eq!(
                parse(h.kind, d, with).unwrap(),
                AgentMsg::Grab {
                    selection: sel,
                    types: vec![1, 2]
                }
            );
            let m = clipboard(sel, 1, "héllo 🌍".as_bytes(), with);
            let (h, d) = split(&m);
            assert_eq!(
                parse(h.kind, d, with).unwrap(),
                AgentMsg::Clipboard {
                    selection: sel,
                    kind: 1,
                    data: "héllo 🌍".as_bytes().to_vec()
                }
            );
            let m = request(sel, 1, with);
            let (h, d) = split(&m);
            assert_eq!(
                parse(h.kind, d, with).unwrap(),
                AgentMsg::Request {
                    selection: sel,
                    kind: 1
                }
            );
            let m = release(sel, with);
            let (h, d) = split(&m);
            assert_eq!(
                parse(h.kind, d, with).unwrap(),
                AgentMsg::Release { selection: sel }
            );
        }
    }

    #[test]
    fn release_with_the_selection_byte_alone_is_accepted() {
        // what spice-vdagentd sends for each clipboard it owns when it exits
        assert_eq!(
            parse(kind::CLIPBOARD_RELEASE, &[1], true).unwrap(),
            AgentMsg::Release {
                selection: Selection::Primary
            }
        );
        assert!(parse(kind::CLIPBOARD_RELEASE, &[], true).is_err());
        assert!(parse(kind::CLIPBOARD_RELEASE, &[7], true).is_err());
    }

    #[test]
    fn bad_fields_are_errors() {
        let mut h = [0u8; HEADER_LEN];
        h[0] = 2;
        assert!(parse_header(&h).is_err());
        assert!(parse(kind::CLIPBOARD_REQUEST, &[0, 0, 0, 0, 1], true).is_err());
        assert!(parse(kind::CLIPBOARD_GRAB, &[9, 0, 0, 0], true).is_err());
        assert!(parse(kind::CLIPBOARD_GRAB, &[0, 0, 0, 0, 1, 0], true).is_err());
        assert!(parse(kind::CLIPBOARD_GRAB, &[0; 4 + 4 * 65], true).is_err());
        assert!(parse(kind::CLIPBOARD, &[0, 0, 0], true).is_err());
        assert!(parse(kind::ANNOUNCE_CAPABILITIES, &[1, 0], false).is_err());
        assert_eq!(parse(99, &[1, 2, 3], true).unwrap(), AgentMsg::Other(99));
    }
}
