//! Filters end to end against real rsync 3.5.0, both directions and both
//! roles: per-directory merge files (`-F`), hide/show, protect/risk with
//! `--delete`, `--delete-excluded`, `-C`. Each run's destination must equal
//! what rsync alone produces from the same start.

use crate::common;

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

/// (program, arguments) of one way of running `flags` from `from` into
/// `dst`: `rsync` alone, our `local` copy, our `pull`/`push` against
/// `rsync --server`, real rsync's `rpull`/`rpush` against `ferrsync
/// --server` (through the `shim` remote shell).
fn way_args(
    how: &str,
    flags: &[String],
    shim: &Path,
    from: &str,
    dst: &Path,
) -> (&'static str, Vec<String>) {
    let ours = ferrsync_bin();
    let d = format!("{}/", dst.display());
    let mut a = flags.to_vec();
    let (prog, server) = match how {
        "rsync" => ("rsync", None),
        "local" => (ours, None),
        "pull" | "push" => (ours, Some("rsync")),
        _ => ("rsync", Some(ours)),
    };
    if let Some(server) = server {
        a.extend([
            "-e".into(),
            shim.display().to_string(),
            format!("--rsync-path={server}"),
        ]);
    }
    match how {
        "pull" | "rpull" => a.extend([format!("localhost:{from}"), d]),
        "push" | "rpush" => a.extend([from.to_string(), format!("localhost:{d}")]),
        _ => a.extend([from.to_string(), d]),
    }
    (prog, a)
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

/// A daemon module's own rules are anchored at the module root even when
/// the transfer starts below it: `- /sub/secret` hides `sub/secret` from
/// `rsync://host/mod/sub/` (and not `sub/deep/secret`), for real rsync's
/// daemon and ours alike, pulling with real rsync's client and ours, and
/// with `-R`.
#[test]
fn daemon_module_rules_anchor_at_the_module_root() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let module = base.join("mod");
    write_tree(
        &module,
        &[
            ("secret", "s0"),
            ("sub/", ""),
            ("sub/secret", "s1"),
            ("sub/keep", "k"),
            ("sub/deep/", ""),
            ("sub/deep/secret", "s2"),
        ],
    );
    let conf = |dir: &Path| {
        let c = format!(
            "use chroot = false\nmunge symlinks = false\n[m]\npath = {}\nread only = true\nexclude = /sub/secret\n",
            module.display()
        );
        let cfg = dir.join("rsyncd.conf");
        fs::write(&cfg, c).unwrap();
        cfg
    };
    let real_dir = base.join("real");
    let ours_dir = base.join("ours");
    fs::create_dir_all(&real_dir).unwrap();
    fs::create_dir_all(&ours_dir).unwrap();
    let real = common::daemon::start("rsync", &conf(&real_dir), "127.0.0.1");
    let ours = common::daemon::start(ferrsync_bin(), &conf(&ours_dir), "127.0.0.1");
    let cmp = Compare {
        dir_times: false,
        ..Compare::all(true)
    };
    for (k, (args, path)) in [
        (vec!["-a"], "sub/"),
        (vec!["-a"], "sub"),
        (vec!["-a", "-R"], "sub"),
        (vec!["-a"], ""),
    ]
    .iter()
    .enumerate()
    {
        let reference = base.join(format!("ref{k}"));
        let url = |port: u16| format!("rsync://127.0.0.1:{port}/m/{path}");
        let mut ra: Vec<String> = args.iter().map(ToString::to_string).collect();
        ra.push(url(real.port));
        ra.push(format!("{}/", reference.display()));
        run("rsync", &ra);
        for (who, client, port) in [
            ("rsync->ours", "rsync", ours.port),
            ("ours->real", ferrsync_bin(), real.port),
            ("ours->ours", ferrsync_bin(), ours.port),
        ] {
            let dst = base.join(format!("d{k}-{}", who.replace("->", "-")));
            let mut a: Vec<String> = args.iter().map(ToString::to_string).collect();
            a.push(url(port));
            a.push(format!("{}/", dst.display()));
            run(client, &a);
            let diffs = compare_trees(&reference, &dst, cmp);
            assert!(diffs.is_empty(), "{who} {args:?} {path}: {diffs:?}");
        }
    }
}

/// `-F` reads the `.rsync-filter` files of the directories above the
/// transfer's first directory too (rsync's parent-dir scan for a
/// `dir-merge /.rsync-filter`), with their anchored rules anchored where
/// each file is; compared with rsync's own itemized run and tree.
#[test]
fn per_dir_filters_of_parent_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let top = base.join("top");
    write_tree(
        &top,
        &[
            (".rsync-filter", "- secret\n- /anch\n- /sub/x2\n"),
            ("sub/", ""),
            ("sub/secret", "s"),
            ("sub/keep", "k"),
            ("sub/anch", "a"),
            ("sub/x2", "x"),
            ("sub/inner/", ""),
            ("sub/inner/secret", "s"),
            ("sub/inner/anch", "a"),
        ],
    );
    let shim = common::tree::write_shim(&base);
    let cmp = Compare {
        dir_times: false,
        ..Compare::all(true)
    };
    let sources = [
        vec![format!("{}/sub/", top.display())],
        vec![format!("{}/sub", top.display())],
        vec!["-R".to_string(), format!("{}/./sub", top.display())],
        vec!["-R".to_string(), format!("{}/./top/sub", base.display())],
    ];
    for (k, src) in sources.iter().enumerate() {
        let reference = base.join(format!("ref{k}"));
        let mut ra = vec!["-a".to_string(), "-F".to_string()];
        ra.extend(src.iter().cloned());
        ra.push(format!("{}/", reference.display()));
        run("rsync", &ra);
        for how in ["local", "push", "pull"] {
            let dst = base.join(format!("d{k}-{how}"));
            let mut a = vec!["-a".to_string(), "-F".to_string()];
            let mut srcs = src.clone();
            if how == "pull" {
                for s in srcs.iter_mut().filter(|s| s.starts_with('/')) {
                    *s = format!("localhost:{s}");
                }
            }
            a.extend(srcs);
            if how == "local" {
                a.push(format!("{}/", dst.display()));
            } else {
                a.push("-e".into());
                a.push(shim.display().to_string());
                a.push("--rsync-path=rsync".into());
                if how == "push" {
                    a.push(format!("localhost:{}/", dst.display()));
                } else {
                    a.push(format!("{}/", dst.display()));
                }
            }
            run(ferrsync_bin(), &a);
            let diffs = compare_trees(&reference, &dst, cmp);
            assert!(diffs.is_empty(), "{how} {src:?}: {diffs:?}");
        }
    }
}

/// `-F --delete`: the receiving side reads the destination's own
/// `.rsync-filter` files (each once, when its directory is entered, so a
/// merge file deleted as extraneous still protects what it names below)
/// and, as rsync's parent-dir scan does for `dir-merge /.rsync-filter`,
/// those of every directory above the destination. Protect (`P`) and
/// exclude (`-`) rules, anchored rules anchored where their file is; the
/// transfer rooted at the top of the destination and below it, our
/// receiver (our client pulling, real rsync pushing to `ferrsync
/// --server`, the local copy) and our sender, all equal to rsync alone.
#[test]
fn receiver_reads_destination_merge_files_and_their_parents() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let shim = common::tree::write_shim(&base);
    let src = base.join("src");
    write_tree(
        &src,
        &[("b", "b"), ("sub/", ""), ("sub/a", "a"), ("sub/deep/", "")],
    );
    // The destination `dst` inside `top`, whose filter file is a parent's.
    let top_spec: &[(&str, &str)] = &[
        (".rsync-filter", "P keep*\n- /dst/anch\n- /dst/sub/anch2\n"),
        ("dst/", ""),
        ("dst/.rsync-filter", "- prot2\nP /old-top\n"),
        ("dst/keepr", "k"),
        ("dst/anch", "a"),
        ("dst/old", "o"),
        ("dst/old-top", "o"),
        ("dst/sub/", ""),
        ("dst/sub/.rsync-filter", "P /local\n"),
        ("dst/sub/keep1", "k"),
        ("dst/sub/prot2", "p"),
        ("dst/sub/anch", "not anchored here"),
        ("dst/sub/anch2", "a2"),
        ("dst/sub/local", "l"),
        ("dst/sub/old", "o"),
        ("dst/sub/old-top", "o"),
        ("dst/sub/deep/", ""),
        ("dst/sub/deep/local", "not anchored here"),
        ("dst/sub/deep/x", "x"),
    ];
    let cmp = Compare {
        dir_times: false,
        ..Compare::all(true)
    };
    let s = src.display().to_string();
    // (source word, destination below `top`)
    let cases = [
        (format!("{s}/"), "dst/"),
        (format!("{s}/sub"), "dst/"),
        (format!("{s}/sub/"), "dst/sub/"),
    ];
    let ours = ferrsync_bin();
    let mut failures = Vec::new();
    for (k, (from, to)) in cases.iter().enumerate() {
        let fresh = |name: &str| {
            let t = base.join(format!("{name}{k}"));
            write_tree(&t, top_spec);
            t
        };
        let reference = fresh("ref");
        let flags = ["-a", "-F", "--delete"].map(String::from);
        let mut ra = flags.to_vec();
        ra.push(from.clone());
        ra.push(format!("{}/{to}", reference.display()));
        run("rsync", &ra);
        for how in ["pull", "push", "rpull", "rpush", "local"] {
            let top = fresh(how);
            let d = format!("{}/{to}", top.display());
            let mut a = flags.to_vec();
            let prog = if how.starts_with('r') { "rsync" } else { ours };
            if how != "local" {
                a.push("-e".into());
                a.push(shim.display().to_string());
                a.push(format!(
                    "--rsync-path={}",
                    if how.starts_with('r') { ours } else { "rsync" }
                ));
            }
            match how {
                "pull" | "rpull" => {
                    a.push(format!("localhost:{from}"));
                    a.push(d);
                }
                "push" | "rpush" => {
                    a.push(from.clone());
                    a.push(format!("localhost:{d}"));
                }
                _ => {
                    a.push(from.clone());
                    a.push(d);
                }
            }
            run(prog, &a);
            let diffs = compare_trees(&reference, &top, cmp);
            if !diffs.is_empty() {
                failures.push(format!("{how} {from} -> {to}: {diffs:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A destination's per-directory merge file is read beneath the
/// destination: a symlink to it that stays inside is followed as rsync
/// follows it; one that leads outside (absolute, or climbing above the
/// destination) is never read, and nothing in that directory is deleted
/// (an error, exit 23), where rsync alone would read the outside file.
/// Our receiver in each role: the local copy, our client pulling from
/// `rsync --server`, real rsync pushing to `ferrsync --server`.
#[test]
fn destination_merge_files_are_read_beneath_the_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let shim = common::tree::write_shim(&base);
    let src = base.join("src");
    write_tree(
        &src,
        &[
            ("in/", ""),
            ("d/", ""),
            ("d/x", "x"),
            ("o/", ""),
            ("o/x", "x"),
            ("c/", ""),
            ("c/x", "x"),
        ],
    );
    let outside = base.join("outside");
    write_tree(&outside, &[("rules", "P victim\n")]);
    let fresh = |name: &str| {
        let t = base.join(name);
        write_tree(
            &t,
            &[
                ("in/.rsync-filter", "P victim\n"),
                ("d/victim", "v"),
                ("d/gone", "g"),
                ("o/victim", "v"),
                ("o/gone", "g"),
                ("c/victim", "v"),
                ("c/gone", "g"),
            ],
        );
        std::os::unix::fs::symlink("../in/.rsync-filter", t.join("d/.rsync-filter")).unwrap();
        std::os::unix::fs::symlink(outside.join("rules"), t.join("o/.rsync-filter")).unwrap();
        std::os::unix::fs::symlink("../../outside/rules", t.join("c/.rsync-filter")).unwrap();
        t
    };
    let flags = ["-a", "-FF", "--delete"].map(String::from);
    let from = format!("{}/", src.display());
    // rsync alone follows all three links: the outside rules protect
    // `victim` and `gone` goes, in every directory.
    let reference = fresh("ref");
    let mut ra = flags.to_vec();
    ra.push(from.clone());
    ra.push(format!("{}/", reference.display()));
    run("rsync", &ra);
    for dir in ["d", "o", "c"] {
        assert!(
            reference.join(dir).join("victim").exists(),
            "rsync: {dir}/victim"
        );
        assert!(
            !reference.join(dir).join("gone").exists(),
            "rsync: {dir}/gone"
        );
    }
    let mut failures = Vec::new();
    let ways = ["local", "pull", "rpush"];
    for (how, walk) in ways.iter().flat_map(|h| [(*h, "0"), (*h, "1")]) {
        let dst = fresh(&format!("{how}-{walk}"));
        let (prog, a) = way_args(how, &flags, &shim, &from, &dst);
        // Both resolvers: `openat2`, and the `openat` walk.
        let out = Command::new(prog)
            .args(&a)
            .env("FERRSYNC_BENEATH_WALK", walk)
            .output()
            .unwrap();
        let how = format!("{how} (walk {walk})");
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(23) {
            failures.push(format!("{how}: exit {:?}: {err}", out.status.code()));
        }
        for dir in ["o", "c"] {
            // Shown once (a local copy used to show it twice).
            if err.matches(&format!("skipping deletion in {dir}")).count() != 1 {
                failures.push(format!("{how}: not one error for {dir}: {err}"));
            }
            // Not read: nothing deleted there, and the files still came.
            for name in ["victim", "gone", "x"] {
                if !dst.join(dir).join(name).exists() {
                    failures.push(format!("{how}: {dir}/{name} missing"));
                }
            }
        }
        // The link that stays inside is followed, as by rsync.
        if !dst.join("d/victim").exists()
            || dst.join("d/gone").exists()
            || !dst.join("d/x").exists()
        {
            failures.push(format!("{how}: d/ not as rsync leaves it"));
        }
    }
    // A merge file that does not parse ends the run, as in rsync (exit
    // 1, nothing deleted); it used to be skipped, and its directory
    // cleaned under the parent's rules only.
    for how in ["rsync", "local", "pull", "rpush"] {
        let dst = fresh(&format!("bad-{how}"));
        fs::remove_file(dst.join("d/.rsync-filter")).unwrap();
        fs::write(dst.join("d/.rsync-filter"), "Q victim\n").unwrap();
        let (prog, a) = way_args(how, &flags, &shim, &from, &dst);
        let out = Command::new(prog).args(&a).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(1) || !err.contains("Unknown filter rule") {
            failures.push(format!(
                "bad rule, {how}: exit {:?}: {err}",
                out.status.code()
            ));
        }
        if !dst.join("d/gone").exists() {
            failures.push(format!("bad rule, {how}: d/gone deleted"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A source's per-directory merge file that does not parse ends the run
/// before anything is sent, as rsync's sender does (`Unknown filter
/// rule`, exit 1); ours used to report it, go on with the parent's rules
/// and exit 23. Rsync alone, our local copy, our push to `rsync
/// --server`, real rsync pulling from `ferrsync --server`: exit 1, and
/// with our sender nothing written.
#[test]
fn a_source_merge_file_that_does_not_parse_ends_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let shim = common::tree::write_shim(&base);
    let src = base.join("src");
    write_tree(
        &src,
        &[
            ("a", "a"),
            ("p/", ""),
            ("p/x", "x"),
            ("p/.rsync-filter", "Q x\n"),
        ],
    );
    let from = format!("{}/", src.display());
    let mut failures = Vec::new();
    for how in ["rsync", "local", "push", "rpull"] {
        let dst = base.join(how);
        fs::create_dir(&dst).unwrap();
        let flags = ["-a", "-F"].map(String::from);
        let (prog, a) = way_args(how, &flags, &shim, &from, &dst);
        let out = Command::new(prog).args(&a).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(1) || !err.contains("Unknown filter rule") {
            failures.push(format!("{how}: exit {:?}: {err}", out.status.code()));
        }
        // rsync alone may have made `p` already (incremental recursion
        // sends the top level first); our sender lists everything first.
        let left: Vec<_> = fs::read_dir(&dst).unwrap().collect();
        if how != "rsync" && !left.is_empty() {
            failures.push(format!("{how}: {} entries written", left.len()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
