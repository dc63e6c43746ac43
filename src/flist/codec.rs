//! The file-list entry codec: [`FileListEncoder`] and [`FileListDecoder`],
//! for protocols 27 to 32 with byte/shortint or varint flags.
//!
//! Layer: flist (L2). Uses `wire` only; does no I/O.
//! Mirrors upstream flist.c `send_file_entry`, `recv_file_entry`,
//! `write_end_of_flist` and the flag handling of `recv_file_list`.
//!
//! Both sides keep "previous values" (name, mode, mtime, atime, uid, gid,
//! rdev, hard-link device) that start empty and are never reset, not even
//! between the sub-lists of an incremental transfer; one encoder or decoder
//! must therefore serve a whole session.
//!
//! ```
//! use ferrsync::flist::{FileEntry, FileListDecoder, FileListEncoder, FlistOptions};
//! use ferrsync::wire::{Decoded, Limits};
//! let opts = FlistOptions { protocol: 31, preserve_uid: true, ..FlistOptions::default() };
//! let e = FileEntry { name: b"a.txt".to_vec(), mode: 0o100644, size: 3, uid: 7, ..FileEntry::default() };
//! let mut out = Vec::new();
//! let mut enc = FileListEncoder::new(opts);
//! enc.encode_entry(&mut out, &e).unwrap();
//! enc.encode_end(&mut out, 0);
//! let mut dec = FileListDecoder::new(opts, Limits::default());
//! let Decoded::Done { value, used } = dec.decode(&out).unwrap() else { panic!() };
//! assert_eq!(value, Some(e));
//! assert!(matches!(dec.decode(&out[used..]).unwrap(), Decoded::Done { value: None, .. }));
//! ```

use std::collections::{HashMap, HashSet};

use super::entry::{
    FileEntry, FileKind, HardLink, XATTR_MAX_FULL_DATUM, XMIT_EXTENDED_FLAGS,
    XMIT_GROUP_NAME_FOLLOWS, XMIT_HLINK_FIRST, XMIT_HLINKED, XMIT_IO_ERROR_ENDLIST, XMIT_LONG_NAME,
    XMIT_MOD_NSEC, XMIT_NO_CONTENT_DIR, XMIT_RDEV_MINOR_8_PRE30, XMIT_SAME_ATIME,
    XMIT_SAME_DEV_PRE30, XMIT_SAME_GID, XMIT_SAME_MODE, XMIT_SAME_NAME, XMIT_SAME_RDEV_MAJOR,
    XMIT_SAME_RDEV_PRE28, XMIT_SAME_TIME, XMIT_SAME_UID, XMIT_TOP_DIR, XMIT_USER_NAME_FOLLOWS,
    Xattr, XattrValue,
};
use crate::wire::{
    DecodeError, encode_i32, encode_longint, encode_u16, encode_varint, encode_varint30,
    encode_varlong, encode_varlong30,
};

pub use super::decoder::FileListDecoder;

/// Upstream MAXPATHLEN - 1: the longest name either side accepts.
pub(crate) const MAX_NAME: usize = 4095;

/// Device number placed in the protocol-27 dev/ino pair of a regular file
/// that has no [`HardLink`]: protocol 27 sends dev/ino for every regular file
/// under `-H`, so a file that is not hard-linked needs a pair no real file
/// shares (this device plus a per-encoder counter as inode).
pub const PSEUDO_DEV_PRE28: u64 = u64::MAX - 1;

/// What both sides agreed on that shapes the file-list encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlistOptions {
    /// Negotiated protocol version (27..=32).
    pub protocol: u8,
    /// `CF_VARINT_FLIST_FLAGS`: flags are one varint.
    pub varint_flags: bool,
    /// `CF_SAFE_FLIST` negotiated, or protocol >= 31: the io_error may travel
    /// in the end marker.
    pub safe_flist: bool,
    /// `CF_INC_RECURSE`: names travel inline, lists start at ndx 1.
    pub inc_recurse: bool,
    /// `CF_ID0_NAMES`: id lists carry the names of id 0.
    pub id0_names: bool,
    /// `-o`.
    pub preserve_uid: bool,
    /// `-g`.
    pub preserve_gid: bool,
    /// `-l`.
    pub preserve_links: bool,
    /// `--devices` (`-D`).
    pub preserve_devices: bool,
    /// `--specials` (`-D`).
    pub preserve_specials: bool,
    /// `-H`.
    pub preserve_hard_links: bool,
    /// `--atimes` (`-U`).
    pub preserve_atimes: bool,
    /// `--numeric-ids`.
    pub numeric_ids: bool,
    /// Length of the `--checksum` sums in the list; 0 without `--checksum`.
    pub checksum_len: usize,
    /// `-X` (protocol >= 30): every entry ends with its xattr list.
    pub preserve_xattrs: bool,
    /// `-A` (protocol >= 30): every non-symlink entry carries its ACLs
    /// before its xattr list.
    pub preserve_acls: bool,
}

/// The "previous values" both sides keep (upstream: function statics).
#[derive(Debug, Clone, Default)]
pub(crate) struct Prev {
    pub(crate) name: Vec<u8>,
    pub(crate) mode: u32,
    pub(crate) mtime: i64,
    pub(crate) atime: i64,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) rdev_major: u32,
    /// Protocol < 28: the whole 32-bit device number.
    pub(crate) rdev_pre28: u32,
    /// Protocols < 30: the hard-link device as on the wire (dev + 1).
    pub(crate) hl_dev_wire: u64,
}

/// Linux `makedev`, cut to the 32 bits protocol 27 sends.
pub(crate) fn makedev32(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

/// Linux `major`/`minor` of a 32-bit device number.
pub(crate) fn splitdev32(dev: u32) -> (u32, u32) {
    ((dev >> 8) & 0xfff, (dev & 0xff) | ((dev >> 12) & 0xf_ff00))
}

/// Exactly `n` bytes from `r`. Works around `Reader::bytes`, which computes
/// its shortfall eagerly and overflows when more than `n` bytes are left.
pub(crate) fn take<'a>(
    r: &mut crate::wire::Reader<'a>,
    n: usize,
) -> Result<&'a [u8], crate::wire::ReadError> {
    let rest = r.remaining();
    let s = rest
        .get(..n)
        .ok_or_else(|| crate::wire::ReadError::NeedMore(n - rest.len()))?;
    for _ in 0..n {
        r.u8()?;
    }
    Ok(s)
}

/// Length of the common prefix of two names, at most 255 (upstream's `l1`).
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .take(255)
        .take_while(|(x, y)| x == y)
        .count()
}

fn push_short_name(out: &mut Vec<u8>, name: &[u8]) {
    let n = name.get(..name.len().min(255)).unwrap_or_default();
    out.push(u8::try_from(n.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(n);
}

/// Encodes file-list entries (the sending side).
///
/// Create one per session; call [`set_ndx_start`](Self::set_ndx_start)
/// only when a list starts somewhere the encoder cannot know (it starts at
/// 0, or 1 with incremental recursion, and advances by itself after each
/// end marker).
#[derive(Debug, Clone)]
pub struct FileListEncoder {
    opts: FlistOptions,
    prev: Prev,
    uids_seen: HashSet<u32>,
    gids_seen: HashSet<u32>,
    ndx_start: i32,
    count: i32,
    pseudo_ino: u64,
    /// `-X`: the literal xattr lists sent so far and their session index.
    xattr_lists: HashMap<Vec<Xattr>, i32>,
    /// `-A`: the ACLs sent so far and their session indexes.
    acls: super::acls::AclEncoder,
}

/// Appends the xattr field of one entry: `index + 1` of an identical list
/// sent before, or 0 and the literal list (upstream xattrs.c `send_xattr`).
/// Returns the list to remember when it was sent literally.
fn encode_xattrs(
    out: &mut Vec<u8>,
    list: &[Xattr],
    known: &HashMap<Vec<Xattr>, i32>,
) -> Result<Option<Vec<Xattr>>, DecodeError> {
    if let Some(&i) = known.get(list) {
        encode_varint(out, i.saturating_add(1));
        return Ok(None);
    }
    for x in list {
        crate::wire::check_len("xattr name", x.name.len() as u64 + 1, MAX_XATTR_NAME)?;
        if x.name.contains(&0) {
            return Err(DecodeError::Protocol("xattr name contains a NUL byte"));
        }
        let bad_len = match &x.value {
            XattrValue::Full(v) => v.len() > XATTR_MAX_FULL_DATUM,
            XattrValue::Abbrev { len, .. } => {
                *len <= XATTR_MAX_FULL_DATUM as u64 || *len > i32::MAX as u64
            }
        };
        if bad_len {
            return Err(DecodeError::Invalid {
                what: "xattr value length",
                value: i64::try_from(x.value.len()).unwrap_or(i64::MAX),
            });
        }
    }
    let count = i32::try_from(list.len()).map_err(|_| DecodeError::TooLong {
        what: "xattr list",
        len: list.len() as u64,
        max: i32::MAX as u64,
    })?;
    encode_varint(out, 0);
    encode_varint(out, count);
    for x in list {
        encode_varint(out, x.name.len() as i32 + 1);
        encode_varint(out, x.value.len() as i32);
        out.extend_from_slice(&x.name);
        out.push(0);
        match &x.value {
            XattrValue::Full(v) => out.extend_from_slice(v),
            XattrValue::Abbrev { digest, .. } => out.extend_from_slice(digest),
        }
    }
    Ok(Some(list.to_vec()))
}

/// Longest xattr name on the wire, NUL included (upstream
/// `MAX_WIRE_XATTR_NAMELEN`).
pub(crate) const MAX_XATTR_NAME: usize = 4096;

impl FileListEncoder {
    /// A fresh encoder for a session with these options.
    #[must_use]
    pub fn new(opts: FlistOptions) -> Self {
        FileListEncoder {
            opts,
            prev: Prev::default(),
            uids_seen: HashSet::new(),
            gids_seen: HashSet::new(),
            ndx_start: i32::from(opts.inc_recurse),
            count: 0,
            pseudo_ino: 0,
            xattr_lists: HashMap::new(),
            acls: super::acls::AclEncoder::default(),
        }
    }

    /// Sets the `ndx_start` of the list being sent (decides which hard-link
    /// followers are abbreviated) and starts counting its entries anew.
    pub fn set_ndx_start(&mut self, start: i32) {
        self.ndx_start = start;
        self.count = 0;
    }

    /// The `ndx_start` of the current list.
    #[must_use]
    pub fn ndx_start(&self) -> i32 {
        self.ndx_start
    }

    /// Appends one entry. A hard-link follower (`hardlink.first` is
    /// `Some(i)` with `i >= ndx_start`, protocol >= 30) is sent abbreviated;
    /// its other fields must equal those of the referenced entry.
    ///
    /// With `-A` a non-symlink entry's ACLs follow its other fields (an
    /// entry without [`FileEntry::acls`] sends those of a file with only
    /// mode bits), with `-X` then the entry's xattr list (an entry
    /// without [`FileEntry::xattrs`] sends the empty list); a list equal to
    /// one sent before in this session is sent as its index.
    ///
    /// # Errors
    /// [`DecodeError`] for an unknown mode type, an empty name or a name or
    /// symlink target longer than upstream's MAXPATHLEN allows, an xattr
    /// name with a NUL byte, a [`XattrValue::Full`] longer than 32 bytes or
    /// an [`XattrValue::Abbrev`] of 32 bytes or less. Nothing is appended
    /// and no state changes then.
    pub fn encode_entry(&mut self, out: &mut Vec<u8>, e: &FileEntry) -> Result<(), DecodeError> {
        let o = self.opts;
        let p = o.protocol;
        let kind = e.kind().ok_or(DecodeError::Invalid {
            what: "file mode",
            value: i64::from(e.mode),
        })?;
        if e.name.is_empty() {
            return Err(DecodeError::Protocol("empty file name"));
        }
        crate::wire::check_len("file name", e.name.len() as u64, MAX_NAME)?;
        if let Some(t) = e.link_target() {
            crate::wire::check_len("symlink target", t.len() as u64, MAX_NAME)?;
        }
        // The xattr field goes last; encoded aside first so that a bad
        // list leaves `out` untouched.
        let mut xattr_field = Vec::new();
        let new_xattr_list = if o.preserve_xattrs {
            encode_xattrs(
                &mut xattr_field,
                e.xattrs().unwrap_or_default(),
                &self.xattr_lists,
            )?
        } else {
            None
        };
        let mut prev = self.prev.clone();
        let is_dir = kind == FileKind::Dir;
        let mut x = if is_dir {
            if p >= 30 {
                e.xflags & (XMIT_TOP_DIR | XMIT_NO_CONTENT_DIR)
            } else if e.xflags & XMIT_NO_CONTENT_DIR == 0 {
                e.xflags & XMIT_TOP_DIR
            } else {
                // An implied `-R` parent is no top directory below 30
                // (rsync clears the flag), or the receiver would treat
                // it as one and `--delete` in it.
                0
            }
        } else {
            0
        };
        if e.mode == prev.mode {
            x |= XMIT_SAME_MODE;
        } else {
            prev.mode = e.mode;
        }
        let send_rdev = (o.preserve_devices && kind.is_device())
            || (o.preserve_specials && kind.is_special() && p < 31);
        let (major, minor) = if kind.is_device() {
            e.rdev()
        } else {
            (prev.rdev_major, 0)
        };
        if o.preserve_devices && kind.is_device() {
            if p < 28 {
                let r = makedev32(major, minor);
                if r == prev.rdev_pre28 {
                    x |= XMIT_SAME_RDEV_PRE28;
                } else {
                    prev.rdev_pre28 = r;
                }
            } else {
                if major == prev.rdev_major {
                    x |= XMIT_SAME_RDEV_MAJOR;
                } else {
                    prev.rdev_major = major;
                }
                if p < 30 && minor <= 0xff {
                    x |= XMIT_RDEV_MINOR_8_PRE30;
                }
            }
        } else if send_rdev {
            x |= if p < 28 {
                XMIT_SAME_RDEV_PRE28
            } else {
                XMIT_SAME_RDEV_MAJOR
            };
            if (28..30).contains(&p) {
                x |= XMIT_RDEV_MINOR_8_PRE30;
            }
        } else if p < 28 {
            prev.rdev_pre28 = 0;
        }
        let first_entry = prev.name.is_empty();
        let mut uid_name_new = false;
        let mut gid_name_new = false;
        let mut send_uname = None;
        let mut send_gname = None;
        if !o.preserve_uid || (e.uid == prev.uid && !first_entry) {
            x |= XMIT_SAME_UID;
        } else {
            prev.uid = e.uid;
            if !o.numeric_ids && !self.uids_seen.contains(&e.uid) {
                uid_name_new = true;
                if o.inc_recurse && e.user_name.is_some() {
                    x |= XMIT_USER_NAME_FOLLOWS;
                    send_uname = e.user_name.as_deref();
                }
            }
        }
        if !o.preserve_gid || (e.gid == prev.gid && !first_entry) {
            x |= XMIT_SAME_GID;
        } else {
            prev.gid = e.gid;
            if !o.numeric_ids && !self.gids_seen.contains(&e.gid) {
                gid_name_new = true;
                if o.inc_recurse && e.group_name.is_some() {
                    x |= XMIT_GROUP_NAME_FOLLOWS;
                    send_gname = e.group_name.as_deref();
                }
            }
        }
        if e.mtime == prev.mtime {
            x |= XMIT_SAME_TIME;
        } else {
            prev.mtime = e.mtime;
        }
        if e.mtime_nsec != 0 && p >= 31 {
            x |= XMIT_MOD_NSEC;
        }
        if o.preserve_atimes && !is_dir {
            if e.atime == prev.atime {
                x |= XMIT_SAME_ATIME;
            } else {
                prev.atime = e.atime;
            }
        }
        let mut pseudo_ino = self.pseudo_ino;
        let hl = if !o.preserve_hard_links {
            None
        } else if p >= 28 {
            if is_dir { None } else { e.hardlink().cloned() }
        } else if kind == FileKind::Regular {
            Some(e.hardlink().cloned().unwrap_or_else(|| {
                pseudo_ino += 1;
                HardLink {
                    first: None,
                    dev: PSEUDO_DEV_PRE28,
                    ino: pseudo_ino,
                }
            }))
        } else {
            None
        };
        let mut first_hl = None;
        if let Some(h) = &hl {
            if p >= 30 {
                match h.first {
                    None => x |= XMIT_HLINK_FIRST,
                    Some(i) => first_hl = Some(i),
                }
            } else {
                let w = h.dev.wrapping_add(1);
                if w == prev.hl_dev_wire {
                    if p >= 28 {
                        x |= XMIT_SAME_DEV_PRE30;
                    }
                } else {
                    prev.hl_dev_wire = w;
                }
            }
            x |= XMIT_HLINKED;
        }
        let l1 = common_prefix(&prev.name, &e.name);
        let suffix = e.name.get(l1..).unwrap_or_default();
        if l1 > 0 {
            x |= XMIT_SAME_NAME;
        }
        if suffix.len() > 255 {
            x |= XMIT_LONG_NAME;
        }

        if o.varint_flags {
            encode_varint(
                out,
                if x == 0 {
                    XMIT_EXTENDED_FLAGS as i32
                } else {
                    x as i32
                },
            );
        } else if p >= 28 {
            if x == 0 && !is_dir {
                x |= XMIT_TOP_DIR;
            }
            if x & 0xff00 != 0 || x == 0 {
                x |= XMIT_EXTENDED_FLAGS;
                encode_u16(out, x as u16);
            } else {
                out.push(x as u8);
            }
        } else {
            if x & 0xff == 0 {
                x |= if is_dir { XMIT_LONG_NAME } else { XMIT_TOP_DIR };
            }
            out.push(x as u8);
        }
        if x & XMIT_SAME_NAME != 0 {
            out.push(l1 as u8);
        }
        if x & XMIT_LONG_NAME != 0 {
            encode_varint30(out, p, suffix.len() as i32);
        } else {
            out.push(suffix.len() as u8);
        }
        out.extend_from_slice(suffix);

        let abbreviated = first_hl.is_some_and(|i| i >= self.ndx_start);
        if let Some(i) = first_hl {
            encode_varint(out, i);
        }
        if !abbreviated {
            self.encode_fields(
                out,
                e,
                x,
                kind,
                send_rdev,
                (major, minor),
                &hl,
                (send_uname, send_gname),
            );
        }
        if o.preserve_acls && kind != FileKind::Symlink {
            let plain;
            let acls = match e.extra().acls.as_deref() {
                Some(a) => a,
                None => {
                    plain = super::acls::EntryAcls::default();
                    &plain
                }
            };
            self.acls.encode(out, acls, is_dir);
        }
        out.extend_from_slice(&xattr_field);
        if let Some(l) = new_xattr_list {
            let n = i32::try_from(self.xattr_lists.len()).unwrap_or(i32::MAX);
            self.xattr_lists.insert(l, n);
        }
        prev.name.clone_from(&e.name);
        self.prev = prev;
        self.pseudo_ino = pseudo_ino;
        if uid_name_new {
            self.uids_seen.insert(e.uid);
        }
        if gid_name_new {
            self.gids_seen.insert(e.gid);
        }
        self.count = self.count.saturating_add(1);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn encode_fields(
        &self,
        out: &mut Vec<u8>,
        e: &FileEntry,
        x: u32,
        kind: FileKind,
        send_rdev: bool,
        (major, minor): (u32, u32),
        hl: &Option<HardLink>,
        (uname, gname): (Option<&[u8]>, Option<&[u8]>),
    ) {
        let o = self.opts;
        let p = o.protocol;
        encode_varlong30(out, p, e.size as i64, 3);
        if x & XMIT_SAME_TIME == 0 {
            if p >= 30 {
                encode_varlong(out, e.mtime, 4);
            } else {
                encode_i32(out, e.mtime as u32 as i32);
            }
        }
        if x & XMIT_MOD_NSEC != 0 {
            encode_varint(out, e.mtime_nsec as i32);
        }
        if x & XMIT_SAME_MODE == 0 {
            encode_i32(out, e.mode as i32);
        }
        if o.preserve_atimes && kind != FileKind::Dir && x & XMIT_SAME_ATIME == 0 {
            encode_varlong(out, e.atime, 4);
        }
        for (on, same, id, name) in [
            (o.preserve_uid, XMIT_SAME_UID, e.uid, uname),
            (o.preserve_gid, XMIT_SAME_GID, e.gid, gname),
        ] {
            if on && x & same == 0 {
                if p < 30 {
                    encode_i32(out, id as i32);
                } else {
                    encode_varint(out, id as i32);
                    if let Some(n) = name {
                        push_short_name(out, n);
                    }
                }
            }
        }
        if send_rdev {
            if p < 28 {
                if x & XMIT_SAME_RDEV_PRE28 == 0 {
                    encode_i32(out, makedev32(major, minor) as i32);
                }
            } else {
                if x & XMIT_SAME_RDEV_MAJOR == 0 {
                    encode_varint30(out, p, major as i32);
                }
                if p >= 30 {
                    encode_varint(out, minor as i32);
                } else if x & XMIT_RDEV_MINOR_8_PRE30 != 0 {
                    out.push(minor as u8);
                } else {
                    encode_i32(out, minor as i32);
                }
            }
        }
        if o.preserve_links && kind == FileKind::Symlink {
            let t = e.link_target().unwrap_or_default();
            encode_varint30(out, p, t.len() as i32);
            out.extend_from_slice(t);
        }
        if let Some(h) = hl {
            if p < 30 {
                if x & XMIT_SAME_DEV_PRE30 == 0 {
                    encode_longint(out, h.dev.wrapping_add(1) as i64);
                }
                encode_longint(out, h.ino as i64);
            }
        }
        if o.checksum_len > 0 && (kind == FileKind::Regular || p < 28) {
            let sum = if kind == FileKind::Regular {
                e.checksum().unwrap_or_default()
            } else {
                &[]
            };
            let n = sum.len().min(o.checksum_len);
            out.extend_from_slice(sum.get(..n).unwrap_or_default());
            out.resize(out.len() + (o.checksum_len - n), 0);
        }
    }

    /// Appends the end-of-list marker. The io_error travels in it only when
    /// safe file lists apply (varint flags: the varint after the 0 carries it
    /// then, else 0; byte flags: `0x1004` + varint when non-zero). Below
    /// protocol 30 the caller sends the io_error as an int32 after the id
    /// lists; at 30 without safe lists as `MSG_IO_ERROR`.
    pub fn encode_end(&mut self, out: &mut Vec<u8>, io_error: i32) {
        let o = self.opts;
        if o.varint_flags {
            encode_varint(out, 0);
            encode_varint(out, if o.safe_flist { io_error } else { 0 });
        } else if o.safe_flist && io_error != 0 && o.protocol >= 30 {
            encode_u16(out, (XMIT_EXTENDED_FLAGS | XMIT_IO_ERROR_ENDLIST) as u16);
            encode_varint(out, io_error);
        } else {
            out.push(0);
        }
        if o.inc_recurse {
            self.ndx_start += self.count + 1;
        }
        self.count = 0;
    }
}
