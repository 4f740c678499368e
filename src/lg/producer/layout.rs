//! The memory as the B7 host lays it out (queues, frame slots, cursor buffers) and the records written into it.
use super::*;

pub(super) fn setup(view: ShmView<'_>, cfg: &ProducerConfig) -> Result<State> {
    if !cfg.align.is_power_of_two() || cfg.align < 4096 {
        return Err(Error::Invalid(format!(
            "frame alignment {} is not a power of two ≥ 4096",
            cfg.align
        )));
    }
    let udata = kvmfr::encode_udata(
        &cfg.hostver,
        cfg.features,
        &cfg.capture,
        "vmgpu virtual CPU",
        &cfg.os_name,
    );
    let too_small = |_| Error::TooSmall(view.len());
    let mut host = LgmpHost::init(view, &udata, now_ms()).map_err(too_small)?;
    let frame_q = host.queue_new(view, kvmfr::QUEUE_FRAME, FRAME_QUEUE_LEN, SUB_TIMEOUT_MS)?;
    let pointer_q = host.queue_new(
        view,
        kvmfr::QUEUE_POINTER,
        POINTER_QUEUE_LEN,
        SUB_TIMEOUT_MS,
    )?;
    let mut small = [0usize; SMALL_CURSORS];
    for s in &mut small {
        let (off, size) = host.alloc(view, CURSOR_SIZE, 4).map_err(too_small)?;
        view.fill(off, size, 0)?;
        *s = off;
    }
    let mut shapes = [0usize; SHAPE_BUFFERS];
    for s in &mut shapes {
        let (off, size) = host.alloc(view, SHAPE_BUFFER_SIZE, 4).map_err(too_small)?;
        view.fill(off, size, 0)?;
        *s = off;
    }
    let a = cfg.align;
    let avail = host
        .avail()
        .checked_sub(a - 1)
        .ok_or(Error::TooSmall(view.len()))?;
    let max_frame = (avail / a * a) / 2;
    if max_frame <= a {
        return Err(Error::TooSmall(view.len()));
    }
    let mut slots = [(0usize, 0usize); 2];
    for slot in &mut slots {
        *slot = host.alloc(view, max_frame, a).map_err(too_small)?;
        view.write_u32(slot.0 + 48, (a - 4) as u32)?;
    }
    Ok(State {
        host,
        frame_q,
        pointer_q,
        small,
        small_next: 0,
        shapes,
        shape_next: 0,
        last_shape: None,
        cursor_pos: (0, 0),
        cursor_visible: false,
        slots,
        slot_dirty: [None, None],
        capture_index: 0,
        last_complete: None,
        repost_frame: false,
        serial: 0,
        format_ver: 0,
        last_format: None,
        received: Vec::new(),
    })
}

/// Writes a cursor position (x, y as i16) at the start of a cursor buffer.
pub(super) fn write_position(view: ShmView<'_>, buf: usize, pos: (i16, i16)) -> Result<()> {
    view.write_bytes(buf, &pos.0.to_le_bytes())?;
    view.write_bytes(buf + 2, &pos.1.to_le_bytes())?;
    Ok(())
}

/// Sorted, merged row bands clipped to `rows`; `None` = all rows in one band.
pub(super) fn merge_bands(bands: Option<Vec<(u32, u32)>>, rows: u32) -> Vec<(u32, u32)> {
    let Some(mut bands) = bands else {
        return vec![(0, rows)];
    };
    bands.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for (y0, y1) in bands {
        let (y0, y1) = (y0.min(rows), y1.min(rows));
        match out.last_mut() {
            Some(last) if y0 <= last.1 => last.1 = last.1.max(y1),
            _ if y0 < y1 => out.push((y0, y1)),
            _ => {}
        }
    }
    out
}

pub(super) fn write_frame_header(
    view: ShmView<'_>,
    block: usize,
    d: &FrameDesc,
    format_ver: u32,
    serial: u32,
    rows: u32,
    fl: u32,
) -> Result<()> {
    let bpp = d.kind.bytes_per_pixel();
    let fields = [
        (0, format_ver),
        (4, serial),
        (8, d.kind.wire()),
        (12, d.width),
        (16, d.height),
        (20, d.pitch / 4),
        (24, rows),
        (28, d.width),
        (32, d.height),
        (36, 0),
        (40, d.pitch / bpp),
        (44, d.pitch),
        (52, d.damage.len() as u32),
        (1080, fl),
    ];
    for (off, v) in fields {
        view.write_u32(block + off, v)?;
    }
    for (i, r) in d.damage.iter().enumerate() {
        let at = block + 56 + 16 * i;
        for (j, v) in [r.x, r.y, r.w, r.h].into_iter().enumerate() {
            view.write_u32(at + 4 * j, v)?;
        }
    }
    Ok(())
}
