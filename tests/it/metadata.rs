//! Metadata and update options against real rsync 3.5.0, in every
//! direction, compared with what rsync alone produces from the same start.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::tree::{Compare, TreeSpec, build_tree, compare_trees, leftover_temps, make_basis};
use ferrsync::{DeleteTiming, Options, RemoteCommand, Transfer};

fn slash(p: &Path) -> String {
    format!("{}/", p.display())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn has_delay_dirs(root: &Path) -> Vec<PathBuf> {
    let out = Command::new("find")
        .arg(root)
        .args(["-name", ".~tmp~"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .collect()
}

use common::ways::{WAYS, Way};

/// Runs one transfer and requires it to succeed cleanly.
fn run_way(way: Way, opts: &Options, rsync_args: &[&str], src: &Path, dst: &Path, shim: &Path) {
    if let Err(e) = common::ways::run(way, opts, rsync_args, src, dst, shim) {
        panic!("{way:?}: {e}");
    }
}

#[test]
fn delay_updates_matches_rsync_alone_every_way() {
    for way in WAYS {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        build_tree(
            &src,
            TreeSpec {
                protocol: 32,
                big: false,
                root_items: true,
            },
        );
        let dst = tmp.path().join("dst");
        let reference = tmp.path().join("ref");
        make_basis(&src, &dst);
        make_basis(&src, &reference);
        let args = ["-a", "--delete", "--delay-updates"];
        let out = Command::new("rsync")
            .args(args)
            .arg(slash(&src))
            .arg(slash(&reference))
            .output()
            .unwrap();
        assert!(out.status.success());
        let mut o = Options::archive();
        o.delete = Some(DeleteTiming::Auto);
        o.delay_updates = true;
        let shim = common::tree::write_shim(tmp.path());
        run_way(way, &o, &args, &src, &dst, &shim);
        let d = compare_trees(&reference, &dst, Compare::all(true));
        assert!(
            d.is_empty(),
            "{way:?}: differs from rsync alone:\n{}",
            d.join("\n")
        );
        assert!(
            has_delay_dirs(&dst).is_empty(),
            "{way:?}: holding dirs left"
        );
        assert!(leftover_temps(&dst).is_empty(), "{way:?}: temp files left");
    }
}

#[test]
fn delay_updates_interrupted_keeps_every_old_file_then_completes() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    let dst = tmp.path().join("dst");
    fs::create_dir_all(dst.join("sub")).unwrap();
    // Small files that change (transferred first) and a big new file last.
    for i in 0..10 {
        fs::write(
            src.join(format!("a{i}")),
            format!("new version {i}\n").repeat(50),
        )
        .unwrap();
        fs::write(
            dst.join(format!("a{i}")),
            format!("old version {i}\n").repeat(40),
        )
        .unwrap();
        fs::write(src.join(format!("sub/b{i}")), format!("new file {i}\n")).unwrap();
        fs::write(dst.join(format!("sub/b{i}")), format!("old {i}\n")).unwrap();
    }
    fs::write(src.join("zz-big"), common::tree::prng_bytes(9, 60 << 20)).unwrap();
    let before = common::tree::snapshot(&dst);
    let marker = slash(&src);
    let killer = common::tree::when_partial(dst.clone(), "zz-big", 1 << 20, move || {
        Command::new("pkill")
            .args(["-KILL", "-f"])
            .arg(&marker)
            .status()
            .unwrap()
            .success()
    });
    let mut o = Options::archive();
    o.delay_updates = true;
    o.bwlimit = None;
    let res = rt.block_on(Transfer::new(o.clone()).pull(
        &RemoteCommand::local("rsync"),
        &[slash(&src)],
        &dst,
    ));
    assert!(killer.join().unwrap(), "the transfer ended before the kill");
    assert!(res.is_err());
    // Nothing was put into place: every old file is still there, whole.
    for (rel, data) in &before {
        assert_eq!(&fs::read(dst.join(rel)).unwrap(), data, "{rel:?} changed");
    }
    assert!(!dst.join("zz-big").exists());
    assert!(
        leftover_temps(&dst).is_empty(),
        "{:?}",
        leftover_temps(&dst)
    );
    // The next run completes and cleans up the holding directories.
    let r = rt
        .block_on(Transfer::new(o).pull(&RemoteCommand::local("rsync"), &[slash(&src)], &dst))
        .unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let d = compare_trees(&src, &dst, Compare::all(true));
    assert!(d.is_empty(), "{}", d.join("\n"));
    assert!(has_delay_dirs(&dst).is_empty());
}

/// A basis with extra cases for the update rules: a file newer on the
/// receiver, and one whose mtime is one second off with the same size.
fn update_basis(src: &Path, dst: &Path) {
    make_basis(src, dst);
    // Items only the basis has keep their times: make them equal in every
    // copy (children first, so directory times stick).
    let fixed = filetime::FileTime::from_unix_time(1_650_000_000, 0);
    for rel in [
        "extra-dir/sub/x",
        "extra-dir/sub",
        "extra-dir",
        "extra-file",
        "f65536",
        "a/extra-link",
    ] {
        filetime::set_symlink_file_times(dst.join(rel), fixed, fixed).unwrap();
    }
    let newer = dst.join("f1");
    fs::write(&newer, b"Z").unwrap();
    let t = filetime::FileTime::from_unix_time(2_000_000_000, 0);
    filetime::set_file_mtime(&newer, t).unwrap();
    let off = dst.join("with space");
    let len = fs::metadata(src.join("with space")).unwrap().len() as usize;
    fs::write(&off, vec![b'q'; len]).unwrap();
    let m = fs::metadata(src.join("with space")).unwrap();
    let t = filetime::FileTime::from_unix_time(
        filetime::FileTime::from_last_modification_time(&m).unix_seconds() + 1,
        0,
    );
    filetime::set_file_mtime(&off, t).unwrap();
}

/// rsync's arguments and the same options for us.
type Case = (&'static [&'static str], fn(&mut Options));

#[test]
fn update_rules_match_rsync_alone_every_way() {
    let cases: Vec<Case> = vec![
        (&["-a", "-u"], |o| o.update = true),
        (&["-a", "--existing"], |o| o.existing = true),
        (&["-a", "--ignore-existing"], |o| o.ignore_existing = true),
        (&["-a", "--max-size=1k"], |o| o.max_size = Some(1024)),
        (&["-a", "--min-size=1k"], |o| o.min_size = Some(1024)),
        (&["-a", "--modify-window=2"], |o| o.modify_window = 2),
        (&["-a", "-b"], |o| o.backup = true),
        (&["-a", "--backup-dir=bak", "--suffix=.old"], |o| {
            o.backup = true;
            o.backup_dir = Some("bak".into());
            o.suffix = Some(".old".into());
        }),
        (&["-a", "-x"], |o| o.one_file_system = true),
        (&["-a", "--inplace"], |o| o.inplace = true),
        (&["-a", "--safe-links"], |o| o.safe_links = true),
        (&["-a", "--inplace", "--no-W"], |o| {
            o.inplace = true;
            o.whole_file = Some(false);
        }),
    ];
    for (args, set) in cases {
        for way in WAYS {
            let tmp = tempfile::tempdir().unwrap();
            let src = tmp.path().join("src");
            build_tree(
                &src,
                TreeSpec {
                    protocol: 32,
                    big: false,
                    root_items: true,
                },
            );
            let dst = tmp.path().join("dst");
            let reference = tmp.path().join("ref");
            update_basis(&src, &dst);
            update_basis(&src, &reference);
            let ino_before = {
                use std::os::unix::fs::MetadataExt;
                fs::metadata(dst.join("delta.txt")).unwrap().ino()
            };
            let out = Command::new("rsync")
                .args(args)
                .arg(slash(&src))
                .arg(slash(&reference))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let mut o = Options::archive();
            set(&mut o);
            let shim = common::tree::write_shim(tmp.path());
            run_way(way, &o, args, &src, &dst, &shim);
            // With backups, rsync itself renames inside directories after
            // it set their times, so directory times are "now" in both
            // trees and cannot be compared.
            let mut cmp = Compare::all(true);
            cmp.dir_times = !args
                .iter()
                .any(|a| a.starts_with("-b") || a.starts_with("--backup"));
            let d = compare_trees(&reference, &dst, cmp);
            assert!(
                d.is_empty(),
                "{args:?} {way:?}: differs from rsync alone:\n{}",
                d.join("\n")
            );
            if args.contains(&"--inplace") {
                // Updated in place: the same inode as before the run.
                use std::os::unix::fs::MetadataExt;
                let ino_after = fs::metadata(dst.join("delta.txt")).unwrap().ino();
                assert_eq!(ino_after, ino_before, "{way:?}: delta.txt was replaced");
            }
        }
    }
}

#[test]
fn partial_dir_interrupted_then_resumed_every_way() {
    // Kill a pull in the middle of a big file: the old file stays whole,
    // the received part waits in the partial dir, and the next run resumes
    // from it (matched data) and removes it. Then the same with real rsync
    // as the client of `ferrsync --server` for the resumed run.
    let rt = rt();
    for resume_with_rsync in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let dst = tmp.path().join("dst");
        fs::create_dir_all(&src).unwrap();
        fs::create_dir_all(&dst).unwrap();
        let data = common::tree::prng_bytes(11, 64 << 20);
        fs::write(src.join("big"), &data).unwrap();
        fs::write(dst.join("big"), b"the old version").unwrap();
        fs::write(src.join("small"), b"small").unwrap();
        let marker = slash(&src);
        let killer = common::tree::when_partial(dst.clone(), "big", 8 << 20, move || {
            Command::new("pkill")
                .args(["-KILL", "-f"])
                .arg(&marker)
                .status()
                .unwrap()
                .success()
        });
        let mut o = Options::archive();
        o.partial_dir = Some(".rsync-partial".into());
        o.partial = true;
        o.whole_file = Some(false);
        let res = rt.block_on(Transfer::new(o.clone()).pull(
            &RemoteCommand::local("rsync"),
            &[slash(&src)],
            &dst,
        ));
        assert!(killer.join().unwrap(), "the transfer ended before the kill");
        assert!(res.is_err());
        assert_eq!(fs::read(dst.join("big")).unwrap(), b"the old version");
        let part = fs::read(dst.join(".rsync-partial/big")).unwrap();
        assert!(part.len() >= 8 << 20, "{}", part.len());
        assert_eq!(&part[..], &data[..part.len()]);
        assert!(leftover_temps(&dst).is_empty());
        if resume_with_rsync {
            let shim = common::tree::write_shim(tmp.path());
            let out = Command::new("rsync")
                .args([
                    "-a",
                    "--no-W",
                    "--partial-dir=.rsync-partial",
                    "--stats",
                    "-e",
                ])
                .arg(&shim)
                .arg(format!("--rsync-path={}", env!("CARGO_BIN_EXE_ferrsync")))
                .arg(slash(&src))
                .arg(format!("localhost:{}", slash(&dst)))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            let r = rt
                .block_on(Transfer::new(o).pull(
                    &RemoteCommand::local("rsync"),
                    &[slash(&src)],
                    &dst,
                ))
                .unwrap();
            assert!(r.errors.is_empty(), "{:?}", r.errors);
            assert!(
                r.stats.matched_data >= part.len() as u64 / 2,
                "did not resume: {:?}",
                r.stats
            );
        }
        assert_eq!(fs::read(dst.join("big")).unwrap(), data);
        assert!(!dst.join(".rsync-partial").exists(), "partial dir left");
        let d = compare_trees(&src, &dst, Compare::all(true));
        assert!(d.is_empty(), "{}", d.join("\n"));
    }
}

fn count_entries(root: &Path) -> usize {
    let out = Command::new("find").arg(root).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn max_delete_stops_deletions_like_rsync() {
    let rt = rt();
    for limit in [0u32, 2] {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("keep"), b"k").unwrap();
        let mk = |d: &Path| {
            fs::create_dir_all(d).unwrap();
            fs::write(d.join("keep"), b"k").unwrap();
            for i in 0..5 {
                fs::write(d.join(format!("extra{i}")), b"x").unwrap();
            }
        };
        let reference = tmp.path().join("ref");
        let ours = tmp.path().join("ours");
        let theirs = tmp.path().join("theirs");
        for d in [&reference, &ours, &theirs] {
            mk(d);
        }
        let arg = format!("--max-delete={limit}");
        let out = Command::new("rsync")
            .args(["-a", "--delete", &arg])
            .arg(slash(&src))
            .arg(slash(&reference))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(25));
        // Our generator as client (pull from rsync --server).
        let mut o = Options::archive();
        o.delete = Some(DeleteTiming::Auto);
        o.max_delete = Some(limit);
        let r = rt
            .block_on(Transfer::new(o).pull(&RemoteCommand::local("rsync"), &[slash(&src)], &ours))
            .unwrap();
        assert_eq!(r.exit_code().code(), 25, "{:?}", r.errors);
        assert_eq!(count_entries(&ours), count_entries(&reference));
        // Our generator as server (real rsync pushes to ferrsync --server).
        let shim = common::tree::write_shim(tmp.path());
        let out = Command::new("rsync")
            .args(["-a", "--delete", &arg, "-e"])
            .arg(&shim)
            .arg(format!("--rsync-path={}", env!("CARGO_BIN_EXE_ferrsync")))
            .arg(slash(&src))
            .arg(format!("localhost:{}", slash(&theirs)))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(25),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("Deletions stopped due to --max-delete limit"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(count_entries(&theirs), count_entries(&reference));
    }
}

/// Groups of paths sharing an inode (only groups of two or more), sorted.
fn link_groups(root: &Path) -> Vec<Vec<String>> {
    use std::os::unix::fs::MetadataExt;
    let out = Command::new("find")
        .arg(root)
        .args(["-type", "f"])
        .output()
        .unwrap();
    let mut by_ino: std::collections::BTreeMap<u64, Vec<String>> =
        std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let p = PathBuf::from(line);
        let ino = fs::metadata(&p).unwrap().ino();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        by_ino.entry(ino).or_default().push(rel);
    }
    let mut groups: Vec<Vec<String>> = by_ino
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    groups.sort();
    groups
}

fn hardlink_tree(src: &Path) {
    fs::create_dir_all(src.join("d1")).unwrap();
    fs::create_dir_all(src.join("d2/deep")).unwrap();
    fs::write(src.join("a"), b"group one").unwrap();
    fs::hard_link(src.join("a"), src.join("b")).unwrap();
    fs::hard_link(src.join("a"), src.join("d1/a-again")).unwrap();
    fs::write(src.join("d2/x"), b"group two, across directories").unwrap();
    fs::hard_link(src.join("d2/x"), src.join("d2/deep/y")).unwrap();
    fs::write(src.join("single"), b"no links").unwrap();
    fs::write(src.join("grows"), b"was alone on the receiver").unwrap();
    fs::hard_link(src.join("grows"), src.join("d1/grows-link")).unwrap();
    set_all_mtimes(src, 1_700_000_100);
}

/// Fixed mtimes for every file (timestamps taken within one clock tick
/// would otherwise decide the quick check by chance).
fn set_all_mtimes(root: &Path, secs: i64) {
    let out = Command::new("find")
        .arg(root)
        .args(["-type", "f"])
        .output()
        .unwrap();
    let t = filetime::FileTime::from_unix_time(secs, 0);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        filetime::set_file_mtime(line, t).unwrap();
    }
}

fn hardlink_basis(dst: &Path) {
    // The receiver already has: `a` and `b` as separate files (a link to
    // be made), `grows` alone, and `shrinks`+`shrinks2` linked although the
    // sender has them apart.
    fs::create_dir_all(dst.join("d1")).unwrap();
    fs::write(dst.join("a"), b"group one").unwrap();
    fs::write(dst.join("b"), b"group one").unwrap();
    fs::write(dst.join("grows"), b"was alone on the receiver").unwrap();
    fs::write(dst.join("shrinks"), b"linked on the receiver").unwrap();
    fs::hard_link(dst.join("shrinks"), dst.join("shrinks2")).unwrap();
    set_all_mtimes(dst, 1_600_000_000);
}

#[test]
fn hard_links_match_rsync_alone_every_way() {
    for way in WAYS {
        for protocol in [29u8, 32] {
            let tmp = tempfile::tempdir().unwrap();
            let src = tmp.path().join("src");
            hardlink_tree(&src);
            fs::write(src.join("shrinks"), b"linked on the receiver").unwrap();
            fs::write(src.join("shrinks2"), b"linked on the receiver").unwrap();
            set_all_mtimes(&src, 1_700_000_100);
            let dst = tmp.path().join("dst");
            let reference = tmp.path().join("ref");
            hardlink_basis(&dst);
            hardlink_basis(&reference);
            let p = format!("--protocol={protocol}");
            let args = ["-aH", "--delete", p.as_str()];
            let out = Command::new("rsync")
                .args(args)
                .arg(slash(&src))
                .arg(slash(&reference))
                .output()
                .unwrap();
            assert!(out.status.success());
            let mut o = Options::archive();
            o.hard_links = true;
            o.delete = Some(DeleteTiming::Auto);
            o.protocol = Some(protocol);
            let shim = common::tree::write_shim(tmp.path());
            run_way(way, &o, &args, &src, &dst, &shim);
            // rsync's receiver links followers after it set directory
            // times when its sender uses incremental recursion and before
            // when it does not (ours never does), so directory times depend
            // on who sends; files, modes, owners and links are compared.
            let mut cmp = Compare::all(protocol >= 31);
            cmp.dir_times = false;
            let d = compare_trees(&reference, &dst, cmp);
            assert!(d.is_empty(), "{way:?} p{protocol}: {}", d.join("\n"));
            assert_eq!(
                link_groups(&dst),
                link_groups(&reference),
                "{way:?} p{protocol}: hard-link groups differ"
            );
            assert!(leftover_temps(&dst).is_empty());
        }
    }
}
