//! File-list round trip: the first two bytes pick the protocol (27..=32)
//! and the options (see `common/flist_opts.rs`); the rest drives the entry
//! generator of `tests/flist_proptest.rs` (`tests/common/flist_gen.rs`,
//! shared so that both use one notion of a round-trippable entry: what a
//! real sender could send under these options). Names are non-empty,
//! `/`-separated, without NUL, empty or `..` components. The lists are
//! encoded with `FileListEncoder`, decoded with `FileListDecoder` and must
//! come back equal (`FileEntry` equality, as the property test), with the
//! io_error when the end marker carries it, every byte consumed, and every
//! proper prefix of the first entry asking for more.
#![no_main]

use ferrsync::flist::{FileEntry, FileListDecoder, FileListEncoder};
use ferrsync::wire::{Decoded, Limits};
use libfuzzer_sys::fuzz_target;

#[path = "../common/flist_opts.rs"]
mod flist_opts;
#[path = "../../tests/common/flist_gen.rs"]
mod flist_gen;

use flist_gen::{Draw, entries};

/// Choices read from the fuzz input; once it is used up every choice is
/// the smallest one.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn next(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }
}

impl Draw for Bytes<'_> {
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if lo >= hi {
            return lo;
        }
        let span = hi - lo;
        let mut v: u64 = 0;
        let mut reach: u64 = 1;
        while reach < span {
            v = (v << 8) | u64::from(self.next());
            reach = reach.saturating_mul(256);
        }
        lo + v % span
    }
    fn ratio(&mut self, num: u32, den: u32) -> bool {
        u32::from(self.next()) % den < num
    }
    fn chance(&mut self, p: f64) -> bool {
        f64::from(self.next()) < p * 256.0
    }
    fn byte(&mut self) -> u8 {
        self.next()
    }
    fn name(&mut self) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ab.-x\xe9\xff";
        let len = if self.ratio(1, 16) {
            self.range(250, 320)
        } else {
            self.range(1, 12)
        };
        let raw: Vec<u8> = (0..len)
            .map(|_| match self.next() {
                c if c % 5 == 0 => b'/',
                c => ALPHABET[usize::from(c) % ALPHABET.len()],
            })
            .collect();
        let parts: Vec<&[u8]> = raw
            .split(|&c| c == b'/')
            .filter(|c| !c.is_empty() && *c != b"..")
            .collect();
        let name = parts.join(&b'/');
        if name.is_empty() { b"a".to_vec() } else { name }
    }
}

fn decode_all(dec: &mut FileListDecoder, buf: &[u8], at: &mut usize) -> Vec<FileEntry> {
    let mut v = Vec::new();
    loop {
        match dec.decode(&buf[*at..]) {
            Ok(Decoded::Done { value, used }) => {
                assert!(used > 0 && *at + used <= buf.len());
                *at += used;
                match value {
                    Some(e) => v.push(e),
                    None => return v,
                }
            }
            other => panic!("{other:?} at {at} of {}", buf.len()),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [b0, b1, b2, rest @ ..] = data else {
        return;
    };
    let o = flist_opts::flist_options(*b0, *b1);
    let lists = if o.inc_recurse { 1 + usize::from(*b2 % 3) } else { 1 };
    let io_error = i32::from(*b2 >> 5);
    let mut d = Bytes(rest);
    let mut enc = FileListEncoder::new(o);
    let mut buf = Vec::new();
    let mut sent = Vec::new();
    for _ in 0..lists {
        let size = d.range(0, 25) as usize;
        let list = entries(&o, &mut d, size, enc.ndx_start());
        for e in &list {
            enc.encode_entry(&mut buf, e).unwrap();
        }
        enc.encode_end(&mut buf, io_error);
        sent.push(list);
    }
    let mut dec = FileListDecoder::new(o, Limits::default());
    let mut at = 0;
    for list in &sent {
        let got = decode_all(&mut dec, &buf, &mut at);
        assert_eq!(&got, list);
        let carried = o.safe_flist && (o.varint_flags || o.protocol >= 30);
        assert_eq!(dec.io_error(), if carried { io_error } else { 0 });
    }
    assert_eq!(at, buf.len());
    if let Some(first) = sent.first().and_then(|l| l.first()) {
        let mut one = Vec::new();
        FileListEncoder::new(o).encode_entry(&mut one, first).unwrap();
        for cut in 0..one.len() {
            let mut d = FileListDecoder::new(o, Limits::default());
            assert!(
                matches!(d.decode(&one[..cut]), Ok(Decoded::NeedMore(n)) if n > 0),
                "cut {cut}"
            );
        }
    }
});
