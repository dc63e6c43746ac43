//! One file-list entry as both sides see it, the file kinds rsync knows and
//! the `XMIT_*` flag bits of the entry encoding.
//!
//! Layer: flist (L2). Uses `wire` only; does no I/O.
//! Mirrors upstream rsync.h (`XMIT_*`, `struct file_struct`) and the name
//! checks of flist.c `recv_file_entry` / util1.c `clean_fname`.

use std::sync::Arc;

use crate::wire::DecodeError;

/// Directory given on the command line (or `.` for `src/`); on a
/// non-directory only padding that keeps the flags non-zero.
pub const XMIT_TOP_DIR: u32 = 1 << 0;
/// The mode equals the previous entry's mode.
pub const XMIT_SAME_MODE: u32 = 1 << 1;
/// Protocol 27: the device number equals the previous one.
#[doc(alias = "XMIT_SAME_RDEV_pre28")]
pub const XMIT_SAME_RDEV_PRE28: u32 = 1 << 2;
/// Protocol >= 28, byte/shortint flags: a second flags byte follows.
pub const XMIT_EXTENDED_FLAGS: u32 = 1 << 2;
/// The uid equals the previous uid (or uids are not preserved).
pub const XMIT_SAME_UID: u32 = 1 << 3;
/// The gid equals the previous gid (or gids are not preserved).
pub const XMIT_SAME_GID: u32 = 1 << 4;
/// The name shares a prefix (length byte follows) with the previous name.
pub const XMIT_SAME_NAME: u32 = 1 << 5;
/// The name suffix length is a varint30 instead of a byte.
pub const XMIT_LONG_NAME: u32 = 1 << 6;
/// The mtime seconds equal the previous mtime.
pub const XMIT_SAME_TIME: u32 = 1 << 7;
/// Protocol >= 28: the device major equals the previous major.
pub const XMIT_SAME_RDEV_MAJOR: u32 = 1 << 8;
/// Protocol >= 30, directories: the contents are not part of the transfer.
pub const XMIT_NO_CONTENT_DIR: u32 = 1 << 8;
/// Protocol >= 28: the entry is part of a hard-link group.
pub const XMIT_HLINKED: u32 = 1 << 9;
/// Protocols 28-29: the hard-link device equals the previous one.
#[doc(alias = "XMIT_SAME_DEV_pre30")]
pub const XMIT_SAME_DEV_PRE30: u32 = 1 << 10;
/// Protocol >= 30: a user name follows the uid (incremental recursion).
pub const XMIT_USER_NAME_FOLLOWS: u32 = 1 << 10;
/// Protocols 28-29: the device minor is sent as one byte.
#[doc(alias = "XMIT_RDEV_MINOR_8_pre30")]
pub const XMIT_RDEV_MINOR_8_PRE30: u32 = 1 << 11;
/// Protocol >= 30: a group name follows the gid (incremental recursion).
pub const XMIT_GROUP_NAME_FOLLOWS: u32 = 1 << 11;
/// Protocol >= 30: first entry (in sending order) of its hard-link group.
pub const XMIT_HLINK_FIRST: u32 = 1 << 12;
/// Protocol >= 30 with safe file lists: in the end marker `0x1004` only.
pub const XMIT_IO_ERROR_ENDLIST: u32 = 1 << 12;
/// Protocol >= 31: the mtime nanoseconds follow.
pub const XMIT_MOD_NSEC: u32 = 1 << 13;
/// `--atimes`: the atime equals the previous atime.
pub const XMIT_SAME_ATIME: u32 = 1 << 14;
/// Varint flags only, reserved.
pub const XMIT_RESERVED_16: u32 = 1 << 16;
/// Varint flags only, `--crtimes`: the creation time equals the mtime.
pub const XMIT_CRTIME_EQ_MTIME: u32 = 1 << 17;

/// `S_IFMT`: the file-type bits of a mode.
pub const S_IFMT: u32 = 0o170_000;

/// The seven file types rsync transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDev,
    /// A block device.
    BlockDev,
    /// A named pipe.
    Fifo,
    /// A Unix-domain socket.
    Socket,
}

impl FileKind {
    /// The kind named by the type bits of `mode`, or `None` for an unknown type.
    #[must_use]
    pub fn from_mode(mode: u32) -> Option<Self> {
        Some(match mode & S_IFMT {
            0o100_000 => FileKind::Regular,
            0o040_000 => FileKind::Dir,
            0o120_000 => FileKind::Symlink,
            0o020_000 => FileKind::CharDev,
            0o060_000 => FileKind::BlockDev,
            0o010_000 => FileKind::Fifo,
            0o140_000 => FileKind::Socket,
            _ => return None,
        })
    }

    /// The `S_IFMT` bits of this kind (traditional values, as on the wire).
    #[must_use]
    pub fn mode_bits(self) -> u32 {
        match self {
            FileKind::Regular => 0o100_000,
            FileKind::Dir => 0o040_000,
            FileKind::Symlink => 0o120_000,
            FileKind::CharDev => 0o020_000,
            FileKind::BlockDev => 0o060_000,
            FileKind::Fifo => 0o010_000,
            FileKind::Socket => 0o140_000,
        }
    }

    /// Character or block device.
    #[must_use]
    pub fn is_device(self) -> bool {
        matches!(self, FileKind::CharDev | FileKind::BlockDev)
    }

    /// Fifo or socket (upstream `IS_SPECIAL`).
    #[must_use]
    pub fn is_special(self) -> bool {
        matches!(self, FileKind::Fifo | FileKind::Socket)
    }
}

/// Hard-link information of an entry (`-H`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HardLink {
    /// Protocol >= 30: the index (`ndx_start` + position in sending order)
    /// of the group's first entry; `None` if this entry is the first.
    pub first: Option<i32>,
    /// Protocol < 30: the device number (the wire carries it plus one).
    pub dev: u64,
    /// Protocol < 30: the inode number.
    pub ino: u64,
}

/// Values longer than this travel in the file list as a digest only
/// (upstream `MAX_FULL_DATUM`); the receiver asks for the ones it needs.
pub const XATTR_MAX_FULL_DATUM: usize = 32;

/// Length of the digest of an abbreviated xattr value (unseeded MD5).
pub const XATTR_DIGEST_LEN: usize = 16;

/// The value of one extended attribute as the file list carries it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum XattrValue {
    /// The whole value (at most [`XATTR_MAX_FULL_DATUM`] bytes on the wire).
    Full(Vec<u8>),
    /// A longer value: its real length and the MD5 digest of its bytes.
    Abbrev {
        /// The value's real length (more than [`XATTR_MAX_FULL_DATUM`]).
        len: u64,
        /// MD5 of the value, no seed.
        digest: [u8; XATTR_DIGEST_LEN],
    },
}

impl XattrValue {
    /// The real length of the value.
    #[must_use]
    pub fn len(&self) -> u64 {
        match self {
            XattrValue::Full(v) => v.len() as u64,
            XattrValue::Abbrev { len, .. } => *len,
        }
    }

    /// Whether the value is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether only a digest is known.
    #[must_use]
    pub fn is_abbrev(&self) -> bool {
        matches!(self, XattrValue::Abbrev { .. })
    }
}

/// One extended attribute of an entry (`-X`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Xattr {
    /// Full name with its namespace (`user.foo`), without the trailing NUL
    /// the wire adds.
    pub name: Vec<u8>,
    /// The value, or its digest.
    pub value: XattrValue,
}

/// The rare parts of a file-list entry, kept out of line so that the
/// common entry (a regular file, a directory) stays small: device numbers,
/// symlink target, hard-link data, `--checksum` sum and xattrs. Most
/// entries have none of these and carry no [`EntryExtra`] at all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryExtra {
    /// Device major number (devices only).
    pub rdev_major: u32,
    /// Device minor number (devices only).
    pub rdev_minor: u32,
    /// Symlink target (symlinks with `-l`).
    pub link_target: Option<Vec<u8>>,
    /// Hard-link group information (`-H`).
    pub hardlink: Option<HardLink>,
    /// Whole-file checksum (`--checksum`, regular files).
    pub checksum: Option<Vec<u8>>,
    /// Extended attributes (`-X`), sorted by name; `None` when xattrs are
    /// not part of the list. Position `k` (0-based) is the attribute the
    /// peers call number `k + 1` in the request exchange.
    pub xattrs: Option<Vec<Xattr>>,
    /// POSIX ACLs (`-A`, non-symlinks); `None` when ACLs are not part of
    /// the list.
    pub acls: Option<Box<super::acls::EntryAcls>>,
}

/// What an entry without an [`EntryExtra`] reads as.
static NO_EXTRA: EntryExtra = EntryExtra {
    rdev_major: 0,
    rdev_minor: 0,
    link_target: None,
    hardlink: None,
    checksum: None,
    xattrs: None,
    acls: None,
};

/// One file-list entry.
///
/// Compact on purpose (a list holds one per file, 1,000,000 on a big
/// tree): the common fields are inline, the owner and group names are
/// shared (`Arc`, one allocation per distinct name), and the rare fields
/// live in [`EntryExtra`], allocated only for entries that have one; read
/// them through [`link_target`](Self::link_target),
/// [`hardlink`](Self::hardlink), [`checksum`](Self::checksum),
/// [`xattrs`](Self::xattrs) and [`rdev`](Self::rdev), set them through
/// [`extra_mut`](Self::extra_mut).
#[derive(Debug, Clone, Default)]
pub struct FileEntry {
    /// Path relative to the transfer root, `/`-separated, `.` for the root.
    pub name: Vec<u8>,
    /// Full `st_mode` including the type bits.
    pub mode: u32,
    /// Nanosecond part of the mtime (sent at protocol >= 31).
    pub mtime_nsec: u32,
    /// Size in bytes (symlinks: target length; devices and specials: 0).
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Access time (`--atimes`, non-directories).
    pub atime: i64,
    /// Owner id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// `XMIT_TOP_DIR` / `XMIT_NO_CONTENT_DIR` as received or to send, for
    /// directories; ignored on other entries.
    pub xflags: u32,
    /// Owner name, when known (shared by every entry of that owner).
    pub user_name: Option<Arc<[u8]>>,
    /// Group name, when known (shared by every entry of that group).
    pub group_name: Option<Arc<[u8]>>,
    /// The rare fields, `None` when all of them are empty (compare entries
    /// with `==`, which treats `None` and an empty [`EntryExtra`] alike).
    pub extra: Option<Box<EntryExtra>>,
}

impl PartialEq for FileEntry {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name
            && self.mode == o.mode
            && self.mtime_nsec == o.mtime_nsec
            && self.size == o.size
            && self.mtime == o.mtime
            && self.atime == o.atime
            && self.uid == o.uid
            && self.gid == o.gid
            && self.xflags == o.xflags
            && self.user_name == o.user_name
            && self.group_name == o.group_name
            && self.extra() == o.extra()
    }
}

impl Eq for FileEntry {}

impl FileEntry {
    /// The rare fields (all empty when the entry has none).
    #[must_use]
    pub fn extra(&self) -> &EntryExtra {
        self.extra.as_deref().unwrap_or(&NO_EXTRA)
    }

    /// The rare fields for writing, allocated on first use.
    pub fn extra_mut(&mut self) -> &mut EntryExtra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// Symlink target (symlinks with `-l`).
    #[must_use]
    pub fn link_target(&self) -> Option<&[u8]> {
        self.extra.as_ref()?.link_target.as_deref()
    }

    /// Hard-link group information (`-H`).
    #[must_use]
    pub fn hardlink(&self) -> Option<&HardLink> {
        self.extra.as_ref()?.hardlink.as_ref()
    }

    /// Hard-link group information for writing, if the entry has some.
    pub fn hardlink_mut(&mut self) -> Option<&mut HardLink> {
        self.extra.as_mut()?.hardlink.as_mut()
    }

    /// Whole-file checksum (`--checksum`, regular files).
    #[must_use]
    pub fn checksum(&self) -> Option<&[u8]> {
        self.extra.as_ref()?.checksum.as_deref()
    }

    /// Extended attributes (`-X`), `None` when not part of the list.
    #[must_use]
    pub fn xattrs(&self) -> Option<&[Xattr]> {
        self.extra.as_ref()?.xattrs.as_deref()
    }

    /// Device (major, minor) numbers; (0, 0) unless a device.
    #[must_use]
    pub fn rdev(&self) -> (u32, u32) {
        self.extra
            .as_ref()
            .map_or((0, 0), |x| (x.rdev_major, x.rdev_minor))
    }

    /// The file kind, or `None` when the mode's type bits are unknown.
    #[must_use]
    pub fn kind(&self) -> Option<FileKind> {
        FileKind::from_mode(self.mode)
    }

    /// Whether this entry is a directory.
    #[must_use]
    pub fn is_dir(&self) -> bool {
        self.kind() == Some(FileKind::Dir)
    }

    /// Whether this is a top-level directory of the transfer.
    #[must_use]
    pub fn is_top_dir(&self) -> bool {
        self.is_dir() && self.xflags & XMIT_TOP_DIR != 0
    }
}

/// Fills in `hardlink.first` for a list about to be sent at protocol >= 30:
/// entries are grouped by (`dev`, `ino`); the first of each group in
/// `entries` (sending order) keeps `first: None`, every later one gets
/// `Some(ndx_start + position of the first)`. Entries without a
/// [`HardLink`] are left alone. For a sub-list whose group started in an
/// earlier list, set `first` yourself (the entry is then sent in full).
pub fn link_hardlink_groups(entries: &mut [FileEntry], ndx_start: i32) {
    let mut firsts: std::collections::HashMap<(u64, u64), i32> = std::collections::HashMap::new();
    for (pos, e) in entries.iter_mut().enumerate() {
        if let Some(h) = e.hardlink_mut() {
            let me = ndx_start.saturating_add(i32::try_from(pos).unwrap_or(i32::MAX));
            match firsts.get(&(h.dev, h.ino)) {
                Some(&f) => h.first = Some(f),
                None => {
                    firsts.insert((h.dev, h.ino), me);
                    h.first = None;
                }
            }
        }
    }
}

/// Rejects names a receiver must not use as they are: empty names, names
/// with a NUL byte, absolute names and names with a `..` component
/// (upstream aborts with "unsafe pathname" unless `--relative` is used).
///
/// # Errors
/// [`DecodeError::Protocol`] naming the problem.
pub fn check_safe_name(name: &[u8]) -> Result<(), DecodeError> {
    if name.is_empty() {
        return Err(DecodeError::Protocol("empty file name"));
    }
    if name.contains(&0) {
        return Err(DecodeError::Protocol("file name contains a NUL byte"));
    }
    if name.first() == Some(&b'/') {
        return Err(DecodeError::Protocol("absolute file name"));
    }
    if name.split(|&b| b == b'/').any(|c| c == b"..") {
        return Err(DecodeError::Protocol("file name with a `..` component"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in [
            FileKind::Regular,
            FileKind::Dir,
            FileKind::Symlink,
            FileKind::CharDev,
            FileKind::BlockDev,
            FileKind::Fifo,
            FileKind::Socket,
        ] {
            assert_eq!(FileKind::from_mode(k.mode_bits() | 0o644), Some(k));
        }
        assert_eq!(FileKind::from_mode(0), None);
        assert_eq!(FileKind::from_mode(0o070_000), None);
    }

    #[test]
    fn entry_is_compact() {
        // 240 bytes before the rare fields moved out of line.
        assert!(
            std::mem::size_of::<FileEntry>() <= 112,
            "{}",
            std::mem::size_of::<FileEntry>()
        );
        let mut e = FileEntry::default();
        assert!(e.extra.is_none() && e.link_target().is_none() && e.rdev() == (0, 0));
        let plain = e.clone();
        e.extra_mut();
        assert_eq!(e, plain, "an empty extra equals none");
        e.extra_mut().link_target = Some(b"t".to_vec());
        assert_ne!(e, plain);
        assert_eq!(e.link_target(), Some(&b"t"[..]));
    }

    #[test]
    fn safe_names() {
        let rows: &[(&[u8], bool)] = &[
            (b".", true),
            (b"a/b", true),
            (b"a..b", true),
            (b"..a/b", true),
            (b"", false),
            (b"/etc", false),
            (b"..", false),
            (b"a/../b", false),
            (b"a/..", false),
            (b"a\0b", false),
        ];
        for (name, ok) in rows {
            assert_eq!(check_safe_name(name).is_ok(), *ok, "{name:?}");
        }
    }
}
