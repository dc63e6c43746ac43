//! POSIX ACLs in the file list (`-A`): the condensed form rsync sends after
//! an entry's other fields (before its xattrs), and the rules both sides
//! apply to it.
//!
//! Layer: flist (L2). Uses `wire` only; does no I/O.
//! Mirrors upstream acls.c `send_acl`, `send_rsync_acl`, `send_ida_entries`,
//! `recv_rsync_acl`, `recv_ida_entries`, `rsync_acl_strip_perms`,
//! `rsync_acl_equal_enough` and `change_sacl_perms`.
//!
//! Every non-symlink entry carries its access ACL, a directory also its
//! default ACL; each is `varint(index + 1)` of an identical ACL sent before
//! (one numbering per type), or 0 and the literal ACL: a flags byte
//! (`XMIT_*`), the permission objects it names (varints), and with
//! `XMIT_NAME_LIST` a count and `(varint id, varint perms << 2 | flags)`
//! per named user or group (users first, each kind by increasing id).
//! The access ACL goes without the bits the mode already carries.
//!
//! ```
//! use ferrsync::flist::acls::{AclDecoder, AclEncoder, EntryAcls, IdAccess, RsyncAcl};
//! use ferrsync::wire::Limits;
//! let acl = EntryAcls {
//!     access: RsyncAcl {
//!         names: vec![IdAccess { id: 1000, perms: 6, is_user: true }],
//!         ..RsyncAcl::default()
//!     },
//!     default: None,
//!     id_names: Vec::new(),
//! };
//! let mut out = Vec::new();
//! let mut enc = AclEncoder::default();
//! enc.encode(&mut out, &acl, false);
//! let dec = AclDecoder::default();
//! let mut r = ferrsync::wire::Reader::new(&out);
//! let (got, _new) = dec.decode(&mut r, 0o100_664, &Limits::default()).unwrap();
//! assert_eq!(got.access.names, acl.access.names);
//! assert_eq!(got.access.mask_obj, Some(6)); // the mode's group bits
//! ```

use std::collections::HashMap;

use crate::wire::{DecodeError, Limits, ReadError, Reader, check_len, encode_varint};

/// Flags byte: the owner's permissions follow.
pub const XMIT_USER_OBJ: u8 = 1 << 0;
/// Flags byte: the owning group's permissions follow.
pub const XMIT_GROUP_OBJ: u8 = 1 << 1;
/// Flags byte: the mask follows.
pub const XMIT_MASK_OBJ: u8 = 1 << 2;
/// Flags byte: the others' permissions follow.
pub const XMIT_OTHER_OBJ: u8 = 1 << 3;
/// Flags byte: the named users and groups follow.
pub const XMIT_NAME_LIST: u8 = 1 << 4;

/// Low bits of a named entry's access varint: a name follows (only with
/// incremental recursion).
const XFLAG_NAME_FOLLOWS: u32 = 1;
/// Low bits of a named entry's access varint: the id is a user's.
const XFLAG_NAME_IS_USER: u32 = 2;

/// Most named entries one ACL may carry (upstream `MAX_WIRE_ACL_COUNT`).
pub const MAX_WIRE_ACL_COUNT: usize = 65_536;

/// Valid permission bits (read 4, write 2, execute 1).
const PERM_BITS: u32 = 7;

/// One named user or group of an ACL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdAccess {
    /// The uid or gid.
    pub id: u32,
    /// rwx bits (0..=7).
    pub perms: u8,
    /// A user (`ACL_USER`), else a group (`ACL_GROUP`).
    pub is_user: bool,
}

/// One ACL as rsync holds it: each permission object may be absent
/// (`NO_ENTRY`), plus the named entries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RsyncAcl {
    /// `ACL_USER_OBJ`.
    pub user_obj: Option<u8>,
    /// `ACL_GROUP_OBJ`.
    pub group_obj: Option<u8>,
    /// `ACL_MASK`.
    pub mask_obj: Option<u8>,
    /// `ACL_OTHER`.
    pub other_obj: Option<u8>,
    /// Named users, then named groups, each by increasing id.
    pub names: Vec<IdAccess>,
}

/// The ACLs of one list entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryAcls {
    /// The access ACL (condensed as sent: without what the mode carries).
    pub access: RsyncAcl,
    /// The default ACL of a directory (empty when it has none); `None`
    /// for other entries.
    pub default: Option<RsyncAcl>,
    /// Sending side: the names of the ids the ACLs use, `(is_user, id,
    /// name)`, for the id lists after the file list. Not sent here.
    pub id_names: Vec<(bool, u32, Vec<u8>)>,
}

impl RsyncAcl {
    /// The ACL a file without one has: its mode's three permission sets.
    #[must_use]
    pub fn from_mode(mode: u32) -> Self {
        RsyncAcl {
            user_obj: Some(((mode >> 6) & 7) as u8),
            group_obj: Some(((mode >> 3) & 7) as u8),
            other_obj: Some((mode & 7) as u8),
            ..RsyncAcl::default()
        }
    }

    /// Whether the ACL has no entry at all (an absent default ACL).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.user_obj.is_none()
            && self.group_obj.is_none()
            && self.mask_obj.is_none()
            && self.other_obj.is_none()
            && self.names.is_empty()
    }

    /// Puts the named entries in rsync's (and the kernel's) order: users
    /// first, each kind by increasing id.
    pub fn sort_names(&mut self) {
        self.names.sort_by_key(|n| (!n.is_user, n.id));
    }

    /// The sending side's condensed access ACL: drops what the mode
    /// carries (upstream `rsync_acl_strip_perms`).
    #[must_use]
    pub fn stripped(mut self, mode: u32) -> Self {
        self.user_obj = None;
        if self.mask_obj.is_none() {
            self.group_obj = None;
        } else {
            let group = ((mode >> 3) & 7) as u8;
            if self.group_obj == Some(group) {
                self.group_obj = None;
            }
            if !self.names.is_empty() && self.mask_obj == Some(group) {
                self.mask_obj = None;
            }
        }
        self.other_obj = None;
        self
    }

    /// Whether a local access ACL (`self`, complete) has the extended
    /// entries of a received condensed one, for a file getting `mode`
    /// (upstream `rsync_acl_equal_enough`); the rest is the mode's job.
    #[must_use]
    pub fn equal_enough(&self, recv: &RsyncAcl, mode: u32) -> bool {
        if self.mask_obj.is_some() != recv.mask_obj.is_some() {
            return false;
        }
        if self.mask_obj.is_some() {
            match recv.group_obj {
                None if self.group_obj != Some(((mode >> 3) & 7) as u8) => return false,
                Some(g) if self.group_obj != Some(g) => return false,
                _ => {}
            }
        }
        self.names == recv.names
    }
}

/// An ACL tag of the kernel's form (`ACL_USER_OBJ` ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AclTag {
    /// The owner.
    UserObj,
    /// A named user.
    User,
    /// The owning group.
    GroupObj,
    /// A named group.
    Group,
    /// The mask.
    Mask,
    /// Others.
    Other,
}

/// A system ACL entry: (tag, perms, id; the id is 0 for the objects).
pub type SysEntry = (AclTag, u8, u32);

/// The system ACL rsync's receiver writes for a received ACL (upstream
/// `pack_smb_acl`, and for an access ACL `change_sacl_perms` with the
/// new `mode` and the item's current mode `old_mode`), in the kernel's
/// order.
#[must_use]
pub fn to_system(recv: &RsyncAcl, access: Option<(u32, u32)>) -> Vec<SysEntry> {
    let mut v = Vec::with_capacity(recv.names.len() + 4);
    let mut user = recv.user_obj.unwrap_or(0);
    let mut group = recv.group_obj.unwrap_or(0);
    let mut mask = recv.mask_obj;
    let mut other = recv.other_obj.unwrap_or(0);
    if let Some((mut mode, old_mode)) = access {
        const S_ISUID: u32 = 0o4000;
        const S_ISGID: u32 = 0o2000;
        const S_ISVTX: u32 = 0o1000;
        if mode & 0o170_000 == 0o040_000 {
            if mode & S_ISVTX != 0 && old_mode & S_ISVTX == 0 {
                mode &= !0o077;
            }
        } else if (old_mode & S_ISUID != 0 && mode & S_ISUID == 0)
            || (old_mode & S_ISGID != 0 && mode & S_ISGID == 0)
        {
            mode &= !0o077;
        }
        user = ((mode >> 6) & 7) as u8;
        if recv.group_obj.is_none() {
            group = ((mode >> 3) & 7) as u8;
        }
        if mask.is_some() {
            mask = Some(((mode >> 3) & 7) as u8);
        }
        other = (mode & 7) as u8;
    }
    v.push((AclTag::UserObj, user, 0));
    let mut names = recv.names.clone();
    names.sort_by_key(|n| (!n.is_user, n.id));
    for n in names.iter().filter(|n| n.is_user) {
        v.push((AclTag::User, n.perms, n.id));
    }
    v.push((AclTag::GroupObj, group, 0));
    for n in names.iter().filter(|n| !n.is_user) {
        v.push((AclTag::Group, n.perms, n.id));
    }
    if let Some(m) = mask {
        v.push((AclTag::Mask, m, 0));
    }
    v.push((AclTag::Other, other, 0));
    v
}

/// An ACL of the kernel's entries (upstream `unpack_smb_acl`): the first
/// of each object kept, named entries sorted users first.
#[must_use]
pub fn from_system(entries: &[SysEntry]) -> RsyncAcl {
    let mut a = RsyncAcl::default();
    for &(tag, perms, id) in entries {
        let perms = perms & 7;
        match tag {
            AclTag::UserObj => {
                a.user_obj.get_or_insert(perms);
            }
            AclTag::GroupObj => {
                a.group_obj.get_or_insert(perms);
            }
            AclTag::Mask => {
                a.mask_obj.get_or_insert(perms);
            }
            AclTag::Other => {
                a.other_obj.get_or_insert(perms);
            }
            AclTag::User | AclTag::Group => a.names.push(IdAccess {
                id,
                perms,
                is_user: tag == AclTag::User,
            }),
        }
    }
    a.sort_names();
    a
}

/// The sending side's numbering of the ACLs sent so far (one per type).
#[derive(Debug, Clone, Default)]
pub struct AclEncoder {
    access: HashMap<RsyncAcl, i32>,
    default: HashMap<RsyncAcl, i32>,
}

fn encode_one(out: &mut Vec<u8>, acl: &RsyncAcl, known: &mut HashMap<RsyncAcl, i32>) {
    if let Some(&ndx) = known.get(acl) {
        encode_varint(out, ndx.saturating_add(1));
        return;
    }
    encode_varint(out, 0);
    let mut flags = 0u8;
    for (v, f) in [
        (acl.user_obj, XMIT_USER_OBJ),
        (acl.group_obj, XMIT_GROUP_OBJ),
        (acl.mask_obj, XMIT_MASK_OBJ),
        (acl.other_obj, XMIT_OTHER_OBJ),
    ] {
        if v.is_some() {
            flags |= f;
        }
    }
    if !acl.names.is_empty() {
        flags |= XMIT_NAME_LIST;
    }
    out.push(flags);
    for v in [acl.user_obj, acl.group_obj, acl.mask_obj, acl.other_obj]
        .into_iter()
        .flatten()
    {
        encode_varint(out, i32::from(v));
    }
    if !acl.names.is_empty() {
        encode_varint(out, i32::try_from(acl.names.len()).unwrap_or(i32::MAX));
        for n in &acl.names {
            encode_varint(out, n.id as i32);
            let mut x = u32::from(n.perms) << 2;
            if n.is_user {
                x |= XFLAG_NAME_IS_USER;
            }
            encode_varint(out, x as i32);
        }
    }
    let n = i32::try_from(known.len()).unwrap_or(i32::MAX);
    known.insert(acl.clone(), n);
}

impl AclEncoder {
    /// Appends the ACL field of one non-symlink entry: the access ACL and,
    /// for a directory, the default ACL (empty when `acls.default` is
    /// `None`).
    pub fn encode(&mut self, out: &mut Vec<u8>, acls: &EntryAcls, is_dir: bool) {
        encode_one(out, &acls.access, &mut self.access);
        if is_dir {
            let empty = RsyncAcl::default();
            encode_one(
                out,
                acls.default.as_ref().unwrap_or(&empty),
                &mut self.default,
            );
        }
    }
}

/// The receiving side's ACLs received so far, by index (one list per
/// type).
#[derive(Debug, Clone, Default)]
pub struct AclDecoder {
    access: Vec<RsyncAcl>,
    default: Vec<RsyncAcl>,
}

/// Literal ACLs one entry brought, to remember once it is committed:
/// (access, default).
pub type NewAcls = (Option<RsyncAcl>, Option<RsyncAcl>);

fn bad(what: &'static str, value: i64) -> ReadError {
    ReadError::Malformed(DecodeError::Invalid { what, value })
}

fn perm_bits(v: i32, what: &'static str) -> Result<u8, ReadError> {
    u32::try_from(v)
        .ok()
        .filter(|v| v & !PERM_BITS == 0)
        .map(|v| v as u8)
        .ok_or(bad(what, i64::from(v)))
}

fn decode_one(
    r: &mut Reader<'_>,
    known: &[RsyncAcl],
    access_mode: Option<u32>,
    limits: &Limits,
) -> Result<(RsyncAcl, bool), ReadError> {
    let ndx = r.varint()?;
    if ndx != 0 {
        let acl = usize::try_from(ndx - 1)
            .ok()
            .and_then(|i| known.get(i))
            .ok_or(bad("ACL index", i64::from(ndx)))?;
        return Ok((acl.clone(), false));
    }
    let flags = r.u8()?;
    let mut a = RsyncAcl::default();
    if flags & XMIT_USER_OBJ != 0 {
        a.user_obj = Some(perm_bits(r.varint()?, "ACL permissions")?);
    }
    if flags & XMIT_GROUP_OBJ != 0 {
        a.group_obj = Some(perm_bits(r.varint()?, "ACL permissions")?);
    }
    if flags & XMIT_MASK_OBJ != 0 {
        a.mask_obj = Some(perm_bits(r.varint()?, "ACL permissions")?);
    }
    if flags & XMIT_OTHER_OBJ != 0 {
        a.other_obj = Some(perm_bits(r.varint()?, "ACL permissions")?);
    }
    let mut computed = 0u8;
    if flags & XMIT_NAME_LIST != 0 {
        let count = r.varint()?;
        let count = u64::try_from(count).map_err(|_| bad("ACL count", i64::from(count)))?;
        let count = check_len(
            "ACL count",
            count,
            MAX_WIRE_ACL_COUNT.min(limits.max_flist_entries.max(1)),
        )?;
        a.names.reserve(count.min(64));
        for _ in 0..count {
            let id = r.varint()? as u32;
            let x = r.varint()?;
            let x = u32::try_from(x).map_err(|_| bad("ACL permissions", i64::from(x)))?;
            let perms = perm_bits((x >> 2) as i32, "ACL permissions")?;
            if x & XFLAG_NAME_FOLLOWS != 0 {
                // Only sent with incremental recursion, which we never
                // negotiate; read past it.
                let len = usize::from(r.u8()?);
                super::codec::take(r, len)?;
            }
            computed |= perms;
            a.names.push(IdAccess {
                id,
                perms,
                is_user: x & XFLAG_NAME_IS_USER != 0,
            });
        }
    }
    if !a.names.is_empty() && a.mask_obj.is_none() {
        a.mask_obj = Some(match access_mode {
            Some(mode) => ((mode >> 3) & 7) as u8,
            None => computed | a.group_obj.unwrap_or(0),
        });
    }
    Ok((a, true))
}

impl AclDecoder {
    /// Reads the ACL field of one non-symlink entry with `mode`. Returns
    /// the entry's ACLs and the literal ones to [`commit`](Self::commit)
    /// once the entry is accepted (nothing changes before).
    ///
    /// # Errors
    /// An index naming no ACL received before, permission values out of
    /// range, more than [`MAX_WIRE_ACL_COUNT`] named entries, or input cut
    /// short ([`ReadError::NeedMore`]).
    pub fn decode(
        &self,
        r: &mut Reader<'_>,
        mode: u32,
        limits: &Limits,
    ) -> Result<(EntryAcls, NewAcls), ReadError> {
        let (access, lit_a) = decode_one(r, &self.access, Some(mode), limits)?;
        let is_dir = mode & 0o170_000 == 0o040_000;
        let (default, lit_d) = if is_dir {
            let (d, lit) = decode_one(r, &self.default, None, limits)?;
            (Some(d), lit)
        } else {
            (None, false)
        };
        let new = (
            lit_a.then(|| access.clone()),
            if lit_d { default.clone() } else { None },
        );
        Ok((
            EntryAcls {
                access,
                default,
                id_names: Vec::new(),
            },
            new,
        ))
    }

    /// Remembers the literal ACLs of an accepted entry under the next
    /// indexes.
    pub fn commit(&mut self, new: NewAcls) {
        if let Some(a) = new.0 {
            self.access.push(a);
        }
        if let Some(d) = new.1 {
            self.default.push(d);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    fn named(id: u32, perms: u8, is_user: bool) -> IdAccess {
        IdAccess { id, perms, is_user }
    }

    fn entry(access: RsyncAcl, default: Option<RsyncAcl>) -> EntryAcls {
        EntryAcls {
            access,
            default,
            id_names: Vec::new(),
        }
    }

    #[test]
    fn round_trip_with_indexes_and_cut_offs() {
        let rich = RsyncAcl {
            group_obj: Some(5),
            names: vec![
                named(1000, 7, true),
                named(1001, 4, true),
                named(50, 6, false),
            ],
            ..RsyncAcl::default()
        };
        let def = RsyncAcl {
            user_obj: Some(7),
            group_obj: Some(5),
            mask_obj: Some(7),
            other_obj: Some(0),
            names: vec![named(1000, 7, true)],
        };
        let items = [
            (entry(RsyncAcl::default(), None), 0o100_644),
            (entry(rich.clone(), None), 0o100_770),
            (entry(RsyncAcl::default(), Some(def.clone())), 0o040_755),
            (entry(rich.clone(), None), 0o100_770),
            (
                entry(RsyncAcl::default(), Some(RsyncAcl::default())),
                0o040_700,
            ),
            (entry(RsyncAcl::default(), Some(def.clone())), 0o040_755),
        ];
        let mut enc = AclEncoder::default();
        let mut bufs = Vec::new();
        for (e, mode) in &items {
            let mut out = Vec::new();
            enc.encode(&mut out, e, mode & 0o170_000 == 0o040_000);
            bufs.push(out);
        }
        // Plain file: literal, no flags; repeats go by index.
        assert_eq!(bufs[0], [0, 0]);
        assert_eq!(bufs[3], [2]);
        assert_eq!(bufs[5], [1, 1]);
        let mut dec = AclDecoder::default();
        for ((e, mode), buf) in items.iter().zip(&bufs) {
            for cut in 0..buf.len() {
                let mut r = Reader::new(&buf[..cut]);
                assert!(matches!(
                    dec.decode(&mut r, *mode, &Limits::default()),
                    Err(ReadError::NeedMore(_))
                ));
            }
            let mut r = Reader::new(buf);
            let (got, new) = dec.decode(&mut r, *mode, &Limits::default()).unwrap();
            assert_eq!(r.used(), buf.len());
            dec.commit(new);
            let mut want = e.access.clone();
            if !want.names.is_empty() {
                // The receiver puts the mode's group bits in the mask.
                want.mask_obj = Some(((mode >> 3) & 7) as u8);
            }
            assert_eq!(got.access, want);
            assert_eq!(got.default.is_some(), mode & 0o170_000 == 0o040_000);
            if let Some(d) = &e.default {
                assert_eq!(got.default.as_ref(), Some(d));
            }
        }
    }

    #[test]
    fn literal_bytes() {
        let a = RsyncAcl {
            group_obj: Some(5),
            names: vec![named(1000, 6, true), named(7, 4, false)],
            ..RsyncAcl::default()
        };
        let mut out = Vec::new();
        AclEncoder::default().encode(&mut out, &entry(a, None), false);
        // index 0, flags GROUP_OBJ|NAME_LIST, 5, count 2,
        // id 1000 (varint 0x83e8 -> e8 03 after the 0x80 marker), 6<<2|2,
        // id 7, 4<<2.
        assert_eq!(out, [0, 0x12, 5, 2, 0x83, 0xe8, 26, 7, 16]);
    }

    #[test]
    fn garbage_is_refused_without_panic() {
        let limits = Limits::default();
        let v = |vals: &[i32], flags: Option<u8>| {
            let mut out = Vec::new();
            let mut it = vals.iter();
            if let Some(f) = flags {
                encode_varint(&mut out, *it.next().unwrap());
                out.push(f);
            }
            for x in it {
                encode_varint(&mut out, *x);
            }
            out
        };
        let rows: Vec<Vec<u8>> = vec![
            v(&[5], None),                                  // index of nothing
            v(&[-1], None),                                 // negative index
            v(&[0, 8], Some(XMIT_USER_OBJ)),                // permissions out of range
            v(&[0, 1 << 20], Some(XMIT_NAME_LIST)),         // huge count
            v(&[0, -3], Some(XMIT_NAME_LIST)),              // negative count
            v(&[0, 1, 3, 0x20 << 2], Some(XMIT_NAME_LIST)), // named perms out of range
            v(&[0, 1, 3, -4], Some(XMIT_NAME_LIST)),        // negative access
        ];
        for bytes in &rows {
            let mut r = Reader::new(bytes);
            assert!(
                matches!(
                    AclDecoder::default().decode(&mut r, 0o100_644, &limits),
                    Err(ReadError::Malformed(_))
                ),
                "{bytes:?}"
            );
        }
        // Pseudo-random bytes: any result but a panic.
        let mut x = 0x1234_5678_u32;
        for _ in 0..2000 {
            let buf: Vec<u8> = (0..24)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let mut r = Reader::new(&buf);
            let _ = AclDecoder::default().decode(&mut r, 0o040_755, &limits);
        }
    }

    #[test]
    fn strip_and_compare() {
        // setfacl -m u:1000:rw on a 0644 file: mask rw-, mode 0664.
        let full = RsyncAcl {
            user_obj: Some(6),
            group_obj: Some(4),
            mask_obj: Some(6),
            other_obj: Some(4),
            names: vec![named(1000, 6, true)],
        };
        let s = full.clone().stripped(0o100_664);
        assert_eq!(
            s,
            RsyncAcl {
                group_obj: Some(4),
                names: vec![named(1000, 6, true)],
                ..RsyncAcl::default()
            }
        );
        // A plain file condenses to nothing.
        assert!(
            RsyncAcl::from_mode(0o100_640)
                .stripped(0o100_640)
                .is_empty()
        );
        // What the receiver makes of it matches the full ACL.
        let mut recv = s.clone();
        recv.mask_obj = Some(6);
        assert!(full.equal_enough(&recv, 0o100_664));
        assert!(!RsyncAcl::from_mode(0o100_664).equal_enough(&recv, 0o100_664));
        assert!(RsyncAcl::from_mode(0o100_600).equal_enough(&RsyncAcl::default(), 0o100_644));
        let sys = to_system(&recv, Some((0o100_664, 0o100_600)));
        assert_eq!(
            sys,
            vec![
                (AclTag::UserObj, 6, 0),
                (AclTag::User, 6, 1000),
                (AclTag::GroupObj, 4, 0),
                (AclTag::Mask, 6, 0),
                (AclTag::Other, 4, 0),
            ]
        );
        assert_eq!(from_system(&sys), full);
    }
}
