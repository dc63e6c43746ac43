//! Extended attributes of local files (`-X`): reading a file's set as
//! rsync's sender lists it, comparing a received list with a local set, and
//! applying a complete set. Symlinks are never followed.
//!
//! Layer: fs (L3). Uses `flist` (the list types), the `xattr` crate and
//! `md-5` for the digests of abbreviated values.
//! Mirrors upstream xattrs.c `rsync_xal_get`, `xattr_diff`, `rsync_xal_set`
//! and the Linux namespace rules there.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use md5::{Digest, Md5};

use crate::flist::entry::{XATTR_DIGEST_LEN, XATTR_MAX_FULL_DATUM, Xattr, XattrValue};

/// The name prefix rsync keeps its own attributes under (`--fake-super`
/// metadata is `user.rsync.%stat` and the like).
const RSYNC_PREFIX: &[u8] = b"user.rsync.";

/// The digest of an abbreviated value: MD5 without a seed.
#[must_use]
pub fn xattr_digest(value: &[u8]) -> [u8; XATTR_DIGEST_LEN] {
    Md5::digest(value).into()
}

/// The list form of a value: whole up to 32 bytes, else length and digest.
#[must_use]
pub fn list_value(value: Vec<u8>) -> XattrValue {
    if value.len() > XATTR_MAX_FULL_DATUM {
        XattrValue::Abbrev {
            len: value.len() as u64,
            digest: xattr_digest(&value),
        }
    } else {
        XattrValue::Full(value)
    }
}

/// Whether `value` is what a listed value stands for.
#[must_use]
pub fn value_matches(listed: &XattrValue, value: &[u8]) -> bool {
    match listed {
        XattrValue::Full(v) => v == value,
        XattrValue::Abbrev { len, digest } => {
            *len == value.len() as u64 && xattr_digest(value) == *digest
        }
    }
}

/// Which names one side works with (Linux rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XattrRules {
    /// How many `-X` were given (2: rsync's own `user.rsync.%*` names too).
    pub level: u8,
    /// The receiving side runs as root (else it can only write `user.*`).
    pub am_root: bool,
}

fn is_rsync_own(name: &[u8]) -> bool {
    name.strip_prefix(RSYNC_PREFIX)
        .is_some_and(|rest| rest.first() == Some(&b'%'))
}

impl XattrRules {
    /// A name the sender lists: every namespace but `system.` (that is
    /// `-A`'s business); `user.rsync.%*` only with `-XX`.
    #[must_use]
    pub fn sends(&self, name: &[u8]) -> bool {
        !name.starts_with(b"system.") && (self.level >= 2 || !is_rsync_own(name))
    }

    /// A name the receiving side reads, compares and removes locally:
    /// as root everything but `system.`, else only `user.*`.
    #[must_use]
    pub fn manages(&self, name: &[u8]) -> bool {
        if self.am_root {
            !name.starts_with(b"system.")
        } else {
            name.starts_with(b"user.")
        }
    }

    /// A name of a received list the receiving side sets: one it manages,
    /// and `user.rsync.%*` only with `-XX`.
    #[must_use]
    pub fn receives(&self, name: &[u8]) -> bool {
        self.manages(name) && (self.level >= 2 || !is_rsync_own(name))
    }
}

fn unsupported(err: &io::Error) -> bool {
    err.raw_os_error() == Some(rustix::io::Errno::NOTSUP.raw_os_error())
}

/// The names of `path`'s attributes that `keep` accepts, sorted (a file
/// system without xattr support has none).
/// Where attributes are read and set: a path (its last component not
/// followed) or an open handle.
#[derive(Debug, Clone, Copy)]
pub enum On<'a> {
    /// By name.
    Path(&'a Path),
    /// On an open file or directory.
    File(&'a std::fs::File),
}

impl<'a> From<&'a crate::fs::beneath::XattrTarget> for On<'a> {
    fn from(t: &'a crate::fs::beneath::XattrTarget) -> Self {
        match t {
            crate::fs::beneath::XattrTarget::File(f) => On::File(f),
            crate::fs::beneath::XattrTarget::Pinned(_, p) => On::Path(p),
        }
    }
}

impl On<'_> {
    fn list(self) -> io::Result<xattr::XAttrs> {
        use xattr::FileExt;
        match self {
            On::Path(p) => xattr::list(p),
            On::File(f) => f.list_xattr(),
        }
    }

    pub(crate) fn get(self, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
        use xattr::FileExt;
        match self {
            On::Path(p) => xattr::get(p, OsStr::from_bytes(name)),
            On::File(f) => f.get_xattr(OsStr::from_bytes(name)),
        }
    }

    pub(crate) fn set(self, name: &[u8], value: &[u8]) -> io::Result<()> {
        use xattr::FileExt;
        match self {
            On::Path(p) => xattr::set(p, OsStr::from_bytes(name), value),
            On::File(f) => f.set_xattr(OsStr::from_bytes(name), value),
        }
    }

    pub(crate) fn remove(self, name: &[u8]) -> io::Result<()> {
        use xattr::FileExt;
        match self {
            On::Path(p) => xattr::remove(p, OsStr::from_bytes(name)),
            On::File(f) => f.remove_xattr(OsStr::from_bytes(name)),
        }
    }
}

fn names(path: &Path, keep: impl Fn(&[u8]) -> bool) -> io::Result<Vec<Vec<u8>>> {
    names_on(On::Path(path), keep)
}

fn names_on(on: On<'_>, keep: impl Fn(&[u8]) -> bool) -> io::Result<Vec<Vec<u8>>> {
    let list = match on.list() {
        Ok(l) => l,
        Err(e) if unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut v: Vec<Vec<u8>> = list
        .map(|n| n.as_bytes().to_vec())
        .filter(|n| keep(n))
        .collect();
    v.sort();
    Ok(v)
}

/// Reads one value again (the sender answering a request). A value that
/// is gone reads as an error.
///
/// # Errors
/// The system call failed or the attribute no longer exists.
pub fn read_value(path: &Path, name: &[u8]) -> io::Result<Vec<u8>> {
    xattr::get(path, OsStr::from_bytes(name))?
        .ok_or_else(|| io::Error::from_raw_os_error(rustix::io::Errno::NODATA.raw_os_error()))
}

/// `path`'s attributes as the sender lists them: sorted by name, values
/// over 32 bytes abbreviated. An attribute removed while reading is left
/// out.
///
/// # Errors
/// Listing or reading failed.
pub fn read_for_send(path: &Path, rules: &XattrRules) -> io::Result<Vec<Xattr>> {
    let mut out = Vec::new();
    for name in names(path, |n| rules.sends(n))? {
        let Some(value) = xattr::get(path, OsStr::from_bytes(&name))? else {
            continue;
        };
        out.push(Xattr {
            name,
            value: list_value(value),
        });
    }
    Ok(out)
}

/// The receiving side's view of `path`'s attributes: the names it
/// manages with their whole values, sorted by name. A missing file has
/// none.
///
/// # Errors
/// Listing or reading failed.
pub fn read_local(path: &Path, rules: &XattrRules) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    read_local_on(On::Path(path), rules)
}

/// [`read_local`] on a path or an open handle.
///
/// # Errors
/// Listing or reading failed.
pub fn read_local_on(on: On<'_>, rules: &XattrRules) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let names = match names_on(on, |n| rules.manages(n)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        r => r?,
    };
    let mut out = Vec::new();
    for name in names {
        if let Some(value) = on.get(&name)? {
            out.push((name, value));
        }
    }
    Ok(out)
}

/// Compares a received list (the entries the receiving side keeps, each
/// with its 1-based position in the sender's list) with a local set from
/// [`read_local`]. Returns whether they differ and the positions of the
/// abbreviated values that the local set cannot supply (upstream
/// `xattr_diff` with `find_all`).
#[must_use]
pub fn compare(listed: &[(i32, &Xattr)], local: &[(Vec<u8>, Vec<u8>)]) -> (bool, Vec<i32>) {
    let mut differs = listed.len() != local.len();
    let mut need = Vec::new();
    for (num, x) in listed {
        let same = local
            .binary_search_by(|(n, _)| n.as_slice().cmp(&x.name))
            .ok()
            .and_then(|i| local.get(i))
            .is_some_and(|(_, v)| value_matches(&x.value, v));
        if !same {
            differs = true;
            if x.value.is_abbrev() {
                need.push(*num);
            }
        }
    }
    (differs, need)
}

/// Makes `path`'s managed attributes exactly `wanted`: sets what differs,
/// removes what is not named. A `None` value (an abbreviated value that
/// could not be had) leaves that attribute as it is. Returns whether
/// anything changed.
///
/// # Errors
/// The first failing system call.
pub fn apply(
    path: &Path,
    wanted: &[(Vec<u8>, Option<Vec<u8>>)],
    rules: &XattrRules,
) -> io::Result<bool> {
    apply_on(On::Path(path), wanted, rules)
}

/// [`apply`] on a path or an open handle.
///
/// # Errors
/// The first failing system call.
pub fn apply_on(
    on: On<'_>,
    wanted: &[(Vec<u8>, Option<Vec<u8>>)],
    rules: &XattrRules,
) -> io::Result<bool> {
    let current = read_local_on(on, rules)?;
    let mut changed = false;
    for (name, value) in wanted {
        let Some(value) = value else { continue };
        let same = current
            .iter()
            .any(|(n, v)| n == name && v.as_slice() == value.as_slice());
        if !same {
            on.set(name, value)?;
            changed = true;
        }
    }
    for (name, _) in &current {
        if !wanted.iter().any(|(n, _)| n == name) {
            on.remove(name)?;
            changed = true;
        }
    }
    Ok(changed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn namespace_rules() {
        let user = XattrRules {
            level: 1,
            am_root: false,
        };
        let root = XattrRules {
            level: 1,
            am_root: true,
        };
        let xx = XattrRules {
            level: 2,
            am_root: true,
        };
        let rows: &[(&[u8], [bool; 5])] = &[
            // sends, user manages, user receives, root receives, -XX root receives
            (b"user.a", [true, true, true, true, true]),
            (b"trusted.a", [true, false, false, true, true]),
            (b"security.a", [true, false, false, true, true]),
            (
                b"system.posix_acl_access",
                [false, false, false, false, false],
            ),
            (b"user.rsync.%stat", [false, true, false, false, true]),
            (b"user.rsync.other", [true, true, true, true, true]),
        ];
        for (name, want) in rows {
            let got = [
                root.sends(name),
                user.manages(name),
                user.receives(name),
                root.receives(name),
                xx.receives(name),
            ];
            assert_eq!(&got, want, "{}", String::from_utf8_lossy(name));
        }
        assert!(xx.sends(b"user.rsync.%stat"));
    }

    #[test]
    fn compare_finds_differences_and_needed_values() {
        let big = vec![b'B'; 64];
        let listed = [
            Xattr {
                name: b"user.big".to_vec(),
                value: list_value(big.clone()),
            },
            Xattr {
                name: b"user.small".to_vec(),
                value: list_value(b"hi".to_vec()),
            },
        ];
        let refs: Vec<(i32, &Xattr)> = listed.iter().zip(1..).map(|(x, n)| (n, x)).collect();
        let same = vec![
            (b"user.big".to_vec(), big.clone()),
            (b"user.small".to_vec(), b"hi".to_vec()),
        ];
        assert_eq!(compare(&refs, &same), (false, vec![]));
        assert_eq!(compare(&refs, &[]), (true, vec![1]));
        let mut other = same.clone();
        other[0].1[3] = b'C';
        assert_eq!(compare(&refs, &other), (true, vec![1]));
        let mut extra = same.clone();
        extra.push((b"user.z".to_vec(), Vec::new()));
        assert_eq!(compare(&refs, &extra), (true, vec![]));
        other = same;
        other[1].1 = b"ho".to_vec();
        assert_eq!(compare(&refs, &other), (true, vec![]));
    }
}
