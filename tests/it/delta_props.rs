//! Property tests of the checksum and delta layers: random basis/target
//! pairs survive signature -> matcher -> token bytes -> patcher, every
//! codec round-trips, and decoders never panic on arbitrary bytes.
#![allow(clippy::field_reassign_with_default)]

use ferrsync::checksum::{ChecksumConfig, Rolling, StrongKind, checksum1};
use ferrsync::delta::{
    Matcher, Patcher, Signature, SignatureBuilder, SumHead, Token, TokenHeader,
    decode_token_header, encode_block, encode_end, encode_literal,
};
use ferrsync::wire::{Decoded, Limits};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Replace(usize, Vec<u8>),
}

fn apply_edits(basis: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut t = basis.to_vec();
    for e in edits {
        match e {
            Edit::Insert(p, d) => {
                let p = p % (t.len() + 1);
                t.splice(p..p, d.iter().copied());
            }
            Edit::Delete(p, n) if !t.is_empty() => {
                let p = p % t.len();
                let end = (p + n).min(t.len());
                t.drain(p..end);
            }
            Edit::Replace(p, d) if !t.is_empty() => {
                let p = p % t.len();
                for (i, b) in d.iter().enumerate() {
                    if let Some(x) = t.get_mut(p + i) {
                        *x = *b;
                    }
                }
            }
            _ => {}
        }
    }
    t
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..max),
        // A tiny alphabet makes rolling-sum collisions and repeated blocks.
        proptest::collection::vec(0u8..3, 0..max),
        // Exact block multiples of the forced sizes.
        (1usize..8, 16usize..65)
            .prop_flat_map(|(n, b)| proptest::collection::vec(any::<u8>(), n * b..=n * b)),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..80)
        )
            .prop_map(|(p, d)| Edit::Insert(p, d)),
        (any::<usize>(), 1usize..80).prop_map(|(p, n)| Edit::Delete(p, n)),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..20)
        )
            .prop_map(|(p, d)| Edit::Replace(p, d)),
    ]
}

fn kind() -> impl Strategy<Value = StrongKind> {
    prop_oneof![
        Just(StrongKind::Md4),
        Just(StrongKind::Md5),
        Just(StrongKind::Sha1),
        Just(StrongKind::Xxh64),
        Just(StrongKind::Xxh3),
        Just(StrongKind::Xxh128),
    ]
}

struct Sent {
    wire: Vec<u8>,
    blocks: Vec<(u64, u32)>,
}

/// Sender side: tokens for `target` against `sig`, encoded as rsync does,
/// plus (output offset, block) of every reference.
fn send(sig: &Signature, cfg: ChecksumConfig, target: &[u8], step: usize, inplace: bool) -> Sent {
    let mut m = Matcher::new(sig, cfg);
    m.set_inplace(inplace);
    let mut wire = Vec::new();
    let mut blocks = Vec::new();
    let mut pos = 0u64;
    let mut out = |t: Token<'_>| match t {
        Token::Literal(d) => {
            encode_literal(&mut wire, d);
            pos += d.len() as u64;
        }
        Token::Block(i) => {
            encode_block(&mut wire, i);
            blocks.push((pos, i));
            pos += sig.head.block_len(i).unwrap() as u64;
        }
    };
    for piece in target.chunks(step) {
        m.feed(piece, &mut out);
    }
    m.finish(&mut out);
    let st = m.stats();
    assert_eq!(st.literal_bytes + st.matched_bytes, target.len() as u64);
    assert_eq!(st.matched_blocks, blocks.len() as u64);
    encode_end(&mut wire);
    let mut h = cfg.file_hasher();
    h.update(target);
    wire.extend_from_slice(h.finish().as_bytes());
    Sent { wire, blocks }
}

/// Receiver side: decode the token bytes and patch `basis`.
fn receive(head: SumHead, cfg: ChecksumConfig, basis: &[u8], wire: &[u8]) -> Vec<u8> {
    let lim = Limits::default();
    let mut p = Patcher::new(head, cfg);
    let mut out = Vec::new();
    let mut b = basis;
    let mut at = 0;
    loop {
        let Ok(Decoded::Done { value, used }) = decode_token_header(&wire[at..], &lim) else {
            panic!("bad token")
        };
        at += used;
        match value {
            TokenHeader::End => break,
            TokenHeader::Literal(n) => {
                p.literal(&wire[at..at + n], &mut out).unwrap();
                at += n;
            }
            TokenHeader::Block(i) => p.block(i, &mut b, &mut out).unwrap(),
        }
    }
    assert_eq!(p.written(), out.len() as u64);
    assert_eq!(p.finish().as_bytes(), &wire[at..], "whole-file checksum");
    out
}

fn signature(basis: &[u8], head: SumHead, cfg: ChecksumConfig, step: usize) -> Signature {
    let mut b = SignatureBuilder::new(head, cfg);
    for piece in basis.chunks(step) {
        b.feed(piece);
    }
    let sig = b.finish();
    assert_eq!(sig.head, head);
    assert_eq!(sig.blocks.len(), usize::try_from(head.count).unwrap());
    sig
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn delta_round_trip(
        basis in bytes(3000),
        edits in proptest::collection::vec(edit(), 0..6),
        block in prop_oneof![Just(None), (16u32..65).prop_map(Some)],
        kind in kind(),
        seed in any::<i32>(),
        protocol in 27u8..=32,
        step in 1usize..5000,
        redo in any::<bool>(),
    ) {
        let target = apply_edits(&basis, &edits);
        let cfg = ChecksumConfig::for_session(kind, seed, protocol, protocol >= 31, protocol >= 30);
        let head = if basis.is_empty() {
            SumHead::empty()
        } else {
            SumHead::for_file(basis.len() as u64, protocol, kind.digest_len(), block, redo)
        };
        let sig = signature(&basis, head, cfg, step);
        // The signature survives the wire.
        let mut w = Vec::new();
        head.encode(&mut w, protocol);
        sig.encode_blocks(&mut w);
        let Ok(Decoded::Done { value: h2, used }) = SumHead::decode(&w, protocol, kind.digest_len(), &Limits::default()) else { panic!() };
        prop_assert_eq!(h2, head);
        let Ok(Decoded::Done { value: blocks, used: u2 }) = Signature::decode_blocks(&w[used..], &h2) else { panic!() };
        prop_assert_eq!(used + u2, w.len());
        let sig2 = Signature { head: h2, blocks };
        prop_assert_eq!(&sig2, &sig);

        for inplace in [false, true] {
            let sent = send(&sig2, cfg, &target, step, inplace);
            prop_assert_eq!(&receive(head, cfg, &basis, &sent.wire), &target);
            if inplace {
                // Never a block from behind the write position, unless it
                // was already matched at exactly its own offset.
                let mut same = std::collections::HashSet::new();
                for &(pos, i) in &sent.blocks {
                    let off = head.block_offset(i).unwrap();
                    prop_assert!(off >= pos || same.contains(&i), "block {} at {} behind {}", i, off, pos);
                    if off == pos {
                        same.insert(i);
                    }
                }
            }
        }
        // Feeding in one piece or many gives the same bytes.
        prop_assert_eq!(send(&sig2, cfg, &target, target.len().max(1), false).wire, send(&sig2, cfg, &target, step, false).wire);
    }

    #[test]
    fn identical_file_is_all_blocks(basis in proptest::collection::vec(any::<u8>(), 1..4000), b in 16u32..65) {
        let cfg = ChecksumConfig::for_session(StrongKind::Xxh128, 9, 32, true, true);
        let head = SumHead::for_file(basis.len() as u64, 32, 16, Some(b), false);
        let sig = signature(&basis, head, cfg, 97);
        let sent = send(&sig, cfg, &basis, 1000, false);
        let want: Vec<u32> = (0..u32::try_from(head.count).unwrap()).collect();
        let got: Vec<u32> = sent.blocks.iter().map(|&(_, i)| i).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn rolling_equals_checksum1(data in proptest::collection::vec(any::<u8>(), 1..600), w in 1usize..100) {
        let w = w.min(data.len());
        let mut r = Rolling::new(&data[..w]);
        for i in 0..data.len() - w {
            prop_assert_eq!(r.value(), checksum1(&data[i..i + w]));
            r.roll(data[i], data[i + w]);
        }
        for i in data.len() - w..data.len() {
            prop_assert_eq!(r.value(), checksum1(&data[i..]));
            r.roll_out(data[i]);
        }
        // Reference definition of checksum1 with signed bytes.
        let n = data.len() as u32;
        let (mut s1, mut s2) = (0u32, 0u32);
        for (i, &b) in data.iter().enumerate() {
            let x = i32::from(b as i8) as u32;
            s1 = s1.wrapping_add(x);
            s2 = s2.wrapping_add((n - i as u32).wrapping_mul(x));
        }
        prop_assert_eq!(checksum1(&data), (s1 & 0xffff) | (s2 << 16));
    }

    #[test]
    fn sizing_always_validates(len in 0u64..(1 << 44), protocol in 27u8..=32, kind in kind(), redo in any::<bool>()) {
        let h = SumHead::for_file(len, protocol, kind.digest_len(), None, redo);
        let mut lim = Limits::default();
        lim.max_sum_count = usize::MAX;
        prop_assert!(h.validate(protocol, kind.digest_len(), &lim).is_ok(), "{:?}", h);
        prop_assert_eq!(h.basis_len(), len);
        let mut w = Vec::new();
        h.encode(&mut w, protocol);
        prop_assert_eq!(SumHead::decode(&w, protocol, kind.digest_len(), &lim), Ok(Decoded::Done { value: h, used: 16 }));
    }

    #[test]
    fn decoders_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..200), protocol in 20u8..=32, dl in 0usize..25) {
        let mut lim = Limits::default();
        lim.max_sum_count = 1000;
        lim.max_token_len = 1000;
        match SumHead::decode(&buf, protocol, dl, &lim) {
            Ok(Decoded::Done { value, used }) => {
                prop_assert!(used <= buf.len());
                if let Ok(Decoded::Done { used: u2, .. }) = Signature::decode_blocks(&buf[used..], &value) {
                    prop_assert!(used + u2 <= buf.len());
                }
            }
            Ok(Decoded::NeedMore(n)) => prop_assert!(n > 0),
            Err(_) => {}
        }
        if let Ok(Decoded::Done { used, value }) = decode_token_header(&buf, &lim) {
            prop_assert!(used <= buf.len());
            if let TokenHeader::Literal(n) = value {
                prop_assert!(n <= 1000);
            }
        }
        // decode_blocks with an arbitrary (unvalidated) header.
        let h = SumHead {
            count: i32::from_le_bytes([buf.first().copied().unwrap_or(0), 0, 0, buf.get(1).copied().unwrap_or(0) & 0x81]),
            blength: 700,
            s2length: i32::from(buf.get(2).copied().unwrap_or(0) as i8),
            remainder: 0,
        };
        let _ = Signature::decode_blocks(&buf, &h);
    }

    #[test]
    fn patcher_rejects_bad_blocks(basis in proptest::collection::vec(any::<u8>(), 0..300), idx in any::<u32>(), count in 0i32..20, bl in 1i32..64) {
        let head = SumHead { count, blength: bl, s2length: 2, remainder: 0 };
        let cfg = ChecksumConfig::for_session(StrongKind::Md5, 0, 31, true, true);
        let mut p = Patcher::new(head, cfg).with_max_output(200);
        let mut out = Vec::new();
        let mut b: &[u8] = &basis;
        let ok = p.block(idx, &mut b, &mut out).is_ok();
        let fits = i64::from(idx) < i64::from(count) && (i64::from(idx) + 1) * i64::from(bl) <= basis.len() as i64;
        prop_assert_eq!(ok, fits && bl <= 200);
    }

    #[test]
    fn literal_codec_round_trip(data in proptest::collection::vec(any::<u8>(), 0..70000), idx in 0u32..=i32::MAX as u32) {
        let mut w = Vec::new();
        encode_literal(&mut w, &data);
        encode_block(&mut w, idx);
        encode_end(&mut w);
        let lim = Limits::default();
        let (mut at, mut got) = (0, Vec::new());
        loop {
            let Ok(Decoded::Done { value, used }) = decode_token_header(&w[at..], &lim) else { panic!() };
            at += used;
            match value {
                TokenHeader::Literal(n) => { prop_assert!(n <= 32768); got.extend_from_slice(&w[at..at + n]); at += n; }
                TokenHeader::Block(i) => prop_assert_eq!(i, idx),
                TokenHeader::End => break,
            }
        }
        prop_assert_eq!(at, w.len());
        prop_assert_eq!(got, data);
    }
}
