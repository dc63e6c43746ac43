//! Our sort order and scanner against the real rsync binary (3.5.0):
//! a tree with tricky names is listed by rsync and by `scan_sources`, and
//! the orders must be identical at protocols 31 and 28.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use ferrsync::flist::entry::{FileEntry, XMIT_NO_CONTENT_DIR, XMIT_TOP_DIR};
use ferrsync::fs::scan::{ScanOptions, scan_sources, sort_scan};

fn build_tree(root: &Path) {
    let dirs: &[&[u8]] = &[
        b"a",
        b"a.b/x",
        b"a b",
        b"sub/deeper",
        b".hid_dir",
        b"\xe9t\xe9",
        b"a-/z",
        b"ab0/c",
    ];
    let files: &[&[u8]] = &[
        b"ab",
        b"a-/f",
        b"a0",
        b"a/x",
        b"a/.h",
        b"a/a.b",
        b"a.b/x/y",
        b".hidden",
        b"+plus",
        b"-dash",
        b"caf\xc3\xa9",
        b"\xff",
        b"\x80x",
        b"sub/deeper/leaf",
        b"sub/inner",
        b"sub/inner0",
        b"a b/c",
        b"A",
        b"Z",
        b"a.b.c",
        b"sub.txt",
        b"sub-",
        b"ab0/c/d",
    ];
    for d in dirs {
        std::fs::create_dir_all(root.join(std::ffi::OsStr::from_bytes(d))).unwrap();
    }
    for f in files {
        std::fs::write(root.join(std::ffi::OsStr::from_bytes(f)), b"x").unwrap();
    }
    std::os::unix::fs::symlink("ab", root.join("link")).unwrap();
}

fn display(e: &FileEntry) -> Vec<u8> {
    let mut n = e.name.clone();
    if e.is_dir() {
        n.push(b'/');
    }
    n
}

fn ours(src: &Path, protocol: u8) -> Vec<Vec<u8>> {
    let opts = ScanOptions {
        recursive: true,
        links: true,
        ..ScanOptions::default()
    };
    let mut r = scan_sources(&[PathBuf::from(format!("{}/", src.display()))], &opts).unwrap();
    assert_eq!(r.io_error, 0);
    sort_scan(&mut r, protocol);
    assert_eq!(r.entries.len(), r.paths.len());
    r.entries.iter().map(display).collect()
}

/// Names in rsync's itemize output (`-i`): one per line after the 11-char code.
fn rsync_itemized(src: &Path, dst: &Path, protocol: u8) -> Vec<Vec<u8>> {
    let out = Command::new("rsync")
        .args([
            "-r",
            "-l",
            "-n",
            "-i",
            "-8",
            "--no-inc-recursive",
            &format!("--protocol={protocol}"),
        ])
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", dst.display()))
        .output()
        .expect("rsync must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .split(|&b| b == b'\n')
        .filter(|l| l.len() > 12 && l.get(11) == Some(&b' '))
        .map(|l| {
            let name = &l[12..];
            let name = match name.windows(4).position(|w| w == b" -> ") {
                Some(i) => &name[..i],
                None => name,
            };
            name.to_vec()
        })
        .collect()
}

/// Names in `--list-only` output (the receiving side's sorted list).
fn rsync_listed(src: &Path, protocol: u8) -> Vec<Vec<u8>> {
    let out = Command::new("rsync")
        .args([
            "-r",
            "-l",
            "--list-only",
            "-8",
            "--no-inc-recursive",
            &format!("--protocol={protocol}"),
        ])
        .arg(format!("{}/", src.display()))
        .output()
        .expect("rsync must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            // perms, size, date, time, then the name.
            let mut rest = l;
            for _ in 0..4 {
                let i = rest.iter().position(|&b| b != b' ').unwrap();
                rest = &rest[i..];
                let j = rest.iter().position(|&b| b == b' ').unwrap();
                rest = &rest[j..];
            }
            let mut name = rest[1..].to_vec();
            if l[0] == b'l' {
                let i = name.windows(4).position(|w| w == b" -> ").unwrap();
                name.truncate(i);
            }
            if l[0] == b'd' {
                name.push(b'/');
            }
            name
        })
        .collect()
}

fn show(v: &[Vec<u8>]) -> Vec<String> {
    v.iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect()
}

#[test]
fn sort_order_matches_rsync() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_tree(&src);
    for protocol in [31u8, 30, 29] {
        let mut want = rsync_itemized(&src, &tmp.path().join(format!("dst{protocol}")), protocol);
        // Directories (also the root ".") are shown with a trailing '/'.
        let got = ours(&src, protocol);
        want.retain(|n| !n.is_empty());
        assert!(want.len() > 30, "{}", want.len());
        assert_eq!(
            show(&got),
            show(&want),
            "itemize order, protocol {protocol}"
        );
        assert_eq!(
            show(&got),
            show(&rsync_listed(&src, protocol)),
            "list-only order, protocol {protocol}"
        );
    }
    // Protocols 27/28 itemize only regular files, so compare the full list.
    for protocol in [28u8, 27] {
        assert_eq!(
            show(&ours(&src, protocol)),
            show(&rsync_listed(&src, protocol)),
            "protocol {protocol}"
        );
    }
}

#[test]
fn scan_naming_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_tree(&src);
    let scan = |arg: &str, recursive: bool, dirs: bool| {
        let opts = ScanOptions {
            recursive,
            dirs,
            links: true,
            ..ScanOptions::default()
        };
        scan_sources(&[tmp.path().join(arg)], &opts).unwrap()
    };
    // Without a trailing slash the top name is the last component.
    let r = scan("src", true, false);
    assert_eq!(r.entries[0].name, b"src");
    assert_eq!(r.entries[0].xflags, XMIT_TOP_DIR);
    assert!(r.entries.iter().all(|e| e.name.starts_with(b"src")));
    assert!(r.entries.iter().skip(1).all(|e| e.xflags == 0));
    // With it, the directory itself is ".".
    let r = scan("src/", true, false);
    assert_eq!(r.entries[0].name, b".");
    assert!(r.entries[0].is_top_dir());
    let link = r.entries.iter().position(|e| e.name == b"link").unwrap();
    assert_eq!(r.entries[link].link_target(), Some(&b"ab"[..]));
    assert_eq!(r.paths[link], tmp.path().join("src/").join("link"));
    // Non-recursive: a directory is skipped unless --dirs.
    assert!(scan("src", false, false).entries.is_empty());
    let r = scan("src/", false, true);
    assert!(r.entries.iter().all(|e| !e.name[1..].contains(&b'/')));
    assert!(
        r.entries
            .iter()
            .filter(|e| e.is_dir() && e.name != b".")
            .all(|e| e.xflags == XMIT_NO_CONTENT_DIR)
    );
    // A missing source sets io_error and the rest still goes.
    let opts = ScanOptions {
        recursive: true,
        ..ScanOptions::default()
    };
    let r = scan_sources(
        &[tmp.path().join("missing"), tmp.path().join("src/ab")],
        &opts,
    )
    .unwrap();
    assert_eq!(r.io_error, 1);
    assert_eq!(r.entries.len(), 1);
    // Without -l symlinks are skipped.
    let r = scan_sources(&[src.join("link")], &opts).unwrap();
    assert!(r.entries.is_empty());
}

#[test]
fn scan_hard_links() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("h");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("b"), b"1").unwrap();
    std::fs::hard_link(src.join("b"), src.join("a")).unwrap();
    std::fs::write(src.join("c"), b"2").unwrap();
    let opts = ScanOptions {
        recursive: true,
        hard_links: true,
        ..ScanOptions::default()
    };
    let mut r = scan_sources(&[PathBuf::from(format!("{}/", src.display()))], &opts).unwrap();
    let names: Vec<_> = r.entries.iter().map(|e| e.name.clone()).collect();
    assert_eq!(
        names,
        [b".".to_vec(), b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
    );
    assert!(r.entries[3].hardlink().is_none());
    ferrsync::flist::entry::link_hardlink_groups(&mut r.entries, 1);
    assert_eq!(r.entries[1].hardlink().unwrap().first, None);
    assert_eq!(r.entries[2].hardlink().unwrap().first, Some(2));
}
