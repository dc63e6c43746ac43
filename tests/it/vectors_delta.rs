//! The delta layer against bytes captured from rsync 3.5.0
//! (`shared/protocol/captures/transfer-vectors`, main tree).
//!
//! For each capture: the seed comes from the prologue, the generator's sum
//! header and block sums and the sender's token stream and whole-file
//! checksum from the demultiplexed data streams. We rebuild the capture
//! trees with `transfer-build-tree.py` and check that our sizing, rolling
//! and strong sums, matcher, token encoding, patcher and whole-file
//! checksum reproduce those bytes exactly.

use crate::common;

use common::tap;
use ferrsync::checksum::{ChecksumConfig, StrongKind, checksum1};
use ferrsync::delta::{
    Matcher, Patcher, Signature, SignatureBuilder, SumHead, Token, TokenHeader,
    decode_token_header, encode_block, encode_end, encode_literal,
};
use ferrsync::wire::{Decoded, Limits};
use std::path::Path;
use std::process::Command;

/// One capture of the main tree and the checksum rules it ran under.
struct Case {
    name: &'static str,
    protocol: u8,
    kind: StrongKind,
    named: bool,
    seed_fix: bool,
    pull: bool,
}

const fn case(
    name: &'static str,
    protocol: u8,
    kind: StrongKind,
    named: bool,
    seed_fix: bool,
    pull: bool,
) -> Case {
    Case {
        name,
        protocol,
        kind,
        named,
        seed_fix,
        pull,
    }
}

const CASES: &[Case] = &[
    case(
        "pull-p32-main-none-md5",
        32,
        StrongKind::Md5,
        true,
        true,
        true,
    ),
    case(
        "push-p32-main-none-md5",
        32,
        StrongKind::Md5,
        true,
        true,
        false,
    ),
    case(
        "pull-p32-main-none-xxh128",
        32,
        StrongKind::Xxh128,
        true,
        true,
        true,
    ),
    case(
        "push-p32-main-none-xxh128",
        32,
        StrongKind::Xxh128,
        true,
        true,
        false,
    ),
    case(
        "pull-p32-main-negseed-xxh128",
        32,
        StrongKind::Xxh128,
        true,
        true,
        true,
    ),
    case(
        "pull-p32-main-none-auto",
        32,
        StrongKind::Xxh128,
        true,
        true,
        true,
    ),
    case(
        "pull-p31-caps-no-Cv",
        31,
        StrongKind::Md5,
        false,
        false,
        true,
    ),
    case(
        "pull-p31-main-none-md4",
        31,
        StrongKind::Md4,
        true,
        true,
        true,
    ),
    case(
        "pull-p29-main-none-auto",
        29,
        StrongKind::Md4,
        false,
        false,
        true,
    ),
    case(
        "push-p29-main-none-auto",
        29,
        StrongKind::Md4,
        false,
        false,
        false,
    ),
    case(
        "push-p29-main-none-md5",
        29,
        StrongKind::Md5,
        true,
        false,
        false,
    ),
    case(
        "pull-p27-main-none-auto",
        27,
        StrongKind::Md4,
        false,
        false,
        true,
    ),
];

/// The basis and new `delta.bin` of the main capture tree.
fn tree() -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let script = tap::captures_dir().join("transfer-build-tree.py");
    let st = Command::new("python3")
        .arg(&script)
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success(), "{} failed", script.display());
    let read = |p: &str| std::fs::read(dir.path().join(p)).unwrap();
    (read("basis/delta.bin"), read("src/delta.bin"))
}

/// Offset of the first multiplexed frame at or after `from`: the first
/// offset from which the rest of the stream splits into whole frames with
/// plausible tags.
fn frame_start(s: &[u8], from: usize) -> usize {
    'outer: for o in from..s.len().min(from + 256) {
        let mut i = o;
        while i < s.len() {
            let Some(h) = s.get(i..i + 4) else {
                continue 'outer;
            };
            let h = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
            let tag = h >> 24;
            if !(7..7 + 110).contains(&tag) || (i == o && tag != 7) {
                continue 'outer;
            }
            i += 4 + (h & 0xff_ffff) as usize;
        }
        if i == s.len() {
            return o;
        }
    }
    panic!("no frame start found");
}

struct Streams {
    seed: i32,
    generator: Vec<u8>,
    sender: Vec<u8>,
}

fn streams(c: &Case) -> Streams {
    let t = tap::load(&format!("transfer-vectors/{}.tap", c.name));
    // Server to client: version, [compat flags, names], seed, then frames.
    let s = frame_start(&t.s2c, 8);
    let seed = i32::from_le_bytes(t.s2c[s - 4..s].try_into().unwrap());
    let s2c = tap::demux(&t.s2c[s..]).data;
    // Client to server: version, then frames from protocol 30, raw before.
    let c2s = if c.protocol >= 30 {
        tap::demux(&t.c2s[frame_start(&t.c2s, 4)..]).data
    } else {
        t.c2s[4..].to_vec()
    };
    let txt = std::fs::read_to_string(
        tap::captures_dir().join(format!("transfer-vectors/{}.txt", c.name)),
    )
    .unwrap();
    assert!(
        txt.contains(&format!("checksum seed {seed} ")),
        "{}: seed {seed} not in the decode",
        c.name
    );
    let (generator, sender) = if c.pull { (c2s, s2c) } else { (s2c, c2s) };
    Streams {
        seed,
        generator,
        sender,
    }
}

fn cfg(c: &Case, seed: i32) -> ChecksumConfig {
    ChecksumConfig::for_session(c.kind, seed, c.protocol, c.seed_fix, c.named)
}

/// The sum header of `delta.bin` (6000-byte basis), as rsync sized it.
fn delta_head() -> SumHead {
    SumHead {
        count: 9,
        blength: 700,
        s2length: 2,
        remainder: 400,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("pattern not in stream")
}

/// The generator's request for `delta.bin`: header and block sums.
fn request(c: &Case, st: &Streams) -> (SumHead, Signature, Vec<u8>) {
    let mut pat = Vec::new();
    delta_head().encode(&mut pat, c.protocol);
    let at = find(&st.generator, &pat);
    let buf = &st.generator[at..];
    let lim = Limits::default();
    let Decoded::Done { value: head, used } =
        SumHead::decode(buf, c.protocol, c.kind.digest_len(), &lim).unwrap()
    else {
        panic!("short header")
    };
    let Decoded::Done {
        value: blocks,
        used: bused,
    } = Signature::decode_blocks(&buf[used..], &head).unwrap()
    else {
        panic!("short sums")
    };
    (
        head,
        Signature { head, blocks },
        buf[used..used + bused].to_vec(),
    )
}

#[derive(Debug, PartialEq, Eq)]
enum Tok {
    Lit(Vec<u8>),
    Blk(u32),
}

/// The sender's reply for `delta.bin`: tokens, the raw token bytes, the
/// whole-file checksum.
fn reply(c: &Case, st: &Streams) -> (Vec<Tok>, Vec<u8>, Vec<u8>) {
    let mut pat = Vec::new();
    delta_head().encode(&mut pat, c.protocol);
    let start = find(&st.sender, &pat) + pat.len();
    let buf = &st.sender[start..];
    let lim = Limits::default();
    let mut at = 0;
    let mut toks = Vec::new();
    loop {
        let Decoded::Done { value, used } = decode_token_header(&buf[at..], &lim).unwrap() else {
            panic!("short")
        };
        at += used;
        match value {
            TokenHeader::End => break,
            TokenHeader::Block(i) => toks.push(Tok::Blk(i)),
            TokenHeader::Literal(n) => {
                toks.push(Tok::Lit(buf[at..at + n].to_vec()));
                at += n;
            }
        }
    }
    let sum = buf[at..at + c.kind.digest_len()].to_vec();
    (toks, buf[..at].to_vec(), sum)
}

fn run_matcher(sig: &Signature, cfg: ChecksumConfig, data: &[u8], step: usize) -> Vec<Tok> {
    let mut m = Matcher::new(sig, cfg);
    let mut toks = Vec::new();
    let mut out = |t: Token<'_>| match t {
        Token::Literal(d) => toks.push(Tok::Lit(d.to_vec())),
        Token::Block(i) => toks.push(Tok::Blk(i)),
    };
    for piece in data.chunks(step.max(1)) {
        m.feed(piece, &mut out);
    }
    m.finish(&mut out);
    toks
}

#[test]
fn sum_head_matches_captures() {
    for c in CASES {
        let st = streams(c);
        let (head, _, _) = request(c, &st);
        assert_eq!(
            SumHead::for_file(6000, c.protocol, c.kind.digest_len(), None, false),
            head,
            "{}",
            c.name
        );
    }
}

#[test]
fn block_sums_match_captures() {
    let (basis, _) = tree();
    for c in CASES {
        let st = streams(c);
        let (head, sig, raw) = request(c, &st);
        let cfg = cfg(c, st.seed);
        for (i, b) in sig.blocks.iter().enumerate() {
            let i = u32::try_from(i).unwrap();
            let off = usize::try_from(head.block_offset(i).unwrap()).unwrap();
            let block = &basis[off..off + head.block_len(i).unwrap()];
            assert_eq!(checksum1(block), b.sum1, "{} block {i} sum1", c.name);
            assert_eq!(
                &cfg.block_sum(block).as_bytes()[..2],
                b.sum2.as_bytes(),
                "{} block {i} sum2",
                c.name
            );
        }
        // Our whole signature encodes to the captured bytes, fed in odd pieces.
        let mut b = SignatureBuilder::new(head, cfg);
        for piece in basis.chunks(333) {
            b.feed(piece);
        }
        let ours = b.finish();
        let mut enc = Vec::new();
        ours.encode_blocks(&mut enc);
        assert_eq!(enc, raw, "{}: encoded block sums", c.name);
        assert_eq!(ours, sig, "{}", c.name);
    }
}

#[test]
fn tokens_and_file_sum_match_captures() {
    let (basis, new) = tree();
    for c in CASES {
        let st = streams(c);
        let (_, sig, _) = request(c, &st);
        let (toks, raw, sum) = reply(c, &st);
        let cfg = cfg(c, st.seed);
        // The shape section 4.2 describes.
        let shape: Vec<String> = toks
            .iter()
            .map(|t| match t {
                Tok::Blk(i) => format!("b{i}"),
                Tok::Lit(d) => format!("l{}", d.len()),
            })
            .collect();
        assert_eq!(
            shape,
            ["b0", "b1", "b2", "b3", "l729", "b5", "b6", "b7", "b8"],
            "{}",
            c.name
        );
        // Whole-file checksum of the new file.
        let mut h = cfg.file_hasher();
        h.update(&new);
        assert_eq!(
            h.finish().as_bytes(),
            sum.as_slice(),
            "{}: whole-file checksum",
            c.name
        );
        // Our matcher, fed whole or byte by byte, gives the same tokens.
        for step in [new.len(), 1, 100, 701] {
            assert_eq!(
                run_matcher(&sig, cfg, &new, step),
                toks,
                "{} step {step}",
                c.name
            );
        }
        // And they encode to the captured bytes.
        let mut enc = Vec::new();
        for t in &toks {
            match t {
                Tok::Lit(d) => encode_literal(&mut enc, d),
                Tok::Blk(i) => encode_block(&mut enc, *i),
            }
        }
        encode_end(&mut enc);
        assert_eq!(enc, raw, "{}: token bytes", c.name);
        // The patcher rebuilds the file from the captured tokens.
        let mut p = Patcher::new(sig.head, cfg);
        let mut out = Vec::new();
        let mut b: &[u8] = &basis;
        for t in &toks {
            match t {
                Tok::Lit(d) => p.literal(d, &mut out).unwrap(),
                Tok::Blk(i) => p.block(*i, &mut b, &mut out).unwrap(),
            }
        }
        assert_eq!(out, new, "{}: rebuilt file", c.name);
        assert_eq!(
            p.finish().as_bytes(),
            sum.as_slice(),
            "{}: patcher checksum",
            c.name
        );
    }
}

#[test]
fn captures_are_where_expected() {
    assert!(
        Path::new(&tap::captures_dir())
            .join("transfer-vectors/pull-p32-main-none-md5.tap")
            .exists()
    );
}

/// The values printed in section 4.2 of the transfer document.
#[test]
fn section_4_2_example() {
    let c = &CASES[0];
    let st = streams(c);
    assert_eq!(st.seed, 0x6B01_9D07);
    let (_, sig, _) = request(c, &st);
    assert_eq!(sig.blocks[0].sum1, 0xD7F7_E2B8);
    assert_eq!(sig.blocks[0].sum2.as_bytes(), [0x5b, 0xec]);
    assert_eq!(sig.blocks[1].sum1, 0xA202_E2A5);
    let (_, basis_sum, sum) = reply(c, &st);
    assert_eq!(&basis_sum[..4], [0xff, 0xff, 0xff, 0xff]);
    assert_eq!(
        sum,
        [
            0x7a, 0x44, 0xb1, 0xe3, 0x72, 0xdf, 0x3a, 0xd5, 0x16, 0x20, 0x36, 0x99, 0xaa, 0x75,
            0xa5, 0x13
        ]
    );
}

/// `--inplace` (capture `pull-p31-main-inplace`): blocks 0-3 at their own
/// offsets, then the shifted rest as 3 229 literal bytes.
#[test]
fn inplace_matches_capture() {
    let (_, new) = tree();
    let c = case(
        "pull-p31-main-inplace",
        31,
        StrongKind::Xxh128,
        true,
        true,
        true,
    );
    let st = streams(&c);
    let (_, sig, _) = request(&c, &st);
    let (toks, _, _) = reply(&c, &st);
    let mut m = Matcher::new(&sig, cfg(&c, st.seed));
    m.set_inplace(true);
    let mut ours = Vec::new();
    let mut out = |t: Token<'_>| match t {
        Token::Literal(d) => ours.push(Tok::Lit(d.to_vec())),
        Token::Block(i) => ours.push(Tok::Blk(i)),
    };
    m.feed(&new, &mut out);
    m.finish(&mut out);
    assert_eq!(ours, toks);
    assert!(
        matches!(&toks[..], [Tok::Blk(0), Tok::Blk(1), Tok::Blk(2), Tok::Blk(3), Tok::Lit(d)] if d.len() == 3229)
    );
}
