//! Errors of the SPICE client: what a hostile or broken server did ([`ProtocolError`]) and what ended a
//! connection ([`Error`]). Each message is one line a user can act on.

/// A server message that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The body ended before a field.
    #[error("{what}: truncated ({got} bytes, need {need})")]
    Truncated {
        /// The message.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        got: usize,
    },
    /// A count that the body cannot hold.
    #[error("{what}: count {count} does not fit the message")]
    BadCount {
        /// The message.
        what: &'static str,
        /// The count as sent.
        count: u32,
    },
    /// A message larger than this channel accepts.
    #[error("message type {kind} of {size} bytes exceeds the limit of {limit}")]
    Oversized {
        /// Message type.
        kind: u16,
        /// Declared size.
        size: u32,
        /// The channel's limit.
        limit: u32,
    },
    /// The link reply does not start with the SPICE magic: not a SPICE server.
    #[error("not a SPICE server (bad magic in the link reply)")]
    BadMagic,
    /// The server speaks another protocol major version.
    #[error("SPICE protocol version {major} (this client speaks 2)")]
    Version {
        /// Server's major version.
        major: u32,
    },
    /// A field with a value the protocol does not allow.
    #[error("{what}: {detail}")]
    Invalid {
        /// The message.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
}

/// Why a channel connection failed or ended.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting, reading or writing failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The server closed the connection.
    #[error("the SPICE server closed the connection ({during})")]
    Closed {
        /// What was being done.
        during: &'static str,
    },
    /// The server sent something malformed.
    #[error("malformed SPICE message")]
    Protocol(#[from] ProtocolError),
    /// The server refused the link (wrong password, channel not available, …).
    #[error("the SPICE server refused the {channel} channel: {reason}")]
    Refused {
        /// The channel type name.
        channel: &'static str,
        /// The server's reason.
        reason: LinkError,
    },
    /// The server's public key could not be used to encrypt the password.
    #[error("cannot encrypt the SPICE password with the server's key: {0}")]
    Ticket(String),
    /// The server said it is disconnecting.
    #[error("the SPICE server disconnected us (reason {0})")]
    Disconnecting(LinkError),
    /// The session is shutting down.
    #[error("stopped")]
    Stopped,
}

impl Error {
    /// An I/O error with context.
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

/// `SpiceLinkErr`: the server's link result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Generic error.
    #[error("error")]
    Error,
    /// Bad magic.
    #[error("invalid magic")]
    InvalidMagic,
    /// Bad data.
    #[error("invalid data")]
    InvalidData,
    /// Protocol version.
    #[error("version mismatch")]
    VersionMismatch,
    /// TLS required.
    #[error("the channel needs TLS")]
    NeedSecured,
    /// TLS refused.
    #[error("the channel refuses TLS")]
    NeedUnsecured,
    /// Wrong or missing password (or an expired ticket).
    #[error("permission denied: wrong or missing SPICE password")]
    PermissionDenied,
    /// Unknown session id.
    #[error("bad connection id")]
    BadConnectionId,
    /// No such channel.
    #[error("channel not available")]
    ChannelNotAvailable,
    /// A code this client does not know.
    #[error("link error {0}")]
    Unknown(u32),
}

impl LinkError {
    /// From the wire value; `None` for 0 (OK).
    pub(crate) fn from_code(n: u32) -> Option<Self> {
        Some(match n {
            0 => return None,
            1 => Self::Error,
            2 => Self::InvalidMagic,
            3 => Self::InvalidData,
            4 => Self::VersionMismatch,
            5 => Self::NeedSecured,
            6 => Self::NeedUnsecured,
            7 => Self::PermissionDenied,
            8 => Self::BadConnectionId,
            9 => Self::ChannelNotAvailable,
            n => Self::Unknown(n),
        })
    }
}
