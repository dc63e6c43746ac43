//! Integer and string decoders: varint, varlong (min 3 and 4), vstring and
//! longint. None may panic, report more bytes used than given, or fail to
//! read back what the matching encoder writes for the value it decoded.
#![no_main]

use ferrsync::wire::{
    Decoded, decode_longint, decode_varint, decode_varlong, decode_vstring, encode_longint,
    encode_varint, encode_varlong, encode_vstring,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Decoded::Done { value, used }) = decode_varint(data) {
        assert!(used <= data.len());
        let mut out = Vec::new();
        encode_varint(&mut out, value);
        assert_eq!(
            decode_varint(&out),
            Ok(Decoded::Done {
                value,
                used: out.len()
            })
        );
    }
    for min in [3, 4] {
        if let Ok(Decoded::Done { value, used }) = decode_varlong(data, min) {
            assert!(used <= data.len());
            let mut out = Vec::new();
            encode_varlong(&mut out, value, min);
            assert_eq!(
                decode_varlong(&out, min),
                Ok(Decoded::Done {
                    value,
                    used: out.len()
                })
            );
        }
    }
    if let Ok(Decoded::Done { value, used }) = decode_vstring(data, 255) {
        assert!(used <= data.len() && value.len() <= 255);
        let mut out = Vec::new();
        encode_vstring(&mut out, &value).expect("255 bytes fit a vstring");
        assert_eq!(
            decode_vstring(&out, 255),
            Ok(Decoded::Done {
                value,
                used: out.len()
            })
        );
    }
    if let Ok(Decoded::Done { value, used }) = decode_longint(data) {
        assert!(used <= data.len());
        let mut out = Vec::new();
        encode_longint(&mut out, value);
        assert_eq!(
            decode_longint(&out),
            Ok(Decoded::Done {
                value,
                used: out.len()
            })
        );
    }
});
