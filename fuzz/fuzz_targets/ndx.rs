//! File-index decoding: the first byte picks the protocol (27..=32), the rest
//! is decoded as a sequence of indexes. Every decoded index must use at least
//! one and at most the remaining bytes, and a fresh encoder/decoder pair fed
//! the same sequence must reproduce it.
#![no_main]

use ferrsync::wire::{Decoded, NdxDecoder, NdxEncoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let protocol = 27 + first % 6;
    let mut dec = NdxDecoder::new(protocol);
    let mut enc = NdxEncoder::new(protocol);
    let mut check = NdxDecoder::new(protocol);
    while let Ok(Decoded::Done { value, used }) = dec.decode(rest) {
        assert!(used > 0 && used <= rest.len());
        rest = &rest[used..];
        let mut out = Vec::new();
        enc.encode(&mut out, value);
        assert_eq!(
            check.decode(&out),
            Ok(Decoded::Done {
                value,
                used: out.len()
            })
        );
    }
});
