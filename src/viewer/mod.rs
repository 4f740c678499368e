//! The frame viewer. The pure parts (pixel conversion into the presentable buffer, scaling, the feed thread)
//! build without the `viewer` feature so benchmarks and the static build can use them; the window itself
//! (winit + softbuffer behind the [`present::Present`] trait), with what only it uses (cursor drawing, the
//! window's side of the frame handoff), needs the feature.
pub mod convert;
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
pub(crate) mod cursor;
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
