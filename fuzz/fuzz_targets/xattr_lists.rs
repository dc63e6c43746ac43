//! Xattr lists: byte 0 picks the decoder (a request list of value numbers,
//! or fill-in values); the rest is fed with small limits so the bounds
//! are reached. Nothing may panic; `used` stays within the input; counts
//! and value lengths stay within the limits; a decoded list re-encodes and
//! decodes to itself.
#![no_main]

use ferrsync::flist::xattrs::{
    decode_xattr_request, decode_xattr_values, encode_xattr_request, encode_xattr_values,
};
use ferrsync::wire::{Decoded, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let mut lim = Limits::default();
    lim.max_xattr_count = 64;
    lim.max_xattr_value_len = 4096;
    if first & 1 == 0 {
        if let Ok(Decoded::Done { value, used }) = decode_xattr_request(rest, &lim) {
            assert!(used <= rest.len());
            assert!(value.len() <= lim.max_xattr_count);
            let mut out = Vec::new();
            encode_xattr_request(&mut out, &value);
            match decode_xattr_request(&out, &lim) {
                Ok(Decoded::Done { value: back, .. }) => assert_eq!(back, value),
                other => panic!("re-encoded request: {other:?}"),
            }
        }
    } else if let Ok(Decoded::Done { value, used }) = decode_xattr_values(rest, &lim) {
        assert!(used <= rest.len());
        assert!(value.len() <= lim.max_xattr_count);
        for (_, v) in &value {
            assert!(v.len() <= lim.max_xattr_value_len);
        }
        let pairs: Vec<(i32, &[u8])> = value.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        let mut out = Vec::new();
        encode_xattr_values(&mut out, &pairs);
        match decode_xattr_values(&out, &lim) {
            Ok(Decoded::Done { value: back, .. }) => assert_eq!(back, value),
            other => panic!("re-encoded values: {other:?}"),
        }
    }
});
