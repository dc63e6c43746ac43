//! Byte pipes to the other side: a spawned command (remote shell or a
//! local `rsync --server`), or anything that reads and writes.
//!
//! Layer: transport (L4). Uses tokio; never the engine.

pub mod daemon;
pub mod pipe;
pub mod ssh;

pub use pipe::{RemoteCommand, SpawnedPeer};
