//! The rsync daemon's sans-IO building blocks: `rsyncd.conf`, host access
//! lists and the secrets file.
//!
//! Layer: config (L5 data, no network). Uses `handshake` for auth digests and
//! `filter` for rsync's wildcard matching; reads files with `std::fs` only
//! where a function says so. Mirrors upstream loadparm.c, params.c,
//! access.c and authenticate.c.

pub mod config;
pub mod confine;
pub mod glob;
pub mod hosts;
pub mod log;
pub mod refuse;
pub mod secrets;
pub mod serve;

pub use serve::{Daemon, PeerInfo, ShutdownHandle};
