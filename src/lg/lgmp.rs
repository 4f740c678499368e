//! The LGMP client: session init and validity, queue lookup by id, subscribe / process / message-done /
//! unsubscribe, and client→host messages (docs/lg-protocol.md §2.8). Every call takes the view anew and keeps only
//! offsets and copied values.
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::layout::*;
use crate::shm::{self, ShmView};

/// Largest udata (the host's session data, KVMFR's header and records) we copy; the real one is a few hundred
/// bytes.
pub(crate) const MAX_UDATA: usize = 64 * 1024;

/// How long a client waits for a queue lock a peer holds before giving up (the host holds it for microseconds;
/// a guest holding it forever must not hang us).
const LOCK_DEADLINE: Duration = Duration::from_millis(100);

/// LGMP client errors (the library status codes the client can see, plus bad data).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The region does not start with 'LGMP' (host not running, or not an LGMP region).
    #[error(
        "no LGMP header (magic {found:#010x}); the guest's Looking Glass host is not running or this is not a Looking Glass region"
    )]
    InvalidMagic {
        /// What is at offset 0.
        found: u32,
    },
    /// Another LGMP version.
    #[error(
        "incompatible LGMP version {found} (this viewer speaks {VERSION_B7} for Looking Glass B7 and {VERSION_B6} for B6)"
    )]
    InvalidVersion {
        /// The region's version.
        found: u32,
    },
    /// The heartbeat has not changed since the last look: the host is not alive.
    #[error("the host's heartbeat is not moving")]
    NoHeartbeat,
    /// No queue with that id.
    #[error("no queue with id {0}")]
    NoSuchQueue(u32),
    /// All subscriber slots taken, or the mailbox is full.
    #[error("queue {0} is full")]
    QueueFull(u32),
    /// The host marked this subscriber BAD (it held a message for more than its timeout).
    #[error("the host timed out this client on queue {0}")]
    QueueTimeout(u32),
    /// The subscription is gone (session still valid).
    #[error("not subscribed to queue {0}")]
    Unsubscribed(u32),
    /// The session is no longer valid.
    #[error("the LGMP session is no longer valid")]
    InvalidSession,
    /// A lock was held past the deadline.
    #[error("queue {0}'s lock stayed held for over 100 ms")]
    LockTimeout(u32),
    /// A field holds an impossible value.
    #[error("corrupt LGMP data: {0}")]
    Corrupt(String),
    /// A message larger than the mailbox slot.
    #[error("client message of {0} bytes is larger than {MSGS_SIZE}")]
    MessageTooLarge(usize),
    /// Access outside the region.
    #[error("bad shared-memory access")]
    Shm(#[from] shm::Error),
}

/// Result of this module.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// A random u32 from the OS-seeded hasher keys (no extra dependency).
pub(crate) fn random_u32() -> u32 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish() as u32
}

/// Takes a queue lock (u32 CAS 0→1 in v6, byte swap in v5), spinning until `deadline`.
pub(crate) fn lock(
    view: ShmView<'_>,
    off: usize,
    version: u32,
    queue: u32,
) -> Result<LockGuard<'_>> {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        if try_lock_once(view, off, version)? {
            return Ok(LockGuard { view, off, version });
        }
        spins += 1;
        if spins > 64 {
            if start.elapsed() > LOCK_DEADLINE {
                return Err(Error::LockTimeout(queue));
            }
            // Sleep rather than spin: a guest that never releases the lock must not cost a core.
            let waited = start.elapsed();
            if waited < Duration::from_millis(1) {
                // The peer holds it for microseconds: stay close (sleeping here costs the producer's post ms).
                std::thread::yield_now();
            } else {
                // A guest that never releases the lock must not cost a core: back off from 20 µs to 2 ms.
                let step = (waited.as_micros() as u64 / 8).clamp(20, 2000);
                std::thread::sleep(Duration::from_micros(step));
            }
        } else {
            std::hint::spin_loop();
        }
    }
}

/// One attempt at the lock.
pub(crate) fn try_lock(
    view: ShmView<'_>,
    off: usize,
    version: u32,
) -> Result<Option<LockGuard<'_>>> {
    Ok(try_lock_once(view, off, version)?.then_some(LockGuard { view, off, version }))
}

fn try_lock_once(view: ShmView<'_>, off: usize, version: u32) -> Result<bool> {
    Ok(if version == VERSION_B6 {
        view.atomic_u8(off)?.swap(1, Ordering::AcqRel) == 0
    } else {
        view.atomic_u32(off)?
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    })
}

/// Releases the lock on drop.
pub(crate) struct LockGuard<'a> {
    view: ShmView<'a>,
    off: usize,
    version: u32,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // The offset was checked when the lock was taken, so these cannot fail.
        if self.version == VERSION_B6 {
            if let Ok(a) = self.view.atomic_u8(self.off) {
                a.store(0, Ordering::Release);
            }
        } else if let Ok(a) = self.view.atomic_u32(self.off) {
            a.store(0, Ordering::Release);
        }
    }
}

/// Loads a u32 header field atomically.
pub(crate) fn ld32(view: ShmView<'_>, off: usize) -> Result<u32> {
    Ok(view.atomic_u32(off)?.load(Ordering::Acquire))
}

/// Stores a u32 header field atomically.
pub(crate) fn st32(view: ShmView<'_>, off: usize, v: u32) -> Result<()> {
    view.atomic_u32(off)?.store(v, Ordering::Release);
    Ok(())
}

/// Loads a u64 header field atomically.
pub(crate) fn ld64(view: ShmView<'_>, off: usize) -> Result<u64> {
    Ok(view.atomic_u64(off)?.load(Ordering::Acquire))
}

/// Stores a u64 header field atomically.
pub(crate) fn st64(view: ShmView<'_>, off: usize, v: u64) -> Result<()> {
    view.atomic_u64(off)?.store(v, Ordering::Release);
    Ok(())
}

/// Client state that outlives sessions: its random id and the last heartbeat seen.
pub(crate) struct LgmpClient {
    id: u32,
    last_ts: u64,
}

/// A live session: what SessionInit recorded.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The host's session id.
    pub session_id: u32,
    /// This client's id in this session.
    pub client_id: u32,
    /// LGMP version (5 or 6).
    pub version: u32,
    /// A copy of the udata (KVMFR header and records).
    pub udata: Vec<u8>,
    last_ts: u64,
    last_beat: Instant,
}

/// One ring entry as copied out of the region, offsets checked against the region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    /// Host-supplied 32-bit value (KVMFR cursor flags).
    pub udata: u32,
    /// Payload size (the allocated block size).
    pub size: u32,
    /// Payload offset from the region start.
    pub offset: u32,
}

/// This client's subscription to one queue.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    /// The application queue id.
    pub queue_id: u32,
    base: usize,
    bit: u32,
    pos: u32,
    num_messages: u32,
    messages_offset: usize,
    version: u32,
}

impl LgmpClient {
    /// lgmpClientInit: needs at least a header; records the current heartbeat. Writes nothing.
    pub(crate) fn init(view: ShmView<'_>) -> Result<Self> {
        view.check(0, HEADER_SIZE)?;
        Ok(Self {
            id: random_u32(),
            last_ts: ld64(view, OFF_TIMESTAMP)?,
        })
    }

    /// lgmpClientSessionInit: magic, version, a heartbeat that moved since the last look, then copies the udata.
    pub(crate) fn session_init(&mut self, view: ShmView<'_>) -> Result<Session> {
        let magic = ld32(view, OFF_MAGIC)?;
        if magic != MAGIC {
            return Err(Error::InvalidMagic { found: magic });
        }
        let version = ld32(view, OFF_VERSION)?;
        if version != VERSION_B7 && version != VERSION_B6 {
            return Err(Error::InvalidVersion { found: version });
        }
        let ts = ld64(view, OFF_TIMESTAMP)?;
        if ts == self.last_ts {
            return Err(Error::NoHeartbeat);
        }
        let session_id = ld32(view, OFF_SESSION)?;
        let udata_size = ld32(view, OFF_UDATA_SIZE)? as usize;
        let max = view.len().saturating_sub(OFF_UDATA).min(MAX_UDATA);
        if udata_size > max {
            return Err(Error::Corrupt(format!(
                "udata size {udata_size} exceeds {max}"
            )));
        }
        let mut udata = vec![0u8; udata_size];
        view.read_bytes(OFF_UDATA, &mut udata)?;
        self.last_ts = ts;
        self.id = random_u32();
        Ok(Session {
            session_id,
            client_id: self.id,
            version,
            udata,
            last_ts: ts,
            last_beat: Instant::now(),
        })
    }
}

impl LgmpClient {
    /// Records the heartbeat as it is now, so the next SessionInit needs it to move after this point. Called
    /// while a session is valid and when one ends: a host that stopped never looks alive again.
    pub(crate) fn observe(&mut self, view: ShmView<'_>) {
        if let Ok(ts) = ld64(view, OFF_TIMESTAMP) {
            self.last_ts = ts;
        }
    }
}

impl Session {
    /// lgmpClientSessionValid: same session id and a heartbeat within the last second.
    pub(crate) fn valid(&mut self, view: ShmView<'_>) -> bool {
        let (Ok(id), Ok(ts)) = (ld32(view, OFF_SESSION), ld64(view, OFF_TIMESTAMP)) else {
            return false;
        };
        if id != self.session_id {
            return false;
        }
        if ts != self.last_ts {
            self.last_ts = ts;
            self.last_beat = Instant::now();
            return true;
        }
        self.last_beat.elapsed() <= Duration::from_millis(HEARTBEAT_TIMEOUT_MS)
    }

    /// Finds the queue with `queue_id` among the initialised ones.
    fn find_queue(&self, view: ShmView<'_>, queue_id: u32) -> Result<usize> {
        let n = ld32(view, OFF_NUM_QUEUES)?.min(MAX_QUEUES);
        (0..n)
            .map(queue_base)
            .find(|&base| ld32(view, base + Q_ID).is_ok_and(|id| id == queue_id))
            .ok_or(Error::NoSuchQueue(queue_id))
    }

    /// lgmpClientSubscribe: reap timed-out BAD slots, take the lowest free slot, start at the host position.
    pub(crate) fn subscribe(&self, view: ShmView<'_>, queue_id: u32) -> Result<Subscription> {
        let base = self.find_queue(view, queue_id)?;
        let num_messages = ld32(view, base + Q_NUM_MESSAGES)?;
        if !(2..=MAX_RING).contains(&num_messages) {
            return Err(Error::Corrupt(format!(
                "queue {queue_id} has {num_messages} ring slots"
            )));
        }
        let messages_offset = ld32(view, base + Q_MESSAGES_OFFSET)? as usize;
        if view
            .check(messages_offset, num_messages as usize * MSG_SIZE)
            .is_err()
        {
            return Err(Error::Corrupt(format!(
                "queue {queue_id}'s message ring (offset {messages_offset}, {num_messages} slots) lies outside the {} bytes of shared memory",
                view.len()
            )));
        }
        if !messages_offset.is_multiple_of(4) {
            return Err(Error::Corrupt(format!(
                "queue {queue_id} ring at unaligned {messages_offset}"
            )));
        }
        let _guard = lock(view, base + Q_LOCK, self.version, queue_id)?;
        let mut subs = ld64(view, base + Q_SUBS)?;
        let now = ld64(view, OFF_TIMESTAMP)?;
        for bit in 0..MAX_SUBS {
            let timeout_off = base + Q_TIMEOUT + 8 * bit as usize;
            if subs & bad_bit(bit) != 0 && ld64(view, timeout_off)? < now {
                subs &= !(bad_bit(bit) | on_bit(bit));
                st64(view, timeout_off, 0)?;
                st32(view, base + Q_CLIENT_ID + 4 * bit as usize, 0)?;
            }
        }
        let used = (subs >> 32) as u32 | subs as u32;
        let bit = (!used).trailing_zeros();
        if bit >= MAX_SUBS {
            st64(view, base + Q_SUBS, subs)?;
            return Err(Error::QueueFull(queue_id));
        }
        st64(view, base + Q_TIMEOUT + 8 * bit as usize, 0)?;
        st32(view, base + Q_CLIENT_ID + 4 * bit as usize, self.client_id)?;
        st64(view, base + Q_SUBS, subs | on_bit(bit))?;
        view.atomic_u32(base + Q_NEW_SUB_COUNT)?
            .fetch_add(1, Ordering::AcqRel);
        let pos = ld32(view, base + Q_POSITION)? % num_messages;
        Ok(Subscription {
            queue_id,
            base,
            bit,
            pos,
            num_messages,
            messages_offset,
            version: self.version,
        })
    }
}

impl Subscription {
    /// The BAD/ON checks Process and MessageDone share.
    fn check_state(&self, view: ShmView<'_>) -> Result<()> {
        let subs = ld64(view, self.base + Q_SUBS)?;
        if subs & bad_bit(self.bit) != 0 {
            return Err(Error::QueueTimeout(self.queue_id));
        }
        if subs & on_bit(self.bit) == 0 {
            return Err(Error::Unsubscribed(self.queue_id));
        }
        Ok(())
    }

    fn entry_off(&self) -> usize {
        self.messages_offset + self.pos as usize * MSG_SIZE
    }

    /// lgmpClientProcess: the next message, if any, without consuming it.
    pub(crate) fn process(&self, view: ShmView<'_>) -> Result<Option<Message>> {
        self.check_state(view)?;
        let position = ld32(view, self.base + Q_POSITION)?;
        if position >= self.num_messages {
            return Err(Error::Corrupt(format!(
                "queue {} position {position}",
                self.queue_id
            )));
        }
        if position == self.pos {
            return Ok(None);
        }
        let raw: [u8; MSG_SIZE] = view.read_array(self.entry_off())?;
        let word = |i: usize| u32::from_le_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
        let msg = Message {
            udata: word(0),
            size: word(4),
            offset: word(8),
        };
        // A message whose block lies outside the region (a corrupt ring, or a file that shrank) is still
        // returned: its parser's checked reads fail, so it is skipped and released like any bad message,
        // instead of ending the session (which would only reconnect to the same message).
        Ok(Some(msg))
    }

    /// lgmpClientMessageDone: clear our pending bit, retire the head if we were last, advance locally.
    pub(crate) fn message_done(&mut self, view: ShmView<'_>) -> Result<()> {
        self.check_state(view)?;
        if ld32(view, self.base + Q_POSITION)? == self.pos {
            return Ok(());
        }
        let pending = view.atomic_u32(self.entry_off() + MSG_PENDING)?;
        let left = pending.fetch_and(!(1u32 << self.bit), Ordering::AcqRel) & !(1u32 << self.bit);
        if left == 0
            && let Some(_guard) = try_lock(view, self.base + Q_LOCK, self.version)?
            && ld32(view, self.base + Q_START)? == self.pos
        {
            st32(
                view,
                self.base + Q_START,
                (self.pos + 1) % self.num_messages,
            )?;
            let count = view.atomic_u32(self.base + Q_COUNT)?;
            let old = count.fetch_sub(1, Ordering::AcqRel);
            if old == 0 {
                count.store(0, Ordering::Release);
                return Err(Error::Corrupt(format!(
                    "queue {} count underflow",
                    self.queue_id
                )));
            }
            let max_time = ld32(view, self.base + Q_MAX_TIME)? as u64;
            let now = ld64(view, OFF_TIMESTAMP)?;
            st64(
                view,
                self.base + Q_MSG_TIMEOUT,
                now.saturating_add(max_time),
            )?;
        }
        self.pos = (self.pos + 1) % self.num_messages;
        Ok(())
    }

    /// lgmpClientUnsubscribe: give the slot back (a BAD slot is left for reaping).
    pub(crate) fn unsubscribe(&self, view: ShmView<'_>) -> Result<()> {
        let _guard = lock(view, self.base + Q_LOCK, self.version, self.queue_id)?;
        let subs = ld64(view, self.base + Q_SUBS)?;
        if subs & bad_bit(self.bit) != 0 {
            return Err(Error::QueueTimeout(self.queue_id));
        }
        st64(
            view,
            self.base + Q_SUBS,
            subs & !(on_bit(self.bit) | bad_bit(self.bit)),
        )?;
        st64(view, self.base + Q_TIMEOUT + 8 * self.bit as usize, 0)?;
        st32(view, self.base + Q_CLIENT_ID + 4 * self.bit as usize, 0)?;
        Ok(())
    }

    /// lgmpClientSendData: put a message (≤ 64 bytes) in the queue's mailbox; returns its serial.
    pub(crate) fn send_data(&self, view: ShmView<'_>, data: &[u8]) -> Result<u32> {
        if data.len() > MSGS_SIZE {
            return Err(Error::MessageTooLarge(data.len()));
        }
        self.check_state(view)?;
        let _guard = lock(view, self.base + Q_CMSG_LOCK, self.version, self.queue_id)?;
        let avail = ld32(view, self.base + Q_CMSG_AVAIL)?;
        if avail == 0 || avail > MSGS_MAX {
            return Err(Error::QueueFull(self.queue_id));
        }
        let wpos = ld32(view, self.base + Q_CMSG_WPOS)? % MSGS_MAX;
        let slot = self.base + Q_CMSGS + wpos as usize * CMSG_SLOT;
        view.write_u32(slot, data.len() as u32)?;
        view.write_bytes(slot + 4, data)?;
        st32(view, self.base + Q_CMSG_WPOS, (wpos + 1) % MSGS_MAX)?;
        st32(view, self.base + Q_CMSG_AVAIL, avail - 1)?;
        let serial = view
            .atomic_u32(self.base + Q_CMSG_WSERIAL)?
            .fetch_add(1, Ordering::AcqRel)
            .wrapping_add(1);
        Ok(serial)
    }
}
