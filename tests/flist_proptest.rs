//! Property tests of the file-list codec: random entry lists round-trip
//! through the encoder and decoder for every protocol and flag mode, and
//! the decoder never panics (nor over-reads) on arbitrary bytes.

use ferrsync::flist::codec::{FileListDecoder, FileListEncoder, FlistOptions};
use ferrsync::flist::entry::{FileEntry, FileKind, HardLink, XMIT_NO_CONTENT_DIR, XMIT_TOP_DIR};
use ferrsync::wire::{Decoded, Limits};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn options() -> impl Strategy<Value = FlistOptions> {
    (
        27u8..=32,
        any::<[bool; 12]>(),
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
        })
}

const KINDS: [FileKind; 7] = [
    FileKind::Regular,
    FileKind::Regular,
    FileKind::Dir,
    FileKind::Symlink,
    FileKind::CharDev,
    FileKind::BlockDev,
    FileKind::Fifo,
];

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

fn id_name(o: &FlistOptions, on: bool, prefix: &str, id: u32) -> Option<Vec<u8>> {
    (o.inc_recurse && on && !o.numeric_ids && id % 3 != 0)
        .then(|| format!("{prefix}{id}").into_bytes())
}

/// One list of consistent random entries (what a real sender could send).
fn entries(o: &FlistOptions, rng: &mut StdRng, count: usize, ndx_start: i32) -> Vec<FileEntry> {
    let p = o.protocol;
    let mut v: Vec<FileEntry> = Vec::new();
    for _ in 0..count {
        // Sometimes a hard-link follower of an earlier regular file.
        if o.preserve_hard_links && p >= 30 && rng.gen_ratio(1, 4) {
            let firsts: Vec<usize> = (0..v.len())
                .filter(|&i| {
                    v[i].kind() == Some(FileKind::Regular)
                        && v[i].hardlink.as_ref().is_some_and(|h| h.first.is_none())
                })
                .collect();
            if let Some(&f) = firsts.get(rng.gen_range(0..firsts.len().max(1))) {
                let mut e = v[f].clone();
                e.name = name(rng);
                e.hardlink = Some(HardLink {
                    first: Some(ndx_start + f as i32),
                    dev: 0,
                    ino: 0,
                });
                v.push(e);
                continue;
            }
        }
        let kind = KINDS[rng.gen_range(0..KINDS.len())];
        let kind = if kind == FileKind::Fifo && rng.gen_bool(0.5) {
            FileKind::Socket
        } else {
            kind
        };
        let is_dir = kind == FileKind::Dir;
        // Small value pools make the "same as before" flags fire often.
        let mtime = if p >= 30 {
            [0i64, 1, -5, 1_704_067_200, 1 << 40][rng.gen_range(0..5)]
        } else {
            [0i64, 7, 4_000_000_000][rng.gen_range(0..3)]
        };
        let uid = if o.preserve_uid {
            [0u32, 1000, 65534, 7][rng.gen_range(0..4)]
        } else {
            0
        };
        let gid = if o.preserve_gid {
            [0u32, 100, 65534][rng.gen_range(0..3)]
        } else {
            0
        };
        let mut e = FileEntry {
            name: name(rng),
            mode: kind.mode_bits() | [0o644, 0o755, 0o7777, 0][rng.gen_range(0..4)],
            size: [0u64, 12, 4096, u64::from(u32::MAX) + 5, i64::MAX as u64][rng.gen_range(0..5)],
            mtime,
            mtime_nsec: if p >= 31 && rng.gen_bool(0.5) {
                rng.gen_range(0..1_000_000_000)
            } else {
                0
            },
            atime: if o.preserve_atimes && !is_dir {
                [0i64, 3, 1_704_067_201][rng.gen_range(0..3)]
            } else {
                0
            },
            uid,
            gid,
            user_name: id_name(o, o.preserve_uid, "user", uid),
            group_name: id_name(o, o.preserve_gid, "group", gid),
            xflags: if !is_dir {
                0
            } else if p >= 30 {
                [
                    0,
                    XMIT_TOP_DIR,
                    XMIT_NO_CONTENT_DIR,
                    XMIT_TOP_DIR | XMIT_NO_CONTENT_DIR,
                ][rng.gen_range(0..4)]
            } else {
                [0, XMIT_TOP_DIR][rng.gen_range(0..2)]
            },
            ..FileEntry::default()
        };
        if kind.is_device() && o.preserve_devices {
            (e.rdev_major, e.rdev_minor) = if p < 28 {
                (
                    rng.gen_range(0..0x1000),
                    [0u32, 5, 300, 0xf_ffff][rng.gen_range(0..4)],
                )
            } else {
                (
                    [0u32, 8, 259, 70_000][rng.gen_range(0..4)],
                    [0u32, 5, 300, 1 << 20][rng.gen_range(0..4)],
                )
            };
        }
        if kind == FileKind::Symlink && o.preserve_links {
            e.link_target = Some(name(rng));
        }
        if o.checksum_len > 0 && kind == FileKind::Regular {
            e.checksum = Some((0..o.checksum_len).map(|_| rng.r#gen()).collect());
        }
        if o.preserve_hard_links {
            let hl = HardLink {
                first: None,
                dev: [0u64, 2049, 2050][rng.gen_range(0..3)],
                ino: rng.gen_range(1..100),
            };
            e.hardlink = match p {
                27 => (kind == FileKind::Regular).then_some(hl),
                28 | 29 => (!is_dir && rng.gen_bool(0.5)).then_some(hl),
                _ => (kind == FileKind::Regular && rng.gen_bool(0.5)).then_some(HardLink {
                    first: None,
                    dev: 0,
                    ino: 0,
                }),
            };
        }
        v.push(e);
    }
    v
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
