//! Token stream applied by the patcher: the first byte picks the protocol
//! (27..=32, bits 0-2) and the transfer checksum (bits 3-5, of
//! `StrongKind::ALL`). The next byte shapes the sum header: bit 7 clear, a
//! small geometry from the following two bytes (count 0..=7, block length
//! 0..=47, a remainder up to it); bit 7 set, the raw header fields from the
//! next 16 bytes, unvalidated. The basis is the next `basis_len()` bytes
//! (shorter when the input ends), the rest a token stream for
//! `decode_token_header` applied with a `Patcher` capped at 64 KiB.
//! Nothing may panic, a header must use 4 bytes, a block index outside the
//! header must give `InvalidBlock`, a block past the basis `ShortBasis`,
//! output past the cap an error, and the output and checksum must match
//! what was applied.
#![no_main]

use ferrsync::checksum::{ChecksumConfig, StrongKind};
use ferrsync::delta::{PatchError, Patcher, SumHead, TokenHeader, decode_token_header};
use ferrsync::wire::{Decoded, Limits};
use libfuzzer_sys::fuzz_target;

const CAP: u64 = 64 * 1024;

fn i32_at(b: &[u8], i: usize) -> i32 {
    i32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fuzz_target!(|data: &[u8]| {
    let [b0, shape, rest @ ..] = data else {
        return;
    };
    let protocol = 27 + (b0 & 7) % 6;
    let kind = StrongKind::ALL[usize::from(b0 >> 3) % StrongKind::ALL.len()];
    let (head, rest) = if shape & 0x80 == 0 {
        let [b1, b2, rest @ ..] = rest else { return };
        let blength = i32::from(b1 % 48);
        let remainder = i32::from(*b2) % (blength + 1);
        let head = SumHead {
            count: i32::from(shape % 8),
            blength,
            s2length: 2,
            remainder: if remainder == blength { 0 } else { remainder },
        };
        (head, rest)
    } else {
        if rest.len() < 16 {
            return;
        }
        let head = SumHead {
            count: i32_at(rest, 0),
            blength: i32_at(rest, 4),
            s2length: i32_at(rest, 8),
            remainder: i32_at(rest, 12),
        };
        (head, &rest[16..])
    };
    let blen = usize::try_from(head.basis_len().min(1 << 20)).unwrap();
    let (basis, mut rest) = rest.split_at(blen.min(rest.len()));
    let cfg = ChecksumConfig::for_session(kind, 0x1234_5678, protocol, true, true);
    let mut p = Patcher::new(head, cfg).with_max_output(CAP);
    let mut out = Vec::new();
    let limits = Limits::default();
    loop {
        let (tok, used) = match decode_token_header(rest, &limits) {
            Ok(Decoded::Done { value, used }) => (value, used),
            Ok(Decoded::NeedMore(n)) => {
                assert!(n > 0 && n <= 4);
                break;
            }
            Err(_) => break,
        };
        assert!(used == 4 && used <= rest.len(), "used {used} of {}", rest.len());
        rest = &rest[used..];
        let before = out.len();
        match tok {
            TokenHeader::End => {
                let sum = p.finish();
                let mut h = cfg.file_hasher();
                h.update(&out);
                assert_eq!(sum, h.finish());
                return;
            }
            TokenHeader::Literal(n) => {
                assert!(n > 0 && n <= limits.max_token_len);
                let Some(lit) = rest.get(..n) else { break };
                rest = &rest[n..];
                match p.literal(lit, &mut out) {
                    Ok(()) => assert_eq!(&out[before..], lit),
                    Err(_) => {
                        assert!(p.written() + n as u64 > CAP);
                        assert_eq!(out.len(), before);
                    }
                }
            }
            TokenHeader::Block(i) => {
                let want = head.block_len(i).zip(head.block_offset(i));
                let mut b = basis;
                match p.block(i, &mut b, &mut out) {
                    Ok(()) => {
                        let (len, off) = want.expect("accepted a block the header lacks");
                        let off = usize::try_from(off).unwrap();
                        assert_eq!(&out[before..], &basis[off..off + len]);
                    }
                    Err(PatchError::InvalidBlock { index, count }) => {
                        assert_eq!((index, count), (i, head.count));
                        assert!(want.is_none(), "block {i} of {head:?} refused");
                    }
                    Err(PatchError::ShortBasis { index, offset }) => {
                        let (len, off) = want.unwrap();
                        assert_eq!((index, offset), (i, off));
                        assert!(off + len as u64 > basis.len() as u64);
                    }
                    Err(PatchError::TooLarge { max }) => {
                        assert_eq!(max, CAP);
                        let (len, _) = want.unwrap();
                        assert!(p.written() + len as u64 > CAP);
                    }
                    Err(e) => panic!("unexpected {e}"),
                }
            }
        }
        assert_eq!(p.written(), out.len() as u64);
        assert!(p.written() <= CAP);
    }
    assert_eq!(p.written(), out.len() as u64);
    assert!(p.written() <= CAP);
});
