//! The field cases shared by the task tests (Module mode against a real
//! daemon, SSH mode against OpenSSH sshd): the start trees, the rsync
//! words for a task's fields, and the comparison.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use ferrsync::task::Task;

use crate::common::tree::{Compare, compare_trees, is_root};

pub fn set_mtime(p: &Path, secs: i64) {
    let t = filetime::FileTime::from_unix_time(secs, 0);
    filetime::set_symlink_file_times(p, t, t).unwrap();
}

/// The source tree: nested directories, files of several kinds and
/// modes, a symlink, fixed mtimes.
pub fn source_tree(root: &Path) {
    fs::create_dir_all(root.join("sub/deep")).unwrap();
    let files: &[(&str, &[u8], u32)] = &[
        ("a.txt", b"alpha\n", 0o644),
        ("b.tmp", b"scratch\n", 0o600),
        ("run.sh", b"#!/bin/sh\necho hi\n", 0o755),
        ("sub/c.dat", &[7u8; 70_000], 0o640),
        ("sub/deep/d.txt", b"deep text\n", 0o604),
        ("sub/changed.txt", b"new version of the file\n", 0o644),
    ];
    for (i, (name, data, mode)) in files.iter().enumerate() {
        let p = root.join(name);
        fs::write(&p, data).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
        set_mtime(&p, 1_600_000_000 + i64::try_from(i).unwrap() * 1000);
    }
    std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
    xattr::set(root.join("a.txt"), "user.note", b"kept by preserve_xattrs").unwrap();
    xattr::set(root.join("sub"), "user.long", &[b'L'; 100]).unwrap();
    fs::set_permissions(root.join("sub/deep"), fs::Permissions::from_mode(0o750)).unwrap();
    for (d, t) in [("sub/deep", 1_600_100_000), ("sub", 1_600_200_000)] {
        set_mtime(&root.join(d), t);
    }
}

/// What the destination holds before: an extraneous file and an old
/// version of one file (same size and mtime would hide it: not here).
pub fn dest_start(root: &Path, under: &str) {
    let base = root.join(under);
    fs::create_dir_all(base.join("sub")).unwrap();
    fs::write(base.join("extraneous.txt"), b"delete me?\n").unwrap();
    // Kept without --delete: the same time in both trees (written at
    // different instants, they could straddle a second).
    set_mtime(&base.join("extraneous.txt"), 1_500_000_000);
    fs::write(base.join("sub/changed.txt"), b"old\n").unwrap();
    set_mtime(&base.join("sub/changed.txt"), 1_500_000_000);
}

/// The rsync command-line words for a task's fields (the mapping the
/// task layer documents, restated here on its own).
pub fn rsync_words(t: &Task) -> Vec<String> {
    let mut w = Vec::new();
    for (on, word) in [
        (t.recursive, "-r"),
        (t.times, "-t"),
        (t.compress, "-z"),
        (t.archive, "-a"),
        (t.delete, "--delete-delay"),
        (t.quiet, "-q"),
        (t.preserve_permissions, "-p"),
        (t.delay_updates, "--delay-updates"),
        (t.preserve_xattrs, "-X"),
    ] {
        if on {
            w.push(word.to_string());
        }
    }
    w.extend(t.extra.iter().map(|e| e.replace('\'', "")));
    w
}

pub struct Case {
    pub name: &'static str,
    pub change: fn(&mut Task),
    /// Whether mtimes are comparable (not when times are not kept).
    pub times: bool,
}

pub const CASES: &[Case] = &[
    Case {
        name: "defaults",
        change: |_| {},
        times: true,
    },
    Case {
        name: "recursive off",
        change: |t| t.recursive = false,
        times: true,
    },
    Case {
        name: "times off",
        change: |t| t.times = false,
        times: false,
    },
    Case {
        name: "compress off",
        change: |t| t.compress = false,
        times: true,
    },
    Case {
        name: "archive",
        change: |t| t.archive = true,
        times: true,
    },
    Case {
        name: "delete",
        change: |t| t.delete = true,
        times: true,
    },
    Case {
        name: "quiet",
        change: |t| t.quiet = true,
        times: true,
    },
    Case {
        name: "preserve_permissions",
        change: |t| t.preserve_permissions = true,
        times: true,
    },
    Case {
        name: "preserve_xattrs",
        change: |t| t.preserve_xattrs = true,
        times: true,
    },
    Case {
        name: "delay_updates off",
        change: |t| t.delay_updates = false,
        times: true,
    },
    Case {
        name: "extra",
        change: |t| t.extra = vec!["--exclude='*.tmp'".into(), "--exclude=deep/".into()],
        times: true,
    },
    Case {
        name: "description, enabled, schedule",
        change: |t| {
            t.description = "nightly".into();
            t.enabled = false;
            t.schedule = "@daily".into();
        },
        times: true,
    },
    Case {
        name: "user (this process's)",
        change: |t| t.user = "root".into(),
        times: true,
    },
];

pub fn compare(a: &Path, b: &Path, times: bool) -> Vec<String> {
    let c = Compare {
        nsec: false,
        owners: is_root(),
        symlink_times: false,
        file_times: times,
        dir_times: false,
    };
    let mut d = compare_trees(a, b, c);
    // Extended attributes of the regular files and directories.
    let out = Command::new("find")
        .arg(a)
        .args(["-type", "f", "-o", "-type", "d"])
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let pa = Path::new(line);
        let rel = pa.strip_prefix(a).unwrap();
        let pb = b.join(rel);
        let get = |p: &Path| -> Vec<(String, Vec<u8>)> {
            let mut v: Vec<(String, Vec<u8>)> = xattr::list(p)
                .map(|names| {
                    names
                        .filter_map(|n| {
                            let n = n.to_string_lossy().into_owned();
                            xattr::get(p, &n).ok().flatten().map(|val| (n, val))
                        })
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        };
        if pb.exists() && get(pa) != get(&pb) {
            d.push(format!("{}: xattrs differ", rel.display()));
        }
    }
    d
}
