//! Byte layout of LGMP v5/v6 (B6/B7) as absolute and queue-relative offsets (docs/lg-protocol.md §2.2–2.5).

/// `LGMP_PROTOCOL_MAGIC`, bytes 'L' 'G' 'M' 'P'.
pub const MAGIC: u32 = 0x504D_474C;
/// LGMP protocol version of B7.
pub const VERSION_B7: u32 = 6;
/// LGMP protocol version of B6.
pub(crate) const VERSION_B6: u32 = 5;
/// `sizeof` the header; the smallest region a client accepts.
pub const HEADER_SIZE: usize = 5760;

/// Header offsets.
pub(crate) const OFF_MAGIC: usize = 0;
/// Protocol version.
pub const OFF_VERSION: usize = 4;
/// Session id.
pub(crate) const OFF_SESSION: usize = 8;
/// Heartbeat timestamp (atomic u64, host ms).
pub const OFF_TIMESTAMP: usize = 16;
/// Number of initialised queues.
pub(crate) const OFF_NUM_QUEUES: usize = 24;
/// First queue header.
pub const OFF_QUEUES: usize = 32;
/// Size of one queue header.
pub const QUEUE_STRIDE: usize = 1144;
/// udata size.
pub const OFF_UDATA_SIZE: usize = 5752;
/// udata start.
pub const OFF_UDATA: usize = 5756;
/// Queue headers in the header.
pub const MAX_QUEUES: u32 = 5;
/// Subscriber slots per queue.
pub(crate) const MAX_SUBS: u32 = 32;
/// Client→host mailbox slots per queue.
pub(crate) const MSGS_MAX: u32 = 10;
/// Largest client→host message.
pub(crate) const MSGS_SIZE: usize = 64;
/// One mailbox slot: u32 size + 64 bytes.
pub(crate) const CMSG_SLOT: usize = 68;
/// Client heartbeat timeout.
pub(crate) const HEARTBEAT_TIMEOUT_MS: u64 = 1000;

/// Queue-relative offsets.
pub const Q_ID: usize = 0;
/// Ring slots (configured length + 1).
pub const Q_NUM_MESSAGES: usize = 4;
/// Atomic count of new subscribers.
pub(crate) const Q_NEW_SUB_COUNT: usize = 8;
/// Subscriber timeout (ms).
pub(crate) const Q_MAX_TIME: usize = 12;
/// Atomic host write index.
pub const Q_POSITION: usize = 16;
/// Ring offset from the region start.
pub const Q_MESSAGES_OFFSET: usize = 20;
/// u64 per subscriber bit: GC deadline.
pub(crate) const Q_TIMEOUT: usize = 24;
/// u32 per subscriber bit: client id.
pub(crate) const Q_CLIENT_ID: usize = 280;
/// Queue lock (u32 in v6, u8 in v5).
pub const Q_LOCK: usize = 408;
/// Subscriber bitmask: high 32 = ON, low 32 = BAD.
pub(crate) const Q_SUBS: usize = 416;
/// Ring head.
pub(crate) const Q_START: usize = 424;
/// Deadline for the head message (host ms).
pub(crate) const Q_MSG_TIMEOUT: usize = 432;
/// Messages outstanding.
pub(crate) const Q_COUNT: usize = 440;
/// Mailbox lock.
pub(crate) const Q_CMSG_LOCK: usize = 444;
/// Free mailbox slots.
pub(crate) const Q_CMSG_AVAIL: usize = 448;
/// Mailbox write index.
pub(crate) const Q_CMSG_WPOS: usize = 452;
/// Messages written by clients.
pub(crate) const Q_CMSG_WSERIAL: usize = 456;
/// Messages acknowledged by the host.
pub(crate) const Q_CMSG_RSERIAL: usize = 460;
/// Mailbox slots.
pub(crate) const Q_CMSGS: usize = 464;

/// One ring entry: udata, size, offset, pendingSubs.
pub(crate) const MSG_SIZE: usize = 16;
/// Offset of `pendingSubs` in a ring entry.
pub(crate) const MSG_PENDING: usize = 12;

/// Largest ring a client accepts (B7 uses 3 and 21 slots); bounds loops over a hostile count.
pub(crate) const MAX_RING: u32 = 1024;

/// Base offset of queue `index`.
pub const fn queue_base(index: u32) -> usize {
    OFF_QUEUES + QUEUE_STRIDE * index as usize
}

/// Rounds up to a multiple of 4 (the host allocation granularity).
pub const fn align4(v: usize) -> usize {
    (v + 3) & !3
}

/// The ON bit of subscriber slot `bit` in `subs`.
pub(crate) const fn on_bit(bit: u32) -> u64 {
    1u64 << (32 + bit)
}

/// The BAD bit of subscriber slot `bit` in `subs`.
pub(crate) const fn bad_bit(bit: u32) -> u64 {
    1u64 << bit
}

/// Slots that are ON and not BAD.
pub(crate) const fn good(subs: u64) -> u32 {
    ((subs >> 32) as u32) & !(subs as u32)
}
