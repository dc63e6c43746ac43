//! Shared test helpers.
#![allow(dead_code)]

pub mod tap;
pub mod tree;
