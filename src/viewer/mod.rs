//! The frame viewer. The pure parts (pixel conversion into the presentable buffer, scaling, cursor drawing)
//! build without the `viewer` feature so benchmarks and the static build can use them; the window itself
//! (winit + softbuffer behind the [`present::Present`] trait) needs the feature.
pub mod convert;
pub mod cursor;
pub mod damage;
pub mod feed;
pub mod handoff;
pub mod instance;
pub mod locate;
pub mod scale;
pub mod wait;

#[cfg(feature = "viewer")]
pub mod clipboard;
#[cfg(feature = "viewer")]
pub mod compose;
#[cfg(feature = "viewer")]
pub mod input;
#[cfg(feature = "viewer")]
pub mod keymap;
#[cfg(feature = "viewer")]
pub mod observe;
#[cfg(feature = "viewer")]
pub mod present;
#[cfg(feature = "viewer")]
pub mod straight;
#[cfg(feature = "viewer")]
pub mod text;
#[cfg(feature = "viewer")]
pub mod window;
