//! Presenting a CPU-drawn picture in a window, behind a small trait so that a GPU backend can come later.
use std::num::NonZeroU32;
use std::rc::Rc;

use winit::window::Window;

/// Presentation errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// softbuffer failed.
    #[error("presenting the frame failed: {0}")]
    Softbuffer(String),
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// Something that shows a `w × h` buffer of 0x00RRGGBB pixels.
pub trait Present {
    /// Draws through `draw(buffer, w, h)` and shows the result.
    fn present(&mut self, w: u32, h: u32, draw: &mut dyn FnMut(&mut [u32], u32, u32))
    -> Result<()>;
}

/// winit + softbuffer (X11 via XShm/XPutImage, Wayland via wl_shm): no GL or Vulkan driver needed.
pub struct Softbuffer {
    surface: softbuffer::Surface<Rc<Window>, Rc<Window>>,
    size: (u32, u32),
}

fn sb(e: softbuffer::SoftBufferError) -> Error {
    Error::Softbuffer(e.to_string())
}

impl Softbuffer {
    /// A presenter for `window`.
    pub fn new(window: Rc<Window>) -> Result<Self> {
        let context = softbuffer::Context::new(window.clone()).map_err(sb)?;
        let surface = softbuffer::Surface::new(&context, window).map_err(sb)?;
        Ok(Self {
            surface,
            size: (0, 0),
        })
    }
}

impl Present for Softbuffer {
    fn present(
        &mut self,
        w: u32,
        h: u32,
        draw: &mut dyn FnMut(&mut [u32], u32, u32),
    ) -> Result<()> {
        let (Some(nw), Some(nh)) = (NonZeroU32::new(w), NonZeroU32::new(h)) else {
            return Ok(());
        };
        if self.size != (w, h) {
            self.surface.resize(nw, nh).map_err(sb)?;
            self.size = (w, h);
        }
        let mut buffer = self.surface.buffer_mut().map_err(sb)?;
        draw(&mut buffer, w, h);
        buffer.present().map_err(sb)
    }
}
