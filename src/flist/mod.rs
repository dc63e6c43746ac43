//! The file list: entries, their per-protocol wire codec, uid/gid name
//! lists, and upstream's sort order and duplicate cleaning.
//!
//! Layer: flist (L2). Uses `wire` only; does no I/O.
//! Mirrors upstream flist.c, uidlist.c and the `XMIT_*` part of rsync.h.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod acls;
pub mod codec;
mod decoder;
pub mod entry;
pub mod ids;
pub mod sort;
pub mod xattrs;

pub use codec::{FileListDecoder, FileListEncoder, FlistOptions};
pub use entry::{
    EntryExtra, FileEntry, FileKind, HardLink, Xattr, XattrValue, check_safe_name,
    link_hardlink_groups,
};
pub use ids::{IdNames, decode_id_list, encode_id_list};
pub use sort::{clean_file_list, f_name_cmp, sort_file_list};
