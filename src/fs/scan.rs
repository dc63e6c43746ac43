//! Walks the source arguments into file-list entries the way rsync's
//! sender does.
//!
//! Layer: fs (L3). Uses `flist` and `std::fs`.
//! Mirrors upstream flist.c `send_file_list` / `send_file_name` /
//! `send_directory` / `make_file` and uidlist.c `uid_to_user`.
//!
//! Naming: a source ending in `/` (or `/.`) sends its contents, the
//! directory itself as `.`; without the slash its last component is the top
//! name. Top directories carry `XMIT_TOP_DIR`. Symlinks are never followed.
//! A file that vanishes sets io_error bit 2, any other read failure bit 1,
//! and the scan goes on.

use std::collections::HashMap;
use std::ffi::{CStr, OsStr};
use std::fs;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, Dir, Stat};
use rustix::io::Errno;

use super::beneath_read::{self as rd, ReadRoot};
use crate::filter::FilterSet;
use crate::flist::entry::{FileEntry, FileKind, HardLink, XMIT_NO_CONTENT_DIR, XMIT_TOP_DIR};
use crate::flist::sort::{apply_permutation, sort_permutation};

/// io_error bit for a general read failure (upstream `IOERR_GENERAL`).
pub const IOERR_GENERAL: i32 = 1;
/// io_error bit for a file that vanished (upstream `IOERR_VANISHED`).
pub const IOERR_VANISHED: i32 = 2;

/// Computes a `--checksum` sum for a regular file.
pub type ChecksumFn = fn(&Path) -> io::Result<Vec<u8>>;

/// Says whether a symlink (target, listed name) points outside the tree.
pub type UnsafeLinkFn = fn(&[u8], &[u8]) -> bool;

/// What to include while scanning.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScanOptions {
    /// `-r`: descend into directories.
    pub recursive: bool,
    /// `-l`: send symlinks as symlinks (else they are skipped).
    pub links: bool,
    /// `--devices`: send device files (else they are skipped).
    pub devices: bool,
    /// `--specials`: send fifos and sockets (else they are skipped).
    pub specials: bool,
    /// `-H`: record device and inode of non-directories with several links.
    pub hard_links: bool,
    /// `--checksum`: when set, called for every regular file; a failure
    /// sets io_error bit 1 and leaves the sum empty. `None` leaves
    /// [`FileEntry::checksum`] for the caller to fill.
    pub checksum: Option<ChecksumFn>,
    /// `-x`: do not descend into directories on another file system (the
    /// mount point itself is sent, marked `XMIT_NO_CONTENT_DIR`).
    pub one_file_system: bool,
    /// `-d`: without `-r`, send directories as entries (a `src/` source
    /// sends its direct contents) instead of skipping them.
    pub dirs: bool,
    /// `-X` count: read every entry's extended attributes into
    /// [`FileEntry::xattrs`] (0: leave them `None`). A file whose
    /// attributes cannot be read is left out, with io_error bit 1.
    pub xattrs: u8,
    /// `-A`: read every non-symlink entry's ACLs into
    /// [`FileEntry::acls`], with the names of the ids they use. A file
    /// whose ACLs cannot be read is left out, with io_error bit 1.
    pub acls: bool,
    /// `-L`: every symlink is replaced by what it points to.
    pub copy_links: bool,
    /// `-k`: symlinks to directories are replaced by the directory.
    pub copy_dirlinks: bool,
    /// `--copy-unsafe-links`: symlinks this predicate (target, listed
    /// name) calls unsafe are replaced by what they point to.
    pub copy_unsafe_links: Option<UnsafeLinkFn>,
    /// `-R`: a source's name is its path (after a `/./` marker if there
    /// is one), not its last component.
    pub relative: bool,
    /// With `relative`: send the parent directories of each source name
    /// first, marked as implied (`XMIT_TOP_DIR | XMIT_NO_CONTENT_DIR`),
    /// with their attributes (symlinks to directories followed), as
    /// rsync does at protocol 30 and later.
    pub implied_dirs: bool,
}

/// The scanned list.
#[derive(Debug, Clone, Default)]
pub struct ScanResult {
    /// The entries in the order to send them (sorted, see [`sort_scan`]).
    pub entries: Vec<FileEntry>,
    /// The local path of each entry, same index.
    pub paths: Vec<PathBuf>,
    /// `IOERR_*` bits for the end of the list.
    pub io_error: i32,
    /// What went wrong, in rsync's words (`link_stat "x" failed: ...`);
    /// at most [`MAX_SCAN_ERRORS`] are kept.
    pub errors: Vec<String>,
    /// A source that stops the whole transfer (rsync's `found ".." dir in
    /// relative path`), with rsync's text.
    pub fatal: Option<String>,
}

/// How many scan error messages are kept.
pub const MAX_SCAN_ERRORS: usize = 100;

/// Scans `sources` into one list sorted with the protocol >= 29 order; for
/// an older protocol call [`sort_scan`] afterwards.
///
/// # Errors
/// Only when `/etc/passwd` or `/etc/group` exist but cannot be read; a
/// source or file that cannot be read sets `io_error` instead.
pub fn scan_sources(sources: &[PathBuf], opts: &ScanOptions) -> io::Result<ScanResult> {
    scan_sources_filtered(sources, opts, None)
}

/// [`scan_sources`] leaving out what `filters` exclude: an excluded
/// directory is not entered, and per-directory merge files are read in
/// each directory before its entries are checked (upstream
/// `send_directory` with `change_local_filter_dir`).
///
/// # Errors
/// As [`scan_sources`].
pub fn scan_sources_filtered(
    sources: &[PathBuf],
    opts: &ScanOptions,
    filters: Option<&FilterSet>,
) -> io::Result<ScanResult> {
    scan_sources_beneath(None, sources, opts, filters)
}

/// [`scan_sources_filtered`] with every path resolved beneath `beneath`
/// (a daemon module that is not chrooted) when it is given.
///
/// # Errors
/// As [`scan_sources`].
pub fn scan_sources_beneath(
    beneath: Option<Arc<ReadRoot>>,
    sources: &[PathBuf],
    opts: &ScanOptions,
    filters: Option<&FilterSet>,
) -> io::Result<ScanResult> {
    if opts.relative {
        let args: Vec<Vec<u8>> = sources
            .iter()
            .map(|p| p.as_os_str().as_bytes().to_vec())
            .collect();
        return scan_relative_beneath(beneath, None, &args, opts, filters);
    }
    let mut s = Scanner::new(opts, filters)?;
    s.beneath = beneath;
    for src in sources {
        s.source(src);
    }
    sort_scan(&mut s.out, 32);
    Ok(s.out)
}

/// The `-R` scan (also `--files-from`): each of `names` is taken relative
/// to `base` (the current directory when `None`); its sent name is the
/// part after a `/./` marker, or all of it, cleaned as rsync does, and
/// its parent directories are sent first when
/// [`ScanOptions::implied_dirs`] is set. Duplicates (an implied directory
/// named again, overlapping sources) are sent once; a directory sent both
/// implied and as a source keeps the source's flags.
///
/// # Errors
/// As [`scan_sources`].
pub fn scan_relative(
    base: Option<&Path>,
    names: &[Vec<u8>],
    opts: &ScanOptions,
    filters: Option<&FilterSet>,
) -> io::Result<ScanResult> {
    scan_relative_beneath(None, base, names, opts, filters)
}

/// [`scan_relative`] with every path resolved beneath `beneath` when it
/// is given.
///
/// # Errors
/// As [`scan_sources`].
pub fn scan_relative_beneath(
    beneath: Option<Arc<ReadRoot>>,
    base: Option<&Path>,
    names: &[Vec<u8>],
    opts: &ScanOptions,
    filters: Option<&FilterSet>,
) -> io::Result<ScanResult> {
    let mut s = Scanner::new(opts, filters)?;
    s.beneath = beneath;
    let base = base.map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    for n in names {
        s.source_relative(&base, n);
        if s.out.fatal.is_some() {
            break;
        }
    }
    dedup_relative(&mut s.out);
    sort_scan(&mut s.out, 32);
    Ok(s.out)
}

/// Keeps the first entry of each name; a directory seen again as a
/// source or content directory loses its implied mark.
fn dedup_relative(out: &mut ScanResult) {
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut keep = vec![true; out.entries.len()];
    for (i, kept) in keep.iter_mut().enumerate() {
        let name = out.entries[i].name.clone();
        match seen.get(&name) {
            Some(&first) => {
                *kept = false;
                let later = out.entries[i].xflags;
                let f = &mut out.entries[first];
                if f.is_dir() && is_implied(f.xflags) && !is_implied(later) {
                    f.xflags = later;
                } else if f.is_dir() && later & XMIT_NO_CONTENT_DIR == 0 {
                    f.xflags &= !XMIT_NO_CONTENT_DIR;
                    f.xflags |= later & XMIT_TOP_DIR;
                }
            }
            None => {
                seen.insert(name, i);
            }
        }
    }
    let mut k = keep.iter();
    out.entries.retain(|_| *k.next().unwrap_or(&true));
    let mut k = keep.iter();
    out.paths.retain(|_| *k.next().unwrap_or(&true));
}

fn is_implied(xflags: u32) -> bool {
    xflags & (XMIT_TOP_DIR | XMIT_NO_CONTENT_DIR) == XMIT_TOP_DIR | XMIT_NO_CONTENT_DIR
}

/// How rsync classifies a source name (flist.c `name_type`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum NameType {
    Normal,
    DotDir,
    SlashEnding,
}

/// rsync's `clean_fname` with `CFN_KEEP_TRAILING_SLASH |
/// CFN_DROP_TRAILING_DOT_DIR` (or without flags when `plain`): duplicate
/// slashes and `.` components go, `..` stays, an empty result is `.`.
#[must_use]
pub fn clean_fname(name: &[u8], plain: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    let anchored = name.first() == Some(&b'/');
    if anchored {
        out.push(b'/');
    }
    let mut i = usize::from(anchored);
    while i < name.len() {
        if name[i] == b'/' {
            i += 1;
            continue;
        }
        if name[i] == b'.' {
            let next = name.get(i + 1).copied();
            if next == Some(b'/') {
                i += 2;
                continue;
            }
            if next.is_none() && !plain {
                break;
            }
        }
        while i < name.len() {
            let c = name[i];
            out.push(c);
            i += 1;
            if c == b'/' {
                break;
            }
        }
    }
    if plain && out.len() > usize::from(anchored) && out.last() == Some(&b'/') {
        out.pop();
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

fn find_sub(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn has_dot_dot(name: &[u8]) -> bool {
    name.split(|&c| c == b'/').any(|c| c == b"..")
}

/// Re-sorts a scan (entries and paths together, stably) for `protocol`.
///
/// Sorts an index permutation and moves both lists by it in place; an
/// already sorted scan is left as it is.
pub fn sort_scan(result: &mut ScanResult, protocol: u8) {
    // Both lists are filled together; a shorter `paths` (built by hand)
    // keeps only the pairs it has, as before.
    let n = result.entries.len().min(result.paths.len());
    result.entries.truncate(n);
    result.paths.truncate(n);
    let Some(mut perm) = sort_permutation(&result.entries, protocol) else {
        return;
    };
    let ScanResult { entries, paths, .. } = result;
    apply_permutation(&mut perm, |i, j| {
        entries.swap(i, j);
        paths.swap(i, j);
    });
}

/// `name:...:id:...` files: the first name of each id.
fn read_id_names(path: &Path) -> io::Result<HashMap<u32, Vec<u8>>> {
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e),
    };
    let mut map = HashMap::new();
    for line in text.split(|&b| b == b'\n') {
        let mut f = line.split(|&b| b == b':');
        let (Some(name), Some(_pw), Some(id)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let Some(id) = std::str::from_utf8(id)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if !name.is_empty() && !name.starts_with(b"#") {
            map.entry(id).or_insert_with(|| name.to_vec());
        }
    }
    Ok(map)
}

/// An id-to-name map with the last lookup remembered: a tree is mostly
/// owned by one user and group, so most lookups hit the cache.
struct IdCache {
    names: HashMap<u32, Arc<[u8]>>,
    last: Option<(u32, Option<Arc<[u8]>>)>,
}

impl IdCache {
    fn new(names: HashMap<u32, Vec<u8>>) -> Self {
        let names = names.into_iter().map(|(k, v)| (k, Arc::from(v))).collect();
        Self { names, last: None }
    }

    /// The shared name of `id` (no allocation per entry).
    fn get(&mut self, id: u32) -> Option<Arc<[u8]>> {
        match &self.last {
            Some((l, name)) if *l == id => name.clone(),
            _ => {
                let name = self.names.get(&id).cloned();
                self.last = Some((id, name.clone()));
                name
            }
        }
    }
}

/// The `lstat` fields a scan uses.
#[derive(Clone, Copy)]
struct Meta {
    mode: u32,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    atime: i64,
    uid: u32,
    gid: u32,
    dev: u64,
    rdev: u64,
    ino: u64,
    nlink: u64,
}

impl Meta {
    // The field types differ between targets.
    #[allow(
        clippy::unnecessary_cast,
        clippy::cast_possible_wrap,
        clippy::cast_sign_loss
    )]
    fn from_stat(st: &Stat) -> Self {
        Self {
            mode: st.st_mode as u32,
            size: st.st_size as u64,
            mtime: st.st_mtime as i64,
            mtime_nsec: st.st_mtime_nsec as i64,
            atime: st.st_atime as i64,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            dev: st.st_dev as u64,
            rdev: st.st_rdev as u64,
            ino: st.st_ino as u64,
            nlink: st.st_nlink as u64,
        }
    }

    fn is_dir(&self) -> bool {
        FileKind::from_mode(self.mode) == Some(FileKind::Dir)
    }
}

/// io_error bit for a failed system call.
fn errno_bit(e: Errno) -> i32 {
    if e == Errno::NOENT {
        IOERR_VANISHED
    } else {
        IOERR_GENERAL
    }
}

/// Where a symlink's target is read from: the open directory and the
/// entry's name in it.
type At<'a> = Option<(BorrowedFd<'a>, &'a CStr)>;

struct Scanner {
    filters: Option<FilterSet>,
    opts: ScanOptions,
    users: IdCache,
    groups: IdCache,
    out: ScanResult,
    /// The last implied directory path sent (flist.c `lastpath`).
    last_implied: Vec<u8>,
    /// The filters in effect in `last_implied` and each of its parents.
    implied_filters: Vec<(Vec<u8>, Option<FilterSet>)>,
    /// flist.c `implied_dot_dir`: 0 not yet, -1 to send, 1 sent.
    implied_dot: i8,
    /// A daemon module (not chrooted) every path is resolved beneath.
    beneath: Option<Arc<ReadRoot>>,
}

/// glibc's split of a 64-bit `dev_t`.
fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    if prefix == b"." || prefix.is_empty() {
        return name.to_vec();
    }
    let mut v = prefix.to_vec();
    v.push(b'/');
    v.extend_from_slice(name);
    v
}

impl Scanner {
    fn new(opts: &ScanOptions, filters: Option<&FilterSet>) -> io::Result<Self> {
        Ok(Scanner {
            filters: filters.cloned(),
            opts: *opts,
            users: IdCache::new(read_id_names(Path::new("/etc/passwd"))?),
            groups: IdCache::new(read_id_names(Path::new("/etc/group"))?),
            out: ScanResult::default(),
            last_implied: Vec::new(),
            implied_filters: Vec::new(),
            implied_dot: 0,
            beneath: None,
        })
    }

    /// One `-R` source (flist.c `send_file_list` with `relative_paths`).
    fn source_relative(&mut self, base: &Path, arg: &[u8]) {
        let (dir, rest): (Option<Vec<u8>>, &[u8]) = match find_sub(arg, b"/./") {
            Some(p) => {
                let d = if p == 0 {
                    b"/".to_vec()
                } else {
                    clean_fname(&arg[..p], true)
                };
                let mut f = &arg[p + 3..];
                while let Some(r) = f.strip_prefix(b"/") {
                    f = r;
                }
                (Some(d), f)
            }
            None => (None, arg),
        };
        if self.implied_dot == 0 && rest.starts_with(b"./") && rest.len() > 2 {
            self.implied_dot = -1;
        }
        let mut name = clean_fname(rest, false);
        let mut kind = NameType::Normal;
        if name == b"/" {
            name = b"/.".to_vec();
            kind = NameType::DotDir;
        } else if name == b"." {
            kind = NameType::DotDir;
        } else if name.last() == Some(&b'/') {
            name.pop();
            kind = if name == b"." {
                NameType::DotDir
            } else {
                NameType::SlashEnding
            };
        }
        if has_dot_dot(&name) {
            self.out.fatal = Some(format!(
                "found \"..\" dir in relative path: {}",
                String::from_utf8_lossy(&name)
            ));
            return;
        }
        let dir_path = match &dir {
            Some(d) => base.join(OsStr::from_bytes(d)),
            None => base.to_path_buf(),
        };
        if let Err(e) = rd::stat(self.beneath.as_deref(), &dir_path) {
            self.out.io_error |= IOERR_GENERAL;
            self.complain("change_dir", &dir_path, e);
            if self.implied_dot < 0 {
                self.implied_dot = 0;
            }
            return;
        }
        if self.implied_dot < 0 {
            self.implied_dot = 1;
            self.implied_dir(&dir_path, b".");
        }
        // The name as sent: no leading slash (rsync strips it after
        // sorting; the order of names all under `/` is the same).
        let mut sent: &[u8] = &name;
        while let Some(r) = sent.strip_prefix(b"/") {
            sent = r;
        }
        let sent = if sent.is_empty() || sent == b"." {
            b".".to_vec()
        } else {
            sent.to_vec()
        };
        let path = if sent == b"." {
            dir_path.clone()
        } else {
            dir_path.join(OsStr::from_bytes(&sent))
        };
        let st = if kind == NameType::Normal {
            rd::lstat(self.beneath.as_deref(), &path)
        } else {
            rd::stat(self.beneath.as_deref(), &path)
        };
        let meta = match st {
            Ok(st) => Meta::from_stat(&st),
            Err(e) => {
                self.out.io_error |= IOERR_GENERAL;
                self.complain("link_stat", &path, e);
                return;
            }
        };
        let is_dir = meta.is_dir();
        if self.path_daemon_excluded(&sent)
            || (kind != NameType::DotDir
                && self
                    .filters
                    .as_ref()
                    .is_some_and(|f| f.daemon_excludes(&sent, is_dir)))
        {
            self.out.io_error |= IOERR_GENERAL;
            self.complain("link_stat", &path, Errno::NOENT);
            return;
        }
        if kind != NameType::DotDir && self.excluded(&sent, is_dir) {
            return;
        }
        if is_dir && !self.opts.recursive && !self.opts.dirs {
            return;
        }
        let mut parent_filters = self.filters.clone();
        if let Some(slash) = sent.iter().rposition(|&c| c == b'/') {
            if self.opts.implied_dirs && slash > 0 {
                parent_filters = self.implied_dirs(&dir_path, &sent[..slash]);
            } else {
                parent_filters = self.filters_below(&dir_path, &sent[..slash]);
            }
        }
        let content = self.opts.recursive || (self.opts.dirs && kind != NameType::Normal);
        if content {
            self.add(sent.clone(), path.clone(), &meta, XMIT_TOP_DIR, None);
            if is_dir {
                self.directory(
                    &path,
                    &sent,
                    meta.dev,
                    self.opts.recursive,
                    parent_filters.as_ref(),
                );
            }
        } else {
            let flags = if is_dir { XMIT_NO_CONTENT_DIR } else { 0 };
            self.add(sent, path, &meta, flags, None);
        }
    }

    /// Whether a daemon rule hides `name` or one of its parent
    /// directories (exclude.c `path_is_daemon_excluded`).
    fn path_daemon_excluded(&self, name: &[u8]) -> bool {
        let Some(f) = &self.filters else {
            return false;
        };
        if f.daemon.is_none() {
            return false;
        }
        name.iter()
            .enumerate()
            .filter(|(_, c)| **c == b'/')
            .any(|(i, _)| f.daemon_excludes(&name[..i], true))
    }

    /// Sends the parents of `parent` (itself included) as implied
    /// directories, skipping those the previous source already sent
    /// (flist.c `send_implied_dirs`); returns the filters in effect
    /// inside `parent`.
    fn implied_dirs(&mut self, dir_path: &Path, parent: &[u8]) -> Option<FilterSet> {
        let comps: Vec<usize> = parent
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == b'/')
            .map(|(i, _)| i)
            .chain(std::iter::once(parent.len()))
            .collect();
        let last = self.last_implied.clone();
        for end in comps {
            let prefix = &parent[..end];
            let known = last.len() >= end
                && &last[..end] == prefix
                && (last.len() == end || last[end] == b'/');
            if known {
                continue;
            }
            self.implied_dir(&dir_path.join(OsStr::from_bytes(prefix)), prefix);
        }
        self.last_implied = parent.to_vec();
        match self.implied_filters.last().filter(|(n, _)| n == parent) {
            Some((_, f)) => f.clone(),
            None => self.filters_below(dir_path, parent),
        }
    }

    /// The filters inside `parent` without sending anything: each
    /// component's merge files read in turn.
    fn filters_below(&mut self, dir_path: &Path, parent: &[u8]) -> Option<FilterSet> {
        let mut cur = self.filters.clone();
        let mut end = 0;
        while end < parent.len() {
            end = parent[end + 1..]
                .iter()
                .position(|&c| c == b'/')
                .map_or(parent.len(), |p| p + end + 1);
            let prefix = &parent[..end];
            let p = dir_path.join(OsStr::from_bytes(prefix));
            cur = self.enter(cur.as_ref(), &p, prefix);
        }
        cur
    }

    /// Sends one implied directory (not filtered by the user's rules,
    /// symlinks followed) and enters its merge files.
    fn implied_dir(&mut self, path: &Path, name: &[u8]) {
        let parent: Option<FilterSet> = match name.iter().rposition(|&c| c == b'/') {
            Some(p) => self
                .implied_filters
                .iter()
                .rev()
                .find(|(n, _)| n.as_slice() == &name[..p])
                .map_or_else(|| self.filters.clone(), |(_, f)| f.clone()),
            None => self.filters.clone(),
        };
        let meta = match rd::stat(self.beneath.as_deref(), path) {
            Ok(st) => Meta::from_stat(&st),
            Err(e) => {
                self.out.io_error |= errno_bit(e);
                self.complain("link_stat", path, e);
                return;
            }
        };
        if name != b"."
            && self
                .filters
                .as_ref()
                .is_some_and(|f| f.daemon_excludes(name, meta.is_dir()))
        {
            return;
        }
        let flags = XMIT_TOP_DIR | XMIT_NO_CONTENT_DIR;
        self.add(name.to_vec(), path.to_path_buf(), &meta, flags, None);
        if meta.is_dir() {
            let entered = self.enter(parent.as_ref(), path, name);
            let depth = name.iter().filter(|&&c| c == b'/').count();
            self.implied_filters.truncate(depth);
            self.implied_filters.push((name.to_vec(), entered));
        }
    }

    /// Records rsync's message for a failed call on `path`.
    fn complain(&mut self, call: &str, path: &Path, e: rustix::io::Errno) {
        if self.out.errors.len() < MAX_SCAN_ERRORS {
            let io = std::io::Error::from(e);
            let text = io.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text).to_string();
            self.out.errors.push(format!(
                "rsync: [sender] {call} \"{}\" failed: {text} ({})",
                path.display(),
                e.raw_os_error()
            ));
        }
    }

    fn source(&mut self, src: &Path) {
        let raw = src.as_os_str().as_bytes();
        let contents_only = raw.ends_with(b"/") || raw.ends_with(b"/.") || raw == b".";
        let beneath = self.beneath.clone();
        let meta = match rd::lstat(beneath.as_deref(), src) {
            Ok(st) => Meta::from_stat(&st),
            Err(e) => {
                self.out.io_error |= IOERR_GENERAL;
                self.complain("link_stat", src, e);
                return;
            }
        };
        let top = src
            .file_name()
            .map_or_else(|| raw.to_vec(), |n| n.as_bytes().to_vec());
        let Some(meta) = self.follow(
            meta,
            &top,
            src,
            || rd::read_link(beneath.as_deref(), src).ok(),
            || rd::stat(beneath.as_deref(), src),
        ) else {
            return;
        };
        if !meta.is_dir() {
            let name = src
                .file_name()
                .map_or_else(|| raw.to_vec(), |n| n.as_bytes().to_vec());
            if self.excluded(&name, false) {
                return;
            }
            self.add(name, src.to_path_buf(), &meta, 0, None);
            return;
        }
        let (name, content) = if contents_only {
            (b".".to_vec(), self.opts.recursive || self.opts.dirs)
        } else {
            let name = src
                .file_name()
                .map_or_else(|| b".".to_vec(), |n| n.as_bytes().to_vec());
            (name, self.opts.recursive)
        };
        if !self.opts.recursive && !self.opts.dirs {
            return;
        }
        // A dot-dir is never excluded.
        if name != b"." && self.excluded(&name, true) {
            return;
        }
        let flags = if content {
            XMIT_TOP_DIR
        } else {
            XMIT_NO_CONTENT_DIR
        };
        self.add(name.clone(), src.to_path_buf(), &meta, flags, None);
        if content {
            let f = self.filters.clone();
            self.directory(src, &name, meta.dev, self.opts.recursive, f.as_ref());
        }
    }

    /// `-L`, `-k`, `--copy-unsafe-links`: what a symlink `meta` stands for
    /// in the list (itself, or its target's `lstat`); `None` when it must
    /// be followed but points nowhere (reported, io_error bit 1), or when
    /// following it would make the path absurdly long (a loop).
    fn follow(
        &mut self,
        meta: Meta,
        name: &[u8],
        path: &Path,
        target: impl FnOnce() -> Option<Vec<u8>>,
        stat: impl FnOnce() -> rustix::io::Result<Stat>,
    ) -> Option<Meta> {
        let o = self.opts;
        if FileKind::from_mode(meta.mode) != Some(FileKind::Symlink)
            || !(o.copy_links || o.copy_dirlinks || o.copy_unsafe_links.is_some())
        {
            return Some(meta);
        }
        let must = o.copy_links
            || o.copy_unsafe_links
                .is_some_and(|f| target().is_some_and(|t| f(&t, name)));
        match stat() {
            Ok(st) => {
                let m = Meta::from_stat(&st);
                if !(must || (o.copy_dirlinks && m.is_dir())) {
                    return Some(meta);
                }
                if m.is_dir() && path.as_os_str().len() > 4000 {
                    self.out.io_error |= IOERR_GENERAL;
                    return None;
                }
                Some(m)
            }
            Err(_) if must => {
                self.out.io_error |= IOERR_GENERAL;
                if self.out.errors.len() < MAX_SCAN_ERRORS {
                    self.out
                        .errors
                        .push(format!("symlink has no referent: \"{}\"", path.display()));
                }
                None
            }
            Err(_) => Some(meta),
        }
    }

    fn excluded(&self, name: &[u8], is_dir: bool) -> bool {
        self.filters
            .as_ref()
            .is_some_and(|f| f.is_excluded(name, is_dir))
    }

    /// The filters inside `dir`, its per-directory merge files read.
    fn enter(&mut self, f: Option<&FilterSet>, dir: &Path, name: &[u8]) -> Option<FilterSet> {
        let f = f?;
        let beneath = self.beneath.clone();
        let mut read = |n: &[u8]| -> io::Result<Option<Vec<u8>>> {
            Ok(rd::read(beneath.as_deref(), &dir.join(OsStr::from_bytes(n))).ok())
        };
        match f.enter_dir(name, &mut read) {
            Ok(c) => Some(c),
            // A rule that does not parse ends the transfer, as rsync's
            // sender exits on it (`Unknown filter rule`, exit 1).
            Err(e) if !matches!(e, crate::filter::ParseError::MergeFile { .. }) => {
                self.out.fatal.get_or_insert_with(|| e.to_string());
                Some(f.clone())
            }
            Err(e) => {
                self.out.io_error |= IOERR_GENERAL;
                if self.out.errors.len() < MAX_SCAN_ERRORS {
                    self.out.errors.push(format!("rsync: [sender] {e}"));
                }
                Some(f.clone())
            }
        }
    }

    /// Lists `dir` (opened once by its path) and stats every entry
    /// relative to the open directory, then descends into the
    /// subdirectories after closing it.
    fn directory(
        &mut self,
        dir: &Path,
        prefix: &[u8],
        root_dev: u64,
        recurse: bool,
        filters: Option<&FilterSet>,
    ) {
        let filters = self.enter(filters, dir, prefix);
        if self.out.fatal.is_some() {
            return;
        }
        let beneath = self.beneath.clone();
        let fd = match rd::open_dir(self.beneath.as_deref(), dir) {
            Ok(fd) => fd,
            Err(e) => {
                self.out.io_error |= errno_bit(e);
                self.complain("opendir", dir, e);
                return;
            }
        };
        let mut rd = match Dir::new(fd) {
            Ok(d) => d,
            Err(e) => {
                self.out.io_error |= errno_bit(e);
                return;
            }
        };
        let mut subdirs = Vec::new();
        while let Some(ent) = rd.read() {
            let ent = match ent {
                Ok(e) => e,
                Err(_) => {
                    self.out.io_error |= IOERR_GENERAL;
                    continue;
                }
            };
            let cname = ent.file_name();
            let bytes = cname.to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            let Ok(dirfd) = rd.fd() else {
                self.out.io_error |= IOERR_GENERAL;
                break;
            };
            let meta = match rustix::fs::statat(dirfd, cname, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => Meta::from_stat(&st),
                Err(e) => {
                    self.out.io_error |= errno_bit(e);
                    continue;
                }
            };
            let name = join(prefix, bytes);
            let full = dir.join(OsStr::from_bytes(bytes));
            let Some(meta) = self.follow(
                meta,
                &name,
                &full,
                || {
                    rustix::fs::readlinkat(dirfd, cname, Vec::new())
                        .ok()
                        .map(std::ffi::CString::into_bytes)
                },
                || match beneath.as_deref() {
                    Some(b) => b.stat(&full),
                    None => rustix::fs::statat(dirfd, cname, AtFlags::empty()),
                },
            ) else {
                continue;
            };
            if filters
                .as_ref()
                .is_some_and(|f| f.is_excluded(&name, meta.is_dir()))
            {
                continue;
            }
            let path = dir.join(OsStr::from_bytes(bytes));
            if meta.is_dir() {
                let other_fs = self.opts.one_file_system && meta.dev != root_dev;
                let descend = recurse && !other_fs;
                if descend {
                    let listed = self.out.entries.len();
                    self.add(name.clone(), path.clone(), &meta, 0, None);
                    // A directory left out (its xattrs or ACLs unreadable,
                    // or gone) is not entered, as rsync.
                    if self.out.entries.len() > listed {
                        subdirs.push((path, name));
                    }
                } else {
                    self.add(name, path, &meta, XMIT_NO_CONTENT_DIR, None);
                }
            } else {
                self.add(name, path, &meta, 0, Some((dirfd, cname)));
            }
        }
        drop(rd);
        for (path, name) in subdirs {
            self.directory(&path, &name, root_dev, true, filters.as_ref());
        }
    }

    fn add(&mut self, name: Vec<u8>, path: PathBuf, meta: &Meta, xflags: u32, at: At<'_>) {
        let Some(kind) = FileKind::from_mode(meta.mode) else {
            return;
        };
        let wanted = match kind {
            FileKind::Symlink => self.opts.links,
            FileKind::CharDev | FileKind::BlockDev => self.opts.devices,
            FileKind::Fifo | FileKind::Socket => self.opts.specials,
            FileKind::Regular | FileKind::Dir => true,
        };
        if !wanted {
            return;
        }
        let mut e = FileEntry {
            name,
            mode: meta.mode,
            size: match kind {
                FileKind::Regular | FileKind::Dir => meta.size,
                _ => 0,
            },
            mtime: meta.mtime,
            mtime_nsec: u32::try_from(meta.mtime_nsec).unwrap_or(0),
            atime: meta.atime,
            uid: meta.uid,
            gid: meta.gid,
            user_name: self.users.get(meta.uid),
            group_name: self.groups.get(meta.gid),
            xflags: if kind == FileKind::Dir { xflags } else { 0 },
            ..FileEntry::default()
        };
        if kind.is_device() {
            let x = e.extra_mut();
            (x.rdev_major, x.rdev_minor) = split_dev(meta.rdev);
        }
        if kind == FileKind::Symlink {
            let target = match at {
                Some((dirfd, cname)) => rustix::fs::readlinkat(dirfd, cname, Vec::new())
                    .map(std::ffi::CString::into_bytes)
                    .map_err(errno_bit),
                None => rd::read_link(self.beneath.as_deref(), &path).map_err(|err| {
                    if err.kind() == io::ErrorKind::NotFound {
                        IOERR_VANISHED
                    } else {
                        IOERR_GENERAL
                    }
                }),
            };
            match target {
                Ok(t) => {
                    e.size = t.len() as u64;
                    e.extra_mut().link_target = Some(t);
                }
                Err(bit) => {
                    self.out.io_error |= bit;
                    return;
                }
            }
        }
        if self.opts.hard_links && kind != FileKind::Dir && meta.nlink > 1 {
            e.extra_mut().hardlink = Some(HardLink {
                first: None,
                dev: meta.dev,
                ino: meta.ino,
            });
        }
        if self.opts.acls && kind != FileKind::Symlink {
            let (users, groups) = (&mut self.users, &mut self.groups);
            let follow = kind != FileKind::Symlink;
            let read = rd::with_xattr_path(self.beneath.as_deref(), &path, follow, |p| {
                super::acls::read_for_send(p, e.mode, |is_user, id| {
                    if is_user {
                        users.get(id).map(|n| n.to_vec())
                    } else {
                        groups.get(id).map(|n| n.to_vec())
                    }
                })
            });
            match read {
                Ok(a) => e.extra_mut().acls = Some(Box::new(a)),
                Err(err) => {
                    self.out.io_error |= IOERR_GENERAL;
                    if self.out.errors.len() < MAX_SCAN_ERRORS {
                        self.out.errors.push(format!(
                            "rsync: [sender] get_acl: sys_acl_get_file({}, ACL_TYPE_ACCESS): {err}",
                            path.display()
                        ));
                    }
                    return;
                }
            }
        }
        if self.opts.xattrs > 0 {
            let rules = super::xattrs::XattrRules {
                level: self.opts.xattrs,
                am_root: false,
            };
            let follow = kind != FileKind::Symlink;
            let read = rd::with_xattr_path(self.beneath.as_deref(), &path, follow, |p| {
                super::xattrs::read_for_send(p, &rules)
            });
            match read {
                Ok(list) => e.extra_mut().xattrs = Some(list),
                Err(err) => {
                    self.out.io_error |= IOERR_GENERAL;
                    if self.out.errors.len() < MAX_SCAN_ERRORS {
                        self.out.errors.push(format!(
                            "rsync: [sender] get_xattr_names: llistxattr(\"{}\") failed: {err}",
                            path.display()
                        ));
                    }
                    return;
                }
            }
        }
        if kind == FileKind::Regular {
            if let Some(sum) = self.opts.checksum {
                match sum(&path) {
                    Ok(s) => e.extra_mut().checksum = Some(s),
                    Err(_) => self.out.io_error |= IOERR_GENERAL,
                }
            }
        }
        // A list holds one of each per file: no spare capacity.
        e.name.shrink_to_fit();
        let mut path = path;
        path.shrink_to_fit();
        self.out.entries.push(e);
        self.out.paths.push(path);
    }
}
