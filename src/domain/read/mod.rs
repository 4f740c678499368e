//! The read half of domain XML: the one XML reader ([`xml`], with the [`element`] tree built from it), the
//! vmgpu metadata schema ([`metadata`], [`identity`]) and the hook's view of a domain ([`hook_view`]).
pub(crate) mod element;
pub(crate) mod hook_view;
pub(crate) mod identity;
pub(crate) mod metadata;
pub(crate) mod xml;
