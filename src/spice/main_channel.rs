//! The main channel's own messages (types ≥ 101): INIT, CHANNELS_LIST, MOUSE_MODE, the agent's connect,
//! disconnect, token and data messages, NAME and UUID; and the client's requests.
use super::error::ProtocolError;
use super::link::ChannelType;
use super::wire::Reader;

/// Mouse mode flags.
pub(crate) mod mouse_mode {
    /// Relative motion; the guest draws the pointer.
    pub(crate) const SERVER: u16 = 1;
    /// Absolute positions; the host draws the pointer.
    pub(crate) const CLIENT: u16 = 2;
}

/// Main channel caps this client sets: NAME_AND_UUID (1), AGENT_CONNECTED_TOKENS (2).
pub(crate) const CLIENT_CAPS: [u32; 2] = [1, 2];

/// MAIN_INIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Init {
    /// Id for the other channels' links.
    pub session_id: u32,
    /// Number of displays.
    pub display_channels_hint: u32,
    /// Supported mouse modes (flags).
    pub supported_mouse_modes: u32,
    /// Current mouse mode.
    pub current_mouse_mode: u32,
    /// Non-zero when a guest agent is connected.
    pub agent_connected: u32,
    /// Tokens for client → agent data.
    pub agent_tokens: u32,
    /// Multimedia clock (ms).
    pub multi_media_time: u32,
    /// Server's RAM hint.
    pub ram_hint: u32,
}

/// A main channel message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MainMsg {
    /// Session start.
    Init(Init),
    /// The channels to open.
    ChannelsList(Vec<(ChannelType, u8)>),
    /// Mouse mode changed.
    MouseMode {
        /// Supported modes (flags).
        supported: u16,
        /// Current mode.
        current: u16,
    },
    /// Multimedia clock.
    MultiMediaTime(u32),
    /// A guest agent connected (old form, no tokens).
    AgentConnected,
    /// A guest agent connected, with tokens for client → agent data.
    AgentConnectedTokens(u32),
    /// The agent left.
    AgentDisconnected(u32),
    /// Bytes from the agent (bounded by the channel's message limit).
    AgentData(Vec<u8>),
    /// Tokens returned for client → agent data.
    AgentToken(u32),
    /// The VM's name.
    Name(String),
    /// The VM's UUID.
    Uuid([u8; 16]),
    /// Migration and anything else: skipped.
    Other(u16),
}

/// Parses a main channel message (types ≥ 101).
pub(crate) fn parse(kind: u16, body: &[u8]) -> Result<MainMsg, ProtocolError> {
    Ok(match kind {
        103 => {
            let mut r = Reader::new("MAIN_INIT", body);
            MainMsg::Init(Init {
                session_id: r.u32()?,
                display_channels_hint: r.u32()?,
                supported_mouse_modes: r.u32()?,
                current_mouse_mode: r.u32()?,
                agent_connected: r.u32()?,
                agent_tokens: r.u32()?,
                multi_media_time: r.u32()?,
                ram_hint: r.u32()?,
            })
        }
        104 => {
            let mut r = Reader::new("CHANNELS_LIST", body);
            let n = r.u32()?;
            let n = r.count(n, 2)?;
            let mut list = Vec::with_capacity(n);
            for _ in 0..n {
                list.push((ChannelType::from_code(r.u8()?), r.u8()?));
            }
            MainMsg::ChannelsList(list)
        }
        105 => {
            let mut r = Reader::new("MOUSE_MODE", body);
            MainMsg::MouseMode {
                supported: r.u16()?,
                current: r.u16()?,
            }
        }
        106 => MainMsg::MultiMediaTime(Reader::new("MULTI_MEDIA_TIME", body).u32()?),
        107 => MainMsg::AgentConnected,
        108 => MainMsg::AgentDisconnected(Reader::new("AGENT_DISCONNECTED", body).u32()?),
        109 => MainMsg::AgentData(body.to_vec()),
        110 => MainMsg::AgentToken(Reader::new("AGENT_TOKEN", body).u32()?),
        113 => {
            let mut r = Reader::new("MAIN_NAME", body);
            let n = r.u32()?;
            let n = r.count(n, 1)?;
            let raw = r.take(n)?;
            let raw = raw.split(|&b| b == 0).next().unwrap_or_default();
            MainMsg::Name(
                String::from_utf8_lossy(raw)
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(256)
                    .collect(),
            )
        }
        114 => MainMsg::Uuid(Reader::new("MAIN_UUID", body).array()?),
        115 => MainMsg::AgentConnectedTokens(Reader::new("AGENT_CONNECTED_TOKENS", body).u32()?),
        other => MainMsg::Other(other),
    })
}

/// Client message types.
pub(crate) mod client {
    /// Ask for CHANNELS_LIST.
    pub(crate) const ATTACH_CHANNELS: u16 = 104;
    /// `u16 mode`.
    pub(crate) const MOUSE_MODE_REQUEST: u16 = 105;
    /// `u32 tokens` for agent → client data.
    pub(crate) const AGENT_START: u16 = 106;
    /// Raw agent bytes (≤ 2048).
    pub(crate) const AGENT_DATA: u16 = 107;
    /// `u32 tokens` returned.
    pub(crate) const AGENT_TOKEN: u16 = 108;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_init_and_channels_list() {
        let mut init = vec![];
        for v in [0x1234u32, 1, 1, 1, 0, 10, 5000, 0x0100_0000] {
            init.extend_from_slice(&v.to_le_bytes());
        }
        let MainMsg::Init(i) = parse(103, &init).unwrap() else {
            panic!()
        };
        assert_eq!((i.session_id, i.agent_tokens), (0x1234, 10));
        assert!(parse(103, &init[..31]).is_err());
        let list = [5, 0, 0, 0, 2, 0, 4, 0, 6, 0, 5, 0, 3, 0];
        assert_eq!(
            parse(104, &list).unwrap(),
            MainMsg::ChannelsList(vec![
                (ChannelType::Display, 0),
                (ChannelType::Cursor, 0),
                (ChannelType::Record, 0),
                (ChannelType::Playback, 0),
                (ChannelType::Inputs, 0)
            ])
        );
        assert!(parse(104, &[6, 0, 0, 0, 2, 0]).is_err());
        assert!(parse(104, &[0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn name_is_cut_at_nul() {
        let mut b = 12u32.to_le_bytes().to_vec();
        b.extend_from_slice(b"QEMU 7.2.22\0");
        assert_eq!(parse(113, &b).unwrap(), MainMsg::Name("QEMU 7.2.22".into()));
    }
}
