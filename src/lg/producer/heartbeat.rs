//! The 10 ms heartbeat thread: LGMP heartbeat and GC, reposts for new subscribers, the mailbox.
use super::layout::{setup, write_position};
use super::*;

pub(super) fn tick_loop(shared: &Shared) {
    while !shared.stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(10));
        if shared.heartbeat.load(Ordering::Acquire)
            && let Err(e) = tick(shared)
        {
            tracing::debug!("producer tick: {e}");
        }
    }
}

/// One 10 ms tick: heartbeat and GC (re-init on corruption), reposts for new subscribers, the mailbox.
pub(super) fn tick(shared: &Shared) -> Result<()> {
    let view = shared.region.view();
    let mut st = lock_state(shared);
    if st.host.process(view, now_ms()).is_err() {
        *st = setup(view, &shared.cfg)?;
        return Ok(());
    }
    if st.host.new_subs(view, st.frame_q)? > 0 {
        st.repost_frame = true;
    }
    if st.repost_frame
        && let Some(slot) = st.last_complete
        && st.host.pending(view, st.frame_q)? < 2
    {
        st.host
            .post(view, st.frame_q, 0, st.slots[slot], now_ms())?;
        st.repost_frame = false;
    }
    if st.host.new_subs(view, st.pointer_q)? > 0 {
        let mut fl = cursor_flags::POSITION;
        if st.cursor_visible {
            fl |= cursor_flags::VISIBLE;
        }
        let pos = st.cursor_pos;
        let payload = if let Some(buf) = st.last_shape {
            fl |= cursor_flags::SHAPE;
            (buf, SHAPE_BUFFER_SIZE)
        } else {
            st.next_small()
        };
        write_position(view, payload.0, pos)?;
        st.host.post(view, st.pointer_q, fl, payload, now_ms())?;
    }
    let q = st.pointer_q;
    while let Some(msg) = st.host.read_data(view, q)? {
        st.received.push(msg);
    }
    Ok(())
}
