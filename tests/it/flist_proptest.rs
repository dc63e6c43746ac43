//! Property tests of the file-list codec: random entry lists round-trip
//! through the encoder and decoder for every protocol and flag mode, and
//! the decoder never panics (nor over-reads) on arbitrary bytes.

use ferrsync::flist::codec::{FileListDecoder, FileListEncoder, FlistOptions};
use ferrsync::flist::entry::FileEntry;
use ferrsync::wire::{Decoded, Limits};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn options() -> impl Strategy<Value = FlistOptions> {
    (
        27u8..=32,
        any::<[bool; 13]>(),
        prop_oneof![Just(0usize), Just(8), Just(16)],
    )
        .prop_map(|(protocol, b, checksum_len)| FlistOptions {
            protocol,
            varint_flags: protocol >= 30 && b[0],
            safe_flist: protocol >= 31 || (protocol >= 30 && b[1]),
            inc_recurse: protocol >= 30 && b[2],
            id0_names: protocol >= 30 && b[3],
            preserve_uid: b[4],
            preserve_gid: b[5],
            preserve_links: b[6],
            preserve_devices: b[7],
            preserve_specials: b[8],
            preserve_hard_links: b[9],
            preserve_atimes: protocol >= 30 && b[10],
            numeric_ids: b[11],
            checksum_len,
            preserve_xattrs: protocol >= 30 && b[12],
            // The generator makes no ACLs (their codec has its own tests).
            preserve_acls: false,
        })
}

use crate::flist_gen;

use flist_gen::{Draw, entries};

impl Draw for StdRng {
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if lo >= hi { lo } else { self.gen_range(lo..hi) }
    }
    fn ratio(&mut self, num: u32, den: u32) -> bool {
        self.gen_ratio(num, den)
    }
    fn chance(&mut self, p: f64) -> bool {
        self.gen_bool(p)
    }
    fn byte(&mut self) -> u8 {
        self.r#gen()
    }
    fn name(&mut self) -> Vec<u8> {
        name(self)
    }
}

fn name(rng: &mut StdRng) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ab.-/x\xe9\xff";
    let len = if rng.gen_ratio(1, 20) {
        rng.gen_range(250..320)
    } else {
        rng.gen_range(1..12)
    };
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
        .collect()
}

fn decode_all(dec: &mut FileListDecoder, buf: &[u8], at: &mut usize) -> Vec<FileEntry> {
    let mut v = Vec::new();
    loop {
        match dec.decode(&buf[*at..]).unwrap() {
            Decoded::Done {
                value: Some(e),
                used,
            } => {
                *at += used;
                v.push(e);
            }
            Decoded::Done { value: None, used } => {
                *at += used;
                return v;
            }
            Decoded::NeedMore(n) => panic!("need {n} more at {at}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 768, ..ProptestConfig::default() })]

    #[test]
    fn round_trip(o in options(), seed in any::<u64>(), sizes in proptest::collection::vec(0usize..25, 1..4), io_error in 0i32..8) {
        let mut rng = StdRng::seed_from_u64(seed);
        let lists = if o.inc_recurse { sizes.len() } else { 1 };
        let mut enc = FileListEncoder::new(o);
        let mut buf = Vec::new();
        let mut sent = Vec::new();
        for size in sizes.iter().take(lists) {
            let list = entries(&o, &mut rng, *size, enc.ndx_start());
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
            prop_assert_eq!(&got, list);
            let carried = o.safe_flist && (o.varint_flags || o.protocol >= 30);
            prop_assert_eq!(dec.io_error(), if carried { io_error } else { 0 });
        }
        prop_assert_eq!(at, buf.len());
        // Every proper prefix of the first entry asks for more.
        if let Some(first) = sent.first().and_then(|l| l.first()) {
            let mut one = Vec::new();
            FileListEncoder::new(o).encode_entry(&mut one, first).unwrap();
            for cut in 0..one.len() {
                let mut d = FileListDecoder::new(o, Limits::default());
                prop_assert!(matches!(d.decode(&one[..cut]), Ok(Decoded::NeedMore(n)) if n > 0), "cut {}", cut);
            }
        }
    }

    #[test]
    fn decoder_never_panics(o in options(), bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut dec = FileListDecoder::new(o, Limits::default());
        let mut at = 0;
        for _ in 0..64 {
            match dec.decode(&bytes[at..]) {
                Ok(Decoded::Done { used, .. }) => {
                    prop_assert!(used > 0 && at + used <= bytes.len());
                    at += used;
                }
                Ok(Decoded::NeedMore(n)) => {
                    prop_assert!(n > 0);
                    break;
                }
                Err(_) => break,
            }
        }
    }

    #[test]
    fn decoder_survives_mutated_lists(o in options(), seed in any::<u64>(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut enc = FileListEncoder::new(o);
        let mut buf = Vec::new();
        for e in &entries(&o, &mut rng, 12, enc.ndx_start()) {
            enc.encode_entry(&mut buf, e).unwrap();
        }
        enc.encode_end(&mut buf, 0);
        for (i, b) in flips {
            let n = buf.len();
            buf[i % n] = b;
        }
        let mut dec = FileListDecoder::new(o, Limits::default());
        let mut at = 0;
        for _ in 0..64 {
            match dec.decode(&buf[at..]) {
                Ok(Decoded::Done { used, .. }) => {
                    prop_assert!(used > 0 && at + used <= buf.len());
                    at += used;
                }
                _ => break,
            }
        }
    }
}
