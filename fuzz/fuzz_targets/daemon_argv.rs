//! Daemon argument words: byte 0 picks the protocol (NUL- or
//! newline-terminated words); the rest goes to `decode_args_bytes` with
//! the daemon's bounds, and decoded UTF-8 words to `parse_server_args`
//! (the `--server` option parser a daemon and `ferrsync --server` use).
//! Nothing may panic; the bounds hold; an accepted word list re-encodes
//! to the bytes it came from.
#![no_main]

use ferrsync::engine::parse_server_args;
use ferrsync::handshake::daemon::{decode_args_bytes, encode_args};
use ferrsync::wire::Decoded;
use libfuzzer_sys::fuzz_target;

const MAX_TOTAL: usize = 64 * 1024;
const MAX_WORDS: usize = 1000;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let protocol = 27 + first % 6;
    let Ok(Decoded::Done { value, used }) = decode_args_bytes(rest, protocol, MAX_TOTAL, MAX_WORDS)
    else {
        return;
    };
    assert!(used <= rest.len() && used <= MAX_TOTAL);
    assert!(value.len() <= MAX_WORDS);
    let Ok(words) = value
        .iter()
        .map(|w| String::from_utf8(w.clone()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return;
    };
    if protocol >= 30 {
        assert_eq!(encode_args(&words, protocol), rest[..used]);
    }
    if let Ok(sa) = parse_server_args(&words) {
        // What the parser accepted renders back to words it accepts.
        let again = sa.options.server_args(sa.sender);
        let _ = parse_server_args(&again);
    }
});
