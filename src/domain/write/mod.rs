//! The write half of domain XML, `define`'s: templates, the [`spec::DomainSpec`], CPU pinning, Looking Glass
//! sizing, the SPICE server's settings, the metadata `define` records, the rules a spec becomes
//! ([`spec_xml`]) and the byte-preserving [`rewrite`] that applies them.
pub mod looking_glass;
pub(crate) mod metadata;
pub mod pinning;
pub(crate) mod rewrite;
pub(crate) mod sound;
pub mod spec;
pub mod spec_xml;
pub(crate) mod spice_graphics;
pub mod template;
