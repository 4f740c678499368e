//! One linked channel connection: the link handshake with ticket auth, then data messages with the mini
//! header. [`Channel::next`] answers what every channel must (ACK_SYNC/ACK windows, PONG), logs NOTIFY, ends
//! on DISCONNECTING, and hands the channel's own messages up as `(type, body)` with the body bounded by the
//! channel's limit. The write half ([`Writer`]) is shared with whoever sends on the channel.
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use super::common::{self, CommonMsg};
use super::error::{self, Error, ProtocolError};
use super::link::{self, Caps, ChannelType, LinkRequest, common_caps};
use super::ticket;
use super::transport::{Stream, Target};
use super::wire::{self, MINI_HEADER_LEN};

/// The write half of a channel, shareable between threads. Writes are whole messages under one lock, so two
/// senders never interleave bytes.
#[derive(Debug, Clone)]
pub(crate) struct Writer(Arc<Mutex<Stream>>);

impl Writer {
    /// Sends one message.
    pub(crate) fn send(&self, kind: u16, body: &[u8]) -> Result<(), Error> {
        let bytes = wire::frame(kind, body);
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.send(&bytes)
    }

    /// Sends several messages in one write.
    pub(crate) fn send_all(&self, msgs: &[(u16, Vec<u8>)]) -> Result<(), Error> {
        let mut bytes = Vec::new();
        for (kind, body) in msgs {
            bytes.extend_from_slice(&wire::frame(*kind, body));
        }
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.send(&bytes)
    }

    /// Closes the connection (the reader wakes with an error).
    pub(crate) fn shutdown(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).shutdown();
    }
}

/// What to link.
#[derive(Debug, Clone)]
pub(crate) struct LinkParams {
    /// Channel type.
    pub channel: ChannelType,
    /// Channel id.
    pub channel_id: u8,
    /// 0 for main, else the session id.
    pub connection_id: u32,
    /// Channel capability bits to advertise.
    pub caps: Vec<u32>,
    /// Largest message body accepted on this channel.
    pub max_body: u32,
}

/// A linked channel.
pub(crate) struct Channel {
    kind: ChannelType,
    reader: Stream,
    writer: Writer,
    max_body: u32,
    ack_window: u32,
    ack_count: u32,
}

impl Channel {
    /// Connects to `target` and links the channel, authenticating with `password` (empty when the server has
    /// no ticket).
    pub(crate) fn open(
        target: &Target,
        params: &LinkParams,
        password: &[u8],
        stop: &AtomicBool,
    ) -> Result<Self, Error> {
        let mut stream = Stream::connect(target)?;
        handshake(&mut stream, params, password, stop)?;
        let reader = stream
            .try_clone()
            .map_err(|e| Error::io("cannot clone the socket", e))?;
        Ok(Self {
            kind: params.channel,
            reader,
            writer: Writer(Arc::new(Mutex::new(stream))),
            max_body: params.max_body,
            ack_window: 0,
            ack_count: 0,
        })
    }

    /// The shared write half.
    pub(crate) fn writer(&self) -> Writer {
        self.writer.clone()
    }

    /// Reads until a channel-specific message (type ≥ 101 or unknown) arrives and returns it; common messages
    /// are handled here.
    pub(crate) fn next(&mut self, stop: &AtomicBool) -> Result<(u16, Vec<u8>), Error> {
        loop {
            let mut h = [0u8; MINI_HEADER_LEN];
            self.reader.read_full(&mut h, stop, "message header")?;
            let (kind, size) = wire::parse_mini_header(&h);
            if size > self.max_body {
                return Err(ProtocolError::Oversized {
                    kind,
                    size,
                    limit: self.max_body,
                }
                .into());
            }
            let mut body = vec![0u8; size as usize];
            self.reader.read_full(&mut body, stop, "message body")?;
            self.count_for_ack()?;
            match common::parse(kind, &body)? {
                None => return Ok((kind, body)),
                Some(CommonMsg::SetAck { generation, window }) => {
                    self.ack_window = window;
                    self.ack_count = 0;
                    self.writer
                        .send(common::client::ACK_SYNC, &generation.to_le_bytes())?;
                }
                Some(CommonMsg::Ping { id, timestamp }) => {
                    self.writer
                        .send(common::client::PONG, &common::pong(id, timestamp))?;
                }
                Some(CommonMsg::Notify { severity, text }) => {
                    tracing::debug!(channel = self.kind.name(), severity, "SPICE notice: {text}");
                }
                Some(CommonMsg::Disconnecting { reason }) => {
                    return Err(Error::Disconnecting(
                        common::disconnect_reason(reason).unwrap_or(error::LinkError::Error),
                    ));
                }
                Some(CommonMsg::Skipped(_)) => {}
            }
        }
    }

    fn count_for_ack(&mut self) -> Result<(), Error> {
        if self.ack_window == 0 {
            return Ok(());
        }
        self.ack_count += 1;
        if self.ack_count >= self.ack_window {
            self.ack_count = 0;
            self.writer.send(common::client::ACK, &[])?;
        }
        Ok(())
    }
}

/// The link exchange on a fresh connection.
fn handshake(
    stream: &mut Stream,
    params: &LinkParams,
    password: &[u8],
    stop: &AtomicBool,
) -> Result<(), Error> {
    let req = LinkRequest {
        connection_id: params.connection_id,
        channel: params.channel,
        channel_id: params.channel_id,
        common: LinkRequest::client_common_caps(),
        channel_caps: Caps::with(&params.caps),
    };
    stream.send(&req.encode())?;
    let mut h = [0u8; link::HEADER_LEN];
    stream.read_full(&mut h, stop, "link reply")?;
    let size = link::parse_reply_header(&h)?;
    let mut body = vec![0u8; size as usize];
    stream.read_full(&mut body, stop, "link reply")?;
    let reply = link::parse_reply(&body)?;
    let refused = |reason| Error::Refused {
        channel: params.channel.name(),
        reason,
    };
    if let Some(reason) = reply.error {
        return Err(refused(reason));
    }
    if !reply.common.has(common_caps::MINI_HEADER) {
        return Err(ProtocolError::Invalid {
            what: "link reply",
            detail: "the server does not offer the mini header".into(),
        }
        .into());
    }
    if reply.common.has(common_caps::AUTH_SELECTION) {
        stream.send(&common_caps::AUTH_SPICE.to_le_bytes())?;
    }
    let ticket = ticket::encrypt(&reply.pub_key, password).map_err(Error::Ticket)?;
    stream.send(&ticket)?;
    let mut result = [0u8; 4];
    stream.read_full(&mut result, stop, "link result")?;
    if let Some(reason) = error::LinkError::from_code(u32::from_le_bytes(result)) {
        return Err(refused(reason));
    }
    Ok(())
}
