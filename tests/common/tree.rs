//! Builds the interop test trees and compares two trees precisely.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What to put into a tree.
#[derive(Debug, Clone, Copy)]
pub struct TreeSpec {
    /// Protocol the tree must survive: below 30 times are 32-bit unsigned
    /// and there are no nanoseconds below 31.
    pub protocol: u8,
    /// Add the 50 MiB file.
    pub big: bool,
    /// Add devices and foreign owners (needs root).
    pub root_items: bool,
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Deterministic pseudo-random bytes.
pub fn prng_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn set_mtime(p: &Path, sec: i64, nsec: u32) {
    let t = filetime::FileTime::from_unix_time(sec, nsec);
    filetime::set_symlink_file_times(p, t, t).unwrap();
}

fn write(p: &Path, data: &[u8], mode: u32, sec: i64, nsec: u32) {
    fs::write(p, data).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    set_mtime(p, sec, nsec);
}

/// Builds the source tree described in the engine issue under `root`.
pub fn build_tree(root: &Path, spec: TreeSpec) {
    fs::create_dir_all(root).unwrap();
    let ns = |n: u32| if spec.protocol >= 31 { n } else { 0 };
    let t0 = 1_700_000_000i64;
    for (i, size) in [0usize, 1, 700, 65536, (1 << 20) + 3].iter().enumerate() {
        write(
            &root.join(format!("f{size}")),
            &prng_bytes(i as u64 + 1, *size),
            0o644,
            t0 + i as i64,
            ns(123_456_789),
        );
    }
    if spec.big {
        write(
            &root.join("big50m"),
            &prng_bytes(99, 50 << 20),
            0o644,
            t0,
            0,
        );
    }
    // Text that a delta can work on.
    let mut text = Vec::new();
    for i in 0..40_000 {
        text.extend_from_slice(
            format!("line {i:06} the quick brown fox jumps over the lazy dog\n").as_bytes(),
        );
    }
    write(&root.join("delta.txt"), &text, 0o640, t0 + 50, ns(5));
    // Nested and empty directories.
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::create_dir_all(root.join("a/empty2")).unwrap();
    write(&root.join("a/b/c/deep.txt"), b"deep\n", 0o600, t0 + 7, 0);
    write(
        &root.join("a/x.bin"),
        &prng_bytes(7, 3000),
        0o755,
        t0 + 8,
        ns(1),
    );
    // Symlinks: relative, absolute, dangling.
    symlink("f700", root.join("rel-link")).unwrap();
    symlink("/etc/hostname", root.join("abs-link")).unwrap();
    symlink("does/not/exist", root.join("dangling")).unwrap();
    symlink("../f1", root.join("a/up-link")).unwrap();
    // A fifo.
    let st = Command::new("mkfifo")
        .arg(root.join("fifo"))
        .status()
        .unwrap();
    assert!(st.success());
    // Modes.
    write(&root.join("setuid"), b"su", 0o4755, t0, 0);
    write(&root.join("setgid"), b"sg", 0o2750, t0, 0);
    fs::create_dir(root.join("sticky")).unwrap();
    fs::set_permissions(root.join("sticky"), fs::Permissions::from_mode(0o1777)).unwrap();
    // Times: before 1970 and after 2038 (only where the protocol has room).
    if spec.protocol >= 30 {
        write(
            &root.join("old1960"),
            b"old",
            0o644,
            -300_000_000,
            ns(999_999_999),
        );
    }
    write(
        &root.join("future2040"),
        b"future",
        0o644,
        2_208_988_800,
        ns(42),
    );
    // Names.
    write(&root.join("with space"), b"sp", 0o644, t0, 0);
    write(&root.join("new\nline"), b"nl", 0o644, t0, 0);
    write(&root.join("ütf8-名前"), b"utf", 0o644, t0, 0);
    write(
        &root.join(OsStr::from_bytes(b"bad-\xff\xfe-utf8")),
        b"bad",
        0o644,
        t0,
        0,
    );
    if spec.root_items && is_root() {
        let st = Command::new("mknod")
            .arg(root.join("chardev"))
            .args(["c", "1", "3"])
            .status()
            .unwrap();
        assert!(st.success());
        let st = Command::new("mknod")
            .arg(root.join("blockdev"))
            .args(["b", "7", "300"])
            .status()
            .unwrap();
        assert!(st.success());
        write(&root.join("owned-nobody"), b"nobody", 0o644, t0, 0);
        std::os::unix::fs::lchown(root.join("owned-nobody"), Some(65534), Some(65534)).unwrap();
        write(&root.join("owned-numeric"), b"numeric", 0o644, t0, 0);
        std::os::unix::fs::lchown(root.join("owned-numeric"), Some(12345), Some(23456)).unwrap();
    }
    // Fixed times for special files too (rsync skips setting a time that
    // is in the same second as the node it just made).
    for sp in ["fifo", "chardev", "blockdev"] {
        if root.join(sp).symlink_metadata().is_ok() {
            set_mtime(&root.join(sp), t0 + 5, ns(5));
        }
    }
    // Directory times last (creating entries changed them).
    for d in ["a/b/c", "a/b", "a/empty2", "a", "empty", "sticky", "."] {
        set_mtime(&root.join(d), t0 + 100, ns(77));
    }
    for l in ["rel-link", "abs-link", "dangling", "a/up-link"] {
        set_mtime(&root.join(l), t0 + 3, 0);
    }
    set_mtime(&root.join("a"), t0 + 100, ns(77));
    set_mtime(root, t0 + 100, ns(77));
}

/// Makes an older version of `src` in `dst`: some files changed by about
/// 1%, some missing, plus extraneous items that --delete must remove.
pub fn make_basis(src: &Path, dst: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(st.success());
    // delta.txt: change a few lines (about 1%).
    let p = dst.join("delta.txt");
    let mut data = fs::read(&p).unwrap();
    for k in 0..20 {
        let off = k * (data.len() / 20) + 100;
        data[off..off + 30].copy_from_slice(b"CHANGED CHANGED CHANGED CHANGE");
    }
    data.splice(
        5000..5000,
        b"inserted text that shifts everything after it"
            .iter()
            .copied(),
    );
    fs::write(&p, &data).unwrap();
    set_mtime(&p, 1_600_000_000, 0);
    fs::remove_file(dst.join("f700")).unwrap();
    fs::write(dst.join("f65536"), prng_bytes(1234, 60000)).unwrap();
    fs::write(dst.join("extra-file"), b"extra").unwrap();
    fs::create_dir_all(dst.join("extra-dir/sub")).unwrap();
    fs::write(dst.join("extra-dir/sub/x"), b"x").unwrap();
    symlink("nowhere", dst.join("a/extra-link")).unwrap();
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    out.push(rel.to_path_buf());
    let p = root.join(rel);
    let m = fs::symlink_metadata(&p).unwrap();
    if m.is_dir() {
        let mut names: Vec<_> = fs::read_dir(&p)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            walk(root, &rel.join(n), out);
        }
    }
}

/// Options for [`compare_trees`].
#[derive(Debug, Clone, Copy)]
pub struct Compare {
    /// Compare mtime nanoseconds.
    pub nsec: bool,
    /// Compare owners.
    pub owners: bool,
    /// Compare times of symlinks.
    pub symlink_times: bool,
    /// Compare times of regular files and special files.
    pub file_times: bool,
    /// Compare times of directories.
    pub dir_times: bool,
}

impl Compare {
    /// Everything, with nanoseconds when `nsec`.
    pub fn all(nsec: bool) -> Self {
        Compare {
            nsec,
            owners: is_root(),
            symlink_times: true,
            file_times: true,
            dir_times: true,
        }
    }
}

/// Lists every difference between two trees, empty when they are equal.
pub fn compare_trees(a: &Path, b: &Path, c: Compare) -> Vec<String> {
    let mut la = Vec::new();
    let mut lb = Vec::new();
    walk(a, Path::new(""), &mut la);
    walk(b, Path::new(""), &mut lb);
    let mut diffs = Vec::new();
    // Sets: trees of tens of thousands of entries must not compare in
    // quadratic time.
    let sa: std::collections::HashSet<_> = la.iter().cloned().collect();
    let sb: std::collections::HashSet<_> = lb.iter().cloned().collect();
    for p in la.iter().filter(|p| !sb.contains(*p)) {
        diffs.push(format!("only in {}: {:?}", a.display(), p));
    }
    for p in lb.iter().filter(|p| !sa.contains(*p)) {
        diffs.push(format!("only in {}: {:?}", b.display(), p));
    }
    for rel in la.iter().filter(|p| sb.contains(*p)) {
        let (pa, pb) = (a.join(rel), b.join(rel));
        let (ma, mb) = (
            fs::symlink_metadata(&pa).unwrap(),
            fs::symlink_metadata(&pb).unwrap(),
        );
        let name = format!("{rel:?}");
        if ma.mode() != mb.mode() {
            diffs.push(format!("{name}: mode {:o} vs {:o}", ma.mode(), mb.mode()));
            continue;
        }
        let is_link = ma.file_type().is_symlink();
        let want_time = if is_link {
            c.symlink_times
        } else if ma.is_dir() {
            c.dir_times
        } else {
            c.file_times
        };
        if want_time {
            let (ta, tb) = ((ma.mtime(), ma.mtime_nsec()), (mb.mtime(), mb.mtime_nsec()));
            if ta.0 != tb.0 || (c.nsec && ta.1 != tb.1) {
                diffs.push(format!("{name}: mtime {ta:?} vs {tb:?}"));
            }
        }
        if c.owners && (ma.uid(), ma.gid()) != (mb.uid(), mb.gid()) {
            diffs.push(format!(
                "{name}: owner {}:{} vs {}:{}",
                ma.uid(),
                ma.gid(),
                mb.uid(),
                mb.gid()
            ));
        }
        if ma.file_type().is_file() {
            if ma.len() != mb.len() {
                diffs.push(format!("{name}: size {} vs {}", ma.len(), mb.len()));
            } else if fs::read(&pa).unwrap() != fs::read(&pb).unwrap() {
                diffs.push(format!("{name}: content differs"));
            }
        } else if is_link {
            let (ta, tb) = (fs::read_link(&pa).unwrap(), fs::read_link(&pb).unwrap());
            if ta != tb {
                diffs.push(format!("{name}: link {ta:?} vs {tb:?}"));
            }
        } else if (ma.file_type().is_char_device_like()) && ma.rdev() != mb.rdev() {
            diffs.push(format!("{name}: rdev {} vs {}", ma.rdev(), mb.rdev()));
        }
    }
    diffs
}

trait DevLike {
    fn is_char_device_like(&self) -> bool;
}

impl DevLike for fs::FileType {
    fn is_char_device_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_char_device() || self.is_block_device()
    }
}

/// Temporary files (rsync's `.NAME.XXXXXX`) left anywhere in the tree.
pub fn leftover_temps(root: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    walk(root, Path::new(""), &mut all);
    all.into_iter()
        .filter(|p| {
            let n = p
                .file_name()
                .map(|n| n.as_bytes().to_vec())
                .unwrap_or_default();
            n.starts_with(b".") && n.len() > 8 && n[n.len() - 7] == b'.'
        })
        .collect()
}

/// Contents of every regular file in a tree, by relative path.
pub fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut all = Vec::new();
    walk(root, Path::new(""), &mut all);
    all.into_iter()
        .filter(|p| {
            fs::symlink_metadata(root.join(p))
                .map(|m| m.is_file())
                .unwrap_or(false)
        })
        .map(|p| {
            let d = fs::read(root.join(&p)).unwrap();
            (p, d)
        })
        .collect()
}

/// Writes `shim.sh` into `dir`: a remote shell for rsync's `-e` that drops
/// the host name and runs the command locally.
pub fn write_shim(dir: &Path) -> PathBuf {
    let shim = dir.join("shim.sh");
    fs::write(&shim, "#!/bin/sh\nshift\nexec \"$@\"\n").unwrap();
    fs::set_permissions(&shim, fs::Permissions::from_mode(0o755)).unwrap();
    shim
}

/// Watches `dir` until a temporary file of `name` holds more than `min`
/// bytes, then runs `action`; the thread's result is false when that never
/// happened (the transfer ended first) or the action failed.
pub fn when_partial(
    dir: PathBuf,
    name: &str,
    min: u64,
    action: impl FnOnce() -> bool + Send + 'static,
) -> std::thread::JoinHandle<bool> {
    let prefix = format!(".{name}.");
    std::thread::spawn(move || {
        for _ in 0..4000 {
            let partial = fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).any(|e| {
                e.file_name().to_string_lossy().starts_with(&prefix)
                    && e.metadata().map(|m| m.len() > min).unwrap_or(false)
            });
            if partial {
                return action();
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        false
    })
}
