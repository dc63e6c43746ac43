//! Upstream's file-list order and duplicate cleaning.
//!
//! Layer: flist (L2). Uses nothing outside `flist`; pure compute.
//! Mirrors upstream flist.c `f_name_cmp`, `fsort` (a stable merge sort) and
//! `flist_sort_and_clean`.
//!
//! Both sides index entries by their sorted position, so this order must
//! equal upstream's exactly.

use std::cmp::Ordering;

use super::entry::{FileEntry, FileKind};

/// One path component for the protocol >= 29 comparison.
#[derive(Clone, Copy)]
struct Comp<'a> {
    /// `true` for a directory component (sorts after items).
    dir: bool,
    /// The component bytes; a directory component's key ends in `/`.
    bytes: &'a [u8],
}

impl Comp<'_> {
    fn key(&self) -> impl Iterator<Item = u8> + '_ {
        self.bytes.iter().copied().chain(self.dir.then_some(b'/'))
    }
}

/// Splits an entry's name into (kind, key) components: every component but
/// the last is a directory; the last is a directory when the entry is one,
/// except `.` which is an item with an empty key. A trailing `/.` on a
/// directory is dropped so that `X/.` equals `X`.
fn components(e: &FileEntry) -> impl Iterator<Item = Comp<'_>> {
    let is_dir = e.is_dir();
    let mut name: &[u8] = &e.name;
    if is_dir && name.len() > 2 && name.ends_with(b"/.") {
        name = name.get(..name.len() - 2).unwrap_or_default();
    }
    let count = name.split(|&b| b == b'/').count();
    name.split(|&b| b == b'/').enumerate().map(move |(i, c)| {
        if i + 1 < count {
            Comp {
                dir: true,
                bytes: c,
            }
        } else if is_dir && c == b"." {
            Comp {
                dir: false,
                bytes: &[],
            }
        } else {
            Comp {
                dir: is_dir,
                bytes: c,
            }
        }
    })
}

/// Upstream's name comparison for sorting file lists.
///
/// Protocol < 29: the full names as unsigned byte strings. Protocol >= 29:
/// component by component, an item (non-directory) before a directory at
/// the first differing component, otherwise the keys (`name/` for a
/// directory) as byte strings; `.` sorts first.
#[must_use]
pub fn f_name_cmp(a: &FileEntry, b: &FileEntry, protocol: u8) -> Ordering {
    if protocol < 29 {
        return a.name.cmp(&b.name);
    }
    let mut ca = components(a);
    let mut cb = components(b);
    loop {
        match (ca.next(), cb.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                if x.dir != y.dir {
                    return if x.dir {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    };
                }
                match x.key().cmp(y.key()) {
                    Ordering::Equal => {}
                    o => return o,
                }
            }
        }
    }
}

/// Sorts a file list in place with [`f_name_cmp`]; stable, as upstream's
/// merge sort, so entries comparing equal keep their order.
pub fn sort_file_list(entries: &mut [FileEntry], protocol: u8) {
    entries.sort_by(|a, b| f_name_cmp(a, b, protocol));
}

/// Which slots of a sorted list stay active after removing duplicates (the
/// receiving side's cleaning). A duplicate is blanked but keeps its slot.
/// Of two entries with the same path the directory wins if exactly one is a
/// directory, otherwise the earlier one. At protocol >= 29 a directory is
/// also checked against an earlier non-directory of the same path, since
/// the comparison never calls those equal.
#[must_use]
pub fn clean_file_list(entries: &[FileEntry], protocol: u8) -> Vec<bool> {
    let mut active = vec![true; entries.len()];
    let mut last: Option<usize> = None;
    for (i, e) in entries.iter().enumerate() {
        let mut dup = last.filter(|&l| {
            entries
                .get(l)
                .is_some_and(|p| f_name_cmp(e, p, protocol).is_eq())
        });
        if dup.is_none() && protocol >= 29 && e.is_dir() {
            dup = find_non_dir(entries.get(..i).unwrap_or_default(), &active, e, protocol);
        }
        match dup {
            Some(d) => {
                let other_dir = entries.get(d).is_some_and(FileEntry::is_dir);
                if e.is_dir() && !other_dir {
                    if let Some(a) = active.get_mut(d) {
                        *a = false;
                    }
                    last = Some(i);
                } else if let Some(a) = active.get_mut(i) {
                    *a = false;
                }
            }
            None => last = Some(i),
        }
    }
    active
}

/// An active non-directory in the sorted `before` with the same path as `dir`.
fn find_non_dir(
    before: &[FileEntry],
    active: &[bool],
    dir: &FileEntry,
    protocol: u8,
) -> Option<usize> {
    let probe = FileEntry {
        name: dir.name.clone(),
        mode: FileKind::Regular.mode_bits(),
        ..FileEntry::default()
    };
    let found = before
        .binary_search_by(|x| f_name_cmp(x, &probe, protocol))
        .ok()?;
    let same = |j: &usize| {
        before
            .get(*j)
            .is_some_and(|x| f_name_cmp(x, &probe, protocol).is_eq())
    };
    let lo = (0..=found).rev().take_while(same).last().unwrap_or(found);
    (lo..before.len())
        .take_while(same)
        .find(|j| active.get(*j) == Some(&true))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    fn ent(name: &str) -> FileEntry {
        let (name, mode) = match name.strip_suffix('/') {
            Some(d) => (d, 0o040_755),
            None if name == "." => (name, 0o040_755),
            None => (name, 0o100_644),
        };
        FileEntry {
            name: name.as_bytes().to_vec(),
            mode,
            ..FileEntry::default()
        }
    }

    fn sorted(input: &[&str], protocol: u8) -> Vec<String> {
        let mut v: Vec<FileEntry> = input.iter().map(|n| ent(n)).collect();
        sort_file_list(&mut v, protocol);
        v.iter()
            .map(|e| {
                String::from_utf8_lossy(&e.name).into_owned()
                    + if e.is_dir() && e.name != b"." {
                        "/"
                    } else {
                        ""
                    }
            })
            .collect()
    }

    #[test]
    fn documented_orders() {
        // Names with a trailing '/' are directories.
        let capture = [
            "sub/deeper/leaf.txt",
            "x.txt",
            "sub/",
            ".",
            "b.txt",
            "sub/inner.txt",
            "a.txt",
            "owned.txt",
            "sub/deeper/",
            "bin.dat",
            "acl.txt",
        ];
        let rows: &[(&[&str], u8, &[&str])] = &[
            (
                &capture,
                29,
                &[
                    ".",
                    "a.txt",
                    "acl.txt",
                    "b.txt",
                    "bin.dat",
                    "owned.txt",
                    "x.txt",
                    "sub/",
                    "sub/inner.txt",
                    "sub/deeper/",
                    "sub/deeper/leaf.txt",
                ],
            ),
            (
                &capture,
                28,
                &[
                    ".",
                    "a.txt",
                    "acl.txt",
                    "b.txt",
                    "bin.dat",
                    "owned.txt",
                    "sub/",
                    "sub/deeper/",
                    "sub/deeper/leaf.txt",
                    "sub/inner.txt",
                    "x.txt",
                ],
            ),
            (
                &["emptydir/", "link", "file.txt", "fifo", "delta.bin", "."],
                32,
                &[".", "delta.bin", "fifo", "file.txt", "link", "emptydir/"],
            ),
            (
                &["emptydir/", "link", "file.txt", "fifo", "delta.bin", "."],
                27,
                &[".", "delta.bin", "emptydir/", "fifo", "file.txt", "link"],
            ),
            (&["a/", "a.b/", "ab"], 31, &["ab", "a.b/", "a/"]),
            (&["a/x", "a/", "ab"], 30, &["ab", "a/", "a/x"]),
        ];
        for (input, protocol, want) in rows {
            assert_eq!(sorted(input, *protocol), *want, "protocol {protocol}");
        }
    }

    #[test]
    fn dot_entries_compare_equal_to_their_dir() {
        let a = ent("x/");
        let b = FileEntry {
            name: b"x/.".to_vec(),
            ..ent("x/")
        };
        assert_eq!(f_name_cmp(&a, &b, 31), Ordering::Equal);
        assert_eq!(f_name_cmp(&ent("."), &ent("-"), 31), Ordering::Less);
    }

    #[test]
    fn cleaning() {
        let rows: &[(&[&str], u8, &[bool])] = &[
            (&["a", "a", "b"], 31, &[true, false, true]),
            (&["a", "a/", "b"], 31, &[false, true, true]),
            (&["a", "b", "a/"], 31, &[false, true, true]),
            (&["a/", "a/"], 31, &[true, false]),
            (&["a", "a/"], 28, &[false, true]),
        ];
        for (input, protocol, want) in rows {
            let mut v: Vec<FileEntry> = input.iter().map(|n| ent(n)).collect();
            sort_file_list(&mut v, *protocol);
            assert_eq!(clean_file_list(&v, *protocol), *want, "{input:?}");
        }
    }
}
