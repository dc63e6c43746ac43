//! Sans-IO session setup: the rsync daemon's text protocol.
//!
//! Layer: handshake (L1). Uses `wire` (for [`Decoded`](crate::wire::Decoded)
//! and [`DecodeError`](crate::wire::DecodeError)) and the digest crates for
//! daemon authentication; does no network I/O. Mirrors upstream
//! clientserver.c (`exchange_protocols`, `start_inband_exchange`,
//! `rsync_module`), compat.c (`output_daemon_greeting`,
//! `negotiate_daemon_auth`) and authenticate.c (`gen_challenge`,
//! `generate_hash`).
//!
//! The I/O side reads one line (or one argument list) at a time and hands it
//! to the functions here, which say what it means and what to send back.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod daemon;

pub use daemon::{
    AuthDigest, DaemonLine, Greeting, GreetingError, auth_response, base64_nopad, classify_line,
    decode_args, decode_args_bytes, encode_args, format_greeting, make_challenge, module_list_line,
    negotiate_auth_digest, negotiate_protocol, parse_greeting,
};
