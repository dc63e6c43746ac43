//! Consistent file-list entries for a set of [`FlistOptions`]: what a real
//! sender could send, so that encode -> decode must give back exactly the
//! same `FileEntry` values (the decoder fills in only what the options
//! carry; these entries carry nothing else).
//!
//! Shared by `tests/flist_proptest.rs` (choices from a seeded RNG) and the
//! `flist_roundtrip` fuzz target (choices from the fuzz input), so both
//! use one notion of a round-trippable entry. Included with `#[path]`.
#![allow(dead_code)]

use ferrsync::flist::codec::FlistOptions;
use ferrsync::flist::entry::{
    FileEntry, FileKind, HardLink, XMIT_NO_CONTENT_DIR, XMIT_TOP_DIR, Xattr, XattrValue,
};

/// Where the generator's choices come from.
pub trait Draw {
    /// A value in `lo..hi` (`lo` when the range is empty).
    fn range(&mut self, lo: u64, hi: u64) -> u64;
    /// True with probability `num / den`.
    fn ratio(&mut self, num: u32, den: u32) -> bool;
    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool;
    /// Any byte.
    fn byte(&mut self) -> u8;
    /// A non-empty file name or symlink target.
    fn name(&mut self) -> Vec<u8>;
}

/// One element of `pool`.
pub fn pick<T: Copy>(d: &mut impl Draw, pool: &[T]) -> T {
    pool[d.range(0, pool.len() as u64) as usize]
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

fn id_name(o: &FlistOptions, on: bool, prefix: &str, id: u32) -> Option<std::sync::Arc<[u8]>> {
    (o.inc_recurse && on && !o.numeric_ids && !id.is_multiple_of(3))
        .then(|| format!("{prefix}{id}").into_bytes().into())
}

/// An xattr list from a small pool (so that lists repeat and are sent by
/// index): empty, short values, abbreviated ones.
fn xattrs(d: &mut impl Draw) -> Vec<Xattr> {
    let n = pick(d, &[0usize, 0, 1, 2, 3]);
    (0..n)
        .map(|i| {
            let value = match pick(d, &[0u8, 1, 2]) {
                0 => XattrValue::Full(Vec::new()),
                1 => XattrValue::Full(vec![b'v'; pick(d, &[1usize, 32])]),
                _ => XattrValue::Abbrev {
                    len: pick(d, &[33u64, 70_000]),
                    digest: [pick(d, &[0u8, 7]); 16],
                },
            };
            Xattr {
                name: format!("user.a{i}").into_bytes(),
                value,
            }
        })
        .collect()
}

/// One list of `count` consistent entries starting at `ndx_start`.
pub fn entries(
    o: &FlistOptions,
    d: &mut impl Draw,
    count: usize,
    ndx_start: i32,
) -> Vec<FileEntry> {
    let p = o.protocol;
    let mut v: Vec<FileEntry> = Vec::new();
    for _ in 0..count {
        // Sometimes a hard-link follower of an earlier regular file.
        if o.preserve_hard_links && p >= 30 && d.ratio(1, 4) {
            let firsts: Vec<usize> = (0..v.len())
                .filter(|&i| {
                    v[i].kind() == Some(FileKind::Regular)
                        && v[i].hardlink().is_some_and(|h| h.first.is_none())
                })
                .collect();
            let at = d.range(0, firsts.len().max(1) as u64) as usize;
            if let Some(&f) = firsts.get(at) {
                let mut e = v[f].clone();
                e.name = d.name();
                if o.preserve_xattrs {
                    e.extra_mut().xattrs = Some(xattrs(d));
                }
                e.extra_mut().hardlink = Some(HardLink {
                    first: Some(ndx_start + f as i32),
                    dev: 0,
                    ino: 0,
                });
                v.push(e);
                continue;
            }
        }
        let kind = pick(d, &KINDS);
        let kind = if kind == FileKind::Fifo && d.chance(0.5) {
            FileKind::Socket
        } else {
            kind
        };
        let is_dir = kind == FileKind::Dir;
        // Small value pools make the "same as before" flags fire often.
        let mtime = if p >= 30 {
            pick(d, &[0i64, 1, -5, 1_704_067_200, 1 << 40])
        } else {
            pick(d, &[0i64, 7, 4_000_000_000])
        };
        let uid = if o.preserve_uid {
            pick(d, &[0u32, 1000, 65534, 7])
        } else {
            0
        };
        let gid = if o.preserve_gid {
            pick(d, &[0u32, 100, 65534])
        } else {
            0
        };
        let mut e = FileEntry {
            name: d.name(),
            mode: kind.mode_bits() | pick(d, &[0o644, 0o755, 0o7777, 0]),
            size: pick(
                d,
                &[0u64, 12, 4096, u64::from(u32::MAX) + 5, i64::MAX as u64],
            ),
            mtime,
            mtime_nsec: if p >= 31 && d.chance(0.5) {
                d.range(0, 1_000_000_000) as u32
            } else {
                0
            },
            atime: if o.preserve_atimes && !is_dir {
                pick(d, &[0i64, 3, 1_704_067_201])
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
                pick(
                    d,
                    &[
                        0,
                        XMIT_TOP_DIR,
                        XMIT_NO_CONTENT_DIR,
                        XMIT_TOP_DIR | XMIT_NO_CONTENT_DIR,
                    ],
                )
            } else {
                pick(d, &[0, XMIT_TOP_DIR])
            },
            ..FileEntry::default()
        };
        if kind.is_device() && o.preserve_devices {
            let x = e.extra_mut();
            (x.rdev_major, x.rdev_minor) = if p < 28 {
                (
                    d.range(0, 0x1000) as u32,
                    pick(d, &[0u32, 5, 300, 0xf_ffff]),
                )
            } else {
                (
                    pick(d, &[0u32, 8, 259, 70_000]),
                    pick(d, &[0u32, 5, 300, 1 << 20]),
                )
            };
        }
        if kind == FileKind::Symlink && o.preserve_links {
            e.extra_mut().link_target = Some(d.name());
        }
        if o.checksum_len > 0 && kind == FileKind::Regular {
            e.extra_mut().checksum = Some((0..o.checksum_len).map(|_| d.byte()).collect());
        }
        if o.preserve_hard_links {
            let hl = HardLink {
                first: None,
                dev: pick(d, &[0u64, 2049, 2050]),
                ino: d.range(1, 100),
            };
            e.extra_mut().hardlink = match p {
                27 => (kind == FileKind::Regular).then_some(hl),
                28 | 29 => (!is_dir && d.chance(0.5)).then_some(hl),
                _ => (kind == FileKind::Regular && d.chance(0.5)).then_some(HardLink {
                    first: None,
                    dev: 0,
                    ino: 0,
                }),
            };
        }
        if o.preserve_xattrs {
            e.extra_mut().xattrs = Some(xattrs(d));
        }
        v.push(e);
    }
    v
}
