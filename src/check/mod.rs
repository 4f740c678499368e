//! `check`: every step of a passthrough host as a [`Finding`] (PASS/WARN/FAIL/SKIP, one line, the exact fix
//! for this distro). One file per area, each a `fn(&Context) -> Vec<Finding>`; add an area by adding a file
//! and a line in [`AREAS`].
pub mod render;
