//! The `-X` parts of the rsync 3.5.0 capture `pull-p31-extra-X`: the xattr
//! lists in the file list (literal lists, index reuse, abbreviated values)
//! and the request / fill-in exchange for the abbreviated value.

use crate::common;

use common::tap;
use ferrsync::flist::codec::{FileListDecoder, FileListEncoder, FlistOptions};
use ferrsync::flist::entry::{FileEntry, Xattr, XattrValue};
use ferrsync::flist::xattrs::{
    decode_xattr_request, decode_xattr_values, encode_xattr_request, encode_xattr_values,
};
use ferrsync::wire::{Decoded, Limits, decode_varint};

const CAPTURE: &str = "transfer-vectors/pull-p31-extra-X.tap";

fn skip_vstring(b: &[u8], at: &mut usize) {
    let n = b[*at] as usize;
    *at += 1 + n;
}

/// (generator -> sender, sender -> receiver) data streams of the pull.
fn streams() -> (Vec<u8>, Vec<u8>) {
    let t = tap::load(CAPTURE);
    // C>S: version, checksum list; S>C: version, compat flags, checksum
    // list, seed.
    let mut c = 4;
    skip_vstring(&t.c2s, &mut c);
    let mut s = 4;
    let Decoded::Done { used, .. } = decode_varint(&t.s2c[s..]).unwrap() else {
        panic!("compat flags cut off")
    };
    s += used;
    skip_vstring(&t.s2c, &mut s);
    s += 4;
    (tap::demux(&t.c2s[c..]).data, tap::demux(&t.s2c[s..]).data)
}

fn opts() -> FlistOptions {
    FlistOptions {
        protocol: 31,
        varint_flags: true,
        safe_flist: true,
        inc_recurse: true,
        id0_names: true,
        preserve_uid: true,
        preserve_gid: true,
        preserve_links: true,
        preserve_devices: true,
        preserve_specials: true,
        preserve_xattrs: true,
        ..FlistOptions::default()
    }
}

fn md5(data: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(data).into()
}

fn first_list(data: &[u8]) -> (Vec<FileEntry>, usize) {
    let mut dec = FileListDecoder::new(opts(), Limits::default());
    let mut at = 0;
    let mut v = Vec::new();
    while let Decoded::Done {
        value: Some(e),
        used,
    } = dec.decode(&data[at..]).unwrap()
    {
        at += used;
        v.push(e);
    }
    (v, at)
}

#[test]
fn xattr_lists_decode_and_re_encode_exactly() {
    let (_, s2r) = streams();
    let (entries, end) = first_list(&s2r);
    assert_eq!(entries.len(), 8);
    let x = entries.iter().find(|e| e.name == b"x.txt").unwrap();
    assert_eq!(
        x.xattrs().unwrap(),
        &[
            Xattr {
                name: b"user.big".to_vec(),
                value: XattrValue::Abbrev {
                    len: 64,
                    digest: md5(&[b'B'; 64]),
                },
            },
            Xattr {
                name: b"user.small".to_vec(),
                value: XattrValue::Full(b"hi".to_vec()),
            },
        ]
    );
    // The first entry sent its (empty) list literally: `00 00`; later
    // empty lists are `01`, index 0 plus one.
    for e in entries.iter().filter(|e| e.name != b"x.txt") {
        assert_eq!(e.xattrs(), Some(&[][..]), "{:?}", e.name);
    }
    let mut enc = FileListEncoder::new(opts());
    let mut out = Vec::new();
    for e in &entries {
        enc.encode_entry(&mut out, e).unwrap();
    }
    assert_eq!(out, s2r[..end], "re-encoded list differs");
    // The x.txt bytes as the reference quotes them.
    let at = out.windows(5).position(|w| w == b"x.txt").unwrap() + 5 + 3;
    let mut want = vec![0x00, 0x02, 0x09, 0x40];
    want.extend_from_slice(b"user.big\0");
    want.extend_from_slice(&md5(&[b'B'; 64]));
    want.extend_from_slice(&[0x0b, 0x02]);
    want.extend_from_slice(b"user.small\0hi");
    assert_eq!(out[at..at + want.len()], want[..]);
}

#[test]
fn an_index_past_the_known_lists_is_refused() {
    let mut dec = FileListDecoder::new(opts(), Limits::default());
    // flags 0x98 varint, name "a", size 0, mode, then xattr index 1 (none
    // received yet).
    let mut b = vec![0x80, 0x98, 1, b'a', 0, 0, 0];
    b.extend_from_slice(&0o100_644u32.to_le_bytes());
    let mut first = b.clone();
    first.push(0x02);
    assert!(dec.decode(&first).is_err());
    // A name without its NUL.
    let mut bad = b.clone();
    bad.extend_from_slice(&[0x00, 0x01, 0x02, 0x00, b'a', b'b']);
    assert!(dec.decode(&bad).is_err());
}

#[test]
fn request_and_fill_in_match_the_capture() {
    let (g2s, s2r) = streams();
    let lim = Limits::default();
    // Generator: ndx of x.txt, iflags 0xa100, the request, a sum header.
    let at = g2s.windows(2).position(|w| w == [0x00, 0xa1]).unwrap() + 2;
    let Decoded::Done { value, used } = decode_xattr_request(&g2s[at..], &lim).unwrap() else {
        panic!("request cut off")
    };
    assert_eq!((value.as_slice(), used), (&[1][..], 2));
    assert_eq!(g2s[at + used..at + used + 16], [0u8; 16], "sum header");
    let mut out = Vec::new();
    encode_xattr_request(&mut out, &value);
    assert_eq!(out, g2s[at..at + used]);

    // Sender: the echo carries the full value of user.big.
    let at = s2r
        .windows(4)
        .position(|w| w == [0x00, 0xa1, 0x01, 0x40])
        .unwrap()
        + 2;
    let Decoded::Done { value, used } = decode_xattr_values(&s2r[at..], &lim).unwrap() else {
        panic!("values cut off")
    };
    assert_eq!(value, vec![(1, vec![b'B'; 64])]);
    assert_eq!(used, 1 + 1 + 64 + 1);
    let mut out = Vec::new();
    encode_xattr_values(&mut out, &[(1, &value[0].1)]);
    assert_eq!(out, s2r[at..at + used]);
    assert_eq!(md5(&value[0].1), md5(&[b'B'; 64]));
}
