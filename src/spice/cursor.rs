//! Cursor channel: INIT/SET/MOVE/HIDE/RESET and the cursor cache, turned into the same [`CursorState`] the
//! Looking Glass side draws (alpha cursors premultiplied, monochrome AND/XOR masks, colour cursors with an AND
//! mask as masked colour). Shapes are bounded in size and the cache in entries and bytes; a shape we do not
//! decode (palette cursors) or a cache miss keeps the previous shape and is reported once.
use std::collections::BTreeMap;

use super::error::ProtocolError;
use super::wire::Reader;
use crate::lg::kvmfr::{CursorShape, CursorState, CursorType};

/// Server message types.
pub(crate) mod server {
    /// Position, trail, visibility and the first cursor.
    pub(crate) const INIT: u16 = 101;
    /// Forget the cache and the cursor.
    pub(crate) const RESET: u16 = 102;
    /// A new cursor (and position).
    pub(crate) const SET: u16 = 103;
    /// The cursor moved.
    pub(crate) const MOVE: u16 = 104;
    /// The cursor is hidden.
    pub(crate) const HIDE: u16 = 105;
    // 106 TRAIL: trail settings, ignored with the other unknown types.
    /// Drop one cached cursor.
    pub(crate) const INVAL_ONE: u16 = 107;
    /// Drop every cached cursor.
    pub(crate) const INVAL_ALL: u16 = 108;
}

/// Largest cursor side accepted.
pub(crate) const MAX_SIDE: u16 = 256;
/// Most cached cursors (the server's cache size).
pub(crate) const CACHE_ENTRIES: usize = 256;
/// Most bytes of cached shapes.
pub(crate) const CACHE_BYTES: usize = 16 << 20;

const FLAG_NONE: u16 = 1;
const FLAG_CACHE_ME: u16 = 2;
const FLAG_FROM_CACHE: u16 = 4;

/// The cursor part of INIT and SET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shape {
    /// No cursor image.
    None,
    /// A cached one.
    FromCache(u64),
    /// A new one (cached under `unique` when `cache`).
    New {
        /// Cache key.
        unique: u64,
        /// Keep it in the cache.
        cache: bool,
        /// Hot spot inside the image.
        hot: (u16, u16),
        /// The decoded shape, or what we could not decode.
        shape: Result<CursorShape, String>,
    },
}

/// A cursor message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CursorMsg {
    /// INIT or SET.
    Set {
        /// Hot-spot position in guest pixels (INIT, SET).
        position: (i16, i16),
        /// Visible.
        visible: bool,
        /// The image.
        shape: Shape,
    },
    /// MOVE.
    Move(i16, i16),
    /// HIDE.
    Hide,
    /// RESET.
    Reset,
    /// INVAL_ONE.
    InvalOne(u64),
    /// INVAL_ALL.
    InvalAll,
    /// TRAIL and unknown types.
    Skip(u16),
}

/// Parses one cursor channel message.
pub(crate) fn parse(kind: u16, body: &[u8]) -> Result<CursorMsg, ProtocolError> {
    Ok(match kind {
        server::INIT => {
            let mut r = Reader::new("CURSOR_INIT", body);
            let position = (r.u16()? as i16, r.u16()? as i16);
            let (_trail_len, _trail_freq) = (r.u16()?, r.u16()?);
            let visible = r.u8()? != 0;
            CursorMsg::Set {
                position,
                visible,
                shape: shape(&mut r)?,
            }
        }
        server::SET => {
            let mut r = Reader::new("CURSOR_SET", body);
            let position = (r.u16()? as i16, r.u16()? as i16);
            let visible = r.u8()? != 0;
            CursorMsg::Set {
                position,
                visible,
                shape: shape(&mut r)?,
            }
        }
        server::MOVE => {
            let mut r = Reader::new("CURSOR_MOVE", body);
            CursorMsg::Move(r.u16()? as i16, r.u16()? as i16)
        }
        server::HIDE => CursorMsg::Hide,
        server::RESET => CursorMsg::Reset,
        server::INVAL_ONE => CursorMsg::InvalOne(Reader::new("CURSOR_INVAL_ONE", body).u64()?),
        server::INVAL_ALL => CursorMsg::InvalAll,
        other => CursorMsg::Skip(other),
    })
}

fn shape(r: &mut Reader<'_>) -> Result<Shape, ProtocolError> {
    let flags = r.u16()?;
    if flags & FLAG_NONE != 0 {
        return Ok(Shape::None);
    }
    let unique = r.u64()?;
    let kind = r.u8()?;
    let (w, h) = (r.u16()?, r.u16()?);
    let hot = (r.u16()?, r.u16()?);
    if flags & FLAG_FROM_CACHE != 0 {
        return Ok(Shape::FromCache(unique));
    }
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(ProtocolError::Invalid {
            what: "cursor",
            detail: format!("size {w}x{h} (1x1 up to {MAX_SIDE}x{MAX_SIDE})"),
        });
    }
    let data = r.rest();
    Ok(Shape::New {
        unique,
        cache: flags & FLAG_CACHE_ME != 0,
        hot,
        shape: decode(kind, u32::from(w), u32::from(h), data)?,
    })
}

/// Decodes the image data of a `w × h` cursor of SPICE type `kind`; `Ok(Err)` names a type we do not decode.
fn decode(
    kind: u8,
    w: u32,
    h: u32,
    data: &[u8],
) -> Result<Result<CursorShape, String>, ProtocolError> {
    let (wu, hu) = (w as usize, h as usize);
    let mask_pitch = wu.div_ceil(8);
    let need = |n: usize| -> Result<&[u8], ProtocolError> {
        data.get(..n).ok_or(ProtocolError::Truncated {
            what: "cursor image",
            need: n,
            got: data.len(),
        })
    };
    let shape = |kind, pitch: usize, data: Vec<u8>| CursorShape {
        kind,
        width: w,
        height: h,
        pitch: pitch as u32,
        hotspot: (0, 0),
        data,
    };
    Ok(Ok(match kind {
        // ALPHA: B,G,R,A straight alpha → premultiplied.
        0 => {
            let px = need(wu * hu * 4)?;
            let data = px
                .chunks_exact(4)
                .flat_map(|p| {
                    let a = u16::from(p[3]);
                    let m = |c: u8| ((u16::from(c) * a + 127) / 255) as u8;
                    [m(p[0]), m(p[1]), m(p[2]), p[3]]
                })
                .collect();
            shape(CursorType::Color, wu * 4, data)
        }
        // MONO: AND rows then XOR rows, MSB first: the layout of LG's monochrome cursor.
        1 => shape(
            CursorType::Monochrome,
            mask_pitch,
            need(2 * mask_pitch * hu)?.to_vec(),
        ),
        // COLOR16/24/32 with an AND mask: masked colour (mask bit set → XOR, clear → replace).
        4..=6 => {
            let bpp = match kind {
                4 => 2,
                5 => 3,
                _ => 4,
            };
            let all = need(wu * hu * bpp + mask_pitch * hu)?;
            let (px, mask) = all.split_at(wu * hu * bpp);
            let mut out = Vec::with_capacity(wu * hu * 4);
            for y in 0..hu {
                for x in 0..wu {
                    let p = &px[(y * wu + x) * bpp..][..bpp];
                    let [b, g, r] = match bpp {
                        2 => {
                            let v = u16::from_le_bytes([p[0], p[1]]);
                            let c = |s: u16| {
                                let c = ((v >> s) & 31) as u8;
                                (c << 3) | (c >> 2)
                            };
                            [c(0), c(5), c(10)]
                        }
                        _ => [p[0], p[1], p[2]],
                    };
                    let and = mask[y * mask_pitch + x / 8] & (0x80 >> (x % 8)) != 0;
                    out.extend_from_slice(&[b, g, r, if and { 0xff } else { 0 }]);
                }
            }
            shape(CursorType::MaskedColor, wu * 4, out)
        }
        other => return Ok(Err(format!("cursor type {other} (palette)"))),
    }))
}

/// The cursor as drawn plus the server's cache.
#[derive(Debug, Default)]
pub struct Cursors {
    /// What the window draws (position = top-left of the image).
    pub state: CursorState,
    hot: (i32, i32),
    hotspot: (i32, i32),
    cache: BTreeMap<u64, (CursorShape, (i32, i32))>,
    cache_bytes: usize,
}

impl Cursors {
    /// Applies a message; returns a line to log when something could not be shown.
    pub(crate) fn apply(&mut self, msg: CursorMsg) -> Option<String> {
        let mut note = None;
        match msg {
            CursorMsg::Set {
                position,
                visible,
                shape,
            } => {
                self.hot = (position.0.into(), position.1.into());
                self.state.visible = visible;
                match shape {
                    Shape::None => self.state.visible = false,
                    Shape::FromCache(id) => match self.cache.get(&id) {
                        Some((s, hot)) => {
                            self.state.shape = Some(s.clone());
                            self.hotspot = *hot;
                        }
                        None => note = Some(format!("cursor {id:#x} is not in the cache")),
                    },
                    Shape::New {
                        unique,
                        cache,
                        hot,
                        shape,
                    } => match shape {
                        Ok(s) => {
                            let hot = (i32::from(hot.0), i32::from(hot.1));
                            if cache {
                                self.remember(unique, s.clone(), hot);
                            }
                            self.state.shape = Some(s);
                            self.hotspot = hot;
                        }
                        Err(what) => note = Some(format!("cannot draw {what}")),
                    },
                }
            }
            CursorMsg::Move(x, y) => self.hot = (x.into(), y.into()),
            CursorMsg::Hide => self.state.visible = false,
            CursorMsg::Reset => {
                self.cache.clear();
                self.cache_bytes = 0;
                self.state.visible = false;
                self.state.shape = None;
            }
            CursorMsg::InvalOne(id) => {
                if let Some((s, _)) = self.cache.remove(&id) {
                    self.cache_bytes -= s.data.len();
                }
            }
            CursorMsg::InvalAll => {
                self.cache.clear();
                self.cache_bytes = 0;
            }
            CursorMsg::Skip(_) => return None,
        }
        self.state.position = (self.hot.0 - self.hotspot.0, self.hot.1 - self.hotspot.1);
        self.state.updates += 1;
        note
    }

    fn remember(&mut self, id: u64, shape: CursorShape, hot: (i32, i32)) {
        if let Some((old, _)) = self.cache.remove(&id) {
            self.cache_bytes -= old.data.len();
        }
        while !self.cache.is_empty()
            && (self.cache.len() >= CACHE_ENTRIES
                || self.cache_bytes + shape.data.len() > CACHE_BYTES)
        {
            if let Some((_, (s, _))) = self.cache.pop_first() {
                self.cache_bytes -= s.data.len();
            }
        }
        self.cache_bytes += shape.data.len();
        self.cache.insert(id, (shape, hot));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SET message body at (x, y) with a new cursor of `kind` (w × h, hot spot) and `data`.
    fn set(
        (x, y): (i16, i16),
        flags: u16,
        unique: u64,
        kind: u8,
        wh: (u16, u16),
        hot: (u16, u16),
        data: &[u8],
    ) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&x.to_le_bytes());
        b.extend_from_slice(&y.to_le_bytes());
        b.push(1);
        b.extend_from_slice(&flags.to_le_bytes());
        b.extend_from_slice(&unique.to_le_bytes());
        b.push(kind);
        for v in [wh.0, wh.1, hot.0, hot.1] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(data);
        b
    }

    fn apply(c: &mut Cursors, kind: u16, body: &[u8]) -> Option<String> {
        c.apply(parse(kind, body).unwrap())
    }

    #[test]
    fn alpha_cursor_is_premultiplied_and_placed_by_its_hot_spot() {
        let mut c = Cursors::default();
        let data = [200, 100, 50, 128, 1, 2, 3, 255];
        assert_eq!(
            apply(
                &mut c,
                server::SET,
                &set((10, 20), 2, 7, 0, (2, 1), (1, 0), &data)
            ),
            None
        );
        let s = c.state.shape.clone().unwrap();
        assert_eq!(
            (s.kind, s.width, s.height, s.pitch),
            (CursorType::Color, 2, 1, 8)
        );
        assert_eq!(s.data, vec![100, 50, 25, 128, 1, 2, 3, 255]);
        assert!(c.state.visible);
        assert_eq!(c.state.position, (9, 20));
        apply(&mut c, server::MOVE, &[5, 0, 6, 0]);
        assert_eq!(c.state.position, (4, 6));
        apply(&mut c, server::HIDE, &[]);
        assert!(!c.state.visible);
        // From the cache, with its own hot spot.
        apply(
            &mut c,
            server::SET,
            &set((10, 10), 4, 7, 0, (0, 0), (0, 0), &[]),
        );
        assert_eq!((c.state.position, c.state.visible), ((9, 10), true));
        apply(&mut c, server::INVAL_ONE, &7u64.to_le_bytes());
        let note = apply(
            &mut c,
            server::SET,
            &set((0, 0), 4, 7, 0, (0, 0), (0, 0), &[]),
        );
        assert!(note.unwrap().contains("not in the cache"));
    }

    #[test]
    fn mono_and_masked_colour_cursors() {
        let mut c = Cursors::default();
        // 9×1 mono: AND row (2 bytes) then XOR row.
        apply(
            &mut c,
            server::SET,
            &set((0, 0), 0, 1, 1, (9, 1), (0, 0), &[0xff, 0x80, 0x00, 0x80]),
        );
        let s = c.state.shape.clone().unwrap();
        assert_eq!(
            (s.kind, s.pitch, s.data.len()),
            (CursorType::Monochrome, 2, 4)
        );
        // 2×1 COLOR32 with AND mask 0b01: first pixel replaces, second XORs.
        let data = [1, 2, 3, 0, 4, 5, 6, 0, 0x40];
        apply(
            &mut c,
            server::SET,
            &set((0, 0), 0, 2, 6, (2, 1), (0, 0), &data),
        );
        let s = c.state.shape.clone().unwrap();
        assert_eq!(s.kind, CursorType::MaskedColor);
        assert_eq!(s.data, vec![1, 2, 3, 0, 4, 5, 6, 0xff]);
        // A palette cursor keeps the previous one and says so.
        let note = apply(
            &mut c,
            server::SET,
            &set((0, 0), 0, 3, 3, (1, 1), (0, 0), &[0; 2000]),
        );
        assert!(note.unwrap().contains("palette"));
        assert_eq!(
            c.state.shape.as_ref().unwrap().kind,
            CursorType::MaskedColor
        );
    }

    #[test]
    fn hostile_cursors_are_refused() {
        for (wh, len) in [
            ((0, 0), 0),
            ((257, 1), 2000),
            ((u16::MAX, u16::MAX), 100),
            ((4, 4), 63),
        ] {
            assert!(
                parse(
                    server::SET,
                    &set((0, 0), 0, 1, 0, wh, (0, 0), &vec![0; len])
                )
                .is_err(),
                "{wh:?}"
            );
        }
        assert!(parse(server::SET, &[0; 6]).is_err());
        assert!(parse(server::MOVE, &[1]).is_err());
        // The cache stays bounded.
        let mut c = Cursors::default();
        for id in 0..300u64 {
            apply(
                &mut c,
                server::SET,
                &set(
                    (0, 0),
                    2,
                    id,
                    0,
                    (256, 256),
                    (0, 0),
                    &vec![1; 256 * 256 * 4],
                ),
            );
        }
        assert!(c.cache.len() <= CACHE_ENTRIES);
        assert!(c.cache_bytes <= CACHE_BYTES);
        assert_eq!(
            c.cache_bytes,
            c.cache.values().map(|(s, _)| s.data.len()).sum::<usize>()
        );
    }
}
