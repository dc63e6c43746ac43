//! Checksums: the rolling `checksum1` and the strong `checksum2` family
//! with rsync's seed rules.
//!
//! Layer: checksum (L1, pure compute). Uses `md4`, `md-5`, `sha1`,
//! `xxhash-rust`; nothing else in the crate. Mirrors upstream checksum.c
//! and the rolling update in match.c.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod rolling;
#[cfg(target_arch = "x86_64")]
mod simd;
mod strong;

pub use rolling::{Rolling, checksum1};
pub use strong::{ChecksumConfig, FileHasher, SeedPlacement, StrongKind, StrongSum};
