//! File-list options from the first two input bytes, shared by the
//! `flist_decode` and `flist_roundtrip` targets (included with `#[path]`).
//!
//! Byte 0: bits 0-2 protocol 27 + (b & 7) % 6; bit 3 varint flags; bit 4
//! safe file lists; bit 5 incremental recursion; bit 6 id0 names; bit 7
//! `--checksum` sums of 16 bytes. Byte 1: bits 0-7 preserve uid, gid,
//! links, devices, specials, hard links, atimes, numeric ids. Flags a
//! protocol cannot negotiate are dropped as `tests/flist_proptest.rs`
//! drops them (safe file lists are implied from 31 on).

use ferrsync::flist::FlistOptions;

pub fn flist_options(b0: u8, b1: u8) -> FlistOptions {
    let protocol = 27 + (b0 & 7) % 6;
    let bit = |b: u8, n: u8| b & (1 << n) != 0;
    FlistOptions {
        protocol,
        varint_flags: protocol >= 30 && bit(b0, 3),
        safe_flist: protocol >= 31 || (protocol >= 30 && bit(b0, 4)),
        inc_recurse: protocol >= 30 && bit(b0, 5),
        id0_names: protocol >= 30 && bit(b0, 6),
        checksum_len: if bit(b0, 7) { 16 } else { 0 },
        preserve_uid: bit(b1, 0),
        preserve_gid: bit(b1, 1),
        preserve_links: bit(b1, 2),
        preserve_devices: bit(b1, 3),
        preserve_specials: bit(b1, 4),
        preserve_hard_links: bit(b1, 5),
        preserve_atimes: protocol >= 30 && bit(b1, 6),
        numeric_ids: bit(b1, 7),
        preserve_xattrs: protocol >= 30 && bit(b0, 2) && bit(b0, 1),
        // The round trip's generator makes no ACLs.
        preserve_acls: false,
    }
}
