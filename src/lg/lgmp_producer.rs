//! The LGMP host (producer side): init with a fresh session id, queues, the bump allocator, post, the 10 ms
//! process/GC step, new-subscriber counts and the client→host mailbox (docs/lg-protocol.md §2.6–2.7, §2.9).
use std::sync::atomic::Ordering;

use super::layout::*;
use super::lgmp::{Error, Result, ld32, ld64, lock, random_u32, st32, st64};
use crate::shm::ShmView;

/// One queue the host created.
#[derive(Debug, Clone)]
struct HostQueue {
    base: usize,
    id: u32,
    num_messages: u32,
    max_time: u32,
    read_pos: u32,
}

/// Outcome of a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Posted {
    /// Posted for these subscriber bits.
    To(u32),
    /// No good subscriber: a silent no-op.
    NoSubscribers,
    /// The ring is full.
    Full,
}

/// Host-side LGMP state (the layout lives in the region; this keeps the allocator and queue handles).
#[derive(Debug)]
pub(crate) struct LgmpHost {
    free: usize,
    size: usize,
    queues: Vec<HostQueue>,
    /// The session id this host wrote.
    pub session_id: u32,
}

impl LgmpHost {
    /// lgmpHostInit: a new session id different from the one in memory, then magic, timestamp, version,
    /// numQueues = 0, udata. Queue headers and rings are not cleared (as the real host).
    pub(crate) fn init(view: ShmView<'_>, udata: &[u8], now_ms: u64) -> Result<Self> {
        let need = HEADER_SIZE + udata.len();
        if view.len() < need {
            return Err(Error::Corrupt(format!(
                "region of {} bytes is smaller than {need}",
                view.len()
            )));
        }
        let old = ld32(view, OFF_SESSION)?;
        let mut session_id = random_u32();
        while session_id == old {
            session_id = random_u32();
        }
        st32(view, OFF_SESSION, session_id)?;
        st32(view, OFF_MAGIC, MAGIC)?;
        st64(view, OFF_TIMESTAMP, now_ms)?;
        st32(view, OFF_VERSION, VERSION_B7)?;
        st32(view, OFF_NUM_QUEUES, 0)?;
        st32(view, OFF_UDATA_SIZE, udata.len() as u32)?;
        view.write_bytes(OFF_UDATA, udata)?;
        Ok(Self {
            free: align4(HEADER_SIZE + udata.len()),
            size: view.len(),
            queues: Vec::new(),
            session_id,
        })
    }

    /// lgmpHostQueueNew: a queue of `len` messages (ring = len + 1) with a subscriber timeout; returns its index.
    pub(crate) fn queue_new(
        &mut self,
        view: ShmView<'_>,
        id: u32,
        len: u32,
        timeout_ms: u32,
    ) -> Result<usize> {
        let index = self.queues.len() as u32;
        if index >= MAX_QUEUES {
            return Err(Error::Corrupt("no queues left".into()));
        }
        let slots = len + 1;
        let ring = self.alloc(view, slots as usize * MSG_SIZE, 4)?;
        let base = queue_base(index);
        st32(view, base + Q_ID, id)?;
        st32(view, base + Q_NUM_MESSAGES, slots)?;
        st32(view, base + Q_NEW_SUB_COUNT, 0)?;
        st32(view, base + Q_LOCK, 0)?;
        st64(view, base + Q_SUBS, 0)?;
        st32(view, base + Q_POSITION, 0)?;
        st32(view, base + Q_START, 0)?;
        st32(view, base + Q_COUNT, 0)?;
        st32(view, base + Q_MESSAGES_OFFSET, ring.0 as u32)?;
        st64(view, base + Q_MSG_TIMEOUT, 0)?;
        st32(view, base + Q_MAX_TIME, timeout_ms)?;
        st32(view, base + Q_CMSG_LOCK, 0)?;
        st32(view, base + Q_CMSG_AVAIL, MSGS_MAX)?;
        st32(view, base + Q_CMSG_WPOS, 0)?;
        st32(view, base + Q_CMSG_WSERIAL, 0)?;
        st32(view, base + Q_CMSG_RSERIAL, 0)?;
        st32(view, OFF_NUM_QUEUES, index + 1)?;
        self.queues.push(HostQueue {
            base,
            id,
            num_messages: slots,
            max_time: timeout_ms,
            read_pos: 0,
        });
        Ok(index as usize)
    }

    /// lgmpHostMemAllocAligned: bump-allocates `size` rounded up to `align` at an `align`-aligned offset.
    /// Returns (offset, allocated size).
    pub(crate) fn alloc(
        &mut self,
        view: ShmView<'_>,
        size: usize,
        align: usize,
    ) -> Result<(usize, usize)> {
        if !align.is_power_of_two() {
            return Err(Error::Corrupt(format!(
                "alignment {align} is not a power of two"
            )));
        }
        let size = size.div_ceil(align) * align;
        let start = self.free.div_ceil(align) * align;
        let end = start.checked_add(size).filter(|&e| e <= self.size);
        let Some(end) = end else {
            return Err(Error::Corrupt(format!(
                "no shared memory left for {size} bytes"
            )));
        };
        view.check(start, size)?;
        self.free = end;
        Ok((start, size))
    }

    /// lgmpHostMemAvail: bytes left.
    pub(crate) fn avail(&self) -> usize {
        self.size - self.free
    }

    fn queue(&self, q: usize) -> Result<&HostQueue> {
        self.queues.get(q).ok_or(Error::NoSuchQueue(q as u32))
    }

    /// lgmpHostQueuePost: under the lock, capture the good subscribers and publish the next ring slot.
    pub(crate) fn post(
        &self,
        view: ShmView<'_>,
        q: usize,
        udata: u32,
        payload: (usize, usize),
        now_ms: u64,
    ) -> Result<Posted> {
        let queue = self.queue(q)?;
        let base = queue.base;
        let _guard = lock(view, base + Q_LOCK, VERSION_B7, queue.id)?;
        let pend = good(ld64(view, base + Q_SUBS)?);
        if pend == 0 {
            return Ok(Posted::NoSubscribers);
        }
        let count = view.atomic_u32(base + Q_COUNT)?;
        if count.load(Ordering::Acquire) >= queue.num_messages - 1 {
            return Ok(Posted::Full);
        }
        let pos = ld32(view, base + Q_POSITION)? % queue.num_messages;
        let entry = ld32(view, base + Q_MESSAGES_OFFSET)? as usize + pos as usize * MSG_SIZE;
        view.write_u32(entry, udata)?;
        view.write_u32(entry + 4, payload.1 as u32)?;
        view.write_u32(entry + 8, payload.0 as u32)?;
        st32(view, entry + MSG_PENDING, pend)?;
        if count.fetch_add(1, Ordering::AcqRel) == 0 {
            st64(view, base + Q_MSG_TIMEOUT, now_ms + queue.max_time as u64)?;
        }
        st32(view, base + Q_POSITION, (pos + 1) % queue.num_messages)?;
        Ok(Posted::To(pend))
    }

    /// lgmpHostProcess: the heartbeat plus GC of finished and timed-out head messages. A bad magic is
    /// CORRUPTED: the caller re-initialises (new session).
    pub(crate) fn process(&self, view: ShmView<'_>, now_ms: u64) -> Result<()> {
        if ld32(view, OFF_MAGIC)? != MAGIC {
            return Err(Error::Corrupt("the LGMP magic was overwritten".into()));
        }
        st64(view, OFF_TIMESTAMP, now_ms)?;
        for queue in &self.queues {
            if ld32(view, queue.base + Q_COUNT)? > 0 {
                self.gc_queue(view, queue, now_ms)?;
            }
        }
        Ok(())
    }

    fn gc_queue(&self, view: ShmView<'_>, queue: &HostQueue, now: u64) -> Result<()> {
        let base = queue.base;
        let _guard = lock(view, base + Q_LOCK, VERSION_B7, queue.id)?;
        let ring = ld32(view, base + Q_MESSAGES_OFFSET)? as usize;
        let mut subs = ld64(view, base + Q_SUBS)?;
        let count = view.atomic_u32(base + Q_COUNT)?;
        for _ in 0..queue.num_messages {
            if count.load(Ordering::Acquire) == 0 {
                break;
            }
            let start = ld32(view, base + Q_START)? % queue.num_messages;
            let pending = view.atomic_u32(ring + start as usize * MSG_SIZE + MSG_PENDING)?;
            let pend = pending.load(Ordering::Acquire) & (subs >> 32) as u32;
            let good_pend = pend & !(subs as u32);
            if good_pend != 0 && now > ld64(view, base + Q_MSG_TIMEOUT)? {
                subs |= good_pend as u64;
                for bit in 0..MAX_SUBS {
                    if good_pend & (1 << bit) != 0 {
                        st64(
                            view,
                            base + Q_TIMEOUT + 8 * bit as usize,
                            now + queue.max_time as u64,
                        )?;
                    }
                }
                pending.store(0, Ordering::Release);
            } else if good_pend != 0 {
                break;
            }
            st32(view, base + Q_START, (start + 1) % queue.num_messages)?;
            if count.fetch_sub(1, Ordering::AcqRel) <= 1 {
                break;
            }
            st64(view, base + Q_MSG_TIMEOUT, now + queue.max_time as u64)?;
        }
        st64(view, base + Q_SUBS, subs)?;
        Ok(())
    }

    /// lgmpHostQueueNewSubs: the count of new subscribers since the last call (reset to 0).
    pub(crate) fn new_subs(&self, view: ShmView<'_>, q: usize) -> Result<u32> {
        Ok(view
            .atomic_u32(self.queue(q)?.base + Q_NEW_SUB_COUNT)?
            .swap(0, Ordering::AcqRel))
    }

    /// lgmpHostQueuePending: messages outstanding.
    pub(crate) fn pending(&self, view: ShmView<'_>, q: usize) -> Result<u32> {
        ld32(view, self.queue(q)?.base + Q_COUNT)
    }

    /// The raw subscriber word (ON high, BAD low).
    pub(crate) fn subs(&self, view: ShmView<'_>, q: usize) -> Result<u64> {
        ld64(view, self.queue(q)?.base + Q_SUBS)
    }

    /// lgmpHostReadData + lgmpHostAckData: the next client message, if any.
    pub(crate) fn read_data(&mut self, view: ShmView<'_>, q: usize) -> Result<Option<Vec<u8>>> {
        let queue = self.queue(q)?.clone();
        let base = queue.base;
        if ld32(view, base + Q_CMSG_AVAIL)? >= MSGS_MAX {
            return Ok(None);
        }
        let data = {
            let _guard = lock(view, base + Q_CMSG_LOCK, VERSION_B7, queue.id)?;
            let slot = base + Q_CMSGS + queue.read_pos as usize * CMSG_SLOT;
            let size = (view.read_u32(slot)? as usize).min(MSGS_SIZE);
            let mut data = vec![0u8; size];
            view.read_bytes(slot + 4, &mut data)?;
            view.atomic_u32(base + Q_CMSG_AVAIL)?
                .fetch_add(1, Ordering::AcqRel);
            data
        };
        if let Some(hq) = self.queues.get_mut(q) {
            hq.read_pos = (hq.read_pos + 1) % MSGS_MAX;
        }
        view.atomic_u32(base + Q_CMSG_RSERIAL)?
            .fetch_add(1, Ordering::AcqRel);
        Ok(Some(data))
    }
}
