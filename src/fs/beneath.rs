//! Confinement of the receiving side: every file operation on a name from
//! the file list is resolved beneath the destination root through
//! directory handles, never by joining the name onto a path.
//!
//! Layer: fs (L3). Uses rustix; never the network.
//!
//! A [`Root`] holds a handle on the destination directory. A name is
//! split into its parent and last component; the parent is opened beneath
//! the root with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` (and
//! `RESOLVE_NO_SYMLINKS` unless the options let receiver-side symlinks
//! stand for directories), or where `openat2` is missing (`ENOSYS`) by a
//! walk of `openat(O_NOFOLLOW)` one component at a time with the same
//! rules. The operation itself is then the `*at` call on that parent
//! handle with the last component (`openat`, `mkdirat`, `renameat`,
//! `unlinkat`, `symlinkat`, `linkat`, `mknodat`, `fchownat` with
//! `AT_SYMLINK_NOFOLLOW`, `utimensat`, `fchmod` on an opened handle), so a
//! directory swapped for a symlink between a check and a use cannot make
//! it reach outside the destination.
//!
//! Setting `FERRSYNC_BENEATH_WALK=1` in the environment forces the walk
//! (tests use it to cover both ways).
//!
//! The parent handles of the last few directories used are kept (a file
//! list goes directory by directory), so a run of operations in one
//! directory resolves it once. A kept handle is what was resolved beneath
//! the root, so an operation through it cannot leave the root through a
//! symlink; like rsync's working directory it stays on that directory even
//! if someone outside moves it. Every operation here that may remove or
//! replace a directory (`rename*`, `remove_dir`, `remove_any`, `mkdir` of
//! the root) drops the kept handles at and below the names it touches.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, ResolveFlags, Timestamps};
use rustix::io::Errno;

/// Which receiver-side symlinks a name's parent components may pass
/// through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// None: every parent component must be a real directory (the
    /// default; the transfer makes its own directories real ones).
    Never,
    /// Symlinks that resolve to a directory inside the root (`-K`, and
    /// the existing implied parents of `-R --no-implied-dirs`); one
    /// pointing outside, absolute or through `..` above the root, fails.
    Inside,
}

/// The environment variable that forces the `openat` walk.
pub const WALK_ENV: &str = "FERRSYNC_BENEATH_WALK";

/// 0: not known yet, 1: `openat2` works, 2: it does not (ENOSYS).
static OPENAT2: AtomicU8 = AtomicU8::new(0);

/// Whether the environment forces the `openat` walk ([`WALK_ENV`], read
/// once per process).
#[must_use]
pub fn walk_forced() -> bool {
    static FORCED: OnceLock<bool> = OnceLock::new();
    *FORCED.get_or_init(|| std::env::var_os(WALK_ENV).is_some_and(|v| !v.is_empty() && v != "0"))
}

/// The most symlinks one resolution follows (the kernel's limit).
const MAX_LINKS: u32 = 40;

/// The destination root: a directory handle and the rules for resolving
/// names beneath it.
#[derive(Debug)]
pub struct Root {
    path: PathBuf,
    fd: OnceLock<OwnedFd>,
    links: Links,
    walk: bool,
    /// Kept parent handles: (directory name, handle), most recent last.
    dirs: Mutex<Vec<(Vec<u8>, Arc<OwnedFd>)>>,
}

/// How many parent handles a root keeps (the generator and the receiver
/// work in different directories at the same time).
const KEPT_DIRS: usize = 4;

/// The error for a name that would leave the root or pass a symlink.
fn escape(rel: &[u8], why: &io::Error) -> io::Error {
    io::Error::other(format!(
        "refusing to resolve \"{}\" outside the destination or through a symlink ({why})",
        String::from_utf8_lossy(rel)
    ))
}

fn is_escape(e: Errno) -> bool {
    e == Errno::XDEV || e == Errno::LOOP
}

/// The components of a relative name, without empty and `.` ones.
fn components(rel: &[u8]) -> impl Iterator<Item = &[u8]> {
    rel.split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
}

/// `rel` split into its parent and last component (`.` for the root).
fn split(rel: &[u8]) -> (&[u8], &[u8]) {
    let rel = trim_slashes(rel);
    match rel.iter().rposition(|b| *b == b'/') {
        Some(p) => (&rel[..p], &rel[p + 1..]),
        None if rel.is_empty() => (b"", b"."),
        None => (b"", rel),
    }
}

fn trim_slashes(mut rel: &[u8]) -> &[u8] {
    while let Some(r) = rel.strip_suffix(b"/") {
        rel = r;
    }
    while let Some(r) = rel.strip_suffix(b"/.") {
        rel = r;
    }
    if rel == b"." { b"" } else { rel }
}

fn os(name: &[u8]) -> &OsStr {
    OsStr::from_bytes(name)
}

/// A parent directory handle and the last component of a name.
#[derive(Debug)]
pub struct Parent {
    /// The directory (an `O_PATH` handle, possibly kept by the root).
    pub dir: Arc<OwnedFd>,
    /// The last component (`.` for the root itself).
    pub name: Vec<u8>,
}

/// Where extended attributes of one item are read and set: an open
/// handle (regular files, directories) or, for other kinds, the item's
/// name under `/proc/self/fd/N` of its pinned parent (the `l*` calls do
/// not follow its last component).
#[derive(Debug)]
pub enum XattrTarget {
    /// An open handle on the item.
    File(fs::File),
    /// A path through the pinned parent; the handle keeps it open.
    Pinned(Arc<OwnedFd>, PathBuf),
}

impl Root {
    /// A root at `path` (a trusted local path: the user's destination).
    /// The directory is opened at first use, so it may be created later
    /// (a list with `.` makes the destination itself).
    #[must_use]
    pub fn new(path: &Path, links: Links) -> Self {
        Root {
            path: path.to_path_buf(),
            fd: OnceLock::new(),
            links,
            walk: walk_forced(),
            dirs: Mutex::new(Vec::new()),
        }
    }

    /// Drops every kept parent handle (the next operations resolve their
    /// directories again).
    pub fn forget_dirs(&self) {
        if let Ok(mut d) = self.dirs.lock() {
            d.clear();
        }
    }

    /// Drops the kept handles of directory `rel` and of everything below
    /// it (all of them for the root).
    fn forget(&self, rel: &[u8]) {
        let rel = trim_slashes(rel);
        if let Ok(mut d) = self.dirs.lock() {
            d.retain(|(k, _)| {
                !(rel.is_empty()
                    || k.strip_prefix(rel)
                        .is_some_and(|t| t.is_empty() || t.first() == Some(&b'/')))
            });
        }
    }

    /// The handle of directory `rel` (a parent), kept or resolved now.
    fn kept_dir(&self, rel: &[u8]) -> io::Result<Arc<OwnedFd>> {
        let rel = trim_slashes(rel);
        if let Ok(d) = self.dirs.lock() {
            if let Some((_, fd)) = d.iter().rev().find(|(k, _)| k.as_slice() == rel) {
                return Ok(Arc::clone(fd));
            }
        }
        let fd = Arc::new(self.dir(rel)?);
        if let Ok(mut d) = self.dirs.lock() {
            if !d.iter().any(|(k, _)| k.as_slice() == rel) {
                if d.len() >= KEPT_DIRS {
                    d.remove(0);
                }
                d.push((rel.to_vec(), Arc::clone(&fd)));
            }
        }
        Ok(fd)
    }

    /// Forces (or stops forcing) the `openat` walk instead of `openat2`.
    #[must_use]
    pub fn with_walk(mut self, walk: bool) -> Self {
        self.walk = walk;
        self
    }

    /// Whether names are resolved by the `openat` walk.
    #[must_use]
    pub fn uses_walk(&self) -> bool {
        self.walk || OPENAT2.load(Ordering::Relaxed) == 2
    }

    /// The root's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `rel` shown as a path under the root (for messages only).
    #[must_use]
    pub fn display(&self, rel: &[u8]) -> PathBuf {
        let rel = trim_slashes(rel);
        if rel.is_empty() {
            self.path.clone()
        } else {
            self.path.join(os(rel))
        }
    }

    fn root_fd(&self) -> io::Result<BorrowedFd<'_>> {
        if self.fd.get().is_none() {
            let fd = rustix::fs::openat(
                CWD,
                &self.path,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let _ = self.fd.set(fd);
        }
        self.fd
            .get()
            .map(AsFd::as_fd)
            .ok_or_else(|| io::Error::other("destination handle missing"))
    }

    /// Opens directory `rel` (empty or `.`: the root) beneath the root, as
    /// an `O_PATH` handle, with this root's symlink rule.
    ///
    /// # Errors
    /// It is missing, not a directory, or reaching it would leave the root
    /// or pass a symlink the rule forbids.
    pub fn dir(&self, rel: &[u8]) -> io::Result<OwnedFd> {
        self.dir_with(rel, self.links)
    }

    fn dir_with(&self, rel: &[u8], links: Links) -> io::Result<OwnedFd> {
        let root = self.root_fd()?;
        let rel = trim_slashes(rel);
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        if components(rel).next().is_none() {
            return Ok(rustix::fs::openat(root, ".", flags, Mode::empty())?);
        }
        if !self.uses_walk() {
            let resolve = match links {
                Links::Never => ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
                Links::Inside => ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
            };
            let mut tries = 0;
            loop {
                match rustix::fs::openat2(root, os(rel), flags, Mode::empty(), resolve) {
                    Ok(fd) => {
                        OPENAT2.store(1, Ordering::Relaxed);
                        return Ok(fd);
                    }
                    // A concurrent rename somewhere: the kernel asks to retry.
                    Err(Errno::AGAIN) if tries < 8 => tries += 1,
                    Err(Errno::NOSYS) => {
                        OPENAT2.store(2, Ordering::Relaxed);
                        break;
                    }
                    Err(e) if is_escape(e) => return Err(escape(rel, &e.into())),
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.walk_dir(root, rel, links)
    }

    /// The fallback: one `openat(O_NOFOLLOW)` per component; a symlink is
    /// refused, or with [`Links::Inside`] its target resolved the same way
    /// (relative only, never above the root).
    fn walk_dir(&self, root: BorrowedFd<'_>, rel: &[u8], links: Links) -> io::Result<OwnedFd> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut pending: std::collections::VecDeque<Vec<u8>> =
            components(rel).map(<[u8]>::to_vec).collect();
        let mut followed = 0u32;
        let refuse = |e: Errno| escape(rel, &e.into());
        while let Some(c) = pending.pop_front() {
            if c.is_empty() || c == b"." {
                continue;
            }
            if c == b".." {
                if stack.pop().is_none() {
                    return Err(refuse(Errno::XDEV));
                }
                continue;
            }
            let cur = stack.last().map_or(root, AsFd::as_fd);
            match rustix::fs::openat(cur, os(&c), flags, Mode::empty()) {
                Ok(fd) => stack.push(fd),
                Err(e @ (Errno::NOTDIR | Errno::LOOP)) => {
                    let Ok(target) = rustix::fs::readlinkat(cur, os(&c), Vec::new()) else {
                        return Err(e.into());
                    };
                    if links == Links::Never {
                        return Err(refuse(Errno::LOOP));
                    }
                    followed += 1;
                    let target = target.as_bytes();
                    if followed > MAX_LINKS {
                        return Err(refuse(Errno::LOOP));
                    }
                    if target.first() == Some(&b'/') {
                        return Err(refuse(Errno::XDEV));
                    }
                    for t in target.split(|b| *b == b'/').rev() {
                        pending.push_front(t.to_vec());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        match stack.pop() {
            Some(fd) => Ok(fd),
            None => Ok(rustix::fs::openat(root, ".", flags, Mode::empty())?),
        }
    }

    /// The parent handle of `rel` and its last component.
    ///
    /// # Errors
    /// As [`Root::dir`] for the parent.
    pub fn parent(&self, rel: &[u8]) -> io::Result<Parent> {
        let (dir, name) = split(rel);
        Ok(Parent {
            dir: self.kept_dir(dir)?,
            name: name.to_vec(),
        })
    }

    /// Opens `rel` itself as an `O_PATH` handle without following it.
    fn handle(&self, rel: &[u8]) -> io::Result<OwnedFd> {
        let p = self.parent(rel)?;
        Ok(rustix::fs::openat(
            &p.dir,
            os(&p.name),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?)
    }

    /// `lstat` of `rel` (the root itself for `.`).
    ///
    /// # Errors
    /// It is missing or cannot be reached beneath the root.
    pub fn lstat(&self, rel: &[u8]) -> io::Result<fs::Metadata> {
        fs::File::from(self.handle(rel)?).metadata()
    }

    /// `rel` as a directory, following symlinks that stay inside the root
    /// (`-K`: a symlink to a directory stands for it). `None` when it is
    /// not one.
    #[must_use]
    pub fn stat_dir_inside(&self, rel: &[u8]) -> Option<fs::Metadata> {
        let fd = self.dir_with(rel, Links::Inside).ok()?;
        fs::File::from(fd).metadata().ok()
    }

    /// Opens regular file `rel` for reading: never through a symlink,
    /// never blocking on a fifo.
    ///
    /// # Errors
    /// It is missing or not a regular file.
    pub fn open_read(&self, rel: &[u8]) -> io::Result<fs::File> {
        let p = self.parent(rel)?;
        let fd = rustix::fs::openat(
            &p.dir,
            os(&p.name),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let f = fs::File::from(fd);
        if !f.metadata()?.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        Ok(f)
    }

    /// The contents of regular file `rel`, following symlinks (in its
    /// directories and its last component) only while they stay inside
    /// the root: a per-directory merge file of the destination, which
    /// rsync opens by name and follows. `Ok(None)` when it is missing,
    /// unreadable or not a regular file (rsync skips such a file).
    ///
    /// # Errors
    /// Reaching it would leave the root: an absolute link target, `..`
    /// above the root, more than 40 links.
    pub fn read_inside(&self, rel: &[u8]) -> io::Result<Option<Vec<u8>>> {
        use std::io::Read as _;
        // An OS error is the file's absence; only an escape is an error.
        let absent = |e: io::Error| {
            if e.raw_os_error().is_some() {
                Ok(None)
            } else {
                Err(e)
            }
        };
        let mut cur = trim_slashes(rel).to_vec();
        for _ in 0..=MAX_LINKS {
            let (dir, name) = split(&cur);
            let pd = match self.dir_with(dir, Links::Inside) {
                Ok(pd) => pd,
                Err(e) => return absent(e),
            };
            let flags = OFlags::RDONLY
                | OFlags::NOFOLLOW
                | OFlags::NONBLOCK
                | OFlags::NOCTTY
                | OFlags::CLOEXEC;
            match rustix::fs::openat(&pd, os(name), flags, Mode::empty()) {
                Ok(fd) => {
                    let mut f = fs::File::from(fd);
                    if !f.metadata().is_ok_and(|m| m.is_file()) {
                        return Ok(None);
                    }
                    let mut v = Vec::new();
                    return Ok(f.read_to_end(&mut v).ok().map(|_| v));
                }
                Err(Errno::LOOP) => {
                    let Ok(target) = rustix::fs::readlinkat(&pd, os(name), Vec::new()) else {
                        return Ok(None);
                    };
                    let target = target.as_bytes();
                    if target.first() == Some(&b'/') {
                        return Err(escape(rel, &Errno::XDEV.into()));
                    }
                    let mut next = dir.to_vec();
                    if !next.is_empty() {
                        next.push(b'/');
                    }
                    next.extend_from_slice(target);
                    cur = next;
                }
                Err(_) => return Ok(None),
            }
        }
        Err(escape(rel, &Errno::LOOP.into()))
    }

    /// Opens `rel` for an in-place update: created (mode 0600) if
    /// missing, never truncated, never through a symlink.
    ///
    /// # Errors
    /// It cannot be opened or is not a regular file.
    pub fn open_inplace(&self, rel: &[u8]) -> io::Result<fs::File> {
        let p = self.parent(rel)?;
        let fd = rustix::fs::openat(
            &p.dir,
            os(&p.name),
            OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        let f = fs::File::from(fd);
        if !f.metadata()?.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        Ok(f)
    }

    /// Creates new file `rel` (`O_EXCL`, never through a symlink).
    ///
    /// # Errors
    /// It exists, or the directory is not writable.
    pub fn create_new(&self, rel: &[u8], mode: u32) -> io::Result<fs::File> {
        let p = self.parent(rel)?;
        let fd = rustix::fs::openat(
            &p.dir,
            os(&p.name),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?;
        Ok(fs::File::from(fd))
    }

    /// Renames `from` to `to` (both beneath the root).
    ///
    /// # Errors
    /// The rename failed.
    pub fn rename(&self, from: &[u8], to: &[u8]) -> io::Result<()> {
        self.rename_to(from, self, to)
    }

    /// Renames `from` (beneath this root) to `to` beneath `other`.
    ///
    /// # Errors
    /// The rename failed.
    pub fn rename_to(&self, from: &[u8], other: &Root, to: &[u8]) -> io::Result<()> {
        let a = self.parent(from)?;
        let b = other.parent(to)?;
        let res = rustix::fs::renameat(&a.dir, os(&a.name), &b.dir, os(&b.name));
        // A directory may have moved, or been replaced.
        self.forget(from);
        other.forget(to);
        Ok(res?)
    }

    /// Makes `to` a new hard link to `from` (never following a symlink).
    ///
    /// # Errors
    /// The link failed.
    pub fn hard_link(&self, from: &[u8], to: &[u8]) -> io::Result<()> {
        let a = self.parent(from)?;
        let b = self.parent(to)?;
        Ok(rustix::fs::linkat(
            &a.dir,
            os(&a.name),
            &b.dir,
            os(&b.name),
            AtFlags::empty(),
        )?)
    }

    /// Removes non-directory `rel`.
    ///
    /// # Errors
    /// The unlink failed.
    pub fn remove_file(&self, rel: &[u8]) -> io::Result<()> {
        let p = self.parent(rel)?;
        Ok(rustix::fs::unlinkat(&p.dir, os(&p.name), AtFlags::empty())?)
    }

    /// Removes empty directory `rel`.
    ///
    /// # Errors
    /// The rmdir failed.
    pub fn remove_dir(&self, rel: &[u8]) -> io::Result<()> {
        let p = self.parent(rel)?;
        let res = rustix::fs::unlinkat(&p.dir, os(&p.name), AtFlags::REMOVEDIR);
        self.forget(rel);
        Ok(res?)
    }

    /// Removes whatever is at `rel`, a directory with all its contents
    /// (through handles, never following a symlink). Missing is fine.
    ///
    /// # Errors
    /// A removal failed.
    pub fn remove_any(&self, rel: &[u8]) -> io::Result<()> {
        let p = self.parent(rel)?;
        let res = remove_tree(p.dir.as_fd(), &p.name, 0);
        self.forget(rel);
        res
    }

    /// The names in directory `rel` (without `.` and `..`), unsorted.
    ///
    /// # Errors
    /// It cannot be opened or read.
    pub fn read_dir(&self, rel: &[u8]) -> io::Result<Vec<Vec<u8>>> {
        let d = self.dir(rel)?;
        list_dir(d.as_fd(), b".")
    }

    /// The target of symlink `rel`.
    ///
    /// # Errors
    /// It is not a symlink or cannot be reached.
    pub fn read_link(&self, rel: &[u8]) -> io::Result<Vec<u8>> {
        let p = self.parent(rel)?;
        Ok(rustix::fs::readlinkat(&p.dir, os(&p.name), Vec::new())?.into_bytes())
    }

    /// Makes directory `rel` (the root itself for `.`, by its trusted
    /// path).
    ///
    /// # Errors
    /// The mkdir failed.
    pub fn mkdir(&self, rel: &[u8], mode: u32) -> io::Result<()> {
        if trim_slashes(rel).is_empty() {
            use std::os::unix::fs::DirBuilderExt;
            self.forget_dirs();
            return fs::DirBuilder::new().mode(mode).create(&self.path);
        }
        let p = self.parent(rel)?;
        Ok(rustix::fs::mkdirat(
            &p.dir,
            os(&p.name),
            Mode::from_raw_mode(mode),
        )?)
    }

    /// Makes directory `rel` and its missing parents (mode 0777 less the
    /// umask), each beneath the root.
    ///
    /// # Errors
    /// A mkdir failed, or a component is not a directory.
    pub fn mkdir_all(&self, rel: &[u8], mode: u32) -> io::Result<()> {
        let rel = trim_slashes(rel);
        let mut end = 0;
        let bytes: Vec<usize> = rel
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'/')
            .map(|(i, _)| i)
            .chain(std::iter::once(rel.len()))
            .collect();
        for cut in bytes {
            let prefix = &rel[..cut];
            end = cut;
            if components(prefix).next().is_none() {
                continue;
            }
            match self.dir(prefix) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => match self.mkdir(prefix, mode) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        self.dir(prefix)?;
                    }
                    Err(e) => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
        let _ = end;
        Ok(())
    }

    /// Makes symlink `rel` pointing at `target`.
    ///
    /// # Errors
    /// The symlink failed (`rel` exists, ...).
    pub fn symlink(&self, target: &[u8], rel: &[u8]) -> io::Result<()> {
        let p = self.parent(rel)?;
        Ok(rustix::fs::symlinkat(os(target), &p.dir, os(&p.name))?)
    }

    /// Makes special file `rel` (fifo, socket, device).
    ///
    /// # Errors
    /// The mknod failed.
    pub fn mknod(&self, rel: &[u8], ft: FileType, mode: u32, dev: u64) -> io::Result<()> {
        let p = self.parent(rel)?;
        Ok(rustix::fs::mknodat(
            &p.dir,
            os(&p.name),
            ft,
            Mode::from_raw_mode(mode),
            dev,
        )?)
    }

    /// Changes the owner and/or group of `rel` itself (a symlink is not
    /// followed).
    ///
    /// # Errors
    /// The chown failed.
    pub fn chown(&self, rel: &[u8], uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        let p = self.parent(rel)?;
        Ok(rustix::fs::chownat(
            &p.dir,
            os(&p.name),
            uid.map(rustix::process::Uid::from_raw_unchecked),
            gid.map(rustix::process::Gid::from_raw_unchecked),
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    /// Sets the times of `rel` (a symlink itself with `no_follow`).
    ///
    /// # Errors
    /// The utimensat failed.
    pub fn set_times(&self, rel: &[u8], ts: &Timestamps, no_follow: bool) -> io::Result<()> {
        let p = self.parent(rel)?;
        let flags = if no_follow {
            AtFlags::SYMLINK_NOFOLLOW
        } else {
            AtFlags::empty()
        };
        Ok(rustix::fs::utimensat(&p.dir, os(&p.name), ts, flags)?)
    }

    /// Sets the permission bits of `rel`, never through a symlink: on an
    /// open handle for a regular file or directory, else through the
    /// item's pinned `O_PATH` handle (`/proc/self/fd`), else (no `/proc`)
    /// by name on its parent handle after checking it is no symlink.
    ///
    /// # Errors
    /// `rel` is a symlink, or the chmod failed.
    pub fn chmod(&self, rel: &[u8], mode: u32) -> io::Result<()> {
        let p = self.parent(rel)?;
        let name = os(&p.name);
        let h = rustix::fs::openat(
            &p.dir,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let st = rustix::fs::fstat(&h)?;
        let ft = FileType::from_raw_mode(st.st_mode);
        let m = Mode::from_raw_mode(mode);
        match ft {
            FileType::Symlink => return Err(Errno::LOOP.into()),
            FileType::RegularFile | FileType::Directory => {
                let flags = OFlags::RDONLY
                    | OFlags::NOFOLLOW
                    | OFlags::NONBLOCK
                    | OFlags::NOCTTY
                    | OFlags::CLOEXEC;
                if let Ok(fd) = rustix::fs::openat(&p.dir, name, flags, Mode::empty()) {
                    let same = rustix::fs::fstat(&fd)
                        .is_ok_and(|s| s.st_ino == st.st_ino && s.st_dev == st.st_dev);
                    if same {
                        return Ok(rustix::fs::fchmod(&fd, m)?);
                    }
                }
            }
            _ => {}
        }
        match rustix::fs::chmod(proc_path(h.as_fd(), None), m) {
            Err(Errno::NOENT) if !Path::new("/proc/self/fd").exists() => {
                Ok(rustix::fs::chmodat(&p.dir, name, m, AtFlags::empty())?)
            }
            r => Ok(r?),
        }
    }

    /// Where the extended attributes of `rel` are read and set.
    ///
    /// # Errors
    /// `rel` cannot be reached.
    pub fn xattr_target(&self, rel: &[u8]) -> io::Result<XattrTarget> {
        let p = self.parent(rel)?;
        let name = os(&p.name);
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let st = rustix::fs::statat(&p.dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if matches!(ft, FileType::RegularFile | FileType::Directory) {
            if let Ok(fd) = rustix::fs::openat(&p.dir, name, flags, Mode::empty()) {
                return Ok(XattrTarget::File(fs::File::from(fd)));
            }
        }
        let path = proc_path(p.dir.as_fd(), Some(&p.name));
        Ok(XattrTarget::Pinned(p.dir, path))
    }
}

/// `/proc/self/fd/N` (and `/name` under it).
fn proc_path(fd: BorrowedFd<'_>, name: Option<&[u8]>) -> PathBuf {
    use std::os::fd::AsRawFd;
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    if let Some(n) = name {
        p.push(os(n));
    }
    p
}

fn list_dir(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Vec<Vec<u8>>> {
    let fd = rustix::fs::openat(
        dir,
        os(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut out = Vec::new();
    for ent in rustix::fs::Dir::read_from(&fd)? {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(n.to_vec());
        }
    }
    Ok(out)
}

/// Removes `name` in `dir`, a directory's contents first, through handles.
fn remove_tree(dir: BorrowedFd<'_>, name: &[u8], depth: u32) -> io::Result<()> {
    let st = match rustix::fs::statat(dir, os(name), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Ok(rustix::fs::unlinkat(dir, os(name), AtFlags::empty())?);
    }
    if depth > 4096 {
        return Err(Errno::LOOP.into());
    }
    let sub = rustix::fs::openat(
        dir,
        os(name),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for child in list_dir(sub.as_fd(), b".")? {
        remove_tree(sub.as_fd(), &child, depth + 1)?;
    }
    Ok(rustix::fs::unlinkat(dir, os(name), AtFlags::REMOVEDIR)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn roots(p: &Path, links: Links) -> [Root; 2] {
        [
            Root::new(p, links).with_walk(false),
            Root::new(p, links).with_walk(true),
        ]
    }

    struct Fixture {
        _tmp: tempfile::TempDir,
        dest: PathBuf,
        outside: PathBuf,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("dest");
        let outside = tmp.path().join("outside");
        fs::create_dir_all(dest.join("real/sub")).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), b"secret").unwrap();
        // Symlinked parents: to outside (absolute and relative), and one
        // that stays inside.
        symlink(&outside, dest.join("abs")).unwrap();
        symlink("../outside", dest.join("rel")).unwrap();
        symlink("real", dest.join("inside")).unwrap();
        Fixture {
            _tmp: tmp,
            dest,
            outside,
        }
    }

    fn outside_untouched(f: &Fixture) {
        let mut names: Vec<_> = fs::read_dir(&f.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, vec![std::ffi::OsString::from("secret")]);
        assert_eq!(fs::read(f.outside.join("secret")).unwrap(), b"secret");
    }

    #[test]
    fn symlinked_parents_never_lead_outside() {
        let f = fixture();
        for links in [Links::Never, Links::Inside] {
            for r in roots(&f.dest, links) {
                for parent in ["abs", "rel"] {
                    let n = format!("{parent}/new");
                    let s = format!("{parent}/secret");
                    let n = n.as_bytes();
                    let s = s.as_bytes();
                    let err = r.create_new(n, 0o600).unwrap_err();
                    assert!(
                        err.to_string().contains("outside the destination"),
                        "{err} ({links:?}, walk {})",
                        r.uses_walk()
                    );
                    assert!(r.open_read(s).is_err());
                    assert!(r.lstat(s).is_err());
                    assert!(r.mkdir(n, 0o700).is_err());
                    assert!(r.symlink(b"x", n).is_err());
                    assert!(r.remove_file(s).is_err());
                    assert!(r.remove_any(s).is_err());
                    assert!(r.rename(b"real/sub", n).is_err());
                    assert!(r.hard_link(s, b"stolen").is_err());
                    assert!(r.chmod(s, 0o777).is_err());
                    assert!(r.chown(s, None, Some(0)).is_err());
                    assert!(r.read_dir(parent.as_bytes()).is_err());
                    assert!(r.xattr_target(s).is_err());
                    assert!(
                        r.mkdir_all(format!("{parent}/a/b").as_bytes(), 0o700)
                            .is_err()
                    );
                    let ts = Timestamps {
                        last_access: rustix::fs::Timespec {
                            tv_sec: 1,
                            tv_nsec: 0,
                        },
                        last_modification: rustix::fs::Timespec {
                            tv_sec: 1,
                            tv_nsec: 0,
                        },
                    };
                    assert!(r.set_times(s, &ts, false).is_err());
                }
                outside_untouched(&f);
            }
        }
    }

    #[test]
    fn dotdot_and_absolute_names_stay_beneath() {
        let f = fixture();
        for r in roots(&f.dest, Links::Inside) {
            for bad in [&b"../outside/secret"[..], b"real/../../outside/secret"] {
                assert!(
                    r.open_read(bad).is_err(),
                    "{}",
                    String::from_utf8_lossy(bad)
                );
                assert!(r.remove_file(bad).is_err());
                assert!(r.create_new(&[bad, b"x"].concat(), 0o600).is_err());
            }
            // An absolute name is taken beneath the root with openat2 and
            // refused by the walk; either way nothing outside is touched.
            let abs = f.outside.join("secret");
            let abs = abs.as_os_str().as_bytes();
            assert!(r.open_read(abs).is_err());
            assert!(r.remove_file(abs).is_err());
            outside_untouched(&f);
        }
    }

    #[test]
    fn inside_links_are_followed_only_when_allowed() {
        let f = fixture();
        for r in roots(&f.dest, Links::Inside) {
            r.create_new(b"inside/sub/a", 0o600).unwrap();
            assert!(f.dest.join("real/sub/a").is_file());
            fs::remove_file(f.dest.join("real/sub/a")).unwrap();
            assert!(r.stat_dir_inside(b"inside").is_some());
            assert!(r.stat_dir_inside(b"abs").is_none());
        }
        for r in roots(&f.dest, Links::Never) {
            let err = r.create_new(b"inside/sub/a", 0o600).unwrap_err();
            assert!(err.to_string().contains("through a symlink"), "{err}");
            assert!(!f.dest.join("real/sub/a").exists());
        }
    }

    #[test]
    fn merge_files_are_read_through_inside_links_only() -> io::Result<()> {
        let f = fixture();
        fs::write(f.dest.join("real/rules"), b"P x\n")?;
        symlink("../rules", f.dest.join("real/sub/up"))?;
        symlink("sub/up", f.dest.join("real/chain"))?;
        symlink("../../outside/secret", f.dest.join("real/climb"))?;
        symlink(f.outside.join("secret"), f.dest.join("real/absolute"))?;
        symlink("loop", f.dest.join("real/loop"))?;
        symlink("/dev/zero", f.dest.join("real/zero"))?;
        for links in [Links::Never, Links::Inside] {
            for r in roots(&f.dest, links) {
                for name in [
                    &b"real/rules"[..],
                    b"real/sub/up",
                    b"real/chain",
                    b"inside/rules",
                ] {
                    assert_eq!(r.read_inside(name)?.as_deref(), Some(&b"P x\n"[..]));
                }
                for absent in [
                    &b"real/none"[..],
                    b"none/rules",
                    b"real/sub",
                    b"real/rules/x",
                ] {
                    assert_eq!(r.read_inside(absent)?, None);
                }
                for escape in [
                    &b"real/climb"[..],
                    b"real/absolute",
                    b"real/loop",
                    b"real/zero",
                    b"abs/secret",
                    b"rel/secret",
                    b"../outside/secret",
                ] {
                    let err = r.read_inside(escape).err().map(|e| e.to_string());
                    assert!(
                        err.as_deref()
                            .is_some_and(|e| e.contains("outside the destination")),
                        "{err:?}"
                    );
                }
            }
        }
        outside_untouched(&f);
        Ok(())
    }

    #[test]
    fn operations_work_beneath_the_root() {
        let f = fixture();
        for r in roots(&f.dest, Links::Never) {
            r.mkdir_all(b"m/n/o", 0o755).unwrap();
            let mut fh = r.create_new(b"m/n/o/.f.tmp", 0o600).unwrap();
            io::Write::write_all(&mut fh, b"data").unwrap();
            r.rename(b"m/n/o/.f.tmp", b"m/n/o/f").unwrap();
            assert_eq!(fs::read(f.dest.join("m/n/o/f")).unwrap(), b"data");
            r.chmod(b"m/n/o/f", 0o640).unwrap();
            assert_eq!(
                r.lstat(b"m/n/o/f").unwrap().permissions().mode() & 0o777,
                0o640
            );
            r.hard_link(b"m/n/o/f", b"m/g").unwrap();
            r.symlink(b"n/o/f", b"m/l").unwrap();
            assert_eq!(r.read_link(b"m/l").unwrap(), b"n/o/f");
            assert!(r.lstat(b"m/l").unwrap().file_type().is_symlink());
            // chmod never follows a symlink.
            assert!(r.chmod(b"m/l", 0o600).is_err());
            assert_eq!(r.lstat(b"m/g").unwrap().permissions().mode() & 0o777, 0o640);
            r.mknod(b"m/fifo", FileType::Fifo, 0o600, 0).unwrap();
            r.chmod(b"m/fifo", 0o644).unwrap();
            assert_eq!(
                r.lstat(b"m/fifo").unwrap().permissions().mode() & 0o777,
                0o644
            );
            let mut names = r.read_dir(b"m").unwrap();
            names.sort();
            assert_eq!(names, [&b"fifo"[..], b"g", b"l", b"n"]);
            assert!(r.lstat(b".").unwrap().is_dir());
            assert!(r.open_read(b"m/fifo").is_err());
            r.remove_any(b"m").unwrap();
            assert!(!f.dest.join("m").exists());
            outside_untouched(&f);
        }
    }

    #[test]
    fn a_root_made_after_the_handle_is_opened_lazily() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("later");
        let r = Root::new(&d, Links::Never);
        assert!(r.lstat(b".").is_err());
        r.mkdir(b".", 0o755).unwrap();
        r.create_new(b"x", 0o600).unwrap();
        assert!(d.join("x").is_file());
    }

    /// A directory swapped for a symlink to the outside while names are
    /// being resolved: every resolution either lands inside the real
    /// directory or fails; nothing is written outside.
    #[test]
    fn a_parent_swapped_for_a_symlink_never_leads_outside() {
        use std::sync::Arc;
        use std::sync::atomic::AtomicBool;
        let f = fixture();
        for walk in [false, true] {
            let stop = Arc::new(AtomicBool::new(false));
            let dest = f.dest.clone();
            let outside = f.outside.clone();
            let flipper = {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let d = dest.join("racy");
                    let held = dest.join("racy.real");
                    fs::create_dir_all(&held).unwrap();
                    while !stop.load(Ordering::Relaxed) {
                        let _ = fs::rename(&held, &d);
                        std::thread::yield_now();
                        let _ = fs::rename(&d, &held);
                        let _ = symlink(&outside, &d);
                        std::thread::yield_now();
                        let _ = fs::remove_file(&d);
                    }
                })
            };
            let r = Root::new(&f.dest, Links::Never).with_walk(walk);
            let (mut refused, mut made) = (0, 0);
            let start = std::time::Instant::now();
            let mut i = 0;
            while (refused == 0 || made == 0 || i < 2000)
                && start.elapsed() < std::time::Duration::from_secs(10)
            {
                i += 1;
                // Every try resolves `racy` again (a kept handle would
                // stay on the directory first found, which is safe too).
                r.forget_dirs();
                match r.create_new(format!("racy/f{i}").as_bytes(), 0o600) {
                    Ok(_) => made += 1,
                    Err(e) if e.to_string().contains("outside the destination") => refused += 1,
                    Err(_) => {}
                }
                let _ = r.mkdir(format!("racy/d{i}").as_bytes(), 0o700);
            }
            stop.store(true, Ordering::Relaxed);
            flipper.join().unwrap();
            outside_untouched(&f);
            assert!(
                refused > 0 && made > 0,
                "the race was not hit (walk {walk}: {refused} refused, {made} made)"
            );
            let _ = fs::remove_file(f.dest.join("racy"));
            let _ = fs::remove_dir_all(f.dest.join("racy"));
            let _ = fs::remove_dir_all(f.dest.join("racy.real"));
        }
    }

    /// A kept parent handle never outlives the directory it stands for
    /// when this root removes, replaces or moves it.
    #[test]
    fn kept_parent_handles_follow_replaced_directories() {
        let f = fixture();
        for r in roots(&f.dest, Links::Never) {
            r.mkdir(b"k", 0o755).unwrap();
            r.mkdir(b"k/s", 0o755).unwrap();
            r.create_new(b"k/s/a", 0o600).unwrap();
            r.create_new(b"k/b", 0o600).unwrap();
            // Removed and made again: the new one is used.
            r.remove_any(b"k").unwrap();
            r.mkdir(b"k", 0o755).unwrap();
            r.create_new(b"k/c", 0o600).unwrap();
            assert!(f.dest.join("k/c").is_file());
            // Moved away and made again.
            r.mkdir(b"k/s", 0o755).unwrap();
            r.create_new(b"k/s/d", 0o600).unwrap();
            r.rename(b"k", b"moved").unwrap();
            r.mkdir(b"k", 0o755).unwrap();
            r.mkdir(b"k/s", 0o755).unwrap();
            r.create_new(b"k/s/e", 0o600).unwrap();
            assert!(f.dest.join("k/s/e").is_file());
            assert!(f.dest.join("moved/s/d").is_file());
            // Replaced by a symlink to the outside: refused, not followed.
            r.remove_any(b"k").unwrap();
            r.symlink(f.outside.as_os_str().as_bytes(), b"k").unwrap();
            assert!(r.create_new(b"k/s", 0o600).is_err());
            assert!(r.create_new(b"k/x", 0o600).is_err());
            r.remove_any(b"moved").unwrap();
            r.remove_file(b"k").unwrap();
            outside_untouched(&f);
        }
    }

    #[test]
    fn the_walk_is_used_when_forced_and_openat2_otherwise() {
        let f = fixture();
        let r = Root::new(&f.dest, Links::Never).with_walk(true);
        assert!(r.uses_walk());
        r.create_new(b"real/w", 0o600).unwrap();
        let r = Root::new(&f.dest, Links::Never).with_walk(false);
        r.create_new(b"real/o", 0o600).unwrap();
        assert!(!r.uses_walk(), "openat2 is missing on this kernel");
    }
}
