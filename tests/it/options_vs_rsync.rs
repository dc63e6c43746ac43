//! Each option set is run twice from the same starting destination: once
//! with real `rsync` alone, once with `ferrsync` (in-process local copy),
//! and the resulting trees and the itemized change lists must be equal.

use crate::common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::tree::{Compare, TreeSpec, build_tree, compare_trees, is_root, make_basis};

fn ferrsync_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferrsync")
}

fn set_mtime(p: &Path, sec: i64) {
    let t = filetime::FileTime::from_unix_time(sec, 0);
    filetime::set_symlink_file_times(p, t, t).unwrap();
}

/// Source and an older destination, plus files that only `-c` or `-I`
/// would transfer (same size and time, other content).
fn setup(root: &Path) {
    let src = root.join("src");
    build_tree(
        &src,
        TreeSpec {
            protocol: 32,
            big: false,
            root_items: true,
        },
    );
    fs::write(src.join("same-size.txt"), b"AAAA").unwrap();
    set_mtime(&src.join("same-size.txt"), 1_650_000_000);
    let t = filetime::FileTime::from_unix_time(1_700_000_100, 77);
    filetime::set_file_times(&src, t, t).unwrap();
    make_basis(&src, &root.join("dst"));
    let dst = root.join("dst");
    fs::write(dst.join("same-size.txt"), b"BBBB").unwrap();
    set_mtime(&dst.join("same-size.txt"), 1_650_000_000);
    // A permission-only and an owner-only difference.
    fs::set_permissions(
        dst.join("f1"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    if is_root() {
        std::os::unix::fs::lchown(dst.join("f0"), Some(1), Some(1)).unwrap();
    }
}

fn run(prog: &str, opts: &[&str], src: &Path, dst: &Path) -> Vec<String> {
    let out = Command::new(prog)
        .args(opts)
        .arg("-i")
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", dst.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{prog} {opts:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("created directory"))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
fn option_sets_match_rsync_alone() {
    let sets: &[&[&str]] = &[
        &["-a"],
        &["-a", "--delete"],
        &["-a", "--delete-before"],
        &["-a", "--delete-during"],
        &["-a", "--delete-delay"],
        &["-a", "--delete-after"],
        &["-a", "-c"],
        &["-a", "--size-only"],
        &["-a", "-I"],
        &["-a", "--numeric-ids"],
        &["-a", "-W"],
        &["-a", "--no-whole-file"],
        &["-a", "--checksum-choice=md5"],
        &["-rlt"],
        &["-rlptD"],
        &["-r"],
        &["-rl", "--delete"],
        &["-a", "-n", "--delete"],
        &["-a", "-O"],
    ];
    let mut failures = Vec::new();
    for opts in sets {
        let tmp = tempfile::tempdir().unwrap();
        setup(tmp.path());
        let src = tmp.path().join("src");
        let a = tmp.path().join("rsync-dst");
        let b = tmp.path().join("ferrsync-dst");
        for d in [&a, &b] {
            assert!(
                Command::new("cp")
                    .arg("-a")
                    .arg(tmp.path().join("dst"))
                    .arg(d)
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let theirs = run("rsync", opts, &src, &a);
        let ours = run(ferrsync_bin(), opts, &src, &b);
        if theirs != ours {
            failures.push(format!(
                "{opts:?}: itemize differs\n rsync:    {theirs:?}\n ferrsync: {ours:?}"
            ));
        }
        let has = |letter: char| {
            opts.iter()
                .any(|o| !o.starts_with("--") && (o.contains(letter) || o.contains('a')))
        };
        let times = has('t');
        let mut c = Compare::all(true);
        c.file_times = times;
        c.symlink_times = times;
        c.dir_times = times && !opts.contains(&"-O");
        let diffs = compare_trees(&a, &b, c);
        if !diffs.is_empty() {
            failures.push(format!("{opts:?}: trees differ\n{}", diffs.join("\n")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
