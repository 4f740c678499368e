//! A SPICE client in safe, synchronous Rust: enough of the protocol to drive a VM's keyboard and mouse and show
//! its virtual display and cursor, laid out so the agent (clipboard) and audio channels can be added beside them.
//! Byte-level facts: `docs/spice.md` and the protocol fact sheet it cites.
//!
//! # Threading model
//!
//! One thread per channel connection, each blocking on its own socket:
//! - `spice-main` ([`session`]) is the supervisor. It resolves the endpoint, links the main channel, reads
//!   MAIN_INIT, sends ATTACH_CHANNELS, and then serves main messages (mouse mode, the guest agent's data and
//!   tokens through [`agent_link`], NAME) for the life of the session. From CHANNELS_LIST it links every other channel it handles and starts a reader
//!   thread for each. When anything ends the session it closes every channel, waits for their threads and
//!   reconnects with backoff; only [`session::Session`]'s drop stops it.
//! - `spice-inputs` reads the inputs channel (PING, MOUSE_MOTION_ACK, the guest's lock keys).
//! - `spice-display` (`display_thread.rs`) links the display channel, draws into the session's
//!   [`screen::Screen`] and relinks that channel alone for a full refresh; `spice-cursor` does the same for the
//!   cursor channel ([`cursor::Cursors`]).
//! - `spice-playback` (`playback_thread.rs`, only with [`session::AudioConfig`]) links the playback channel and
//!   pushes the guest's PCM into an [`audio_sink::Player`], whose `spice-audio-out` thread drains a bounded
//!   [`jitter::JitterBuffer`] into the host's sound server; `spice-record` (only with `--mic`) links the
//!   record channel and, between the guest's START and STOP, a `spice-mic` thread sends the host's default
//!   source as DATA.
//! - Senders do not go through a thread: every channel's write half is a [`channel::Writer`] (the socket under
//!   a mutex, one whole message per lock), so the window thread writes a key straight into the inputs socket
//!   ([`input_sink::Inputs`]) and a reader thread writes its PONGs and ACKs on the same socket.
//! - Reads time out every 200 ms only to look at the stop flag; writes have a 5 s limit so a dead server can
//!   never hang the window.
//!
//! A future channel adds one parser file (like [`inputs`]), one `open_*` in [`session`] called from
//! CHANNELS_LIST, and its own reader thread; [`channel::Channel`] already answers SET_ACK/ACK and PING for it.
//!
//! Everything the server sends is parsed into owned structs through [`wire::Reader`] (checked lengths,
//! counts checked against the bytes present); a body larger than the channel's limit is refused before any
//! allocation. A malformed message ends that session with an error, never a panic.
pub mod agent;
pub(crate) mod agent_link;
pub(crate) mod agent_stream;
pub(crate) mod audio_sink;
pub(crate) mod channel;
pub(crate) mod clip_png;
pub(crate) mod common;
pub(crate) mod cursor;
mod cursor_thread;
pub mod display;
mod display_thread;
pub(crate) mod error;
pub(crate) mod input_sink;
pub mod inputs;
pub(crate) mod jitter;
pub(crate) mod link;
// The viewer's `--spice` lookup, from libvirt's live XML.
#[cfg(all(feature = "viewer", feature = "libvirt"))]
pub(crate) mod locate;
pub(crate) mod main_channel;
pub(crate) mod playback;
mod playback_thread;
#[cfg(feature = "audio")]
pub(crate) mod pulse;
pub(crate) mod record;
mod record_thread;
mod relink;
pub mod screen;
pub(crate) mod session;
pub(crate) mod ticket;
pub(crate) mod transport;
pub(crate) mod wire;

pub use agent_link::{Clipboard, HostClipboard};
pub use audio_sink::{HostAudio, PlayerStats};
pub use clip_png::RgbaImage;
pub use error::{Error, ProtocolError};
pub use input_sink::{Inputs, KeyCodes};
#[cfg(feature = "audio")]
pub use pulse::PulseAudio;
pub use session::{AudioConfig, Endpoint, Session, State, Status};
pub use transport::Target;
#[cfg(test)]
mod agent_proptests;
#[cfg(test)]
mod audio_proptests;
#[cfg(test)]
mod proptests;
