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

/// The name a protocol >= 29 comparison sees: a trailing `/.` on a
/// directory is dropped so that `X/.` equals `X`.
#[inline]
fn cmp_name(name: &[u8], is_dir: bool) -> &[u8] {
    if is_dir && name.len() > 2 && name.ends_with(b"/.") {
        name.get(..name.len() - 2).unwrap_or_default()
    } else {
        name
    }
}

/// Length of the common prefix of `a` and `b`, eight bytes at a time.
#[inline]
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let mut i = 0;
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in ca.by_ref().zip(cb.by_ref()) {
        let (Ok(x), Ok(y)) = (<[u8; 8]>::try_from(x), <[u8; 8]>::try_from(y)) else {
            break;
        };
        let d = u64::from_le_bytes(x) ^ u64::from_le_bytes(y);
        if d != 0 {
            return i + (d.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let ta = a.get(i..).unwrap_or_default();
    let tb = b.get(i..).unwrap_or_default();
    i + ta.iter().zip(tb).take_while(|(x, y)| x == y).count()
}

/// One component of a name, from byte offset `pos`: `(dir, key bytes
/// without the directory's '/', offset of the next component)`. Every
/// component but the last is a directory; the last is one when the entry
/// is, except `.` which is an item with an empty key.
#[inline]
fn component(name: &[u8], is_dir: bool, pos: usize) -> (bool, &[u8], Option<usize>) {
    let rest = name.get(pos..).unwrap_or_default();
    match rest.iter().position(|&b| b == b'/') {
        Some(n) => (true, rest.get(..n).unwrap_or_default(), Some(pos + n + 1)),
        None if is_dir && rest == b"." => (false, &[], None),
        None => (is_dir, rest, None),
    }
}

/// Compares two keys of the same kind; a directory key is `bytes/` (the
/// bytes themselves never hold a '/').
#[inline]
fn key_cmp(dir: bool, x: &[u8], y: &[u8]) -> Ordering {
    if !dir {
        return x.cmp(y);
    }
    let m = x.len().min(y.len());
    match x.get(..m).cmp(&y.get(..m)) {
        Ordering::Equal => match x.len().cmp(&y.len()) {
            Ordering::Equal => Ordering::Equal,
            Ordering::Less => b'/'.cmp(y.get(m).unwrap_or(&0)),
            Ordering::Greater => x.get(m).unwrap_or(&0).cmp(&b'/'),
        },
        o => o,
    }
}

/// The protocol >= 29 comparison of two names, without allocating.
///
/// Everything before the last '/' of the common prefix is the same run of
/// directory components in both names, so the component walk starts at
/// the component holding the first difference.
#[inline]
fn cmp_names29(a: &[u8], a_dir: bool, b: &[u8], b_dir: bool) -> Ordering {
    let p = common_prefix(a, b);
    let start = a
        .get(..p)
        .unwrap_or_default()
        .iter()
        .rposition(|&c| c == b'/')
        .map_or(0, |i| i + 1);
    let (mut pa, mut pb) = (Some(start), Some(start));
    loop {
        let (x, y) = match (pa, pb) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(i), Some(j)) => (component(a, a_dir, i), component(b, b_dir, j)),
        };
        if x.0 != y.0 {
            return if x.0 {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        match key_cmp(x.0, x.1, y.1) {
            Ordering::Equal => {}
            o => return o,
        }
        (pa, pb) = (x.2, y.2);
    }
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
    let (ad, bd) = (a.is_dir(), b.is_dir());
    cmp_names29(cmp_name(&a.name, ad), ad, cmp_name(&b.name, bd), bd)
}

/// Whether `entries` is already in [`f_name_cmp`] order (no pair out of
/// order), so sorting it would change nothing.
#[must_use]
pub fn is_sorted_file_list(entries: &[FileEntry], protocol: u8) -> bool {
    entries
        .windows(2)
        .all(|w| matches!(w, [a, b] if f_name_cmp(a, b, protocol).is_le()))
}

/// Appends the memcmp key of a protocol >= 29 name (already through
/// [`cmp_name`]) to `out`: per component a kind byte (1 item, 2
/// directory), the bytes, and for a directory its `/`. Items only ever
/// come last and a directory key's `/` never occurs inside a component,
/// so comparing two keys as byte strings is [`cmp_names29`].
fn push_key29(out: &mut Vec<u8>, name: &[u8], is_dir: bool) {
    let mut pos = Some(0);
    while let Some(p) = pos {
        let (dir, bytes, next) = component(name, is_dir, p);
        out.push(if dir { 2 } else { 1 });
        out.extend_from_slice(bytes);
        if dir {
            out.push(b'/');
        }
        pos = next;
    }
}

/// One entry as the sort sees it: its memcmp key and its index.
struct SortItem<'a> {
    key: &'a [u8],
    idx: usize,
}

/// The stable sorting permutation of `entries`: position `i` of the sorted
/// list holds `entries[perm[i]]`. `None` when the list is already sorted.
///
/// Each name becomes a byte key in one shared buffer so that a plain
/// `memcmp` gives [`f_name_cmp`]'s order; the index breaks ties, which
/// keeps the order of equal names.
#[must_use]
pub fn sort_permutation(entries: &[FileEntry], protocol: u8) -> Option<Vec<usize>> {
    if is_sorted_file_list(entries, protocol) {
        return None;
    }
    if protocol < 29 {
        let mut items: Vec<SortItem<'_>> = entries
            .iter()
            .enumerate()
            .map(|(idx, e)| SortItem { key: &e.name, idx })
            .collect();
        items.sort_unstable_by(|a, b| a.key.cmp(b.key).then(a.idx.cmp(&b.idx)));
        return Some(items.iter().map(|k| k.idx).collect());
    }
    let total: usize = entries
        .iter()
        .map(|e| e.name.len() + 2 + e.name.iter().filter(|&&b| b == b'/').count())
        .sum();
    let mut buf = Vec::with_capacity(total);
    let mut ends = Vec::with_capacity(entries.len());
    for e in entries {
        let dir = e.is_dir();
        push_key29(&mut buf, cmp_name(&e.name, dir), dir);
        ends.push(buf.len());
    }
    let mut start = 0;
    let mut items: Vec<SortItem<'_>> = ends
        .iter()
        .enumerate()
        .map(|(idx, &end)| {
            let key = buf.get(start..end).unwrap_or_default();
            start = end;
            SortItem { key, idx }
        })
        .collect();
    drop(ends);
    items.sort_unstable_by(|a, b| a.key.cmp(b.key).then(a.idx.cmp(&b.idx)));
    Some(items.iter().map(|k| k.idx).collect())
}

/// Reorders a list in place by a permutation from [`sort_permutation`]
/// (consumed: it is left as the identity), calling `swap(i, j)` to
/// exchange two slots, so several parallel lists can move together.
pub fn apply_permutation(perm: &mut [usize], mut swap: impl FnMut(usize, usize)) {
    for start in 0..perm.len() {
        let mut j = start;
        while let Some(slot) = perm.get_mut(j) {
            let k = *slot;
            *slot = j;
            if k == start || k == j {
                break;
            }
            swap(j, k);
            j = k;
        }
    }
}

/// Sorts a file list in place with [`f_name_cmp`]; stable, as upstream's
/// merge sort, so entries comparing equal keep their order. The entries
/// themselves move once (a sorted index permutation is applied).
pub fn sort_file_list(entries: &mut [FileEntry], protocol: u8) {
    if let Some(mut perm) = sort_permutation(entries, protocol) {
        apply_permutation(&mut perm, |i, j| entries.swap(i, j));
    }
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

/// The straightforward comparison (components rebuilt per call), kept as
/// the reference the fast one is checked against.
#[cfg(test)]
mod reference {
    use std::cmp::Ordering;

    use super::FileEntry;

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

    /// Splits an entry's name into (kind, key) components: every component
    /// but the last is a directory; the last is a directory when the entry
    /// is one, except `.` which is an item with an empty key. A trailing
    /// `/.` on a directory is dropped so that `X/.` equals `X`.
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

    /// Upstream's comparison, written the direct way.
    pub(super) fn f_name_cmp(a: &FileEntry, b: &FileEntry, protocol: u8) -> Ordering {
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
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    fn arb_entry() -> impl proptest::strategy::Strategy<Value = FileEntry> {
        use proptest::prelude::*;
        let byte = prop::sample::select(vec![
            b'/', b'/', b'.', b'.', b'-', 0x2d, 0x2e, 0x2f, 0x30, b'a', b'b', 0x00, 0x7f, 0x80,
            0xfe, 0xff,
        ]);
        (prop::collection::vec(byte, 0..12), any::<bool>()).prop_map(|(name, dir)| FileEntry {
            name,
            mode: if dir { 0o040_755 } else { 0o100_644 },
            ..FileEntry::default()
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(20_000))]

        #[test]
        fn memcmp_key_equals_reference(a in arb_entry(), b in arb_entry()) {
            let key = |e: &FileEntry| {
                let mut k = Vec::new();
                push_key29(&mut k, cmp_name(&e.name, e.is_dir()), e.is_dir());
                k
            };
            proptest::prop_assert_eq!(
                key(&a).cmp(&key(&b)),
                reference::f_name_cmp(&a, &b, 31),
                "{:?} {:?}", a, b
            );
        }

        #[test]
        fn fast_cmp_equals_reference(
            a in arb_entry(),
            b in arb_entry(),
            protocol in proptest::sample::select(vec![28u8, 31]),
        ) {
            proptest::prop_assert_eq!(
                f_name_cmp(&a, &b, protocol),
                reference::f_name_cmp(&a, &b, protocol),
                "{:?} {:?}", a, b
            );
        }

        #[test]
        fn sort_equals_reference_stable_sort(
            v in proptest::collection::vec(arb_entry(), 0..40),
            protocol in proptest::sample::select(vec![28u8, 31]),
        ) {
            // Tag each entry so stability is checked too.
            let v: Vec<FileEntry> = v
                .into_iter()
                .enumerate()
                .map(|(i, e)| FileEntry { size: i as u64, ..e })
                .collect();
            let mut want = v.clone();
            want.sort_by(|a, b| reference::f_name_cmp(a, b, protocol));
            let mut got = v.clone();
            sort_file_list(&mut got, protocol);
            proptest::prop_assert!(is_sorted_file_list(&got, protocol));
            proptest::prop_assert_eq!(&got, &want);
            let sorted_already = v
                .windows(2)
                .all(|w| reference::f_name_cmp(&w[0], &w[1], protocol).is_le());
            proptest::prop_assert_eq!(is_sorted_file_list(&v, protocol), sorted_already);
        }
    }

    #[test]
    fn permutation_moves_parallel_lists() {
        let v: Vec<FileEntry> = ["c", "a/", "b", "a/x", "."]
            .iter()
            .map(|n| ent(n))
            .collect();
        let mut perm = sort_permutation(&v, 31).unwrap();
        let mut names: Vec<Vec<u8>> = v.iter().map(|e| e.name.clone()).collect();
        let mut tags: Vec<usize> = (0..v.len()).collect();
        apply_permutation(&mut perm, |i, j| {
            names.swap(i, j);
            tags.swap(i, j);
        });
        let want: Vec<&[u8]> = vec![b".", b"b", b"c", b"a", b"a/x"];
        assert_eq!(names, want);
        assert_eq!(tags, vec![4, 2, 0, 1, 3]);
        assert!(sort_permutation(&v[..0], 31).is_none());
    }

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
