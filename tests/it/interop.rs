//! Interoperation with the real rsync binary, both ways: ferrsync as the
//! client of `rsync --server`, and real `rsync` as the client of
//! `ferrsync --server`. Every run ends with a tree comparison.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::tree::{Compare, TreeSpec, build_tree, compare_trees, leftover_temps, make_basis};
use ferrsync::{DeleteTiming, Options, RemoteCommand, Transfer};

const PROTOCOLS: [u8; 6] = [27, 28, 29, 30, 31, 32];
const CHECKSUMS: [&str; 3] = ["md4", "md5", "xxh128"];

fn ferrsync_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferrsync")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn rsync_version_line() -> String {
    let out = Command::new("rsync")
        .arg("--version")
        .output()
        .expect("the rsync binary must be installed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn cmp_opts(protocol: u8) -> Compare {
    Compare::all(protocol >= 31)
}

fn options(protocol: u8, checksum: &str) -> Options {
    let mut o = Options::archive();
    o.protocol = Some(protocol);
    o.checksum_choice = Some(checksum.to_string());
    o.delete = Some(DeleteTiming::Auto);
    o
}

struct Fixture {
    _tmp: tempfile::TempDir,
    src: PathBuf,
    dst: PathBuf,
    shim: PathBuf,
}

fn fixture(protocol: u8, big: bool) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let dst = tmp.path().join("dst");
    build_tree(
        &src,
        TreeSpec {
            protocol,
            big,
            root_items: true,
        },
    );
    make_basis(&src, &dst);
    let shim = common::tree::write_shim(tmp.path());
    Fixture {
        _tmp: tmp,
        src,
        dst,
        shim,
    }
}

fn slash(p: &Path) -> String {
    format!("{}/", p.display())
}

fn assert_same(f: &Fixture, protocol: u8, what: &str) {
    let diffs = compare_trees(&f.src, &f.dst, cmp_opts(protocol));
    assert!(
        diffs.is_empty(),
        "{what}: trees differ:\n{}",
        diffs.join("\n")
    );
    let temps = leftover_temps(&f.dst);
    assert!(temps.is_empty(), "{what}: temp files left: {temps:?}");
}

#[test]
fn ferrsync_client_pulls_from_rsync_server() {
    eprintln!("peer: {}", rsync_version_line());
    let rt = rt();
    for p in PROTOCOLS {
        for c in CHECKSUMS {
            let f = fixture(p, false);
            let t = Transfer::new(options(p, c));
            let report = rt
                .block_on(t.pull(&RemoteCommand::local("rsync"), &[slash(&f.src)], &f.dst))
                .unwrap_or_else(|e| panic!("pull p{p} {c}: {e}"));
            assert_eq!(
                report.exit_code().code(),
                0,
                "pull p{p} {c}: {:?}",
                report.errors
            );
            assert!(
                report.stats.matched_data > 0,
                "pull p{p} {c}: no delta happened"
            );
            assert_same(&f, p, &format!("pull p{p} {c}"));
        }
    }
}

#[test]
fn ferrsync_client_pushes_to_rsync_server() {
    let rt = rt();
    for p in PROTOCOLS {
        for c in CHECKSUMS {
            let f = fixture(p, false);
            let t = Transfer::new(options(p, c));
            let report = rt
                .block_on(t.push(
                    &RemoteCommand::local("rsync"),
                    &[slash(&f.src).into()],
                    &slash(&f.dst),
                ))
                .unwrap_or_else(|e| panic!("push p{p} {c}: {e}"));
            assert_eq!(
                report.exit_code().code(),
                0,
                "push p{p} {c}: {:?}",
                report.errors
            );
            assert!(
                report.stats.matched_data > 0,
                "push p{p} {c}: no delta happened"
            );
            assert_same(&f, p, &format!("push p{p} {c}"));
        }
    }
}

fn real_rsync(f: &Fixture, p: u8, c: &str, pull: bool) -> String {
    let (from, to) = if pull {
        (format!("localhost:{}", slash(&f.src)), slash(&f.dst))
    } else {
        (slash(&f.src), format!("localhost:{}", slash(&f.dst)))
    };
    let out = Command::new("rsync")
        .args(["-a", "--delete", "--stats", "--no-inc-recursive"])
        .arg(format!("--protocol={p}"))
        .arg(format!("--checksum-choice={c}"))
        .arg("-e")
        .arg(&f.shim)
        .arg(format!("--rsync-path={}", ferrsync_bin()))
        .arg(&from)
        .arg(&to)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "rsync {} p{p} {c} failed ({:?}):\n{stdout}\n{}",
        if pull { "pull" } else { "push" },
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn literal_matched(stats: &str) -> (u64, u64) {
    let field = |name: &str| {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| {
                v.trim()
                    .trim_end_matches(" bytes")
                    .replace(',', "")
                    .parse::<u64>()
                    .unwrap()
            })
            .unwrap_or_else(|| panic!("no {name} in:\n{stats}"))
    };
    (field("Literal data:"), field("Matched data:"))
}

/// Real rsync as the client of `ferrsync --server`, over every protocol
/// and checksum.
fn rsync_client_matrix(pull: bool) {
    let dir = if pull { "pull" } else { "push" };
    for p in PROTOCOLS {
        for c in CHECKSUMS {
            let f = fixture(p, false);
            let out = real_rsync(&f, p, c, pull);
            let (_lit, matched) = literal_matched(&out);
            assert!(
                matched > 0,
                "rsync {dir} p{p} {c}: no delta happened:\n{out}"
            );
            assert_same(&f, p, &format!("rsync {dir} p{p} {c}"));
        }
    }
}

#[test]
fn rsync_client_pulls_from_ferrsync_server() {
    rsync_client_matrix(true);
}

#[test]
fn rsync_client_pushes_to_ferrsync_server() {
    rsync_client_matrix(false);
}

#[test]
fn delta_sends_little_literal_data_for_a_small_change() {
    let rt = rt();
    let f = fixture(32, true);
    let t = Transfer::new(options(32, "xxh128"));
    let report = rt
        .block_on(t.pull(&RemoteCommand::local("rsync"), &[slash(&f.src)], &f.dst))
        .unwrap();
    assert_same(&f, 32, "delta pull");
    let s = &report.stats;
    // delta.txt changed by about 1%; f65536 and f700 are sent whole.
    assert!(
        s.matched_data > 20 * s.literal_data / 10,
        "matched {} literal {}",
        s.matched_data,
        s.literal_data
    );
    assert!(
        s.literal_data * 10 < s.transferred_size,
        "literal {} of {}",
        s.literal_data,
        s.transferred_size
    );
    // The same through real rsync pushing to us.
    let f = fixture(32, true);
    let out = real_rsync(&f, 32, "xxh128", false);
    let (lit, matched) = literal_matched(&out);
    assert!(
        matched > 10 * lit,
        "rsync push into ferrsync: literal {lit} matched {matched}"
    );
    assert_same(&f, 32, "delta push");
}

#[test]
fn killed_peer_leaves_files_whole() {
    let rt = rt();
    let f = fixture(32, true);
    fs::remove_file(f.dst.join("big50m")).unwrap();
    let before = common::tree::snapshot(&f.dst);
    // Kill the real rsync server once our receiver has written part of the
    // big file into its temporary name.
    let marker = slash(&f.src);
    let killer = common::tree::when_partial(f.dst.clone(), "big50m", 1 << 20, move || {
        let st = Command::new("pkill")
            .args(["-KILL", "-f"])
            .arg(&marker)
            .status()
            .unwrap();
        st.success()
    });
    let mut o = options(32, "md5");
    o.delete = None;
    let res = rt.block_on(Transfer::new(o).pull(
        &RemoteCommand::local("rsync"),
        &[slash(&f.src)],
        &f.dst,
    ));
    assert!(
        killer.join().unwrap(),
        "the transfer finished before the peer could be killed"
    );
    let err = res.expect_err("a killed peer must fail the transfer");
    let code = err.exit_code().code();
    assert!(
        code == 12 || code == 137 || code == 20,
        "unexpected exit code {code}: {err}"
    );
    assert!(
        leftover_temps(&f.dst).is_empty(),
        "temp files left: {:?}",
        leftover_temps(&f.dst)
    );
    assert!(
        !f.dst.join("big50m").exists(),
        "a half-written big50m was renamed into place"
    );
    // Every regular file is either its old or its new version, whole.
    for (rel, data) in before {
        let now = fs::read(f.dst.join(&rel)).ok();
        let new = fs::read(f.src.join(&rel)).ok();
        assert!(
            now.as_ref() == Some(&data) || now == new,
            "{rel:?} is neither old nor new"
        );
    }
}

#[test]
fn local_copy_matches_rsync_alone() {
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
    let ours = tmp.path().join("ours");
    let theirs = tmp.path().join("theirs");
    let st = Command::new(ferrsync_bin())
        .arg("-a")
        .arg(slash(&src))
        .arg(&ours)
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new("rsync")
        .arg("-a")
        .arg(slash(&src))
        .arg(&theirs)
        .status()
        .unwrap();
    assert!(st.success());
    let diffs = compare_trees(&theirs, &ours, cmp_opts(32));
    assert!(
        diffs.is_empty(),
        "ferrsync -a differs from rsync -a:\n{}",
        diffs.join("\n")
    );
    let diffs = compare_trees(&src, &ours, cmp_opts(32));
    assert!(
        diffs.is_empty(),
        "ferrsync -a differs from the source:\n{}",
        diffs.join("\n")
    );
}

#[test]
fn dry_run_changes_nothing_and_itemizes_like_rsync() {
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
    let d1 = tmp.path().join("d1");
    let d2 = tmp.path().join("d2");
    make_basis(&src, &d1);
    make_basis(&src, &d2);
    let d2_before = tmp.path().join("d2-before");
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(&d2)
            .arg(&d2_before)
            .status()
            .unwrap()
            .success()
    );
    let run = |prog: &str, dst: &Path| {
        let out = Command::new(prog)
            .args(["-ain", "--delete"])
            .arg(slash(&src))
            .arg(slash(dst))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{prog}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    };
    let theirs = run("rsync", &d1);
    let ours = run(ferrsync_bin(), &d2);
    assert_eq!(ours, theirs, "itemize output differs");
    let diffs = compare_trees(&d2_before, &d2, cmp_opts(32));
    assert!(
        diffs.is_empty(),
        "a dry run changed something:\n{}",
        diffs.join("\n")
    );
    assert!(!compare_trees(&src, &d2, cmp_opts(32)).is_empty());
}

#[test]
fn cancelling_leaves_files_whole() {
    let rt = rt();
    let f = fixture(32, true);
    fs::remove_file(f.dst.join("big50m")).unwrap();
    let before = common::tree::snapshot(&f.dst);
    let token = ferrsync::CancelToken::new();
    let t2 = token.clone();
    let watcher = common::tree::when_partial(f.dst.clone(), "big50m", 1 << 20, move || {
        t2.cancel();
        true
    });
    let mut o = options(32, "xxh128");
    o.delete = None;
    let t = Transfer::new(o).with_cancel(token);
    let res = rt.block_on(t.pull(&RemoteCommand::local("rsync"), &[slash(&f.src)], &f.dst));
    assert!(
        watcher.join().unwrap(),
        "the transfer finished before it could be cancelled"
    );
    assert!(matches!(res, Err(ferrsync::Error::Cancelled)), "{res:?}");
    assert!(
        leftover_temps(&f.dst).is_empty(),
        "temp files left: {:?}",
        leftover_temps(&f.dst)
    );
    assert!(!f.dst.join("big50m").exists());
    for (rel, data) in before {
        let now = fs::read(f.dst.join(&rel)).ok();
        let new = fs::read(f.src.join(&rel)).ok();
        assert!(
            now.as_ref() == Some(&data) || now == new,
            "{rel:?} is neither old nor new"
        );
    }
}
