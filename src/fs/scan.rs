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
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::flist::entry::{FileEntry, FileKind, HardLink, XMIT_NO_CONTENT_DIR, XMIT_TOP_DIR};
use crate::flist::sort::f_name_cmp;

/// io_error bit for a general read failure (upstream `IOERR_GENERAL`).
pub const IOERR_GENERAL: i32 = 1;
/// io_error bit for a file that vanished (upstream `IOERR_VANISHED`).
pub const IOERR_VANISHED: i32 = 2;

/// Computes a `--checksum` sum for a regular file.
pub type ChecksumFn = fn(&Path) -> io::Result<Vec<u8>>;

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
}

/// Scans `sources` into one list sorted with the protocol >= 29 order; for
/// an older protocol call [`sort_scan`] afterwards.
///
/// # Errors
/// Only when `/etc/passwd` or `/etc/group` exist but cannot be read; a
/// source or file that cannot be read sets `io_error` instead.
pub fn scan_sources(sources: &[PathBuf], opts: &ScanOptions) -> io::Result<ScanResult> {
    let mut s = Scanner {
        opts: *opts,
        users: read_id_names(Path::new("/etc/passwd"))?,
        groups: read_id_names(Path::new("/etc/group"))?,
        out: ScanResult::default(),
    };
    for src in sources {
        s.source(src);
    }
    sort_scan(&mut s.out, 32);
    Ok(s.out)
}

/// Re-sorts a scan (entries and paths together, stably) for `protocol`.
pub fn sort_scan(result: &mut ScanResult, protocol: u8) {
    let mut pairs: Vec<(FileEntry, PathBuf)> = std::mem::take(&mut result.entries)
        .into_iter()
        .zip(std::mem::take(&mut result.paths))
        .collect();
    pairs.sort_by(|a, b| f_name_cmp(&a.0, &b.0, protocol));
    (result.entries, result.paths) = pairs.into_iter().unzip();
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

struct Scanner {
    opts: ScanOptions,
    users: HashMap<u32, Vec<u8>>,
    groups: HashMap<u32, Vec<u8>>,
    out: ScanResult,
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
    fn source(&mut self, src: &Path) {
        let raw = src.as_os_str().as_bytes();
        let contents_only = raw.ends_with(b"/") || raw.ends_with(b"/.") || raw == b".";
        let meta = match fs::symlink_metadata(src) {
            Ok(m) => m,
            Err(_) => {
                self.out.io_error |= IOERR_GENERAL;
                return;
            }
        };
        if !meta.is_dir() {
            let name = src
                .file_name()
                .map_or_else(|| raw.to_vec(), |n| n.as_bytes().to_vec());
            self.add(name, src.to_path_buf(), &meta, 0);
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
        let flags = if content {
            XMIT_TOP_DIR
        } else {
            XMIT_NO_CONTENT_DIR
        };
        self.add(name.clone(), src.to_path_buf(), &meta, flags);
        if content {
            self.directory(src, &name, meta.dev(), self.opts.recursive);
        }
    }

    fn directory(&mut self, dir: &Path, prefix: &[u8], root_dev: u64, recurse: bool) {
        let rd = match fs::read_dir(dir) {
            Ok(r) => r,
            Err(e) => {
                self.out.io_error |= if e.kind() == io::ErrorKind::NotFound {
                    IOERR_VANISHED
                } else {
                    IOERR_GENERAL
                };
                return;
            }
        };
        let mut subdirs = Vec::new();
        for ent in rd {
            let ent = match ent {
                Ok(e) => e,
                Err(_) => {
                    self.out.io_error |= IOERR_GENERAL;
                    continue;
                }
            };
            let path = ent.path();
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    self.out.io_error |= if e.kind() == io::ErrorKind::NotFound {
                        IOERR_VANISHED
                    } else {
                        IOERR_GENERAL
                    };
                    continue;
                }
            };
            let name = join(prefix, ent.file_name().as_bytes());
            if meta.is_dir() {
                let other_fs = self.opts.one_file_system && meta.dev() != root_dev;
                let descend = recurse && !other_fs;
                self.add(
                    name.clone(),
                    path.clone(),
                    &meta,
                    if descend { 0 } else { XMIT_NO_CONTENT_DIR },
                );
                if descend {
                    subdirs.push((path, name));
                }
            } else {
                self.add(name, path, &meta, 0);
            }
        }
        for (path, name) in subdirs {
            self.directory(&path, &name, root_dev, true);
        }
    }

    fn add(&mut self, name: Vec<u8>, path: PathBuf, meta: &Metadata, xflags: u32) {
        let Some(kind) = FileKind::from_mode(meta.mode()) else {
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
            mode: meta.mode(),
            size: match kind {
                FileKind::Regular | FileKind::Dir => meta.size(),
                _ => 0,
            },
            mtime: meta.mtime(),
            mtime_nsec: u32::try_from(meta.mtime_nsec()).unwrap_or(0),
            atime: meta.atime(),
            uid: meta.uid(),
            gid: meta.gid(),
            user_name: self.users.get(&meta.uid()).cloned(),
            group_name: self.groups.get(&meta.gid()).cloned(),
            xflags: if kind == FileKind::Dir { xflags } else { 0 },
            ..FileEntry::default()
        };
        if kind.is_device() {
            (e.rdev_major, e.rdev_minor) = split_dev(meta.rdev());
        }
        if kind == FileKind::Symlink {
            match fs::read_link(&path) {
                Ok(t) => {
                    let t = t.as_os_str().as_bytes().to_vec();
                    e.size = t.len() as u64;
                    e.link_target = Some(t);
                }
                Err(err) => {
                    self.out.io_error |= if err.kind() == io::ErrorKind::NotFound {
                        IOERR_VANISHED
                    } else {
                        IOERR_GENERAL
                    };
                    return;
                }
            }
        }
        if self.opts.hard_links && kind != FileKind::Dir && meta.nlink() > 1 {
            e.hardlink = Some(HardLink {
                first: None,
                dev: meta.dev(),
                ino: meta.ino(),
            });
        }
        if kind == FileKind::Regular {
            if let Some(sum) = self.opts.checksum {
                match sum(&path) {
                    Ok(s) => e.checksum = Some(s),
                    Err(_) => self.out.io_error |= IOERR_GENERAL,
                }
            }
        }
        self.out.entries.push(e);
        self.out.paths.push(path);
    }
}
