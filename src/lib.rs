//! # ferrsync
//!
//! A pure-Rust implementation of the rsync wire protocol (protocols 27 to
//! 32), wire-compatible with rsync 3.x.
//!
//! The crate is built in layers that only look down:
//!
//! ```text
//! wire      bytes <-> integers, strings, file indexes, frames     (sans-IO)
//! checksum  rolling checksum1, strong sums                        (pure)
//! delta     signatures, matcher, token streams, patcher          (pure)
//! flist     file-list entries, per-protocol codec, sorting       (sans-IO)
//! ```
#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub mod checksum;
pub mod delta;
pub mod flist;
pub mod fs;
pub mod wire;
