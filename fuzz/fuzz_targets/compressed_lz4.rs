//! Compressed token stream for the lz4 `TokenDecompressor`: byte 0 bits
//! 2-3 pick the protocol (29..=32), the rest is the stream; the checks
//! are in `common/compressed.rs` (shared with `compressed_tokens`).
#![no_main]

#[path = "../common/compressed.rs"]
mod compressed;

use ferrsync::delta::Compression;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| compressed::run(Compression::Lz4, data));
