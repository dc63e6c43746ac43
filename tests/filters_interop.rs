//! Filters end to end against real rsync 3.5.0, both directions and both
//! roles: per-directory merge files (`-F`), hide/show, protect/risk with
//! `--delete`, `--delete-excluded`, `-C`. Each run's destination must equal
//! what rsync alone produces from the same start.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::tree::{Compare, compare_trees};

fn ferrsync_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferrsync")
}

const SRC: &[(&str, &str)] = &[
    ("a.txt", "a"),
    ("b.o", "b"),
    ("x.bak", "x"),
    ("keep.me", "new keep"),
    (".rsync-filter", "- *.bak\n: .extra\n"),
    ("d/", ""),
    ("d/c.txt", "c"),
    ("d/skip.log", "s"),
    ("d/.rsync-filter", "- *.log\n- /top-only\n"),
    ("d/top-only", "t"),
    ("d/e/", ""),
    ("d/e/top-only", "t2"),
    ("d/e/deep.txt", "deep"),
    ("d/e/.extra", "- deep.txt\n"),
    ("CVS/", ""),
    ("CVS/Entries", "e"),
    ("lib/", ""),
    ("lib/x.so", "x"),
];

const DST: &[(&str, &str)] = &[
    ("old.txt", "o"),
    ("keep.old", "protected"),
    ("d/", ""),
    ("d/gone.txt", "g"),
    ("d/skip.log", "excluded, kept unless --delete-excluded"),
    ("z/", ""),
    ("z/keep.z", "protected inside a deleted dir"),
    ("z/f", "f"),
];

fn write_tree(root: &Path, spec: &[(&str, &str)]) {
    fs::create_dir_all(root).unwrap();
    for (p, c) in spec {
        let path = root.join(p.trim_end_matches('/'));
        if p.ends_with('/') {
            fs::create_dir_all(&path).unwrap();
        } else {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, c).unwrap();
            // Names only in the destination keep their time; make it fixed.
            let t = filetime::FileTime::from_unix_time(1_600_000_000, 0);
            filetime::set_file_mtime(&path, t).unwrap();
        }
    }
}

fn run(prog: &str, args: &[String]) {
    let out = Command::new(prog).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{prog} {args:?}: {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The rule sets of the end-to-end runs.
const SETS: &[&[&str]] = &[
    &["-F", "-f", "P keep.*", "--delete"],
    &["-F", "-F", "-f", "protect *.z", "-f", "H *.o", "--delete"],
    &[
        "-f",
        ":e .rsync-filter",
        "-f",
        "S a.txt",
        "-f",
        "H *.txt",
        "--delete",
    ],
    &[
        "-F",
        "--delete-excluded",
        "--exclude=*.o",
        "-f",
        "P keep.old",
    ],
    &["-C", "--delete", "-f", "R z/f", "-f", "P z/**"],
    &[
        "--include=*/",
        "--include=*.txt",
        "--exclude=*",
        "--delete",
        "-f",
        "P keep*",
    ],
];

#[test]
fn filters_both_directions_equal_rsync_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let shim = common::tree::write_shim(&base);
    let src = base.join("src");
    write_tree(&src, SRC);
    let cmp = Compare {
        dir_times: false,
        ..Compare::all(true)
    };
    let mut failures = Vec::new();
    for (k, set) in SETS.iter().enumerate() {
        let rules: Vec<String> = set.iter().map(|s| (*s).to_string()).collect();
        let fresh = |name: &str| {
            let d = base.join(format!("{name}{k}"));
            write_tree(&d, DST);
            d
        };
        let s = format!("{}/", src.display());
        let with = |extra: &[String]| -> Vec<String> {
            let mut v = vec!["-a".to_string(), "-e".into(), shim.display().to_string()];
            v.extend(rules.iter().cloned());
            v.extend(extra.iter().cloned());
            v
        };
        let expected = fresh("expected");
        run(
            "rsync",
            &with(&[s.clone(), format!("{}/", expected.display())]),
        );
        let ours = format!("--rsync-path={}", ferrsync_bin());
        let runs: [(&str, &str, Vec<String>); 4] = [
            (
                "pull",
                "ferrsync client <- rsync --server",
                vec!["--rsync-path=rsync".into(), format!("localhost:{s}")],
            ),
            (
                "push",
                "ferrsync client -> rsync --server",
                vec!["--rsync-path=rsync".into(), s.clone()],
            ),
            (
                "rpull",
                "rsync client <- ferrsync --server",
                vec![ours.clone(), format!("localhost:{s}")],
            ),
            (
                "rpush",
                "rsync client -> ferrsync --server",
                vec![ours.clone(), s.clone()],
            ),
        ];
        for (name, what, mut args) in runs {
            let dst = fresh(name);
            let d = format!("{}/", dst.display());
            args.push(if name.ends_with("push") {
                format!("localhost:{d}")
            } else {
                d
            });
            let prog = if name.starts_with('r') {
                "rsync"
            } else {
                ferrsync_bin()
            };
            run(prog, &with(&args));
            let diffs = compare_trees(&expected, &dst, cmp);
            if !diffs.is_empty() {
                failures.push(format!("{set:?} {what}: {diffs:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
