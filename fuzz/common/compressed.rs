//! The compressed token check shared by `compressed_tokens` (algorithm
//! picked by the input) and the per-algorithm targets `compressed_zlib`,
//! `compressed_zlibx`, `compressed_zstd`, `compressed_lz4`.
//!
//! Byte 0 bits 2-3 pick the protocol (29..=32; bits 0-1 are the algorithm
//! for `compressed_tokens` and ignored by the others, so the same seeds
//! serve both); the rest is decoded until `End`, `NeedMore`, an error or
//! 10,000 tokens, passing 64 bytes of fixed fake block data to
//! `block_data` after every `Block`. Nothing may panic, `used` may not
//! exceed what is left, `NeedMore(n)` has `n > 0`, and every `Literal`
//! piece stays within the decoder's cap (32 KiB; lz4 records up to
//! rsync's lz4 receive buffer).

use ferrsync::delta::{CToken, Compression, TokenDecompressor};
use ferrsync::wire::{Decoded, Limits};

/// The algorithm for bits 0-1 of byte 0 (`compressed_tokens` only).
#[allow(dead_code)]
pub const ALGS: [Compression; 4] = [
    Compression::Zlib,
    Compression::Zlibx,
    Compression::Zstd,
    Compression::Lz4,
];
const MAX_TOKENS: usize = 10_000;
const PIECE_CAP: usize = 32 * 1024;
/// max(LZ4_compressBound(32768), 16385), rsync's lz4 receive buffer.
const LZ4_CAP: usize = 32768 + 32768 / 255 + 16;
const FAKE_BLOCK: [u8; 64] = {
    let mut b = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        b[i] = b"fake block "[i % 11];
        i += 1;
    }
    b
};

/// Decodes `data` (selector byte, then the stream) with `kind`.
pub fn run(kind: Compression, data: &[u8]) {
    let [b0, rest @ ..] = data else {
        return;
    };
    let mut rest: &[u8] = rest;
    let protocol = 29 + ((b0 >> 2) & 3);
    let cap = if kind == Compression::Lz4 {
        LZ4_CAP
    } else {
        PIECE_CAP
    };
    let mut d = TokenDecompressor::new(kind, protocol, Limits::default());
    let mut total: u64 = 0;
    for _ in 0..MAX_TOKENS {
        let (tok, used) = match d.decode(rest) {
            Ok(Decoded::Done { value, used }) => (value, used),
            Ok(Decoded::NeedMore(n)) => {
                assert!(n > 0);
                return;
            }
            Err(_) => return,
        };
        assert!(used <= rest.len(), "used {used} of {}", rest.len());
        rest = &rest[used..];
        match tok {
            CToken::End => return,
            CToken::Literal(piece) => {
                assert!(piece.len() <= cap, "{kind:?} piece of {}", piece.len());
                total += piece.len() as u64;
            }
            CToken::Block(_) => d.block_data(&FAKE_BLOCK),
        }
    }
    assert!(total <= (MAX_TOKENS * cap) as u64);
}
