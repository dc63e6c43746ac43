//! Sum header and block sums: the first byte picks the protocol (27..=32,
//! bits 0-2) and the transfer checksum (bits 3-5, of `StrongKind::ALL`,
//! whose digest length bounds the strong-sum length); the rest is a sum
//! header for `SumHead::decode` followed by the block sums for
//! `Signature::decode_blocks`. Decodes must use at most the remaining
//! bytes; an accepted header must pass `validate`, describe a sane block
//! geometry and re-encode to its bytes; accepted block sums must be exactly
//! `count` records and re-encode to their bytes.
#![no_main]

use ferrsync::checksum::StrongKind;
use ferrsync::delta::{Signature, SumHead};
use ferrsync::wire::{Decoded, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let protocol = 27 + (first & 7) % 6;
    let kind = StrongKind::ALL[usize::from(first >> 3) % StrongKind::ALL.len()];
    let digest_len = kind.digest_len();
    let limits = Limits::default();
    let (head, used) = match SumHead::decode(rest, protocol, digest_len, &limits) {
        Ok(Decoded::Done { value, used }) => (value, used),
        Ok(Decoded::NeedMore(n)) => {
            assert!(n > 0 && n <= 16);
            return;
        }
        Err(_) => return,
    };
    assert!(used <= rest.len(), "used {used} of {}", rest.len());
    assert_eq!(head.validate(protocol, digest_len, &limits), Ok(()));
    let mut enc = Vec::new();
    head.encode(&mut enc, protocol);
    assert_eq!(&enc[..], &rest[..used]);
    // Geometry of a validated header.
    let count = u32::try_from(head.count).unwrap();
    if let Some(last) = count.checked_sub(1) {
        let len = head.block_len(last).unwrap();
        let off = head.block_offset(last).unwrap();
        assert_eq!(head.basis_len(), off + len as u64);
        assert!(len <= usize::try_from(head.blength).unwrap());
    } else {
        assert_eq!(head.basis_len(), 0);
    }
    assert_eq!(head.block_len(count), None);
    assert_eq!(head.block_offset(count), None);

    let rest = &rest[used..];
    let each = 4 + usize::try_from(head.s2length).unwrap();
    let need = count as usize * each;
    match Signature::decode_blocks(rest, &head) {
        Ok(Decoded::Done { value, used }) => {
            assert!(used <= rest.len(), "used {used} of {}", rest.len());
            assert_eq!(used, need);
            assert_eq!(value.len(), count as usize);
            let sig = Signature { head, blocks: value };
            let mut enc = Vec::new();
            sig.encode_blocks(&mut enc);
            assert_eq!(&enc[..], &rest[..used]);
        }
        Ok(Decoded::NeedMore(n)) => {
            assert!(n > 0 && rest.len() + n == need);
        }
        Err(e) => panic!("validated header {head:?} rejected: {e}"),
    }
});
