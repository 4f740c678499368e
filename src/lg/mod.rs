//! Looking Glass over shared memory: the LGMP message queues and the KVMFR frame/cursor protocol (B7 = LGMP v6 +
//! KVMFR v20; B6 = LGMP v5 + KVMFR v19 on the client side), both sides: the client the viewer uses and the
//! producer (host side) that tests, benchmarks and `vmgpu view --demo` use. No window code here.
//!
//! # Threat model
//! Everything in the region is written by the guest and is hostile input. This module is safe code over
//! [`crate::shm::ShmView`]: it copies each record once, validates every field (magic, version, counts, offsets,
//! sizes, strides, rects) with checked arithmetic before use and keeps only offsets and copied values between
//! steps. Every wait (locks, the frame write position) has a deadline. Allocations are bounded by the region
//! size or by protocol maxima. Bad data is a state (a typed error that the client turns into "reconnect" or
//! "skip this message"), never a panic.
pub mod client;
pub(crate) mod clock;
pub mod frame;
pub mod kvmfr;
pub mod layout;
pub(crate) mod lgmp;
pub(crate) mod lgmp_producer;
pub mod producer;
pub mod scene;
