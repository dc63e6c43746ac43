//! Include/exclude rules: the rule parser, the filter list with rsync's
//! first-match semantics, and rsync's wildcard matcher.
//!
//! Layer: filter (L2). Uses nothing outside `filter`; does no I/O (merge
//! files are read through a caller's closure).
//! Mirrors upstream exclude.c and lib/wildmatch.c.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod matcher;
pub mod rules;
pub mod wildmatch;

pub use matcher::{Decision, Entry, FilterArg, FilterList, FilterSet, MergeReader, Side};
pub use rules::{ParseError, Rule, RuleFlags};
pub use wildmatch::{iwildmatch, wildmatch};
