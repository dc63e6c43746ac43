//! Compressed token stream for `TokenDecompressor`: the first byte picks
//! the algorithm (bits 0-1, of `ALGS`) and the protocol (29..=32, bits
//! 2-3); the checks are in `common/compressed.rs`. The per-algorithm
//! targets (`compressed_zlib`, ...) run the same checks on one decoder.
#![no_main]

#[path = "../common/compressed.rs"]
mod compressed;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(b0) = data.first() {
        compressed::run(compressed::ALGS[usize::from(b0 & 3)], data);
    }
});
