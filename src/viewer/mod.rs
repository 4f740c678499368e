//! The frame viewer. The pure parts (pixel conversion into the presentable buffer, scaling, cursor drawing)
//! build without the `viewer` feature so benchmarks and the static build can use them; the window itself
//! (winit + softbuffer behind the [`present::Present`] trait) needs the feature.
pub mod convert;
pub(crate) mod cursor;
pub(crate) mod damage;
pub mod feed;
pub(crate) mod handoff;
pub mod scale;
pub mod wait;

#[cfg(feature = "viewer")]
pub mod clipboard;
#[cfg(feature = "viewer")]
pub(crate) mod compose;
#[cfg(feature = "viewer")]
pub mod input;
#[cfg(feature = "viewer")]
pub(crate) mod instance;
#[cfg(feature = "viewer")]
pub mod keymap;
#[cfg(feature = "viewer")]
pub(crate) mod locate;
#[cfg(feature = "viewer")]
pub(crate) mod observe;
#[cfg(feature = "viewer")]
pub(crate) mod present;
#[cfg(feature = "viewer")]
pub(crate) mod straight;
#[cfg(feature = "viewer")]
pub(crate) mod text;
#[cfg(feature = "viewer")]
pub(crate) mod window;
