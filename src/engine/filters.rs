//! Building the filter lists each role applies, from the options, the
//! rules received from the client, and a daemon module's rules.
//!
//! Layer: engine. Uses filter; reads merge files from the local disk.
//! Mirrors upstream options.c (filter options), exclude.c
//! `send_filter_list` / `recv_filter_list` (the `-C` additions).

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::filter::{FilterList, FilterSet, RuleFlags, Side};
use crate::fs::beneath::Root;

use super::options::Options;

/// Reads a file named on the command line (`-` is stdin); `Ok(None)` if it
/// does not exist.
///
/// # Errors
/// The file exists but cannot be read.
pub fn read_local(name: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
    if name == b"-" {
        let mut v = Vec::new();
        std::io::stdin().read_to_end(&mut v)?;
        return Ok(Some(v));
    }
    read_path(Path::new(std::ffi::OsStr::from_bytes(name)))
}

fn read_path(p: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(p) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A reader for the per-directory merge files of destination directory
/// `dir` (relative to `root`), resolved beneath the root: symlinks are
/// followed only while they stay inside it. A missing or unreadable file
/// counts as absent (as in rsync); one reached only by leaving the
/// destination is an error, never read.
pub fn dir_reader<'a>(
    root: &'a Root,
    dir: &'a [u8],
) -> impl FnMut(&[u8]) -> std::io::Result<Option<Vec<u8>>> + 'a {
    move |name: &[u8]| {
        let mut rel = Vec::with_capacity(dir.len() + 1 + name.len());
        if !dir.is_empty() && dir != b"." {
            rel.extend_from_slice(dir);
            rel.push(b'/');
        }
        rel.extend_from_slice(name);
        root.read_inside(&rel)
    }
}

fn syntax(e: &crate::filter::ParseError) -> Error {
    match e {
        crate::filter::ParseError::MergeFile { .. } => Error::FileSelect(format!("rsync: {e}")),
        _ => Error::Syntax(e.to_string()),
    }
}

/// The absolute directory names are relative to (what `/`-modified rules
/// match against): a source ending in `/` itself, else its parent; the
/// destination on the receiving side.
#[must_use]
pub fn transfer_root(path: &Path, side: Side) -> Option<Vec<u8>> {
    let raw = path.as_os_str().as_bytes();
    let dir =
        if side == Side::Receiver || raw.ends_with(b"/") || raw.ends_with(b"/.") || raw == b"." {
            path.to_path_buf()
        } else {
            path.parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        };
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    let abs = std::path::absolute(&dir).ok()?;
    let mut v = abs.as_os_str().as_bytes().to_vec();
    while v.len() > 1 && (v.ends_with(b"/") || v.ends_with(b"/.")) {
        v.truncate(if v.ends_with(b"/.") {
            v.len() - 2
        } else {
            v.len() - 1
        });
    }
    Some(v)
}

/// The sending side's root for `/`-anchored rules: with `-R` the
/// directory before a `/./` marker (else the current directory), with
/// `--files-from` the source directory itself, else as
/// [`transfer_root`].
#[must_use]
pub fn send_root(src: &Path, opts: &Options) -> Option<Vec<u8>> {
    if opts.files_from.is_some() {
        return transfer_root(src, Side::Receiver);
    }
    if opts.relative {
        let raw = src.as_os_str().as_bytes();
        let dir = match raw.windows(3).position(|w| w == b"/./") {
            Some(0) => PathBuf::from("/"),
            Some(p) => PathBuf::from(std::ffi::OsStr::from_bytes(&raw[..p])),
            None => PathBuf::from("."),
        };
        return transfer_root(&dir, Side::Receiver);
    }
    transfer_root(src, Side::Sender)
}

fn base(opts: &Options, side: Side, protocol: u8, root: Option<Vec<u8>>) -> FilterList {
    FilterList::new(side)
        .with_delete_excluded(opts.delete_excluded)
        .with_protocol(protocol)
        .with_root(root)
}

/// The client's list from its options, before anything is sent.
///
/// # Errors
/// A rule does not parse or a rules file cannot be read.
pub fn client_list(
    opts: &Options,
    side: Side,
    protocol: u8,
    root: Option<Vec<u8>>,
) -> Result<FilterList> {
    let mut fl = base(opts, side, protocol, root);
    for a in &opts.filters {
        fl.add_arg(a, &mut read_local).map_err(|e| syntax(&e))?;
    }
    Ok(fl)
}

/// `-C` as rsync's client adds it: before sending when it is the sender,
/// after sending when it receives.
///
/// # Errors
/// Never in practice.
pub fn client_cvs(
    fl: &mut FilterList,
    opts: &Options,
    protocol: u8,
    before_send: bool,
) -> Result<()> {
    if !opts.cvs_exclude {
        return Ok(());
    }
    let sender = fl.side() == Side::Sender;
    let r = match (before_send, sender) {
        (true, true) => fl.add_cvs_exclude(protocol >= 29, true),
        (false, false) => fl.add_cvs_exclude(true, true),
        (false, true) => fl.add_cvs_exclude(protocol < 29, false),
        (true, false) => Ok(()),
    };
    r.map_err(|e| syntax(&e))
}

/// The server's list from the rules the client sent.
///
/// # Errors
/// A rule does not parse.
pub fn server_list(
    rules: &[Vec<u8>],
    opts: &Options,
    side: Side,
    protocol: u8,
    root: Option<Vec<u8>>,
) -> Result<FilterList> {
    let mut fl = base(opts, side, protocol, root);
    for r in rules {
        fl.add_with(r, RuleFlags::NONE, protocol < 29, &mut |_: &[u8]| {
            Err(std::io::Error::other(
                "merge files are not read for a client",
            ))
        })
        .map_err(|e| syntax(&e))?;
    }
    if opts.cvs_exclude {
        let sender = side == Side::Sender;
        fl.add_cvs_exclude(sender || protocol < 29, sender)
            .map_err(|e| syntax(&e))?;
    }
    Ok(fl)
}

/// The list and a daemon module's rules, ready to apply; `None` when there
/// is nothing to check.
///
/// # Errors
/// A module rule does not parse.
pub fn with_daemon(user: FilterList, opts: &Options, side: Side) -> Result<Option<FilterSet>> {
    let daemon = if opts.daemon_filters.is_empty() {
        None
    } else {
        let mut d = FilterList::new(side)
            .for_daemon()
            .with_root(module_relative_root(opts, user.root()));
        for a in &opts.daemon_filters {
            d.add_daemon_arg(a, &mut read_local)
                .map_err(|e| syntax(&e))?;
        }
        Some(d)
    };
    let set = FilterSet { user, daemon };
    Ok((!set.is_empty()).then_some(set))
}

/// The set with rsync's parent-directory scan done for the sending side:
/// `first` is the first directory the scan enters (see
/// [`first_send_dir`]).
#[must_use]
pub fn with_parents(set: Option<FilterSet>, first: Option<PathBuf>) -> Option<FilterSet> {
    let (Some(set), Some(first)) = (set.as_ref(), first) else {
        return set;
    };
    let Ok(abs) = std::path::absolute(&first) else {
        return Some(set.clone());
    };
    let mut dir = abs.as_os_str().as_bytes().to_vec();
    while dir.len() > 1 && (dir.ends_with(b"/") || dir.ends_with(b"/.")) {
        dir.truncate(if dir.ends_with(b"/.") {
            dir.len() - 2
        } else {
            dir.len() - 1
        });
    }
    let mut read =
        |p: &[u8]| Ok(read_path(Path::new(std::ffi::OsStr::from_bytes(p))).unwrap_or(None));
    Some(
        set.enter_parents(&dir, &mut read)
            .unwrap_or_else(|_| set.clone()),
    )
}

/// The receiving side's set with rsync's parent-directory scan done: the
/// `.rsync-filter` (or other `/`-named per-directory merge file) of each
/// directory above the destination, from `/` down, as rsync's receiver
/// reads them when it first enters the destination to delete. Not in a
/// daemon module (its names stop at the module).
#[must_use]
pub fn receiver_with_parents(
    set: Option<&FilterSet>,
    dest: &Path,
    opts: &Options,
) -> Option<FilterSet> {
    let set = set?;
    if opts.module_root.is_some() || opts.delete.is_none() {
        return Some(set.clone());
    }
    with_parents(Some(set.clone()), Some(dest.to_path_buf()))
}

/// The first directory the sending side's scan enters: the first source
/// that is a directory, or with `-R` the first directory of the first
/// name (after a `/./`), or with `--files-from` of the first listed name
/// under `base`.
#[must_use]
pub fn first_send_dir(
    sources: &[PathBuf],
    opts: &Options,
    names: Option<&[Vec<u8>]>,
) -> Option<PathBuf> {
    if let Some(names) = names {
        let base = sources.first()?;
        let first = names.first()?;
        let first = match first.windows(3).position(|w| w == b"/./") {
            Some(p) => &first[p + 3..],
            None => first.as_slice(),
        };
        let comp = first
            .split(|&c| c == b'/')
            .find(|c| !c.is_empty() && *c != b".")?;
        let p = base.join(std::ffi::OsStr::from_bytes(comp));
        return p.is_dir().then_some(p);
    }
    if opts.relative {
        let raw = sources.first()?.as_os_str().as_bytes();
        let (dir, name) = match raw.windows(3).position(|w| w == b"/./") {
            Some(0) => (PathBuf::from("/"), &raw[3..]),
            Some(p) => (
                PathBuf::from(std::ffi::OsStr::from_bytes(&raw[..p])),
                &raw[p + 3..],
            ),
            None => (PathBuf::from("."), raw),
        };
        let comp = name
            .split(|&c| c == b'/')
            .find(|c| !c.is_empty() && *c != b".");
        let p = match comp {
            Some(c) => dir.join(std::ffi::OsStr::from_bytes(c)),
            None => dir,
        };
        return p.is_dir().then_some(p);
    }
    sources.iter().find(|s| s.is_dir()).cloned()
}

/// The transfer root as a path inside the daemon module (`/sub` for a
/// transfer that starts in the module's `sub`), where a module's rules
/// are anchored.
fn module_relative_root(opts: &Options, root: Option<&[u8]>) -> Option<Vec<u8>> {
    let module = std::path::absolute(opts.module_root.as_ref()?).ok()?;
    let mut m = module.as_os_str().as_bytes().to_vec();
    while m.len() > 1 && m.ends_with(b"/") {
        m.pop();
    }
    let root = root?;
    let rest = root.strip_prefix(m.as_slice())?;
    if rest.is_empty() {
        return Some(b"/".to_vec());
    }
    rest.starts_with(b"/").then(|| rest.to_vec())
}

/// [`filters_for_dir`] remembering each directory's filters in `cache`,
/// so that a merge file is read once, when its directory is first
/// entered (rsync keeps a directory's rules while it works below it: a
/// merge file deleted by then still counts).
///
/// # Errors
/// As [`filters_for_dir`] (an error is not remembered).
pub fn filters_for_dir_cached(
    set: &FilterSet,
    root: &Root,
    name: &[u8],
    cache: &mut std::collections::HashMap<Vec<u8>, FilterSet>,
) -> std::result::Result<FilterSet, crate::filter::ParseError> {
    let key: &[u8] = if name.is_empty() { b"." } else { name };
    if let Some(f) = cache.get(key) {
        return Ok(f.clone());
    }
    let made = if key == b"." {
        filters_for_dir(set, root, b".")?
    } else {
        let parent: &[u8] = match key.iter().rposition(|&c| c == b'/') {
            Some(p) => key.get(..p).unwrap_or(b"."),
            None => b".",
        };
        let up = filters_for_dir_cached(set, root, parent, cache)?;
        let mut rd = dir_reader(root, key);
        up.enter_dir(key, &mut rd)?
    };
    cache.insert(key.to_vec(), made.clone());
    Ok(made)
}

/// The filters in effect in destination directory `name` (relative to
/// `root`), with the per-directory merge files of it and its parents
/// read beneath the root.
///
/// # Errors
/// A merge file does not parse, or is reached only by leaving the
/// destination: the directory's rules are unknown (the caller deletes
/// nothing there).
pub fn filters_for_dir(
    set: &FilterSet,
    root: &Root,
    name: &[u8],
) -> std::result::Result<FilterSet, crate::filter::ParseError> {
    let mut cur = {
        let mut rd = dir_reader(root, b".");
        set.enter_dir(b".", &mut rd)?
    };
    if name == b"." || name.is_empty() {
        return Ok(cur);
    }
    let mut rel: Vec<u8> = Vec::new();
    for comp in name.split(|&c| c == b'/') {
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(comp);
        let mut rd = dir_reader(root, &rel);
        cur = cur.enter_dir(&rel, &mut rd)?;
    }
    Ok(cur)
}
