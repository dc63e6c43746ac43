//! # ferrsync
//!
//! A pure-Rust implementation of the rsync wire protocol (protocols 27 to
//! 32), wire-compatible with rsync 3.x: a library to embed, and a thin
//! `ferrsync` binary with rsync's command line.
//!
//! The crate is built in layers that only look down:
//!
//! ```text
//! wire       bytes <-> integers, strings, file indexes, frames   (sans-IO)
//! handshake  daemon greetings, auth, argument lists             (sans-IO)
//! checksum   rolling checksum1, strong sums                      (pure)
//! delta      signatures, matcher, token streams, patcher        (pure)
//! flist      file-list entries, per-protocol codec, sorting     (sans-IO)
//! filter     rsync's wildcard matching                          (pure)
//! fs         scanning local trees, chmod rules
//! daemon     rsyncd.conf, host lists, auth users and secrets
//! engine     generator, sender, receiver over any async stream
//! transport  spawned peers (remote shell, local rsync --server)
//! session    Transfer: one call per sync
//! task       Task, Module, Service, Scheduler: the configuration layer
//! ```
//!
//! The three roles and the pipes they own:
//!
//! ```text
//!  receiving side                         sending side
//!  generator --- requests, phases --->    sender
//!  receiver  <--- file list, tokens ---   sender
//! ```
#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub mod checksum;
pub mod daemon;
pub mod delta;
pub mod engine;
mod error;
pub mod filter;
pub mod flist;
pub mod fs;
pub mod handshake;
mod session;
pub mod sshd;
pub mod task;
pub mod transport;
pub mod wire;

pub use engine::{DeleteTiming, Event, Options, Report, Stats};
pub use error::{Error, ExitCode, Result};
pub use session::{CancelToken, MotdSink, Transfer};
pub use transport::RemoteCommand;
