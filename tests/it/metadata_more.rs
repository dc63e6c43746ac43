//! More metadata options against real rsync 3.5.0, in every direction:
//! `--append`, `--append-verify`, `--sparse`, `--preallocate`,
//! `--remove-source-files`, `-L`, `--copy-unsafe-links`, `-k`, `-K`,
//! `--chown`, `--usermap`, `--groupmap`, `--force`, `-U`,
//! `--open-noatime`. Each start goes through rsync alone (rsync to rsync)
//! and through ferrsync in each of the four ways; the trees must agree.

use crate::common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::tree::{Compare, compare_trees, leftover_temps};
use common::ways::{WAYS, Way};
use ferrsync::Options;

fn slash(p: &Path) -> String {
    format!("{}/", p.display())
}

/// A remote shell for rsync's `-e` that runs the command through `sh -c`,
/// as ssh does (rsync backslash-escapes wildcards in option values such
/// as `--usermap=*:x`, which the remote shell removes).
fn shell_shim(dir: &Path) -> PathBuf {
    let shim = dir.join("shim-sh.sh");
    fs::write(&shim, "#!/bin/sh\nshift\nexec sh -c \"$*\"\n").unwrap();
    fs::set_permissions(&shim, fs::Permissions::from_mode(0o755)).unwrap();
    shim
}

fn set_time(p: &Path, secs: i64) {
    let t = filetime::FileTime::from_unix_time(secs, 0);
    filetime::set_symlink_file_times(p, t, t).unwrap();
}

/// Fixed times for everything under `root`, deepest first (so that
/// directory times stick).
fn fix_times(root: &Path, secs: i64) {
    let out = Command::new("find")
        .arg(root)
        .arg("-depth")
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        set_time(Path::new(line), secs);
    }
}

/// One option set: rsync's words, ours, how to build the source and the
/// destination's start, and a check of both finished runs (`ref` and
/// `ours`, each holding `src` and `dst`).
struct Case {
    args: &'static [&'static str],
    set: fn(&mut Options),
    src: fn(&Path),
    dst: fn(&Path),
    cmp: fn() -> Compare,
    check: fn(Way, &Path, &Path),
    /// rsync ends with exit code 23 (and so must we, with an error).
    fails: bool,
}

fn no_check(_: Way, _: &Path, _: &Path) {}

fn all_cmp() -> Compare {
    Compare::all(true)
}

fn run_case(c: &Case) {
    for way in WAYS {
        let tmp = tempfile::tempdir().unwrap();
        let reference = tmp.path().join("ref");
        let ours = tmp.path().join("ours");
        for root in [&reference, &ours] {
            fs::create_dir_all(root.join("src")).unwrap();
            fs::create_dir_all(root.join("dst")).unwrap();
            (c.src)(&root.join("src"));
            (c.dst)(&root.join("dst"));
        }
        let out = Command::new("rsync")
            .args(c.args)
            .arg(slash(&reference.join("src")))
            .arg(slash(&reference.join("dst")))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(if c.fails { 23 } else { 0 }),
            "{:?}: rsync alone: {}",
            c.args,
            String::from_utf8_lossy(&out.stderr)
        );
        let mut o = Options::archive();
        (c.set)(&mut o);
        let shim = shell_shim(tmp.path());
        match common::ways::run(way, &o, c.args, &ours.join("src"), &ours.join("dst"), &shim) {
            Err(e) if !c.fails => panic!("{:?} {way:?}: {e}", c.args),
            _ => {}
        }
        // Checks that read files (atimes) come before the comparison.
        (c.check)(way, &reference, &ours);
        for sub in ["dst", "src"] {
            let d = compare_trees(&reference.join(sub), &ours.join(sub), (c.cmp)());
            assert!(
                d.is_empty(),
                "{:?} {way:?}: {sub} differs from rsync alone:\n{}",
                c.args,
                d.join("\n")
            );
        }
        assert!(leftover_temps(&ours.join("dst")).is_empty());
    }
}

// --append, --append-verify ------------------------------------------------

const GROW: &[u8] = b"the first part of a file that grows, then the rest of it\n";

fn append_src(src: &Path) {
    let big: Vec<u8> = common::tree::prng_bytes(3, 300_000);
    fs::write(src.join("grows"), GROW.repeat(2000)).unwrap();
    fs::write(src.join("big"), &big).unwrap();
    fs::write(src.join("same"), b"same content").unwrap();
    fs::write(src.join("shorter-here"), b"short").unwrap();
    fs::write(src.join("prefix-differs"), GROW.repeat(50)).unwrap();
    fs::write(src.join("new"), b"a new file").unwrap();
    fs::write(src.join("empty-there"), b"data for an empty file").unwrap();
    fix_times(src, 1_700_000_000);
}

fn append_dst(dst: &Path) {
    let big: Vec<u8> = common::tree::prng_bytes(3, 300_000);
    fs::write(dst.join("grows"), &GROW.repeat(2000)[..40_000]).unwrap();
    fs::write(dst.join("big"), &big[..123_457]).unwrap();
    fs::write(dst.join("same"), b"same content").unwrap();
    fs::write(dst.join("shorter-here"), b"longer on the receiver").unwrap();
    fs::write(dst.join("prefix-differs"), b"XXXX the receiver's own start").unwrap();
    fs::write(dst.join("empty-there"), b"").unwrap();
    fix_times(dst, 1_600_000_000);
}

#[test]
fn append_and_append_verify_match_rsync_every_way() {
    let cases = [
        Case {
            args: &["-a", "--append"],
            set: |o| {
                o.append = 1;
                o.inplace = true;
            },
            src: append_src,
            dst: append_dst,
            cmp: all_cmp,
            check: no_check,
            fails: false,
        },
        Case {
            args: &["-a", "--append-verify"],
            set: |o| {
                o.append = 2;
                o.inplace = true;
            },
            src: append_src,
            dst: append_dst,
            cmp: all_cmp,
            check: |way, _, ours| {
                // The file with another start was redone in full.
                let want = GROW.repeat(50);
                let got = fs::read(ours.join("dst/prefix-differs")).unwrap();
                assert_eq!(got, want, "{way:?}");
            },
            fails: false,
        },
        Case {
            // Below protocol 30 --append is --append-verify.
            args: &["-a", "--append", "--protocol=29"],
            set: |o| {
                o.append = 1;
                o.inplace = true;
                o.protocol = Some(29);
            },
            src: append_src,
            dst: append_dst,
            cmp: || Compare::all(false),
            check: no_check,
            fails: false,
        },
    ];
    for c in &cases {
        run_case(c);
    }
}

#[test]
fn append_sends_only_the_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let dst = tmp.path().join("dst");
    fs::create_dir_all(&src).unwrap();
    fs::create_dir_all(&dst).unwrap();
    let data = common::tree::prng_bytes(5, 2 << 20);
    fs::write(src.join("f"), &data).unwrap();
    fs::write(dst.join("f"), &data[..(1 << 20) + 77]).unwrap();
    let mut o = Options::archive();
    o.append = 1;
    o.inplace = true;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let r = rt
        .block_on(ferrsync::Transfer::new(o).pull(
            &ferrsync::RemoteCommand::local("rsync"),
            &[slash(&src)],
            &dst,
        ))
        .unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(fs::read(dst.join("f")).unwrap(), data);
    // Only the missing part travelled (plus the protocol's overhead).
    let tail = (data.len() - (1 << 20) - 77) as u64;
    assert!(
        r.stats.bytes_received < tail + 16 * 1024,
        "{} bytes for a {tail}-byte tail",
        r.stats.bytes_received
    );
}

// --sparse, --preallocate --------------------------------------------------

const MIB: usize = 1 << 20;

fn sparse_src(src: &Path) {
    let mut v = common::tree::prng_bytes(7, MIB);
    v.extend(std::iter::repeat_n(0u8, 4 * MIB));
    v.extend(common::tree::prng_bytes(8, MIB));
    v.extend(std::iter::repeat_n(0u8, 2 * MIB));
    fs::write(src.join("holes"), &v).unwrap();
    fs::write(src.join("zeros"), vec![0u8; 3 * MIB]).unwrap();
    fs::write(src.join("dense"), common::tree::prng_bytes(9, 300_000)).unwrap();
    fix_times(src, 1_700_000_000);
}

fn empty_dst(_: &Path) {}

/// Fully written files where the source has holes: `--inplace --sparse`
/// must make the holes in them.
fn dense_dst(dst: &Path) {
    fs::write(dst.join("holes"), common::tree::prng_bytes(10, 8 * MIB)).unwrap();
    fs::write(dst.join("zeros"), common::tree::prng_bytes(11, 3 * MIB)).unwrap();
    fix_times(dst, 1_600_000_000);
}

/// Allocated 512-byte blocks of each regular file in `dst`.
fn blocks(root: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = fs::read_dir(root.join("dst"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().blocks(),
            )
        })
        .collect();
    v.sort();
    v
}

fn same_blocks(way: Way, reference: &Path, ours: &Path) {
    // Delayed allocation reports reserved blocks until written back.
    Command::new("sync").status().unwrap();
    let (a, b) = (blocks(reference), blocks(ours));
    assert_eq!(a.len(), b.len());
    for ((name, ra), (_, rb)) in a.iter().zip(&b) {
        // As allocated as rsync's (up to 64 KiB of granularity; with
        // --preallocate the hole still pending at the end stays allocated,
        // as rsync leaves it).
        assert!(
            ra.abs_diff(*rb) <= 128,
            "{way:?}: {name}: {rb} blocks, rsync {ra}"
        );
    }
    // Not fully allocated.
    let holes = b.iter().find(|(n, _)| n == "holes").unwrap().1;
    assert!(
        holes * 512 < (6 * MIB) as u64,
        "{way:?}: holes not sparse: {holes}"
    );
}

#[test]
fn sparse_and_preallocate_match_rsync_every_way() {
    let cases = [
        Case {
            args: &["-a", "--sparse"],
            set: |o| o.sparse = true,
            src: sparse_src,
            dst: empty_dst,
            cmp: all_cmp,
            check: same_blocks,
            fails: false,
        },
        Case {
            args: &["-a", "-S", "--preallocate"],
            set: |o| {
                o.sparse = true;
                o.preallocate = true;
            },
            src: sparse_src,
            dst: empty_dst,
            cmp: all_cmp,
            check: same_blocks,
            fails: false,
        },
        Case {
            args: &["-a", "--sparse", "--inplace"],
            set: |o| {
                o.sparse = true;
                o.inplace = true;
            },
            src: sparse_src,
            dst: dense_dst,
            cmp: all_cmp,
            check: same_blocks,
            fails: false,
        },
        Case {
            args: &["-a", "--preallocate"],
            set: |o| o.preallocate = true,
            src: sparse_src,
            dst: empty_dst,
            cmp: all_cmp,
            check: |way, reference, ours| {
                Command::new("sync").status().unwrap();
                let (a, b) = (blocks(reference), blocks(ours));
                for ((name, ra), (_, rb)) in a.iter().zip(&b) {
                    assert!(ra.abs_diff(*rb) <= 128, "{way:?}: {name}: {rb} vs {ra}");
                }
            },
            fails: false,
        },
    ];
    for c in &cases {
        run_case(c);
    }
}

// --remove-source-files ------------------------------------------------------

fn removal_src(src: &Path) {
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    fs::create_dir_all(src.join("empty")).unwrap();
    fs::write(src.join("new"), b"new file").unwrap();
    fs::write(src.join("uptodate"), b"already there").unwrap();
    fs::write(src.join("changed"), b"new content").unwrap();
    fs::write(src.join("sub/a"), b"a").unwrap();
    fs::write(src.join("sub/deeper/b"), b"b").unwrap();
    std::os::unix::fs::symlink("sub/a", src.join("link")).unwrap();
    fix_times(src, 1_700_000_000);
}

fn removal_dst(dst: &Path) {
    fs::write(dst.join("uptodate"), b"already there").unwrap();
    fs::write(dst.join("changed"), b"old").unwrap();
    set_time(&dst.join("uptodate"), 1_700_000_000);
    set_time(&dst.join("changed"), 1_600_000_000);
}

#[test]
fn remove_source_files_matches_rsync_every_way() {
    run_case(&Case {
        args: &["-a", "--remove-source-files"],
        set: |o| o.remove_source_files = true,
        src: removal_src,
        dst: removal_dst,
        // Removing files changes the source directories' times.
        cmp: || {
            let mut c = Compare::all(true);
            c.dir_times = false;
            c
        },
        check: |way, _, ours| {
            // Only directories are left in the source.
            let out = Command::new("find")
                .arg(ours.join("src"))
                .args(["-not", "-type", "d"])
                .output()
                .unwrap();
            assert!(out.stdout.is_empty(), "{way:?}: left {:?}", out.stdout);
        },
        fails: false,
    });
}

// -L, --copy-unsafe-links, -k, -K --------------------------------------------

fn links_src(src: &Path) {
    let outside = src.parent().unwrap().join("outside");
    fs::create_dir_all(outside.join("odir")).unwrap();
    fs::write(outside.join("ofile"), b"outside the tree").unwrap();
    fs::write(outside.join("odir/x"), b"x outside").unwrap();
    fs::create_dir_all(src.join("dir/sub")).unwrap();
    fs::write(src.join("dir/sub/f"), b"f").unwrap();
    fs::write(src.join("file"), b"file").unwrap();
    std::os::unix::fs::symlink("file", src.join("safe-file-link")).unwrap();
    std::os::unix::fs::symlink("dir", src.join("safe-dir-link")).unwrap();
    std::os::unix::fs::symlink("../outside/ofile", src.join("unsafe-file-link")).unwrap();
    std::os::unix::fs::symlink("../outside/odir", src.join("unsafe-dir-link")).unwrap();
    fix_times(&outside, 1_650_000_000);
    fix_times(src, 1_700_000_000);
}

/// [`links_src`] plus targets rsync 3.4+ calls unsafe although counting
/// components says they stay inside: CVE-2024-12088's chain (`deep/a ->
/// ..`, then `lnk -> deep/a/../outside/ofile`, which resolves outside),
/// and `..` after a normal component that happens to resolve inside.
fn tricky_links_src(src: &Path) {
    links_src(src);
    fs::create_dir_all(src.join("deep")).unwrap();
    std::os::unix::fs::symlink("..", src.join("deep/a")).unwrap();
    std::os::unix::fs::symlink("deep/a/../outside/ofile", src.join("lnk")).unwrap();
    std::os::unix::fs::symlink("dir/../file", src.join("up-and-back")).unwrap();
    std::os::unix::fs::symlink("./../file", src.join("dir/l3")).unwrap();
    std::os::unix::fs::symlink("../../file", src.join("dir/sub/up2")).unwrap();
    fix_times(src, 1_700_000_000);
}

fn keep_dirlinks_dst(dst: &Path) {
    fs::create_dir_all(dst.join("real/sub")).unwrap();
    std::os::unix::fs::symlink("real", dst.join("dir")).unwrap();
    fix_times(dst, 1_600_000_000);
}

#[test]
fn copy_links_options_match_rsync_every_way() {
    let cases = [
        Case {
            args: &["-a", "-L"],
            set: |o| o.copy_links = true,
            src: links_src,
            dst: empty_dst,
            cmp: all_cmp,
            check: no_check,
            fails: false,
        },
        Case {
            args: &["-a", "--copy-unsafe-links"],
            set: |o| o.copy_unsafe_links = true,
            src: links_src,
            dst: empty_dst,
            cmp: all_cmp,
            check: |way, _, ours| {
                let d = ours.join("dst");
                assert!(d.join("safe-file-link").is_symlink(), "{way:?}");
                assert!(!d.join("unsafe-file-link").is_symlink(), "{way:?}");
                assert!(d.join("unsafe-dir-link/x").is_file(), "{way:?}");
            },
            fails: false,
        },
        // CVE-2024-12088: with --safe-links no link that reaches outside
        // through another link is made; the same links rsync skips.
        Case {
            args: &["-a", "--safe-links"],
            set: |o| o.safe_links = true,
            src: tricky_links_src,
            dst: empty_dst,
            cmp: all_cmp,
            check: |way, _, ours| {
                let d = ours.join("dst");
                assert!(d.join("deep/a").is_symlink(), "{way:?}");
                assert!(d.join("dir/sub/up2").is_symlink(), "{way:?}");
                for gone in ["lnk", "up-and-back", "dir/l3", "unsafe-file-link"] {
                    assert!(
                        fs::symlink_metadata(d.join(gone)).is_err(),
                        "{way:?} {gone}"
                    );
                }
            },
            fails: false,
        },
        Case {
            args: &["-a", "--copy-unsafe-links"],
            set: |o| o.copy_unsafe_links = true,
            src: tricky_links_src,
            dst: empty_dst,
            cmp: all_cmp,
            check: |way, _, ours| {
                let d = ours.join("dst");
                assert!(d.join("deep/a").is_symlink(), "{way:?}");
                assert_eq!(
                    fs::read(d.join("lnk")).unwrap(),
                    b"outside the tree",
                    "{way:?}"
                );
                assert!(!d.join("lnk").is_symlink(), "{way:?}");
                assert!(!d.join("up-and-back").is_symlink(), "{way:?}");
            },
            fails: false,
        },
        Case {
            args: &["-a", "-k"],
            set: |o| o.copy_dirlinks = true,
            src: links_src,
            dst: empty_dst,
            cmp: all_cmp,
            check: no_check,
            fails: false,
        },
        Case {
            args: &["-a", "-K"],
            set: |o| o.keep_dirlinks = true,
            src: links_src,
            dst: keep_dirlinks_dst,
            // The kept link gets the directory's times (on the link
            // itself, as rsync does), the directory it points to keeps its.
            cmp: all_cmp,
            check: |way, _, ours| {
                let d = ours.join("dst");
                assert!(d.join("dir").is_symlink(), "{way:?}");
                assert!(d.join("real/sub/f").is_file(), "{way:?}");
            },
            fails: false,
        },
        // Other permissions than the directory the link points to: rsync
        // cannot set them on the link (ELOOP), says so and ends with 23.
        Case {
            args: &["-a", "-K"],
            set: |o| o.keep_dirlinks = true,
            src: |src| {
                links_src(src);
                fs::set_permissions(src.join("dir"), fs::Permissions::from_mode(0o750)).unwrap();
            },
            dst: keep_dirlinks_dst,
            cmp: all_cmp,
            check: |way, _, ours| {
                let m = fs::metadata(ours.join("dst/real")).unwrap();
                assert_eq!(m.mode() & 0o7777, 0o755, "{way:?}");
            },
            fails: true,
        },
    ];
    for c in &cases {
        run_case(c);
    }
}

// --chown, --usermap, --groupmap, --force ------------------------------------

fn owners_src(src: &Path) {
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("root-owned"), b"r").unwrap();
    fs::write(src.join("bin-owned"), b"b").unwrap();
    fs::write(src.join("d/numeric"), b"n").unwrap();
    std::os::unix::fs::symlink("root-owned", src.join("link")).unwrap();
    std::os::unix::fs::lchown(src.join("bin-owned"), Some(2), Some(2)).unwrap();
    std::os::unix::fs::lchown(src.join("d/numeric"), Some(1234), Some(1234)).unwrap();
    fix_times(src, 1_700_000_000);
}

#[test]
fn chown_usermap_groupmap_match_rsync_every_way() {
    if !common::tree::is_root() {
        return;
    }
    let cases = [
        Case {
            args: &["-a", "--chown=daemon:nogroup"],
            set: |o| ferrsync::engine::options::set_chown(o, "daemon:nogroup").unwrap(),
            src: owners_src,
            dst: empty_dst,
            cmp: all_cmp,
            check: |way, _, ours| {
                let m = fs::metadata(ours.join("dst/root-owned")).unwrap();
                assert_eq!((m.uid(), m.gid()), (1, 65534), "{way:?}");
            },
            fails: false,
        },
        Case {
            args: &["-a", "--chown=:users"],
            set: |o| ferrsync::engine::options::set_chown(o, ":users").unwrap(),
            src: owners_src,
            dst: empty_dst,
            cmp: all_cmp,
            check: no_check,
            fails: false,
        },
        Case {
            args: &[
                "-a",
                "--usermap=root:sys,1000-2000:daemon,b*:nobody",
                "--groupmap=*:users",
            ],
            set: |o| {
                o.usermap = Some("root:sys,1000-2000:daemon,b*:nobody".into());
                o.groupmap = Some("*:users".into());
            },
            src: owners_src,
            dst: empty_dst,
            cmp: all_cmp,
            check: |way, _, ours| {
                let uid = |p: &str| {
                    fs::symlink_metadata(ours.join("dst").join(p))
                        .unwrap()
                        .uid()
                };
                assert_eq!(uid("root-owned"), 3, "{way:?}");
                assert_eq!(uid("d/numeric"), 1, "{way:?}");
                assert_eq!(uid("bin-owned"), 65534, "{way:?}");
            },
            fails: false,
        },
        // A name the receiver does not know: rsync says so and goes on
        // without that rule (exit 0); the other rules still apply.
        Case {
            args: &[
                "-a",
                "--usermap=root:no-such-user-x,bin:daemon",
                "--groupmap=*:no-such-group-x",
            ],
            set: |o| {
                o.usermap = Some("root:no-such-user-x,bin:daemon".into());
                o.groupmap = Some("*:no-such-group-x".into());
            },
            src: owners_src,
            dst: empty_dst,
            cmp: all_cmp,
            check: |way, _, ours| {
                let m = |p: &str| fs::symlink_metadata(ours.join("dst").join(p)).unwrap();
                assert_eq!(m("bin-owned").uid(), 1, "{way:?}");
                assert_eq!(m("root-owned").uid(), 0, "{way:?}");
                assert_eq!(m("bin-owned").gid(), 2, "{way:?}");
            },
            fails: false,
        },
        Case {
            args: &["-a", "--numeric-ids", "--usermap=0:7"],
            set: |o| {
                o.numeric_ids = true;
                o.usermap = Some("0:7".into());
            },
            src: owners_src,
            dst: empty_dst,
            cmp: all_cmp,
            check: no_check,
            fails: false,
        },
    ];
    for c in &cases {
        run_case(c);
    }
}

fn force_src(src: &Path) {
    fs::write(src.join("was-dir"), b"now a file").unwrap();
    std::os::unix::fs::symlink("was-dir", src.join("was-dir2")).unwrap();
    fs::write(src.join("plain"), b"plain").unwrap();
    fix_times(src, 1_700_000_000);
}

fn force_dst(dst: &Path) {
    for d in ["was-dir", "was-dir2"] {
        fs::create_dir_all(dst.join(d).join("inner")).unwrap();
        fs::write(dst.join(d).join("inner/f"), b"in the way").unwrap();
    }
    fix_times(dst, 1_600_000_000);
}

#[test]
fn force_matches_rsync_every_way() {
    let cases = [
        Case {
            // Without --force (or --delete) the non-empty directories stay.
            args: &["-a"],
            set: |_| {},
            src: force_src,
            dst: force_dst,
            cmp: all_cmp,
            check: |way, _, ours| {
                assert!(ours.join("dst/was-dir/inner/f").is_file(), "{way:?}");
            },
            fails: true,
        },
        Case {
            args: &["-a", "--force"],
            set: |o| o.force = true,
            src: force_src,
            dst: force_dst,
            cmp: || {
                let mut c = Compare::all(true);
                c.dir_times = false;
                c
            },
            check: |way, _, ours| {
                assert!(ours.join("dst/was-dir").is_file(), "{way:?}");
            },
            fails: false,
        },
    ];
    for c in &cases {
        run_case(c);
    }
}

// -U, --open-noatime ---------------------------------------------------------

const ATIME: i64 = 1_500_000_000;

fn atimes_src(src: &Path) {
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("a"), b"a").unwrap();
    fs::write(src.join("d/b"), b"bb").unwrap();
    fs::write(src.join("c"), b"ccc").unwrap();
    std::os::unix::fs::symlink("a", src.join("l")).unwrap();
    fix_times(src, 1_700_000_000);
    for (i, p) in ["a", "d/b", "c", "l"].iter().enumerate() {
        let at = filetime::FileTime::from_unix_time(ATIME + i as i64, 0);
        let mt = filetime::FileTime::from_unix_time(1_700_000_000, 0);
        filetime::set_symlink_file_times(src.join(p), at, mt).unwrap();
    }
}

fn atimes_dst(dst: &Path) {
    // An up-to-date file whose atime alone differs.
    fs::write(dst.join("c"), b"ccc").unwrap();
    let t = filetime::FileTime::from_unix_time(1_700_000_000, 0);
    filetime::set_file_times(dst.join("c"), t, t).unwrap();
}

fn atimes_of(root: &Path) -> Vec<(String, i64)> {
    ["a", "d/b", "c", "l"]
        .iter()
        .map(|p| {
            (
                (*p).to_string(),
                fs::symlink_metadata(root.join(p)).unwrap().atime(),
            )
        })
        .collect()
}

#[test]
fn atimes_and_open_noatime_match_rsync_every_way() {
    let cases = [
        Case {
            args: &["-aU"],
            set: |o| o.atimes = 1,
            src: atimes_src,
            dst: atimes_dst,
            cmp: all_cmp,
            check: |way, reference, ours| {
                let want = atimes_of(&reference.join("dst"));
                assert_eq!(atimes_of(&ours.join("dst")), want, "{way:?}");
                assert_eq!(want[0].1, ATIME, "rsync itself kept the atime");
            },
            fails: false,
        },
        Case {
            args: &["-aU", "--open-noatime"],
            set: |o| {
                o.atimes = 1;
                o.open_noatime = true;
            },
            src: atimes_src,
            dst: atimes_dst,
            cmp: all_cmp,
            check: |way, reference, ours| {
                assert_eq!(
                    atimes_of(&ours.join("dst")),
                    atimes_of(&reference.join("dst")),
                    "{way:?}"
                );
                // The source was read without touching its atimes.
                // (readlink updates a symlink's atime whatever the flags.)
                let src = atimes_of(&ours.join("src"));
                for (i, (p, a)) in src.iter().take(3).enumerate() {
                    assert_eq!(*a, ATIME + i as i64, "{way:?}: {p}");
                }
            },
            fails: false,
        },
    ];
    for c in &cases {
        run_case(c);
    }
}

// Server words -----------------------------------------------------------------

#[test]
fn server_words_round_trip() {
    use ferrsync::engine::parse_server_args;
    let mut o = Options::archive();
    o.append = 2;
    o.inplace = true;
    o.sparse = true;
    o.remove_source_files = true;
    o.copy_unsafe_links = true;
    o.keep_dirlinks = true;
    o.force = true;
    o.preallocate = true;
    o.atimes = 1;
    o.open_noatime = true;
    o.usermap = Some("*:daemon".into());
    o.groupmap = Some("*:nogroup".into());
    let words = o.server_args(false);
    let mut argv = words.clone();
    argv.extend([".".to_string(), "dst/".to_string()]);
    let sa = parse_server_args(&argv).unwrap();
    let p = &sa.options;
    assert_eq!(p.append, 2, "{words:?}");
    assert!(p.inplace && p.sparse && p.remove_source_files && p.copy_unsafe_links);
    assert!(p.keep_dirlinks && p.force && p.preallocate && p.open_noatime);
    assert_eq!(p.atimes, 1);
    assert_eq!(p.usermap.as_deref(), Some("*:daemon"));
    assert_eq!(p.groupmap.as_deref(), Some("*:nogroup"));
    // A pull: the server sender follows links; -K, --force, the maps and
    // --preallocate stay with our receiver.
    let mut o = Options::archive();
    o.copy_links = true;
    o.copy_dirlinks = true;
    o.keep_dirlinks = true;
    o.force = true;
    o.preallocate = true;
    o.usermap = Some("*:daemon".into());
    let words = o.server_args(true);
    assert_eq!(words[2], "-lLkogDtpre.LfxCvu", "{words:?}");
    assert_eq!(words.len(), 3, "{words:?}");
    // Real rsync's client words for the same options are accepted: run a
    // dry-run pull against `ferrsync --server` to prove it.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"f").unwrap();
    let shim = shell_shim(tmp.path());
    for args in [
        &["-a", "-n", "--append-verify", "-S", "--remove-source-files"][..],
        &[
            "-a",
            "-n",
            "-L",
            "-k",
            "--copy-unsafe-links",
            "-U",
            "--open-noatime",
        ],
        &[
            "-a",
            "-n",
            "-K",
            "--force",
            "--preallocate",
            "--chown=daemon:nogroup",
        ],
    ] {
        for way in [Way::RsyncPush, Way::RsyncPull] {
            let dst = tmp.path().join("dst");
            let mut o = Options::archive();
            o.dry_run = true;
            common::ways::run(way, &o, args, &src, &dst, &shim)
                .unwrap_or_else(|e| panic!("{args:?} {way:?}: {e}"));
        }
    }
}

// Per-file errors of a real rsync server --------------------------------------

#[test]
fn rsync_server_file_errors_in_a_push_end_with_code_23() {
    // A non-empty directory where the source has a file: rsync's receiver
    // cannot make way for it and says so per file; its client ends with
    // 23 and "some files/attrs were not transferred". Ours must too.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("x"), b"a file").unwrap();
    fs::write(src.join("y"), b"another").unwrap();
    fix_times(&src, 1_700_000_000);
    let shim = common::tree::write_shim(tmp.path());
    let mut outs = Vec::new();
    for client in ["rsync", env!("CARGO_BIN_EXE_ferrsync")] {
        let dst = tmp.path().join(format!("dst-{}", outs.len()));
        fs::create_dir_all(dst.join("x/inner")).unwrap();
        fs::write(dst.join("x/inner/f"), b"in the way").unwrap();
        let out = Command::new(client)
            .args(["-a", "-e"])
            .arg(&shim)
            .arg(slash(&src))
            .arg(format!("localhost:{}", slash(&dst)))
            .output()
            .unwrap();
        assert_eq!(fs::read(dst.join("y")).unwrap(), b"another", "{client}");
        outs.push((
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    let (rsync, ours) = (&outs[0], &outs[1]);
    assert_eq!(rsync.0, Some(23), "{}", rsync.1);
    assert_eq!(ours.0, rsync.0, "ours: {}", ours.1);
    for line in [
        "could not make way for new regular file: x",
        "rsync error: some files/attrs were not transferred (see previous errors) (code 23)",
    ] {
        assert!(rsync.1.contains(line), "rsync: {}", rsync.1);
        assert!(ours.1.contains(line), "ours: {}", ours.1);
    }
}
