//! The integration tests, one test binary: each `tests/it/<name>.rs` is a
//! module (once `tests/<name>.rs`, a binary of its own). One binary links
//! once instead of thirty times, and its tests share one pool of test
//! threads, so the long ones (faults, task_ssh) overlap with the rest.
//! Run one file's tests with `cargo test --profile ci --test it <name>::`.
//!
//! Tests in one process share its environment, current directory, umask
//! and resource limits: none may change them (the one `set_var`, in
//! `task_module`, adds a variable of its own once). Tests that assert on
//! the whole process's peak memory stay binaries of their own
//! (`tests/hostile*.rs`).

// The fuzz targets each load their helpers (`fuzz/common/*.rs`,
// `tests/common/flist_gen.rs`) as modules of their own, as in the fuzz
// crate where each target is a crate.
#![allow(clippy::duplicate_mod)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/flist_gen.rs"]
mod flist_gen;
#[path = "../common/sshd.rs"]
mod sshd;
#[path = "../common/task_cases.rs"]
mod task_cases;

mod acls;
mod compress_props;
mod compression;
mod daemon;
mod daemon_config;
mod delta_props;
mod faults;
mod filters;
mod filters_interop;
mod flist_proptest;
mod flist_sort_rsync;
mod fs_scan;
mod fuzz_smoke;
mod interop;
mod keepalive;
mod metadata;
mod metadata_more;
mod options_vs_rsync;
mod redo;
mod relative;
mod ssh;
mod ssh_server;
mod task_module;
mod task_service;
mod task_ssh;
mod vectors_compress;
mod vectors_delta;
mod vectors_flist;
mod vectors_session;
mod vectors_xattrs;
mod xattrs;

// `fuzz_smoke` compiles the cargo-fuzz targets as modules: their
// `use libfuzzer_sys::fuzz_target;` finds this crate, and `fuzz_target!`
// makes the target's body the module's `run`. (Defined after the
// modules, so that they reach it through that `use`, not by textual scope.)
extern crate self as libfuzzer_sys;

/// The body of a fuzz target as `pub fn run(data: &[u8])`.
#[macro_export]
macro_rules! fuzz_target {
    (|$data:ident: &[u8]| $body:expr) => {
        pub fn run($data: &[u8]) {
            $body;
        }
    };
}
