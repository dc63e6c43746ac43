//! Confinement of a sending side to a directory (a daemon module that is
//! not chrooted): every path the sender stats, lists, reads or removes is
//! resolved beneath the module root through handles, never by path.
//!
//! Layer: fs (L3). Uses rustix; never the network.
//!
//! The sender keeps full paths (`/module/dir/name`) in its list; a
//! [`ReadRoot`] takes each one relative to the module and resolves it
//! beneath a handle on the module directory. Symlinks inside the module
//! may be passed (rsync's semantics within a module: `-L`, `-k`,
//! `--copy-unsafe-links` and a `dir/` source through a link), but none
//! ever leads outside: `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`
//! refuses an absolute link or a `..` above the root, and where `openat2`
//! is missing (or [`super::beneath::WALK_ENV`] forces it) an
//! `openat(O_NOFOLLOW)` walk follows only relative links, never above the
//! root. A symlink that is listed as a symlink is read with `readlinkat`
//! on its parent's handle and never followed.
//!
//! Extended attributes and ACLs are read through the pinned parent
//! handle (`/proc/self/fd/N/name`, with the `l*` calls, which do not
//! follow the last component).

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use super::beneath::{Links, Root};

/// The most symlinks one resolution follows (the kernel's limit).
const MAX_LINKS: u32 = 40;

/// A module root that sending-side paths are resolved beneath.
#[derive(Debug)]
pub struct ReadRoot {
    base: PathBuf,
    root: Root,
    fd: OwnedFd,
}

fn os(name: &[u8]) -> &OsStr {
    OsStr::from_bytes(name)
}

fn errno(e: &io::Error) -> Errno {
    // An escape (an `io::Error::other` from `Root`) reads as EXDEV.
    Errno::from_io_error(e).unwrap_or(Errno::XDEV)
}

/// `rel` split into its parent and last component (`.` for the root).
fn split(rel: &[u8]) -> (&[u8], &[u8]) {
    let mut rel = rel;
    while let Some(r) = rel.strip_suffix(b"/") {
        rel = r;
    }
    match rel.iter().rposition(|b| *b == b'/') {
        Some(p) => (&rel[..p], &rel[p + 1..]),
        None if rel.is_empty() => (b"", b"."),
        None => (b"", rel),
    }
}

fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        return name.to_vec();
    }
    let mut v = parent.to_vec();
    v.push(b'/');
    v.extend_from_slice(name);
    v
}

impl ReadRoot {
    /// Opens the module directory `base` (a trusted path from the
    /// daemon's configuration).
    ///
    /// # Errors
    /// It cannot be opened as a directory.
    pub fn open(base: &Path) -> io::Result<Self> {
        let root = Root::new(base, Links::Inside);
        let fd = root.dir(b"")?;
        Ok(ReadRoot {
            base: base.to_path_buf(),
            root,
            fd,
        })
    }

    /// Forces (or stops forcing) the `openat` walk instead of `openat2`.
    #[must_use]
    pub fn with_walk(mut self, walk: bool) -> Self {
        self.root = Root::new(&self.base, Links::Inside).with_walk(walk);
        self
    }

    /// The module directory.
    #[must_use]
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// `path` relative to the module; a path not under it is refused.
    fn rel(&self, path: &Path) -> Result<Vec<u8>, Errno> {
        let r = path.strip_prefix(&self.base).map_err(|_| Errno::XDEV)?;
        let mut out = Vec::new();
        for c in r.components() {
            match c {
                std::path::Component::Normal(n) => {
                    if !out.is_empty() {
                        out.push(b'/');
                    }
                    out.extend_from_slice(n.as_bytes());
                }
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    if !out.is_empty() {
                        out.push(b'/');
                    }
                    out.extend_from_slice(b"..");
                }
                _ => return Err(Errno::XDEV),
            }
        }
        Ok(out)
    }

    /// Directory `rel` beneath the root (`O_PATH`), inside links followed.
    fn dir(&self, rel: &[u8]) -> Result<OwnedFd, Errno> {
        self.root.dir(rel).map_err(|e| errno(&e))
    }

    /// The parent handle and last component that `rel` comes to, its
    /// last component followed while it is a symlink when `follow` is
    /// set. A last component `.` stands for the directory itself.
    fn resolve(&self, rel: &[u8], follow: bool) -> Result<(OwnedFd, Vec<u8>), Errno> {
        let mut cur = rel.to_vec();
        for _ in 0..=MAX_LINKS {
            let (p, n) = split(&cur);
            if n == b"." || n == b".." {
                return Ok((self.dir(&cur)?, b".".to_vec()));
            }
            let pd = self.dir(p)?;
            if follow {
                let st = rustix::fs::statat(&pd, os(n), AtFlags::SYMLINK_NOFOLLOW)?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
                    let t = rustix::fs::readlinkat(&pd, os(n), Vec::new())?;
                    let t = t.as_bytes();
                    if t.first() == Some(&b'/') {
                        return Err(Errno::XDEV);
                    }
                    cur = join(p, t);
                    continue;
                }
            }
            return Ok((pd, n.to_vec()));
        }
        Err(Errno::LOOP)
    }

    /// Opens `rel` with `flags`, following symlinks that stay beneath the
    /// root (the last component too).
    fn open_follow(&self, rel: &[u8], flags: OFlags) -> Result<OwnedFd, Errno> {
        let flags = flags | OFlags::CLOEXEC;
        if !self.root.uses_walk() {
            let name: &[u8] = if rel.is_empty() { b"." } else { rel };
            let how = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
            let mut tries = 0;
            loop {
                match rustix::fs::openat2(&self.fd, os(name), flags, Mode::empty(), how) {
                    Err(Errno::AGAIN) if tries < 8 => tries += 1,
                    Err(Errno::NOSYS) => break,
                    r => return r,
                }
            }
        }
        let (pd, n) = self.resolve(rel, true)?;
        rustix::fs::openat(&pd, os(&n), flags | OFlags::NOFOLLOW, Mode::empty())
    }

    /// `lstat` of `path` (its last component not followed).
    ///
    /// # Errors
    /// It is missing or cannot be reached beneath the root.
    pub fn lstat(&self, path: &Path) -> rustix::io::Result<Stat> {
        let (pd, n) = self.resolve(&self.rel(path)?, false)?;
        rustix::fs::statat(&pd, os(&n), AtFlags::SYMLINK_NOFOLLOW)
    }

    /// `stat` of `path`: symlinks followed while they stay beneath.
    ///
    /// # Errors
    /// As [`ReadRoot::lstat`]; a link leading outside is `EXDEV`.
    pub fn stat(&self, path: &Path) -> rustix::io::Result<Stat> {
        let fd = self.open_follow(&self.rel(path)?, OFlags::PATH)?;
        rustix::fs::fstat(&fd)
    }

    /// The target of symlink `path`.
    ///
    /// # Errors
    /// It is no symlink or cannot be reached.
    pub fn read_link(&self, path: &Path) -> rustix::io::Result<Vec<u8>> {
        let (pd, n) = self.resolve(&self.rel(path)?, false)?;
        Ok(rustix::fs::readlinkat(&pd, os(&n), Vec::new())?.into_bytes())
    }

    /// Opens directory `path` for listing.
    ///
    /// # Errors
    /// It is no directory or cannot be reached.
    pub fn open_dir(&self, path: &Path) -> rustix::io::Result<OwnedFd> {
        self.open_follow(&self.rel(path)?, OFlags::RDONLY | OFlags::DIRECTORY)
    }

    /// Opens regular file `path` for reading (never blocking on a fifo),
    /// its last component followed only when `follow` is set.
    ///
    /// # Errors
    /// It cannot be reached, or is not a regular file.
    pub fn open_file(&self, path: &Path, follow: bool, extra: OFlags) -> io::Result<fs::File> {
        let rel = self.rel(path)?;
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | extra;
        let fd = if follow {
            self.open_follow(&rel, flags)?
        } else {
            let (pd, n) = self.resolve(&rel, false)?;
            rustix::fs::openat(
                &pd,
                os(&n),
                flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?
        };
        let f = fs::File::from(fd);
        if !f.metadata()?.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        Ok(f)
    }

    /// The contents of regular file `path` (symlinks followed beneath).
    ///
    /// # Errors
    /// As [`ReadRoot::open_file`].
    pub fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut f = self.open_file(path, true, OFlags::empty())?;
        let mut v = Vec::new();
        f.read_to_end(&mut v)?;
        Ok(v)
    }

    /// A path naming `path` through its pinned parent handle
    /// (`/proc/self/fd/N/name`) for the `l*` xattr calls; the handle must
    /// be kept while the path is used. `follow`: the last component is
    /// followed first while it is a symlink (beneath the root).
    ///
    /// # Errors
    /// It cannot be reached.
    pub fn pinned(&self, path: &Path, follow: bool) -> io::Result<(OwnedFd, PathBuf)> {
        use std::os::fd::AsRawFd;
        let (pd, n) = self.resolve(&self.rel(path)?, follow)?;
        let mut p = PathBuf::from(format!("/proc/self/fd/{}", pd.as_fd().as_raw_fd()));
        p.push(os(&n));
        Ok((pd, p))
    }

    /// Removes non-directory `path` (never through a link outside).
    ///
    /// # Errors
    /// The unlink failed.
    pub fn remove_file(&self, path: &Path) -> io::Result<()> {
        let (pd, n) = self.resolve(&self.rel(path)?, false)?;
        Ok(rustix::fs::unlinkat(&pd, os(&n), AtFlags::empty())?)
    }
}

/// `lstat` of `path`, beneath `root` when there is one.
///
/// # Errors
/// As [`ReadRoot::lstat`].
pub fn lstat(root: Option<&ReadRoot>, path: &Path) -> rustix::io::Result<Stat> {
    match root {
        Some(r) => r.lstat(path),
        None => rustix::fs::lstat(path),
    }
}

/// `stat` of `path`, beneath `root` when there is one.
///
/// # Errors
/// As [`ReadRoot::stat`].
pub fn stat(root: Option<&ReadRoot>, path: &Path) -> rustix::io::Result<Stat> {
    match root {
        Some(r) => r.stat(path),
        None => rustix::fs::stat(path),
    }
}

/// The target of symlink `path`, beneath `root` when there is one.
///
/// # Errors
/// As [`ReadRoot::read_link`].
pub fn read_link(root: Option<&ReadRoot>, path: &Path) -> io::Result<Vec<u8>> {
    use std::os::unix::ffi::OsStringExt;
    match root {
        Some(r) => Ok(r.read_link(path)?),
        None => Ok(fs::read_link(path)?.into_os_string().into_vec()),
    }
}

/// Opens directory `path` for listing, beneath `root` when there is one.
///
/// # Errors
/// As [`ReadRoot::open_dir`].
pub fn open_dir(root: Option<&ReadRoot>, path: &Path) -> rustix::io::Result<OwnedFd> {
    match root {
        Some(r) => r.open_dir(path),
        None => rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ),
    }
}

/// The contents of `path`, beneath `root` when there is one.
///
/// # Errors
/// As [`ReadRoot::read`].
pub fn read(root: Option<&ReadRoot>, path: &Path) -> io::Result<Vec<u8>> {
    match root {
        Some(r) => r.read(path),
        None => fs::read(path),
    }
}

/// Runs `f` on a path for the `l*` xattr calls that names `path` (pinned
/// beneath `root` when there is one; `follow`: its last component
/// followed first).
///
/// # Errors
/// `path` cannot be reached, or what `f` returns.
pub fn with_xattr_path<T>(
    root: Option<&ReadRoot>,
    path: &Path,
    follow: bool,
    f: impl FnOnce(&Path) -> io::Result<T>,
) -> io::Result<T> {
    match root {
        Some(r) => {
            let (_pin, p) = r.pinned(path, follow)?;
            f(&p)
        }
        None => f(path),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn fixture() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let m = t.path().join("mod");
        let out = t.path().join("outside");
        fs::create_dir_all(m.join("real/sub")).unwrap();
        fs::create_dir_all(&out).unwrap();
        fs::write(out.join("secret"), b"secret").unwrap();
        fs::write(m.join("real/f"), b"inside").unwrap();
        symlink(&out, m.join("abs")).unwrap();
        symlink("../outside", m.join("rel")).unwrap();
        symlink(out.join("secret"), m.join("abs-file")).unwrap();
        symlink("../outside/secret", m.join("rel-file")).unwrap();
        symlink("real", m.join("inside")).unwrap();
        symlink("real/f", m.join("inside-file")).unwrap();
        symlink("../f", m.join("real/sub/up")).unwrap();
        (t, m)
    }

    #[test]
    fn nothing_outside_is_read_both_ways() {
        let (_t, m) = fixture();
        for walk in [false, true] {
            let r = ReadRoot::open(&m).unwrap().with_walk(walk);
            for link in ["abs", "rel"] {
                let p = m.join(link);
                assert!(r.lstat(&p).unwrap().st_mode & 0o170_000 == 0o120_000);
                assert!(r.stat(&p).is_err(), "{link} walk {walk}");
                assert!(r.open_dir(&p).is_err());
                assert!(r.lstat(&p.join("secret")).is_err());
                assert!(r.read(&p.join("secret")).is_err());
                assert!(r.pinned(&p.join("secret"), false).is_err());
            }
            for link in ["abs-file", "rel-file"] {
                let p = m.join(link);
                assert!(r.read(&p).is_err(), "{link} walk {walk}");
                assert!(r.open_file(&p, false, OFlags::empty()).is_err());
                assert!(r.pinned(&p, true).is_err());
                assert!(!r.read_link(&p).unwrap().is_empty());
            }
            assert!(r.lstat(&m.join("../outside/secret")).is_err());
            assert!(r.lstat(Path::new("/etc/passwd")).is_err());
            // Inside links are followed where asked.
            assert_eq!(r.read(&m.join("inside-file")).unwrap(), b"inside");
            assert_eq!(r.read(&m.join("real/sub/up")).unwrap(), b"inside");
            assert_eq!(r.read(&m.join("inside/f")).unwrap(), b"inside");
            assert!(r.open_dir(&m.join("inside")).is_ok());
            assert!(
                r.open_file(&m.join("inside-file"), false, OFlags::empty())
                    .is_err()
            );
            assert!(r.stat(&m).unwrap().st_mode & 0o040_000 != 0);
            assert!(r.lstat(&m.join("real/./f")).is_ok());
        }
    }
}
