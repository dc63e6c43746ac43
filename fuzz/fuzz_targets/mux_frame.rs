//! Multiplexed frames: split the input with `MuxDecoder` until it stops.
//! Every frame must use between 4 and the remaining bytes, respect the
//! message-length limit, carry only wire codes, and re-encode to its bytes.
#![no_main]

use ferrsync::wire::{Decoded, Limits, MsgCode, MuxDecoder, encode_frame_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let mut dec = MuxDecoder::new(limits);
    let mut rest = data;
    while let Ok(Decoded::Done { value, used }) = dec.decode(rest) {
        assert!(used >= 4 && used <= rest.len());
        assert!(value.code.is_wire());
        assert!(value.code == MsgCode::Data || value.payload.len() <= limits.max_msg_len);
        let mut out = Vec::new();
        encode_frame_header(&mut out, value.code, value.payload.len());
        out.extend_from_slice(value.payload);
        assert_eq!(&out[..], &rest[..used]);
        rest = &rest[used..];
    }
});
