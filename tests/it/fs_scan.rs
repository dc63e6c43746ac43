//! `scan_sources` reads every entry relative to its open directory: each
//! entry's fields must equal a plain `lstat` of its path, names and paths
//! must match, symlink targets are read, and the list is sorted.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ferrsync::flist::sort::is_sorted_file_list;
use ferrsync::fs::scan::{ScanOptions, scan_sources, sort_scan};

fn tree(root: &Path) {
    for d in ["a/b/c", "a/d", "e", "e/.f"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for (i, f) in ["x", "a/y", "a/b/z", "a/b/c/w", "e/.f/v", "a.b"]
        .iter()
        .enumerate()
    {
        std::fs::write(root.join(f), vec![b'q'; i * 7]).unwrap();
    }
    std::os::unix::fs::symlink("../x", root.join("a/lnk")).unwrap();
    std::os::unix::fs::symlink("b/z", root.join("a/lnk2")).unwrap();
}

#[test]
fn entries_match_lstat_of_their_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("src");
    tree(&root);
    let opts = ScanOptions {
        recursive: true,
        links: true,
        hard_links: true,
        ..ScanOptions::default()
    };
    for (arg, top) in [
        (format!("{}/", root.display()), "."),
        (root.display().to_string(), "src"),
    ] {
        let r = scan_sources(&[PathBuf::from(&arg)], &opts).unwrap();
        assert_eq!(r.io_error, 0);
        assert_eq!(r.entries.len(), r.paths.len());
        assert_eq!(r.entries.len(), 15);
        assert!(is_sorted_file_list(&r.entries, 32));
        assert_eq!(r.entries[0].name, top.as_bytes());
        let base = if top == "." {
            root.clone()
        } else {
            tmp.path().to_path_buf()
        };
        for (e, p) in r.entries.iter().zip(&r.paths) {
            let m = std::fs::symlink_metadata(p).unwrap();
            if e.name != b"." {
                let want = base.join(std::str::from_utf8(&e.name).unwrap());
                assert_eq!(p.canonicalize().ok(), want.canonicalize().ok(), "{p:?}");
                assert_eq!(std::fs::symlink_metadata(&want).unwrap().ino(), m.ino());
            }
            assert_eq!(e.mode, m.mode(), "{p:?}");
            assert_eq!(e.mtime, m.mtime());
            assert_eq!(i64::from(e.mtime_nsec), m.mtime_nsec());
            assert_eq!(e.uid, m.uid());
            assert_eq!(e.gid, m.gid());
            if m.file_type().is_symlink() {
                let t = std::fs::read_link(p).unwrap();
                assert_eq!(e.link_target(), Some(t.as_os_str().as_encoded_bytes()));
                assert_eq!(e.size, t.as_os_str().len() as u64);
            } else {
                assert_eq!(e.link_target(), None);
                assert_eq!(e.size, m.size());
            }
        }
        let mut again = r.clone();
        sort_scan(&mut again, 28);
        assert!(is_sorted_file_list(&again.entries, 28));
        for (e, p) in again.entries.iter().zip(&again.paths) {
            let i = r.entries.iter().position(|x| x == e).unwrap();
            assert_eq!(&r.paths[i], p);
        }
        sort_scan(&mut again, 32);
        assert_eq!(again.entries, r.entries);
        assert_eq!(again.paths, r.paths);
    }
}

#[test]
fn missing_source_sets_io_error() {
    let tmp = tempfile::tempdir().unwrap();
    let r = scan_sources(&[tmp.path().join("nope")], &ScanOptions::default()).unwrap();
    assert_eq!(r.io_error & 1, 1);
    assert!(r.entries.is_empty());
}
