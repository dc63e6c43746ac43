//! User and group id lists: byte 0 picks the protocol (27..=32) and
//! whether id 0's name follows (`id0_names`); the rest goes to
//! `decode_id_list` with the default limits. Nothing may panic; `used`
//! stays within the input; names stay within the limit; a decoded list
//! re-encodes to the same bytes.
#![no_main]

use ferrsync::flist::{decode_id_list, encode_id_list};
use ferrsync::wire::{Decoded, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let protocol = 27 + first % 6;
    let id0 = first & 0x80 != 0;
    let lim = Limits::default();
    match decode_id_list(rest, protocol, id0, &lim) {
        Ok(Decoded::Done { value, used }) => {
            assert!(used <= rest.len());
            for (_, n) in &value {
                assert!(n.len() <= lim.max_id_name_len);
            }
            let mut out = Vec::new();
            match (id0, value.split_last()) {
                (true, Some(((_, n0), pairs))) => {
                    encode_id_list(&mut out, protocol, pairs, Some(n0.as_slice()));
                }
                _ => encode_id_list(&mut out, protocol, &value, None),
            }
            if let Ok(Decoded::Done { value: back, .. }) = decode_id_list(&out, protocol, id0, &lim)
            {
                assert_eq!(back, value);
            } else {
                panic!("re-encoded list does not decode");
            }
        }
        Ok(Decoded::NeedMore(n)) => assert!(n > 0),
        Err(_) => {}
    }
});
