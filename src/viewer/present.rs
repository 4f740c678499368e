//! Presenting a CPU-drawn picture in a window, behind a small trait so that a GPU backend can come later.
use std::num::NonZeroU32;
use std::rc::Rc;

use winit::window::Window;

use super::damage::clip;
use crate::lg::kvmfr::Rect;

/// Presentation errors.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// softbuffer failed.
    #[error("presenting the frame failed: {0}")]
    Softbuffer(String),
}

/// Result of this module.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// Draws into a `w × h` buffer whose content is the picture presented `age` presents ago (0: unknown);
/// returns the rects it changed, `None` for all of them.
pub(crate) type Draw<'a> = dyn FnMut(&mut [u32], u32, u32, u8) -> Option<Vec<Rect>> + 'a;

/// Something that shows a `w × h` buffer of 0x00RRGGBB pixels.
pub(crate) trait Present {
    /// Draws through `draw` and shows the result; only the rects it says changed when it names them.
    fn present(&mut self, w: u32, h: u32, draw: &mut Draw<'_>) -> Result<()>;
}

/// winit + softbuffer (X11 via XShm/XPutImage, Wayland via wl_shm): no GL or Vulkan driver needed.
pub(crate) struct Softbuffer {
    surface: softbuffer::Surface<Rc<Window>, Rc<Window>>,
    size: (u32, u32),
}

fn sb(e: softbuffer::SoftBufferError) -> Error {
    Error::Softbuffer(e.to_string())
}

impl Softbuffer {
    /// A presenter for `window`.
    pub(crate) fn new(window: Rc<Window>) -> Result<Self> {
        let context = softbuffer::Context::new(window.clone()).map_err(sb)?;
        let surface = softbuffer::Surface::new(&context, window).map_err(sb)?;
        Ok(Self {
            surface,
            size: (0, 0),
        })
    }
}

impl Present for Softbuffer {
    fn present(&mut self, w: u32, h: u32, draw: &mut Draw<'_>) -> Result<()> {
        let (Some(nw), Some(nh)) = (NonZeroU32::new(w), NonZeroU32::new(h)) else {
            return Ok(());
        };
        let resized = self.size != (w, h);
        if resized {
            self.surface.resize(nw, nh).map_err(sb)?;
            self.size = (w, h);
        }
        let mut buffer = self.surface.buffer_mut().map_err(sb)?;
        let age = if resized { 0 } else { buffer.age() };
        match draw(&mut buffer, w, h, age) {
            // The server copies only these rects out of the buffer (X11: one XShmPutImage each).
            Some(rects) => {
                let damage: Vec<softbuffer::Rect> =
                    rects.iter().filter_map(|r| to_sb(*r, w, h)).collect();
                buffer.present_with_damage(&damage).map_err(sb)
            }
            None => buffer.present().map_err(sb),
        }
    }
}

/// A window rect as softbuffer's, clipped to `w × h`; `None` when empty.
fn to_sb(r: Rect, w: u32, h: u32) -> Option<softbuffer::Rect> {
    let r = clip(r, w, h)?;
    Some(softbuffer::Rect {
        x: r.x,
        y: r.y,
        width: NonZeroU32::new(r.w)?,
        height: NonZeroU32::new(r.h)?,
    })
}
