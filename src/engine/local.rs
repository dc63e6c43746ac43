//! Local side effects of the receiving side: temporary names, attributes,
//! special files, deletion, and id mapping by name.
//!
//! Layer: engine (local file system). Uses std, filetime, rustix.
//! Mirrors upstream receiver.c `get_tmpname`, rsync.c `set_file_attrs`,
//! uidlist.c (mapping by name) and delete.c.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::flist::{FileEntry, FileKind};
use crate::fs::beneath::Root;

/// Which attributes to apply.
#[derive(Debug, Clone, Copy, Default)]
pub struct Preserve {
    /// `-p`
    pub perms: bool,
    /// `-t`
    pub times: bool,
    /// `-o` (effective only as root)
    pub owner: bool,
    /// `-g`
    pub group: bool,
    /// `-O`
    pub omit_dir_times: bool,
    /// We run as root.
    pub am_root: bool,
    /// Nanoseconds travel (protocol >= 31), so they count when comparing.
    pub nsec: bool,
    /// `-U`: access times of non-directories.
    pub atimes: bool,
    /// `-A`: POSIX ACLs.
    pub acls: bool,
}

/// The final mode for a new item when `-p` is off: the sender's bits masked
/// by the umask, without setuid/setgid/sticky (upstream `dest_mode`).
#[must_use]
pub fn dest_mode(sender_mode: u32, umask: u32, is_dir: bool) -> u32 {
    let _ = is_dir;
    sender_mode & 0o777 & !umask
}

/// The process umask (read once per process, restoring it right away;
/// nothing here changes it later).
#[must_use]
pub fn current_umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
        rustix::process::umask(old);
        old.as_raw_mode()
    })
}

/// The permission bits a new non-directory item ends with: the sender's
/// (`-p`), else the sender's masked by the umask.
#[must_use]
pub fn new_mode(e: &FileEntry, p: &Preserve) -> u32 {
    if p.perms {
        e.mode & 0o7777
    } else {
        dest_mode(e.mode, current_umask(), false)
    }
}

/// The mode a received file's temporary is created with: its final
/// permission bits (never setuid/setgid/sticky) when it keeps the owner
/// and group it is created with (`me`: our effective uid and gid), so
/// that no chmod is needed afterwards; else 0600, so that no one else
/// reads it before it has its owner. The owner can always write it.
#[must_use]
pub fn tmp_mode(e: &FileEntry, uid: u32, gid: u32, p: &Preserve, me: (u32, u32)) -> u32 {
    let keeps_owner = !(p.owner && p.am_root) || uid == me.0;
    let keeps_group = !p.group || gid == me.1;
    if keeps_owner && keeps_group {
        (new_mode(e, p) & 0o777) | 0o600
    } else {
        0o600
    }
}

/// Applies owner, times and permissions to a newly received regular file
/// through its open handle (no name is resolved), in rsync's order
/// (owner, times, perms), each only when it differs from what one `fstat`
/// of the file shows. Not for `-A` (the ACL goes by name).
///
/// # Errors
/// The first failing system call.
pub fn set_attrs_fd(
    f: &fs::File,
    e: &FileEntry,
    uid: u32,
    gid: u32,
    p: &Preserve,
) -> io::Result<()> {
    use rustix::fs::{Timespec, Timestamps, UTIME_OMIT};
    let st = rustix::fs::fstat(f)?;
    let uid_change = (p.owner && p.am_root)
        .then_some(uid)
        .filter(|u| *u != st.st_uid);
    let gid_change = p.group.then_some(gid).filter(|g| *g != st.st_gid);
    if uid_change.is_some() || gid_change.is_some() {
        match rustix::fs::fchown(
            f,
            uid_change.map(rustix::process::Uid::from_raw_unchecked),
            gid_change.map(rustix::process::Gid::from_raw_unchecked),
        ) {
            Ok(()) => {}
            Err(err)
                if !p.am_root && io::Error::from(err).kind() == io::ErrorKind::PermissionDenied => {
            }
            Err(err) => return Err(err.into()),
        }
    }
    let nsec_differs =
        p.nsec && i64::try_from(st.st_mtime_nsec).ok() != Some(i64::from(e.mtime_nsec));
    let mtime_differs = p.times && (st.st_mtime != e.mtime || nsec_differs);
    let atime_differs = p.atimes && st.st_atime != e.atime;
    let mtime = Timespec {
        tv_sec: e.mtime,
        tv_nsec: e.mtime_nsec.into(),
    };
    if p.atimes && (mtime_differs || atime_differs) {
        let omit = Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        };
        let ts = Timestamps {
            last_access: Timespec {
                tv_sec: e.atime,
                tv_nsec: 0,
            },
            last_modification: if p.times { mtime } else { omit },
        };
        rustix::fs::futimens(f, &ts)?;
    } else if mtime_differs {
        let ts = Timestamps {
            last_access: mtime,
            last_modification: mtime,
        };
        rustix::fs::futimens(f, &ts)?;
    }
    // A chown clears setuid/setgid: set them again after it.
    let want = new_mode(e, p);
    let owner_changed = uid_change.is_some() || gid_change.is_some();
    if st.st_mode & 0o7777 != want || (owner_changed && want & 0o6000 != 0) {
        rustix::fs::fchmod(f, rustix::fs::Mode::from_raw_mode(want))?;
    }
    Ok(())
}

/// Applies ownership, times and permissions to `rel` (beneath `root`,
/// through handles) in rsync's order
/// (owner, times, perms). Returns the item flags of what differed.
///
/// # Errors
/// The first failing system call.
#[allow(clippy::too_many_arguments)]
pub fn set_attrs(
    root: &Root,
    rel: &[u8],
    e: &FileEntry,
    uid: u32,
    gid: u32,
    p: &Preserve,
    st: Option<&fs::Metadata>,
    is_new: bool,
) -> io::Result<u16> {
    use super::report::item;
    let kind = e.kind();
    let is_link = kind == Some(FileKind::Symlink);
    let is_dir = kind == Some(FileKind::Dir);
    // `-K`: a symlink kept in a directory's place. rsync compares with the
    // directory it points to, but sets owner and times on the link itself
    // and cannot change its permissions (ELOOP).
    let kept_link = is_dir && root.lstat(rel).is_ok_and(|m| m.file_type().is_symlink());
    let target_meta;
    let st = if kept_link {
        target_meta = root.stat_dir_inside(rel);
        target_meta.as_ref().or(st)
    } else {
        st
    };
    let mut flags = 0u16;
    let want_uid = if p.owner && p.am_root {
        Some(uid)
    } else {
        None
    };
    let want_gid = if p.group { Some(gid) } else { None };
    let cur_uid = st.map(MetadataExt::uid);
    let cur_gid = st.map(MetadataExt::gid);
    let uid_change = want_uid.filter(|u| Some(*u) != cur_uid);
    let gid_change = want_gid.filter(|g| Some(*g) != cur_gid);
    if uid_change.is_some() || gid_change.is_some() {
        match root.chown(rel, uid_change, gid_change) {
            Ok(()) => {}
            Err(err) if !p.am_root && err.kind() == io::ErrorKind::PermissionDenied => {}
            Err(err) => return Err(err),
        }
        if uid_change.is_some() && !is_new {
            flags |= item::REPORT_OWNER;
        }
        if gid_change.is_some() && !is_new {
            flags |= item::REPORT_GROUP;
        }
    }
    let want_mtime = p.times && !(is_dir && p.omit_dir_times);
    let want_atime = p.atimes && !is_dir;
    let mtime_differs = want_mtime
        && st.is_none_or(|m| {
            m.mtime() != e.mtime || (p.nsec && m.mtime_nsec() != i64::from(e.mtime_nsec))
        });
    let atime_differs = want_atime && st.is_none_or(|m| m.atime() != e.atime);
    if want_atime && (mtime_differs || atime_differs) {
        let mtime = want_mtime.then_some((e.mtime, e.mtime_nsec));
        set_times(root, rel, mtime, Some(e.atime), is_link || kept_link)?;
        if !is_new {
            if mtime_differs {
                flags |= item::REPORT_TIME;
            }
            if atime_differs {
                flags |= item::REPORT_ATIME;
            }
        }
    } else if mtime_differs {
        set_mtime(root, rel, e.mtime, e.mtime_nsec, is_link || kept_link)?;
        if !is_new {
            flags |= item::REPORT_TIME;
        }
    }
    if p.acls && !is_link && !kept_link {
        if let Some(acls) = e.extra().acls.as_deref() {
            // After the times and before the mode, as rsync's
            // `set_file_attrs`; the ACL write sets the permission bits too.
            let old = match st {
                Some(m) => m.mode(),
                None => root.lstat(rel)?.mode(),
            };
            let target = root.xattr_target(rel)?;
            if crate::fs::acls::apply((&target).into(), acls, e.mode, old)? && !is_new {
                flags |= item::REPORT_ACL;
            }
        }
    }
    if !is_link {
        let cur_mode = st.map(|m| m.mode() & 0o7777);
        let want = if p.perms {
            Some(e.mode & 0o7777)
        } else if is_new {
            Some(dest_mode(e.mode, current_umask(), is_dir))
        } else {
            None
        };
        if let Some(m) = want {
            if kept_link {
                if cur_mode != Some(m) {
                    return Err(io::Error::from_raw_os_error(
                        rustix::io::Errno::LOOP.raw_os_error(),
                    ));
                }
            } else if cur_mode != Some(m) || uid_change.is_some() || gid_change.is_some() {
                root.chmod(rel, m)?;
                if !is_new && cur_mode != Some(m) {
                    flags |= item::REPORT_PERMS;
                }
            }
        }
    }
    Ok(flags)
}

/// The smallest run of zeros inside written data that `--sparse` turns
/// into a hole (rsync's `SPARSE_WRITE_SIZE`); runs at the edges of a write
/// always are.
const SPARSE_RUN: usize = 1024;

/// The receiver's output file: positioned writes from a start offset
/// (`--append` continues after the kept part), with `--sparse` runs of
/// zeros skipped (or punched out of a preallocated file) instead of
/// written. Upstream fileio.c `write_sparse`.
#[derive(Debug)]
pub struct OutFile {
    file: fs::File,
    pos: u64,
    sparse: bool,
    punch: bool,
    /// Holes starting below this offset are punched (space that is
    /// allocated already: preallocated, or an `--inplace` file's old
    /// length), above it skipped (upstream `preallocated_len`).
    punch_below: u64,
    /// The hole not yet made: (offset, length). rsync defers each hole
    /// until the next data (so holes of adjacent writes merge).
    pending: (u64, u64),
    /// `--inplace`: the hole still pending at the end is punched too
    /// (upstream `sparse_end` when updating the basis).
    punch_at_end: bool,
}

impl OutFile {
    /// Writes into `file` from offset `start`.
    #[must_use]
    pub fn new(file: fs::File, start: u64, sparse: bool) -> Self {
        OutFile {
            file,
            pos: start,
            sparse,
            punch: false,
            punch_below: 0,
            pending: (start, 0),
            punch_at_end: false,
        }
    }

    /// `--inplace` with `--sparse`: holes inside the file's old length are
    /// punched out and the pending hole at the end too. With `truncate`
    /// (whole-file transfers) the file is emptied first, as rsync does, so
    /// that every hole is simply skipped. Returns the old length.
    pub fn inplace(&mut self, truncate: bool) -> u64 {
        let old = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        if !self.sparse {
            return old;
        }
        self.punch_at_end = true;
        self.punch_below = if truncate && self.pos == 0 && self.file.set_len(0).is_ok() {
            0
        } else {
            old
        };
        old
    }

    /// `--preallocate`: reserves `len` bytes. Without `--sparse` the file
    /// keeps its size until written; with it, the space is allocated at
    /// full size and runs of zeros are punched out again (rsync's choice).
    /// Failures are ignored (a file system without fallocate).
    pub fn preallocate(&mut self, len: u64) {
        use rustix::fs::{FallocateFlags, fallocate};
        if len == 0 {
            return;
        }
        let flags = if self.sparse {
            FallocateFlags::empty()
        } else {
            FallocateFlags::KEEP_SIZE
        };
        if fallocate(&self.file, flags, 0, len).is_ok() && self.sparse {
            self.punch = true;
            self.punch_below = self.punch_below.max(len);
        }
    }

    /// The file written.
    #[must_use]
    pub fn into_file(self) -> fs::File {
        self.file
    }

    /// The offset after the last byte written or skipped.
    #[must_use]
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Ends the file at the current position when runs of zeros were
    /// skipped (a trailing hole) or space was preallocated past it.
    ///
    /// # Errors
    /// The truncation failed.
    pub fn finish(&mut self) -> io::Result<()> {
        if self.punch_at_end {
            self.flush_hole(true)?;
        }
        if self.sparse || self.punch {
            self.file.set_len(self.pos)?;
        }
        Ok(())
    }

    fn hole(&mut self, at: u64, len: usize) -> io::Result<()> {
        if len > 0 {
            if self.pending.1 == 0 {
                self.pending = (at, len as u64);
            } else {
                self.pending.1 += len as u64;
            }
        }
        Ok(())
    }

    /// Makes the pending hole: punched when it starts in allocated space
    /// (or `always`), else left as skipped bytes.
    fn flush_hole(&mut self, always: bool) -> io::Result<()> {
        let (at, len) = std::mem::take(&mut self.pending);
        if len > 0 && (always || at < self.punch_below) {
            use rustix::fs::{FallocateFlags, fallocate};
            fallocate(
                &self.file,
                FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
                at,
                len,
            )?;
        }
        Ok(())
    }

    fn span(&mut self, at: u64, data: &[u8]) -> io::Result<()> {
        self.flush_hole(false)?;
        std::os::unix::fs::FileExt::write_all_at(&self.file, data, at)
    }
}

impl io::Write for OutFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let base = self.pos;
        if !self.sparse {
            self.span(base, buf)?;
            self.pos += buf.len() as u64;
            return Ok(buf.len());
        }
        let lead = buf.iter().position(|b| *b != 0).unwrap_or(buf.len());
        if lead == buf.len() {
            self.hole(base, lead)?;
            self.pos += buf.len() as u64;
            return Ok(buf.len());
        }
        let trail = buf.iter().rev().position(|b| *b != 0).unwrap_or(0);
        let end = buf.len() - trail;
        self.hole(base, lead)?;
        let mut start = lead;
        let mut i = lead;
        while i < end {
            if buf[i] != 0 {
                i += 1;
                continue;
            }
            let z = buf[i..end].iter().position(|b| *b != 0).unwrap_or(end - i);
            if z >= SPARSE_RUN {
                self.span(base + start as u64, &buf[start..i])?;
                self.hole(base + i as u64, z)?;
                start = i + z;
            }
            i += z;
        }
        self.span(base + start as u64, &buf[start..end])?;
        self.hole(base + end as u64, trail)?;
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sets atime and mtime of `rel` without opening it (a fifo must never be
/// opened) and, for symlinks, without following it.
///
/// # Errors
/// The system call failed.
pub fn set_mtime(root: &Root, rel: &[u8], sec: i64, nsec: u32, no_follow: bool) -> io::Result<()> {
    use rustix::fs::{Timespec, Timestamps};
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: nsec.into(),
    };
    let ts = Timestamps {
        last_access: t,
        last_modification: t,
    };
    root.set_times(rel, &ts, no_follow)
}

/// `-U`: sets the access time (whole seconds, as rsync sends it) and,
/// when given, the modification time; an absent one is left as it is.
///
/// # Errors
/// The system call failed.
pub fn set_times(
    root: &Root,
    rel: &[u8],
    mtime: Option<(i64, u32)>,
    atime: Option<i64>,
    no_follow: bool,
) -> io::Result<()> {
    use rustix::fs::{Timespec, Timestamps, UTIME_OMIT};
    let omit = Timespec {
        tv_sec: 0,
        tv_nsec: UTIME_OMIT,
    };
    let ts = Timestamps {
        last_access: atime.map_or(omit, |a| Timespec {
            tv_sec: a,
            tv_nsec: 0,
        }),
        last_modification: mtime.map_or(omit, |(sec, nsec)| Timespec {
            tv_sec: sec,
            tv_nsec: nsec.into(),
        }),
    };
    root.set_times(rel, &ts, no_follow)
}

/// A temporary name beside `dest`: `.NAME.XXXXXX` (upstream `get_tmpname`).
#[must_use]
pub fn tmp_name(dest: &Path, attempt: u32) -> PathBuf {
    let rel = tmp_rel(dest.as_os_str().as_bytes(), attempt);
    PathBuf::from(OsStr::from_bytes(&rel))
}

/// `rel` split into its directory part (with the trailing slash, empty at
/// the top) and its last component.
fn split_rel(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|b| *b == b'/') {
        Some(p) => (&rel[..=p], &rel[p + 1..]),
        None => (b"", rel),
    }
}

/// `rel`'s last component replaced by `name`.
fn sibling(rel: &[u8], name: &[u8]) -> Vec<u8> {
    [split_rel(rel).0, name].concat()
}

/// A temporary name beside relative name `rel`: `.NAME.XXXXXX`.
#[must_use]
pub fn tmp_rel(rel: &[u8], attempt: u32) -> Vec<u8> {
    let (_, base) = split_rel(rel);
    let base = if base.is_empty() || base == b"." {
        &b"tmp"[..]
    } else {
        base
    };
    let mut stem: &[u8] = base.strip_prefix(b".").unwrap_or(base);
    stem = stem.strip_suffix(b".").unwrap_or(stem);
    let stem = &stem[..stem.len().min(240)];
    let mut name = Vec::with_capacity(stem.len() + 9);
    name.push(b'.');
    name.extend_from_slice(stem);
    name.push(b'.');
    // The pid only seeds the name (a clash is retried): read once.
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let pid = *PID.get_or_init(std::process::id);
    let mut x = u64::from(pid).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ u64::from(attempt).wrapping_mul(0xBF58_476D_1CE4_E5B9)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for _ in 0..6 {
        name.push(ALNUM[(x % ALNUM.len() as u64) as usize]);
        x /= ALNUM.len() as u64;
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
    }
    sibling(rel, &name)
}

/// The holding directory of `--delay-updates` (rsync's default partial
/// directory).
pub const DELAY_DIR: &str = ".~tmp~";

/// Where `--delay-updates` keeps the new `rel` until the end: `.~tmp~/`
/// beside it (created, mode 0700, never through a symlink).
///
/// # Errors
/// The holding directory cannot be created or is not a real directory.
pub fn delay_path(root: &Root, rel: &[u8]) -> io::Result<Vec<u8>> {
    let dir = sibling(rel, DELAY_DIR.as_bytes());
    match root.mkdir(&dir, 0o700) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    if !root.lstat(&dir)?.file_type().is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} is not a directory", root.display(&dir).display()),
        ));
    }
    Ok([&dir[..], b"/", split_rel(rel).1].concat())
}

/// Whether a relative option directory stays beneath the root by its
/// name alone (no `..` component).
fn stays_beneath(dir: &str) -> bool {
    !Path::new(dir).is_absolute() && !dir.split('/').any(|c| c == "..")
}

/// A place for a file: beneath the destination root, or under another
/// directory the user named (`--backup-dir`, `--partial-dir` given as an
/// absolute path or one that climbs with `..`), confined beneath that.
pub enum Loc<'a> {
    /// A name beneath the destination root.
    In(&'a Root, Vec<u8>),
    /// A name beneath a directory of the user's options.
    Out(Root, Vec<u8>),
}

impl Loc<'_> {
    /// The root and the name beneath it.
    #[must_use]
    pub fn get(&self) -> (&Root, &[u8]) {
        match self {
            Loc::In(r, n) => (r, n),
            Loc::Out(r, n) => (r, n),
        }
    }

    /// The path, for messages.
    #[must_use]
    pub fn display(&self) -> PathBuf {
        let (r, n) = self.get();
        r.display(n)
    }
}

/// `--backup`: moves the current `rel` (if any) to its backup name:
/// `rel` + suffix (`~`) beside it, or with `--backup-dir` the same
/// relative `name` under that directory (relative to the destination root)
/// + suffix (empty by default). Missing directories are created.
///
/// # Errors
/// The old file cannot be moved.
pub fn make_backup(
    root: &Root,
    rel: &[u8],
    name: &[u8],
    opts: &crate::engine::Options,
) -> io::Result<()> {
    let Ok(md) = root.lstat(rel) else {
        return Ok(());
    };
    if md.is_dir() {
        return Ok(());
    }
    let target = match &opts.backup_dir {
        None => {
            let sfx = opts.suffix.as_deref().unwrap_or("~");
            Loc::In(root, [rel, sfx.as_bytes()].concat())
        }
        Some(dir) => {
            let sfx = opts.suffix.as_deref().unwrap_or("").as_bytes();
            let loc = if stays_beneath(dir) {
                let d = dir.trim_end_matches('/').as_bytes();
                Loc::In(root, [d, b"/", name, sfx].concat())
            } else {
                let base = root.path().join(dir);
                fs::create_dir_all(&base)?;
                Loc::Out(
                    Root::new(&base, crate::fs::beneath::Links::Never),
                    [name, sfx].concat(),
                )
            };
            let (r, n) = loc.get();
            let (parent, _) = split_rel(n);
            if !parent.is_empty() {
                r.mkdir_all(parent, 0o777)?;
            }
            loc
        }
    };
    let (troot, tname) = target.get();
    if std::ptr::eq(troot, root) && tname == rel {
        return Ok(());
    }
    root.rename_to(rel, troot, tname)
}

/// rsync's basis type for a partial file in `--partial-dir`.
pub const FNAMECMP_PARTIAL_DIR: u8 = 0x81;

/// Where `--partial-dir` keeps the partial `rel`: `DIR/basename`, `DIR`
/// relative to `rel`'s directory unless absolute.
#[must_use]
pub fn partial_path<'a>(root: &'a Root, rel: &[u8], dir: &str) -> Loc<'a> {
    let (parent, base) = split_rel(rel);
    if stays_beneath(dir) {
        let d = dir.trim_end_matches('/').as_bytes();
        return Loc::In(root, [parent, d, b"/", base].concat());
    }
    let at = if Path::new(dir).is_absolute() {
        PathBuf::from(dir)
    } else {
        root.display(parent).join(dir)
    };
    Loc::Out(
        Root::new(&at, crate::fs::beneath::Links::Never),
        base.to_vec(),
    )
}

/// An existing partial file for `rel`, if `--partial-dir` has one (a
/// regular file, not through a symlink).
#[must_use]
pub fn find_partial<'a>(root: &'a Root, rel: &[u8], dir: &str) -> Option<Loc<'a>> {
    let p = partial_path(root, rel, dir);
    let (r, n) = p.get();
    r.lstat(n).ok().filter(fs::Metadata::is_file).map(|_| p)
}

/// Removes the partial file of `rel` and its directory when empty.
pub fn drop_partial(root: &Root, rel: &[u8], dir: &str) {
    let p = partial_path(root, rel, dir);
    let (r, n) = p.get();
    let _ = r.remove_file(n);
    if !Path::new(dir).is_absolute() {
        let (parent, _) = split_rel(n);
        if !parent.is_empty() {
            let _ = r.remove_dir(parent);
        }
    }
}

/// Keeps an interrupted temporary file: in the partial dir, or (plain
/// `--partial`) in place of `rel`. Empty files are not kept.
pub fn keep_partial(root: &Root, tmp: &[u8], rel: &[u8], dir: Option<&str>) {
    let has_data = root.lstat(tmp).is_ok_and(|m| m.len() > 0);
    if !has_data {
        let _ = root.remove_file(tmp);
        return;
    }
    let target = match dir {
        Some(d) => {
            let p = partial_path(root, rel, d);
            let (r, n) = p.get();
            let (parent, _) = split_rel(n);
            if let Loc::Out(r, _) = &p {
                use std::os::unix::fs::DirBuilderExt;
                let _ = fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(r.path());
            }
            if !parent.is_empty() {
                let _ = r.mkdir_all(parent, 0o700);
            }
            p
        }
        None => Loc::In(root, rel.to_vec()),
    };
    let (r, n) = target.get();
    if root.rename_to(tmp, r, n).is_err() {
        let _ = root.remove_file(tmp);
    }
}

/// `-H`: makes `rel` a hard link to `leader` (through a temporary name
/// and a rename when something is in the way). `Ok(false)` when it already
/// is one.
///
/// # Errors
/// The leader is missing or the link cannot be made.
pub fn link_into(root: &Root, leader: &[u8], rel: &[u8]) -> io::Result<bool> {
    let lm = root.lstat(leader)?;
    if let Ok(dm) = root.lstat(rel) {
        if dm.dev() == lm.dev() && dm.ino() == lm.ino() {
            return Ok(false);
        }
    }
    for attempt in 0..100 {
        let tmp = tmp_rel(rel, attempt);
        match root.hard_link(leader, &tmp) {
            Ok(()) => {
                if let Err(e) = root.rename(&tmp, rel) {
                    let _ = root.remove_file(&tmp);
                    return Err(e);
                }
                return Ok(true);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free temporary name"))
}

/// Removes a held-back copy of `rel` left by an interrupted
/// `--delay-updates` run, and the holding directory once it is empty.
pub fn drop_delayed(root: &Root, rel: &[u8]) {
    let dir = sibling(rel, DELAY_DIR.as_bytes());
    if root.lstat(&dir).is_ok_and(|m| m.is_dir()) {
        let _ = root.remove_file(&[&dir[..], b"/", split_rel(rel).1].concat());
        let _ = root.remove_dir(&dir);
    }
}

/// Creates a new temporary file beside `rel` with `mode` (less the
/// umask; see [`tmp_mode`]); returns it and its name.
///
/// # Errors
/// The directory is not writable.
pub fn create_tmp(root: &Root, rel: &[u8], mode: u32) -> io::Result<(fs::File, Vec<u8>)> {
    let mut last = None;
    for attempt in 0..100 {
        let p = tmp_rel(rel, attempt);
        match root.create_new(&p, mode) {
            Ok(f) => return Ok((f, p)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no temporary name")))
}

/// Creates a symlink, fifo, socket or device node at a temporary name and
/// renames it over `rel`.
///
/// # Errors
/// The creation or rename failed.
pub fn make_special(root: &Root, rel: &[u8], e: &FileEntry) -> io::Result<()> {
    use rustix::fs::FileType;
    for attempt in 0..100 {
        let tmp = tmp_rel(rel, attempt);
        let res = match e.kind() {
            Some(FileKind::Symlink) => {
                let target = e.link_target().unwrap_or_default();
                root.symlink(target, &tmp)
            }
            Some(k) => {
                let ft = match k {
                    FileKind::Fifo => FileType::Fifo,
                    FileKind::Socket => FileType::Socket,
                    FileKind::CharDev => FileType::CharacterDevice,
                    FileKind::BlockDev => FileType::BlockDevice,
                    _ => return Err(io::Error::other("not a special file")),
                };
                let dev = rustix::fs::makedev(e.rdev().0, e.rdev().1);
                root.mknod(&tmp, ft, e.mode & 0o7777, dev)
            }
            None => return Err(io::Error::other("unknown file type")),
        };
        match res {
            Ok(()) => {
                if root.lstat(rel).is_ok_and(|m| m.is_dir()) {
                    if let Err(err) = root.remove_any(rel) {
                        let _ = root.remove_file(&tmp);
                        return Err(err);
                    }
                }
                return root.rename(&tmp, rel).inspect_err(|_| {
                    let _ = root.remove_file(&tmp);
                });
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err),
        }
    }
    Err(io::Error::other("no temporary name"))
}

/// Maps remote ids to local ones by name (upstream uidlist.c): a name that
/// exists locally gives its local id; otherwise the number stays; id 0 is
/// never remapped.
#[derive(Debug, Default, Clone)]
pub struct IdMap {
    uids: HashMap<u32, u32>,
    gids: HashMap<u32, u32>,
}

fn read_db(path: &str) -> HashMap<Vec<u8>, u32> {
    let mut map = HashMap::new();
    if let Ok(text) = fs::read(path) {
        for line in text.split(|b| *b == b'\n') {
            let mut f = line.split(|b| *b == b':');
            let (Some(name), Some(_), Some(id)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            if let Some(id) = std::str::from_utf8(id).ok().and_then(|s| s.parse().ok()) {
                map.entry(name.to_vec()).or_insert(id);
            }
        }
    }
    map
}

impl IdMap {
    /// Builds the map from the peer's (id, name) lists.
    #[must_use]
    pub fn new(users: &[(u32, Vec<u8>)], groups: &[(u32, Vec<u8>)]) -> Self {
        let mut m = IdMap::default();
        if !users.is_empty() {
            let db = read_db("/etc/passwd");
            for (id, name) in users {
                if *id != 0 {
                    if let Some(local) = db.get(name) {
                        m.uids.insert(*id, *local);
                    }
                }
            }
        }
        if !groups.is_empty() {
            let db = read_db("/etc/group");
            for (id, name) in groups {
                if *id != 0 {
                    if let Some(local) = db.get(name) {
                        m.gids.insert(*id, *local);
                    }
                }
            }
        }
        m
    }

    /// Adds one inline name (incremental recursion).
    pub fn add_user(&mut self, id: u32, name: &[u8]) {
        if id != 0 {
            if let Some(local) = read_db("/etc/passwd").get(name) {
                self.uids.insert(id, *local);
            }
        }
    }

    /// The local uid for a remote one.
    #[must_use]
    pub fn uid(&self, id: u32) -> u32 {
        self.uids.get(&id).copied().unwrap_or(id)
    }

    /// The local gid for a remote one.
    #[must_use]
    pub fn gid(&self, id: u32) -> u32 {
        self.gids.get(&id).copied().unwrap_or(id)
    }
}

/// Where a `--usermap` / `--groupmap` rule applies.
#[derive(Debug, Clone)]
enum MapFrom {
    /// The sender's name, exactly.
    Name(Vec<u8>),
    /// The sender's name against a wildcard pattern (`*`, `?`, `[`).
    Wild(Vec<u8>),
    /// The sender's id, in an inclusive range (one id: both ends equal).
    Ids(u32, u32),
}

/// `--usermap` / `--groupmap` rules (`FROM:TO,...`; the first that
/// matches wins), as rsync's receiver applies them (upstream uidlist.c
/// `parse_name_map`, `recv_add_id`).
#[derive(Debug, Clone, Default)]
pub struct NameMap(Vec<(MapFrom, u32)>);

impl NameMap {
    /// Parses a map; `users` selects the user database for the names on
    /// the right (else the group database). A right-hand name this system
    /// does not know drops its rule, as rsync does (after saying so).
    ///
    /// # Errors
    /// rsync's texts for a rule without a colon, without a name after it,
    /// or with a malformed number.
    pub fn parse(spec: &str, users: bool) -> std::result::Result<(Self, Vec<String>), String> {
        let which = if users { "user" } else { "group" };
        let db = read_db(if users { "/etc/passwd" } else { "/etc/group" });
        let mut rules = Vec::new();
        let mut unknown = Vec::new();
        for item in spec.split(',') {
            let Some((from, to)) = item.split_once(':') else {
                return Err(format!("No colon found in --{which}map: {item}"));
            };
            if to.is_empty() {
                return Err(format!("No name found after colon --{which}map: {item}"));
            }
            let from = if from.starts_with(|c: char| c.is_ascii_digit()) {
                let bad = || format!("Invalid number in --{which}map: {from}");
                let (lo, hi) = match from.split_once('-') {
                    Some((l, h)) => (l, h),
                    None => (from, from),
                };
                let lo: u32 = lo.parse().map_err(|_| bad())?;
                let hi: u32 = hi.parse().map_err(|_| bad())?;
                MapFrom::Ids(lo, hi)
            } else if from.contains(['*', '[', '?']) {
                MapFrom::Wild(from.as_bytes().to_vec())
            } else {
                MapFrom::Name(from.as_bytes().to_vec())
            };
            let local = match to.parse::<u32>() {
                Ok(n) => Some(n),
                Err(_) => db.get(to.as_bytes()).copied(),
            };
            match local {
                Some(id) => rules.push((from, id)),
                None => unknown.push(format!("Unknown --{which}map name on receiver: {to}")),
            }
        }
        Ok((NameMap(rules), unknown))
    }

    /// The local id for the sender's `id` with its `name` (empty when the
    /// sender sent none), when a rule matches.
    #[must_use]
    pub fn lookup(&self, id: u32, name: &[u8]) -> Option<u32> {
        self.0.iter().find_map(|(from, to)| {
            let hit = match from {
                MapFrom::Name(n) => n.as_slice() == name,
                MapFrom::Wild(p) => crate::filter::wildmatch::wildmatch(p, name),
                MapFrom::Ids(lo, hi) => (*lo..=*hi).contains(&id),
            };
            hit.then_some(*to)
        })
    }
}

impl IdMap {
    /// Applies `--usermap` (`users`) or `--groupmap` rules to the sender's
    /// ids, each given with its name if the sender sent one.
    pub fn apply(&mut self, map: &NameMap, users: bool, ids: &[(u32, Vec<u8>)]) {
        let table = if users {
            &mut self.uids
        } else {
            &mut self.gids
        };
        for (id, name) in ids {
            if let Some(local) = map.lookup(*id, name) {
                table.insert(*id, local);
            }
        }
    }
}

/// Whether this process is root.
#[must_use]
pub fn am_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmp_names_look_like_rsyncs() {
        let p = tmp_name(Path::new("/d/file.txt"), 0);
        let n = p.file_name().unwrap().to_str().unwrap();
        assert!(
            n.starts_with(".file.txt.") && n.len() == ".file.txt.".len() + 6,
            "{n}"
        );
        let p = tmp_name(Path::new("/d/.hidden"), 1);
        assert!(
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(".hidden.")
        );
    }

    #[test]
    fn dest_mode_masks() {
        assert_eq!(dest_mode(0o104755, 0o022, false), 0o755);
        assert_eq!(dest_mode(0o100666, 0o027, false), 0o640);
        assert_eq!(dest_mode(0o040750, 0o022, true), 0o750);
    }
}
