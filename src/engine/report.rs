//! What a transfer reports: statistics, per-item events, exit status.
//!
//! Layer: engine. Plain data.

use std::sync::Arc;

use crate::error::ExitCode;

/// Item flags sent after a file index (protocol >= 29); upstream rsync.h
/// `ITEM_*`.
pub mod item {
    /// Access time differs.
    pub const REPORT_ATIME: u16 = 1 << 0;
    /// Content changed (checksum, symlink target, device number).
    pub const REPORT_CHANGE: u16 = 1 << 1;
    /// Size differs.
    pub const REPORT_SIZE: u16 = 1 << 2;
    /// Symlink time could not be set.
    pub const REPORT_TIMEFAIL: u16 = 1 << 2;
    /// Modification time differs.
    pub const REPORT_TIME: u16 = 1 << 3;
    /// Permissions differ.
    pub const REPORT_PERMS: u16 = 1 << 4;
    /// Owner differs.
    pub const REPORT_OWNER: u16 = 1 << 5;
    /// Group differs.
    pub const REPORT_GROUP: u16 = 1 << 6;
    /// ACL differs.
    pub const REPORT_ACL: u16 = 1 << 7;
    /// Xattrs differ.
    pub const REPORT_XATTR: u16 = 1 << 8;
    /// Creation time differs.
    pub const REPORT_CRTIME: u16 = 1 << 10;
    /// A basis-type byte follows.
    pub const BASIS_TYPE_FOLLOWS: u16 = 1 << 11;
    /// A name (vstring) follows.
    pub const XNAME_FOLLOWS: u16 = 1 << 12;
    /// The item is new on the receiving side.
    pub const IS_NEW: u16 = 1 << 13;
    /// The generator changed it locally.
    pub const LOCAL_CHANGE: u16 = 1 << 14;
    /// File data is requested / follows.
    pub const TRANSFER: u16 = 1 << 15;
    /// Flags that by themselves do not make an item worth sending.
    pub const SIGNIFICANT_MASK: u16 = !(BASIS_TYPE_FOLLOWS | XNAME_FOLLOWS | LOCAL_CHANGE);
}

/// Totals of one transfer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Entries in the file list.
    pub num_files: u64,
    /// Regular files in the file list.
    pub num_reg_files: u64,
    /// Regular files whose data was transferred.
    pub num_transferred: u64,
    /// Directories created.
    pub num_created_dirs: u64,
    /// Sum of the sizes of all files in the list.
    pub total_size: u64,
    /// Sum of the sizes of the transferred files.
    pub transferred_size: u64,
    /// Literal data bytes (sent or received).
    pub literal_data: u64,
    /// Data reconstructed from matched blocks.
    pub matched_data: u64,
    /// Bytes written to the connection.
    pub bytes_sent: u64,
    /// Bytes read from the connection.
    pub bytes_received: u64,
    /// Items deleted.
    pub deleted: u64,
    /// File-list size in bytes (as sent or received).
    pub flist_size: u64,
}

/// The end result of a transfer that ran to completion.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Report {
    /// Totals.
    pub stats: Stats,
    /// Per-file problems that did not stop the transfer.
    pub errors: Vec<String>,
    /// io_error bits (1 general, 2 vanished, 4 delete limit).
    pub io_error: i32,
    /// The peer's process exit status, when it is visible.
    pub remote_exit: Option<i32>,
}

impl Report {
    /// rsync's exit code for this outcome: 0, or 23 / 24 / 25 per the
    /// io_error bits, or the peer's larger status.
    #[must_use]
    pub fn exit_code(&self) -> ExitCode {
        let own = if self.io_error & 1 != 0 || !self.errors.is_empty() {
            ExitCode::Partial
        } else if self.io_error & 2 != 0 {
            ExitCode::Vanished
        } else if self.io_error & 4 != 0 {
            ExitCode::DelLimit
        } else {
            ExitCode::Ok
        };
        match self.remote_exit {
            Some(r) if r > own.code() => ExitCode::from_code(r),
            _ => own,
        }
    }
}

/// The kind of a listed item, for itemize output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symlink.
    Symlink,
    /// Character or block device.
    Device,
    /// Fifo or socket.
    Special,
}

impl ItemKind {
    fn letter(self) -> char {
        match self {
            ItemKind::File => 'f',
            ItemKind::Dir => 'd',
            ItemKind::Symlink => 'L',
            ItemKind::Device => 'D',
            ItemKind::Special => 'S',
        }
    }
}

/// Something a caller may want to observe while a transfer runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// One item and what happened to it (rsync's `%i`).
    Itemize {
        /// Item flags.
        flags: u16,
        /// What kind of item.
        kind: ItemKind,
        /// Its name relative to the transfer root.
        name: Vec<u8>,
        /// Symlink target or hard-link leader.
        extra: Option<Vec<u8>>,
        /// True when the local side sends the data (`<`), false when it
        /// receives it (`>`).
        sending: bool,
        /// Whether times are preserved (`t` vs `T`).
        times: bool,
        /// Whether item flags came over the wire (protocol >= 29).
        known: bool,
        /// The file's size (0 for what is not a regular file).
        size: u64,
    },
    /// An extraneous item was deleted.
    Deleted {
        /// Its name; directories end with `/`.
        name: Vec<u8>,
    },
    /// Bytes of a file transferred so far.
    Progress {
        /// The file.
        name: Vec<u8>,
        /// Bytes done.
        done: u64,
        /// Its size.
        total: u64,
    },
    /// A text message from either side.
    Message {
        /// True for errors and warnings.
        error: bool,
        /// The text.
        text: String,
    },
    /// The whole file list is known (sent or received): its entries and
    /// the total size of its regular files. Emitted once, before any file
    /// data moves.
    FileList {
        /// Entries in the list.
        files: u64,
        /// Total size of the regular files in it.
        size: u64,
    },
    /// A regular file needs no data: the quick check (or `--checksum`)
    /// found it up to date. Emitted on the side that decides it (the
    /// generator) and on a sending side for each file its peer's generator
    /// passed over.
    UpToDate {
        /// Its name relative to the transfer root.
        name: Vec<u8>,
        /// Its size.
        size: u64,
    },
}

impl Event {
    /// rsync's 11-character itemize string (`%i`) for an `Itemize` event.
    #[must_use]
    pub fn itemize_string(&self) -> Option<String> {
        let Event::Itemize {
            flags,
            kind,
            sending,
            times,
            known,
            ..
        } = self
        else {
            return None;
        };
        let f = *flags;
        let mut s = String::with_capacity(11);
        s.push(if f & item::TRANSFER != 0 {
            if *sending { '<' } else { '>' }
        } else if f & item::LOCAL_CHANGE != 0 {
            if f & item::XNAME_FOLLOWS != 0 {
                'h'
            } else {
                'c'
            }
        } else {
            '.'
        });
        s.push(kind.letter());
        if !known {
            s.push_str("?????????");
            return Some(s);
        }
        if f & item::IS_NEW != 0 {
            s.push_str("+++++++++");
            return Some(s);
        }
        let bit = |b: u16, c: char| if f & b != 0 { c } else { '.' };
        s.push(bit(item::REPORT_CHANGE, 'c'));
        s.push(if *kind == ItemKind::Symlink {
            '.'
        } else {
            bit(item::REPORT_SIZE, 's')
        });
        s.push(if f & item::REPORT_TIME != 0 {
            if *times && !(*kind == ItemKind::Symlink && f & item::REPORT_TIMEFAIL != 0) {
                't'
            } else {
                'T'
            }
        } else {
            '.'
        });
        s.push(bit(item::REPORT_PERMS, 'p'));
        s.push(bit(item::REPORT_OWNER, 'o'));
        s.push(bit(item::REPORT_GROUP, 'g'));
        s.push(
            match (f & item::REPORT_ATIME != 0, f & item::REPORT_CRTIME != 0) {
                (true, true) => 'b',
                (true, false) => 'u',
                (false, true) => 'n',
                _ => '.',
            },
        );
        s.push(bit(item::REPORT_ACL, 'a'));
        s.push(bit(item::REPORT_XATTR, 'x'));
        let first = s.chars().next().unwrap_or('.');
        if matches!(first, '.' | 'h' | 'c') && s[2..].chars().all(|c| c == '.') {
            s.truncate(2);
            s.push_str("         ");
        }
        Some(s)
    }
}

/// Receives events as they happen.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(flags: u16, kind: ItemKind, sending: bool) -> String {
        Event::Itemize {
            flags,
            kind,
            name: b"x".to_vec(),
            extra: None,
            sending,
            times: true,
            known: true,
            size: 0,
        }
        .itemize_string()
        .unwrap()
    }

    #[test]
    fn itemize_strings_as_rsync() {
        use item::*;
        assert_eq!(
            ev(TRANSFER | REPORT_SIZE | REPORT_TIME, ItemKind::File, false),
            ">f.st......"
        );
        assert_eq!(ev(TRANSFER | IS_NEW, ItemKind::File, false), ">f+++++++++");
        assert_eq!(
            ev(LOCAL_CHANGE | IS_NEW, ItemKind::Symlink, false),
            "cL+++++++++"
        );
        assert_eq!(
            ev(LOCAL_CHANGE | IS_NEW, ItemKind::Dir, false),
            "cd+++++++++"
        );
        assert_eq!(ev(REPORT_TIME, ItemKind::Dir, false), ".d..t......");
        assert_eq!(
            ev(TRANSFER | REPORT_SIZE | REPORT_TIME, ItemKind::File, true),
            "<f.st......"
        );
        assert_eq!(ev(0, ItemKind::File, false), ".f         ");
    }
}
