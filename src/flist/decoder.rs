//! The receiving half of the file-list codec.
//!
//! Layer: flist (L2). Uses `wire` only; does no I/O.
//! Mirrors upstream flist.c `recv_file_list` (flags and end marker) and
//! `recv_file_entry`.

use std::collections::HashMap;
use std::sync::Arc;

use super::codec::{FlistOptions, MAX_NAME, MAX_XATTR_NAME, Prev, splitdev32, take};
use super::entry::{
    EntryExtra, FileEntry, FileKind, HardLink, XATTR_DIGEST_LEN, XATTR_MAX_FULL_DATUM,
    XMIT_EXTENDED_FLAGS, XMIT_GROUP_NAME_FOLLOWS, XMIT_HLINK_FIRST, XMIT_HLINKED,
    XMIT_IO_ERROR_ENDLIST, XMIT_LONG_NAME, XMIT_MOD_NSEC, XMIT_NO_CONTENT_DIR,
    XMIT_RDEV_MINOR_8_PRE30, XMIT_SAME_ATIME, XMIT_SAME_DEV_PRE30, XMIT_SAME_GID, XMIT_SAME_MODE,
    XMIT_SAME_NAME, XMIT_SAME_RDEV_MAJOR, XMIT_SAME_RDEV_PRE28, XMIT_SAME_TIME, XMIT_SAME_UID,
    XMIT_TOP_DIR, XMIT_USER_NAME_FOLLOWS, Xattr, XattrValue,
};
use crate::wire::{DecodeError, Decoded, Limits, ReadError, Reader, check_len};

/// What one call decoded, before it is committed.
enum Step {
    End(i32),
    Entry {
        entry: Box<FileEntry>,
        prev: Box<Prev>,
        uname: Option<(u32, Arc<[u8]>)>,
        gname: Option<(u32, Arc<[u8]>)>,
        /// A literal xattr list to remember under the next index.
        xattr_list: Option<Vec<Xattr>>,
        /// Literal ACLs to remember under the next indexes.
        new_acls: super::acls::NewAcls,
    },
}

/// Most bytes (names plus real value lengths) one xattr list may announce
/// (upstream `MAX_XATTR_LIST_BYTES`).
const MAX_XATTR_LIST_BYTES: u64 = 512 * 1024 * 1024;

/// Decodes file-list entries (the receiving side).
///
/// Create one per session. Lists start at ndx 0 (1 with incremental
/// recursion) and each end marker advances `ndx_start` as upstream numbers
/// sub-lists; [`set_ndx_start`](Self::set_ndx_start) overrides that.
///
/// With `-H` at protocol >= 30 the decoder keeps a copy of every entry of
/// the current list in sending order, because an abbreviated hard-link
/// follower names its group's first entry by that position and takes all
/// its attributes from it. The copies are dropped when the next list starts.
/// With incremental recursion user and group names seen inline are
/// remembered and filled into later entries with the same id.
#[derive(Debug, Clone)]
pub struct FileListDecoder {
    opts: FlistOptions,
    limits: Limits,
    prev: Prev,
    ndx_start: i32,
    count: i32,
    sent_order: Vec<FileEntry>,
    user_names: HashMap<u32, Arc<[u8]>>,
    group_names: HashMap<u32, Arc<[u8]>>,
    io_error: i32,
    /// `-X`: the literal xattr lists received so far, by session index.
    xattr_lists: Vec<Vec<Xattr>>,
    /// `-A`: the ACLs received so far, by session index.
    acls: super::acls::AclDecoder,
}

fn invalid(what: &'static str, value: i64) -> ReadError {
    ReadError::Malformed(DecodeError::Invalid { what, value })
}

fn protocol(msg: &'static str) -> ReadError {
    ReadError::Malformed(DecodeError::Protocol(msg))
}

impl FileListDecoder {
    /// A fresh decoder for a session with these options.
    #[must_use]
    pub fn new(opts: FlistOptions, limits: Limits) -> Self {
        FileListDecoder {
            opts,
            limits,
            prev: Prev::default(),
            ndx_start: i32::from(opts.inc_recurse),
            count: 0,
            sent_order: Vec::new(),
            user_names: HashMap::new(),
            group_names: HashMap::new(),
            io_error: 0,
            xattr_lists: Vec::new(),
            acls: super::acls::AclDecoder::default(),
        }
    }

    /// Sets the `ndx_start` of the list about to be received and starts a
    /// new list (hard-link references are checked against it).
    pub fn set_ndx_start(&mut self, start: i32) {
        self.ndx_start = start;
        self.count = 0;
        self.sent_order.clear();
    }

    /// The `ndx_start` of the current list.
    #[must_use]
    pub fn ndx_start(&self) -> i32 {
        self.ndx_start
    }

    /// The io_error of the last end marker (0 if none carried one).
    #[must_use]
    pub fn io_error(&self) -> i32 {
        self.io_error
    }

    /// Decodes the next entry from the start of `buf`; `None` is the end of
    /// the list. Nothing changes unless the result is `Done`.
    ///
    /// # Errors
    /// [`DecodeError`] for malformed input: unknown mode types, empty or
    /// over-long names, bad hard-link references, an io_error end marker
    /// without safe file lists, limits exceeded.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Decoded<Option<FileEntry>>, DecodeError> {
        let mut r = Reader::new(buf);
        let step = match self.decode_step(&mut r) {
            Ok(s) => s,
            Err(e) => return e.into_decoded(),
        };
        let used = r.used();
        let value = match step {
            Step::End(io_error) => {
                self.io_error = io_error;
                if self.opts.inc_recurse {
                    self.ndx_start = self.ndx_start.saturating_add(self.count).saturating_add(1);
                }
                self.count = 0;
                self.sent_order.clear();
                None
            }
            Step::Entry {
                entry,
                prev,
                uname,
                gname,
                xattr_list,
                new_acls,
            } => {
                self.prev = *prev;
                self.acls.commit(new_acls);
                if let Some(l) = xattr_list {
                    self.xattr_lists.push(l);
                }
                if let Some((id, n)) = uname {
                    self.user_names.insert(id, n);
                }
                if let Some((id, n)) = gname {
                    self.group_names.insert(id, n);
                }
                self.count = self.count.saturating_add(1);
                if self.opts.preserve_hard_links && self.opts.protocol >= 30 {
                    self.sent_order.push((*entry).clone());
                }
                Some(*entry)
            }
        };
        Ok(Decoded::Done { value, used })
    }

    fn decode_step(&self, r: &mut Reader<'_>) -> Result<Step, ReadError> {
        let o = self.opts;
        let p = o.protocol;
        let x: u32 = if o.varint_flags {
            let f = r.varint()?;
            if f == 0 {
                return Ok(Step::End(r.varint()?));
            }
            f as u32
        } else {
            let mut f = u32::from(r.u8()?);
            if f == 0 {
                return Ok(Step::End(0));
            }
            if p >= 28 && f & XMIT_EXTENDED_FLAGS != 0 {
                f |= u32::from(r.u8()?) << 8;
            }
            if p >= 28 && f == XMIT_EXTENDED_FLAGS | XMIT_IO_ERROR_ENDLIST {
                if !o.safe_flist {
                    return Err(protocol("io_error end marker without safe file lists"));
                }
                return Ok(Step::End(r.varint()?));
            }
            f
        };
        if self.count as usize >= self.limits.max_flist_entries {
            return Err(ReadError::Malformed(DecodeError::TooLong {
                what: "file list",
                len: self.count as u64 + 1,
                max: self.limits.max_flist_entries as u64,
            }));
        }
        let mut prev = self.prev.clone();
        let l1 = if x & XMIT_SAME_NAME != 0 {
            usize::from(r.u8()?)
        } else {
            0
        };
        let l2 = if x & XMIT_LONG_NAME != 0 {
            r.varint30(p)?
        } else {
            i32::from(r.u8()?)
        };
        let l2 = usize::try_from(l2).map_err(|_| invalid("name length", i64::from(l2)))?;
        let Some(prefix) = prev.name.get(..l1) else {
            return Err(protocol("name prefix longer than the previous name"));
        };
        check_len(
            "file name",
            (l1 + l2) as u64,
            self.limits.max_name_len.min(MAX_NAME),
        )?;
        let mut name = Vec::with_capacity(l1 + l2);
        name.extend_from_slice(prefix);
        name.extend_from_slice(take(r, l2)?);
        if name.is_empty() {
            return Err(protocol("empty file name"));
        }
        if name.contains(&0) {
            return Err(protocol("file name contains a NUL byte"));
        }
        prev.name.clone_from(&name);

        let mut hl_first = None;
        if p >= 30 && x & XMIT_HLINKED != 0 && x & XMIT_HLINK_FIRST == 0 {
            let first = r.varint()?;
            hl_first = Some(first);
            if first < 0 || first >= self.ndx_start.saturating_add(self.count) {
                return Err(invalid("hard-link reference", i64::from(first)));
            }
            if first >= self.ndx_start {
                let pos = (first - self.ndx_start) as usize;
                let Some(f) = self.sent_order.get(pos) else {
                    return Err(protocol("abbreviated hard-link entry without -H"));
                };
                let step = self.abbreviated(name, first, f, prev);
                return self.with_xattrs(r, step);
            }
        }

        let size = r.varlong30(p, 3)?;
        let size = u64::try_from(size).map_err(|_| invalid("file size", size))?;
        if x & XMIT_SAME_TIME == 0 {
            prev.mtime = if p >= 30 {
                r.varlong(4)?
            } else {
                i64::from(r.i32()? as u32)
            };
        }
        let mut mtime_nsec = 0;
        if x & XMIT_MOD_NSEC != 0 {
            let n = r.varint()?;
            mtime_nsec = u32::try_from(n)
                .ok()
                .filter(|&n| n <= 999_999_999)
                .ok_or(invalid("mtime nanoseconds", i64::from(n)))?;
        }
        if x & XMIT_SAME_MODE == 0 {
            prev.mode = r.i32()? as u32;
        }
        let kind =
            FileKind::from_mode(prev.mode).ok_or(invalid("file mode", i64::from(prev.mode)))?;
        let is_dir = kind == FileKind::Dir;
        let mut e = FileEntry {
            name,
            mode: prev.mode,
            size,
            mtime: prev.mtime,
            mtime_nsec,
            ..FileEntry::default()
        };
        if o.preserve_atimes && !is_dir {
            if x & XMIT_SAME_ATIME == 0 {
                prev.atime = r.varlong(4)?;
            }
            e.atime = prev.atime;
        }
        let mut uname = None;
        let mut gname = None;
        if o.preserve_uid && x & XMIT_SAME_UID == 0 {
            prev.uid = if p < 30 {
                r.i32()? as u32
            } else {
                r.varint()? as u32
            };
            if p >= 30 && x & XMIT_USER_NAME_FOLLOWS != 0 {
                let n = usize::from(r.u8()?);
                uname = Some((prev.uid, Arc::<[u8]>::from(take(r, n)?)));
            }
        }
        if o.preserve_gid && x & XMIT_SAME_GID == 0 {
            prev.gid = if p < 30 {
                r.i32()? as u32
            } else {
                r.varint()? as u32
            };
            if p >= 30 && x & XMIT_GROUP_NAME_FOLLOWS != 0 {
                let n = usize::from(r.u8()?);
                gname = Some((prev.gid, Arc::<[u8]>::from(take(r, n)?)));
            }
        }
        e.uid = prev.uid;
        e.gid = prev.gid;
        e.user_name = match &uname {
            Some((_, n)) => Some(n.clone()),
            None if o.preserve_uid => self.user_names.get(&e.uid).cloned(),
            None => None,
        };
        e.group_name = match &gname {
            Some((_, n)) => Some(n.clone()),
            None if o.preserve_gid => self.group_names.get(&e.gid).cloned(),
            None => None,
        };
        if (o.preserve_devices && kind.is_device())
            || (o.preserve_specials && kind.is_special() && p < 31)
        {
            let (major, minor) = if p < 28 {
                if x & XMIT_SAME_RDEV_PRE28 == 0 {
                    prev.rdev_pre28 = r.i32()? as u32;
                }
                splitdev32(prev.rdev_pre28)
            } else {
                if x & XMIT_SAME_RDEV_MAJOR == 0 {
                    prev.rdev_major = r.varint30(p)? as u32;
                }
                let minor = if p >= 30 {
                    r.varint()? as u32
                } else if x & XMIT_RDEV_MINOR_8_PRE30 != 0 {
                    u32::from(r.u8()?)
                } else {
                    r.i32()? as u32
                };
                (prev.rdev_major, minor)
            };
            if kind.is_device() {
                let x = e.extra_mut();
                x.rdev_major = major;
                x.rdev_minor = minor;
            }
        } else if p < 28 {
            prev.rdev_pre28 = 0;
        }
        if o.preserve_links && kind == FileKind::Symlink {
            let n = r.varint30(p)?;
            let n =
                usize::try_from(n).map_err(|_| invalid("symlink target length", i64::from(n)))?;
            check_len(
                "symlink target",
                n as u64,
                self.limits.max_link_len.min(MAX_NAME),
            )?;
            e.extra_mut().link_target = Some(take(r, n)?.to_vec());
        }
        if o.preserve_hard_links {
            if p >= 30 {
                if x & XMIT_HLINKED != 0 {
                    e.extra_mut().hardlink = Some(HardLink {
                        first: hl_first,
                        dev: 0,
                        ino: 0,
                    });
                }
            } else if x & XMIT_HLINKED != 0 || (p < 28 && kind == FileKind::Regular) {
                if !(p >= 28 && x & XMIT_SAME_DEV_PRE30 != 0) {
                    prev.hl_dev_wire = r.longint()? as u64;
                }
                let ino = r.longint()? as u64;
                e.extra_mut().hardlink = Some(HardLink {
                    first: None,
                    dev: prev.hl_dev_wire.wrapping_sub(1),
                    ino,
                });
            }
        }
        if o.checksum_len > 0 && (kind == FileKind::Regular || p < 28) {
            let sum = take(r, o.checksum_len)?;
            if kind == FileKind::Regular {
                e.extra_mut().checksum = Some(sum.to_vec());
            }
        }
        if is_dir {
            e.xflags = x & if p >= 30 {
                XMIT_TOP_DIR | XMIT_NO_CONTENT_DIR
            } else {
                XMIT_TOP_DIR
            };
        }
        self.with_xattrs(
            r,
            Step::Entry {
                entry: Box::new(e),
                prev: Box::new(prev),
                uname,
                gname,
                xattr_list: None,
                new_acls: (None, None),
            },
        )
    }

    /// Reads the xattr field that ends every entry with `-X` into `step`.
    /// With `-A` it first reads the ACLs of a non-symlink entry.
    fn with_xattrs(&self, r: &mut Reader<'_>, mut step: Step) -> Result<Step, ReadError> {
        if self.opts.preserve_acls {
            if let Step::Entry {
                entry, new_acls, ..
            } = &mut step
            {
                if entry.kind() != Some(FileKind::Symlink) {
                    let (acls, new) = self.acls.decode(r, entry.mode, &self.limits)?;
                    entry.extra_mut().acls = Some(Box::new(acls));
                    *new_acls = new;
                }
            }
        }
        if !self.opts.preserve_xattrs {
            return Ok(step);
        }
        let (list, literal) = self.read_xattrs(r)?;
        if let Step::Entry {
            entry, xattr_list, ..
        } = &mut step
        {
            if literal {
                *xattr_list = Some(list.clone());
            }
            entry.extra_mut().xattrs = Some(list);
        }
        Ok(step)
    }

    /// One xattr field (upstream xattrs.c `receive_xattr`): an index of a
    /// list received before, or a literal list. True when literal.
    fn read_xattrs(&self, r: &mut Reader<'_>) -> Result<(Vec<Xattr>, bool), ReadError> {
        let ndx = r.varint()?;
        if ndx != 0 {
            let list = usize::try_from(ndx - 1)
                .ok()
                .and_then(|i| self.xattr_lists.get(i))
                .ok_or(invalid("xattr list index", i64::from(ndx)))?;
            return Ok((list.clone(), false));
        }
        let count = r.varint()?;
        let count = usize::try_from(count).map_err(|_| invalid("xattr count", i64::from(count)))?;
        check_len("xattr list", count as u64, self.limits.max_xattr_count)?;
        let mut list = Vec::with_capacity(count.min(64));
        let mut total = 0u64;
        for _ in 0..count {
            let name_len = r.varint()?;
            let value_len = r.varint()?;
            let name_len = usize::try_from(name_len)
                .ok()
                .filter(|n| *n >= 1)
                .ok_or(invalid("xattr name length", i64::from(name_len)))?;
            check_len("xattr name", name_len as u64, MAX_XATTR_NAME)?;
            let value_len = u64::try_from(value_len)
                .map_err(|_| invalid("xattr value length", i64::from(value_len)))?;
            check_len("xattr value", value_len, self.limits.max_xattr_value_len)?;
            total += name_len as u64 + value_len;
            check_len("xattr list", total, MAX_XATTR_LIST_BYTES as usize)?;
            let raw = take(r, name_len)?;
            let Some((&0, name)) = raw.split_last() else {
                return Err(protocol("xattr name without its trailing NUL"));
            };
            if name.contains(&0) {
                return Err(protocol("xattr name contains a NUL byte"));
            }
            let value = if value_len > XATTR_MAX_FULL_DATUM as u64 {
                let mut digest = [0u8; XATTR_DIGEST_LEN];
                digest.copy_from_slice(take(r, XATTR_DIGEST_LEN)?);
                XattrValue::Abbrev {
                    len: value_len,
                    digest,
                }
            } else {
                XattrValue::Full(take(r, value_len as usize)?.to_vec())
            };
            list.push(Xattr {
                name: name.to_vec(),
                value,
            });
        }
        Ok((list, true))
    }

    fn abbreviated(&self, name: Vec<u8>, first: i32, f: &FileEntry, mut prev: Prev) -> Step {
        let o = self.opts;
        let kind = f.kind();
        let is_dir = kind == Some(FileKind::Dir);
        prev.mode = f.mode;
        prev.mtime = f.mtime;
        if o.preserve_atimes && !is_dir {
            prev.atime = f.atime;
        }
        if o.preserve_uid {
            prev.uid = f.uid;
        }
        if o.preserve_gid {
            prev.gid = f.gid;
        }
        let is_dev = kind.is_some_and(FileKind::is_device);
        let entry = FileEntry {
            name,
            mode: f.mode,
            size: f.size,
            mtime: f.mtime,
            mtime_nsec: f.mtime_nsec,
            atime: if o.preserve_atimes && !is_dir {
                f.atime
            } else {
                0
            },
            uid: prev.uid,
            gid: prev.gid,
            user_name: if o.preserve_uid {
                f.user_name.clone()
            } else {
                None
            },
            group_name: if o.preserve_gid {
                f.group_name.clone()
            } else {
                None
            },
            xflags: 0,
            extra: Some(Box::new(EntryExtra {
                rdev_major: if o.preserve_devices && is_dev {
                    f.rdev().0
                } else {
                    0
                },
                rdev_minor: if o.preserve_devices && is_dev {
                    f.rdev().1
                } else {
                    0
                },
                link_target: if o.preserve_links {
                    f.link_target().map(<[u8]>::to_vec)
                } else {
                    None
                },
                hardlink: Some(HardLink {
                    first: Some(first),
                    dev: 0,
                    ino: 0,
                }),
                checksum: if o.checksum_len > 0 {
                    f.checksum().map(<[u8]>::to_vec)
                } else {
                    None
                },
                xattrs: None,
                acls: None,
            })),
        };
        Step::Entry {
            entry: Box::new(entry),
            prev: Box::new(prev),
            uname: None,
            gname: None,
            xattr_list: None,
            new_acls: (None, None),
        }
    }
}
