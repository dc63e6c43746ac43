//! POSIX ACLs of local files (`-A`) through the Linux xattrs
//! `system.posix_acl_access` and `system.posix_acl_default`: reading them
//! as rsync's sender lists them, and applying received ones as rsync's
//! receiver does. Symlinks are never followed.
//!
//! Layer: fs (L3). Uses `flist` (the ACL types) and the `xattr` crate.
//! Mirrors upstream acls.c `get_acl`, `send_acl` (the condensing),
//! `set_acl` and `set_rsync_acl`, and libacl's xattr form: a little-endian
//! u32 version (2), then per entry u16 tag, u16 permissions, u32 id.

use std::io;
use std::path::Path;

use crate::flist::acls::{AclTag, EntryAcls, RsyncAcl, SysEntry, from_system, to_system};
use crate::fs::xattrs::On;

/// The access ACL's attribute name.
pub const ACCESS_XATTR: &str = "system.posix_acl_access";
/// A directory's default ACL attribute name.
pub const DEFAULT_XATTR: &str = "system.posix_acl_default";

const VERSION: u32 = 2;
const UNDEFINED_ID: u32 = u32::MAX;

fn tag_code(t: AclTag) -> u16 {
    match t {
        AclTag::UserObj => 0x01,
        AclTag::User => 0x02,
        AclTag::GroupObj => 0x04,
        AclTag::Group => 0x08,
        AclTag::Mask => 0x10,
        AclTag::Other => 0x20,
    }
}

/// Parses the xattr form; unknown tags are skipped, as upstream does.
///
/// # Errors
/// `InvalidData` for a wrong version or a length that is not a whole
/// number of entries.
pub fn parse_xattr(buf: &[u8]) -> io::Result<Vec<SysEntry>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed POSIX ACL attribute");
    let (head, rest) = buf.split_first_chunk::<4>().ok_or_else(bad)?;
    if u32::from_le_bytes(*head) != VERSION || rest.len() % 8 != 0 {
        return Err(bad());
    }
    let mut v = Vec::with_capacity(rest.len() / 8);
    for c in rest.chunks_exact(8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        let tag = match u16::from_le_bytes([b[0], b[1]]) {
            0x01 => AclTag::UserObj,
            0x02 => AclTag::User,
            0x04 => AclTag::GroupObj,
            0x08 => AclTag::Group,
            0x10 => AclTag::Mask,
            0x20 => AclTag::Other,
            _ => continue,
        };
        let perm = (u16::from_le_bytes([b[2], b[3]]) & 7) as u8;
        let id = if matches!(tag, AclTag::User | AclTag::Group) {
            u32::from_le_bytes([b[4], b[5], b[6], b[7]])
        } else {
            0
        };
        v.push((tag, perm, id));
    }
    Ok(v)
}

/// The xattr form of system entries.
#[must_use]
pub fn format_xattr(entries: &[SysEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 8 * entries.len());
    out.extend_from_slice(&VERSION.to_le_bytes());
    for &(tag, perm, id) in entries {
        out.extend_from_slice(&tag_code(tag).to_le_bytes());
        out.extend_from_slice(&u16::from(perm).to_le_bytes());
        let id = if matches!(tag, AclTag::User | AclTag::Group) {
            id
        } else {
            UNDEFINED_ID
        };
        out.extend_from_slice(&id.to_le_bytes());
    }
    out
}

fn no_acl_support(err: &io::Error) -> bool {
    let n = err.raw_os_error();
    n == Some(rustix::io::Errno::NOTSUP.raw_os_error())
        || n == Some(rustix::io::Errno::NOSYS.raw_os_error())
}

fn get(on: On<'_>, name: &str) -> io::Result<Option<Vec<u8>>> {
    match on.get(name.as_bytes()) {
        Ok(v) => Ok(v),
        Err(e) if no_acl_support(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `path`'s complete ACLs: the access ACL (from the mode when it has
/// none) and, for a directory, the default ACL (empty when none).
///
/// # Errors
/// Reading an attribute failed, or it is malformed.
pub fn read_full(path: &Path, mode: u32) -> io::Result<(RsyncAcl, Option<RsyncAcl>)> {
    read_full_on(On::Path(path), mode)
}

fn read_full_on(on: On<'_>, mode: u32) -> io::Result<(RsyncAcl, Option<RsyncAcl>)> {
    let access = match get(on, ACCESS_XATTR)? {
        Some(b) => from_system(&parse_xattr(&b)?),
        None => RsyncAcl::from_mode(mode),
    };
    let default = if mode & 0o170_000 == 0o040_000 {
        Some(match get(on, DEFAULT_XATTR)? {
            Some(b) => from_system(&parse_xattr(&b)?),
            None => RsyncAcl::default(),
        })
    } else {
        None
    };
    Ok((access, default))
}

/// Whether an item of this mode carries ACLs in the list: everything but
/// symlinks (devices and specials get rsync's empty ACL).
fn reads_acls(mode: u32) -> bool {
    matches!(mode & 0o170_000, 0o100_000 | 0o040_000)
}

/// `path`'s ACLs as the sender lists them (access ACL condensed against
/// `mode`), with the names of the ids they use looked up by `name_of`
/// (`(is_user, id)`; `None` for no name).
///
/// # Errors
/// As [`read_full`].
pub fn read_for_send(
    path: &Path,
    mode: u32,
    mut name_of: impl FnMut(bool, u32) -> Option<Vec<u8>>,
) -> io::Result<EntryAcls> {
    if !reads_acls(mode) {
        return Ok(EntryAcls::default());
    }
    let (access, default) = read_full(path, mode)?;
    let access = access.stripped(mode);
    let mut id_names = Vec::new();
    for n in access
        .names
        .iter()
        .chain(default.iter().flat_map(|d| d.names.iter()))
    {
        if !id_names
            .iter()
            .any(|(u, i, _): &(bool, u32, Vec<u8>)| *u == n.is_user && *i == n.id)
        {
            if let Some(name) = name_of(n.is_user, n.id) {
                id_names.push((n.is_user, n.id, name));
            }
        }
    }
    Ok(EntryAcls {
        access,
        default,
        id_names,
    })
}

/// Applies received ACLs to `on` (a path, its last component not
/// followed, or an open handle), which gets `mode` (after this the
/// caller sets the mode itself): the access ACL when its extended entries
/// differ, the default ACL of a directory when it differs (an empty one is
/// removed). Returns whether anything differed.
///
/// # Errors
/// Reading or writing an attribute failed.
pub fn apply(on: On<'_>, acls: &EntryAcls, mode: u32, old_mode: u32) -> io::Result<bool> {
    set(on, acls, mode, old_mode, true)
}

/// Whether [`apply`] would change anything (upstream `set_acl` with no
/// file name, for itemizing).
///
/// # Errors
/// Reading an attribute failed.
pub fn differs(on: On<'_>, acls: &EntryAcls, mode: u32, old_mode: u32) -> io::Result<bool> {
    set(on, acls, mode, old_mode, false)
}

fn set(on: On<'_>, acls: &EntryAcls, mode: u32, old_mode: u32, write: bool) -> io::Result<bool> {
    if !reads_acls(mode) {
        return Ok(false);
    }
    let (cur_access, cur_default) = read_full_on(on, old_mode)?;
    let mut changed = false;
    if !cur_access.equal_enough(&acls.access, mode) {
        changed = true;
        if !write {
            return Ok(true);
        }
        let sys = to_system(&acls.access, Some((mode, old_mode)));
        on.set(ACCESS_XATTR.as_bytes(), &format_xattr(&sys))?;
    }
    if let (Some(want), Some(cur)) = (&acls.default, &cur_default) {
        if want != cur {
            changed = true;
            if !write {
                return Ok(true);
            }
            if want.user_obj.is_none() {
                match on.remove(DEFAULT_XATTR.as_bytes()) {
                    Ok(()) => {}
                    Err(e)
                        if e.raw_os_error() == Some(rustix::io::Errno::NODATA.raw_os_error()) => {}
                    Err(e) => return Err(e),
                }
            } else {
                let sys = to_system(want, None);
                on.set(DEFAULT_XATTR.as_bytes(), &format_xattr(&sys))?;
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn xattr_form_round_trips() {
        let sys = vec![
            (AclTag::UserObj, 7, 0),
            (AclTag::User, 6, 1000),
            (AclTag::GroupObj, 5, 0),
            (AclTag::Group, 4, 50),
            (AclTag::Mask, 7, 0),
            (AclTag::Other, 0, 0),
        ];
        let b = format_xattr(&sys);
        assert_eq!(b.len(), 4 + 8 * 6);
        assert_eq!(&b[..4], &[2, 0, 0, 0]);
        assert_eq!(&b[4..12], &[1, 0, 7, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(parse_xattr(&b).unwrap(), sys);
        assert!(parse_xattr(&b[..7]).is_err());
        assert!(parse_xattr(&[3, 0, 0, 0]).is_err());
        assert!(parse_xattr(&[]).is_err());
    }
}
