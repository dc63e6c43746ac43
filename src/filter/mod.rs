//! Include/exclude rules: rsync's wildcard matcher.
//!
//! Layer: filter (L2). Uses nothing outside `filter`; does no I/O.
//! Mirrors upstream lib/wildmatch.c.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod wildmatch;

pub use wildmatch::{iwildmatch, wildmatch};
