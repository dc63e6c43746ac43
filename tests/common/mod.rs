//! Shared test helpers.
#![allow(dead_code)]

pub mod daemon;
pub mod tap;
pub mod tree;
pub mod ways;
