//! File-list decoding: the first two bytes pick the protocol (27..=32) and
//! the options (see `common/flist_opts.rs`), the rest is a file list for
//! `FileListDecoder`, decoded entry by entry until the end marker, a
//! `NeedMore` or an error; whatever follows the end marker goes to
//! `decode_id_list` (the uid and then the gid list of a non-incremental
//! transfer). Every decode must use at most the remaining bytes (an entry
//! at least one), a `NeedMore` must ask for at least one byte, and every
//! entry must satisfy the decoder's own rules.
#![no_main]

use ferrsync::flist::{FileListDecoder, decode_id_list};
use ferrsync::wire::{Decoded, Limits};
use libfuzzer_sys::fuzz_target;

#[path = "../common/flist_opts.rs"]
mod flist_opts;

fuzz_target!(|data: &[u8]| {
    let [b0, b1, rest @ ..] = data else {
        return;
    };
    let o = flist_opts::flist_options(*b0, *b1);
    let limits = Limits::default();
    let mut dec = FileListDecoder::new(o, limits);
    let mut rest = rest;
    loop {
        match dec.decode(rest) {
            Ok(Decoded::Done { value, used }) => {
                assert!(used > 0 && used <= rest.len(), "used {used} of {}", rest.len());
                rest = &rest[used..];
                let Some(e) = value else { break };
                assert!(!e.name.is_empty() && !e.name.contains(&0));
                assert!(e.name.len() <= limits.max_name_len);
                assert!(e.kind().is_some(), "mode {:o}", e.mode);
                assert!(e.mtime_nsec <= 999_999_999);
                assert!(e.link_target().is_none_or(|t| t.len() <= limits.max_link_len));
                assert!(e.checksum().is_none_or(|c| c.len() == o.checksum_len));
            }
            Ok(Decoded::NeedMore(n)) => {
                assert!(n > 0);
                return;
            }
            Err(_) => return,
        }
    }
    for _ in 0..2 {
        match decode_id_list(rest, o.protocol, o.id0_names, &limits) {
            Ok(Decoded::Done { value, used }) => {
                assert!(used > 0 && used <= rest.len(), "used {used} of {}", rest.len());
                assert!(value.iter().all(|(_, n)| n.len() <= limits.max_id_name_len));
                rest = &rest[used..];
            }
            Ok(Decoded::NeedMore(n)) => {
                assert!(n > 0);
                return;
            }
            Err(_) => return,
        }
    }
});
