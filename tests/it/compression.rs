//! Compressed transfers against rsync 3.5.0 for every algorithm it offers,
//! both ways: ferrsync client with `rsync --server`, and real `rsync`
//! client with `ferrsync --server`. The tree has compressible text,
//! incompressible data and a file updated by delta, so block references and
//! literals interleave; the result must equal the source.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::tree::{Compare, TreeSpec, build_tree, compare_trees, leftover_temps, make_basis};
use ferrsync::{DeleteTiming, Options, RemoteCommand, Transfer};

const ALGOS: [&str; 4] = ["zstd", "lz4", "zlibx", "zlib"];

struct Fx {
    _tmp: tempfile::TempDir,
    src: PathBuf,
    dst: PathBuf,
    shim: PathBuf,
}

fn fixture() -> Fx {
    fixture_for(32)
}

fn fixture_for(protocol: u8) -> Fx {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let dst = tmp.path().join("dst");
    build_tree(
        &src,
        TreeSpec {
            protocol,
            big: false,
            root_items: true,
        },
    );
    make_basis(&src, &dst);
    let shim = common::tree::write_shim(tmp.path());
    Fx {
        _tmp: tmp,
        src,
        dst,
        shim,
    }
}

fn slash(p: &Path) -> String {
    format!("{}/", p.display())
}

fn check(f: &Fx, what: &str) {
    let diffs = compare_trees(&f.src, &f.dst, Compare::all(true));
    assert!(
        diffs.is_empty(),
        "{what}: trees differ:\n{}",
        diffs.join("\n")
    );
    assert!(leftover_temps(&f.dst).is_empty(), "{what}: temp files left");
}

fn opts(algo: &str) -> Options {
    let mut o = Options::archive();
    o.delete = Some(DeleteTiming::Auto);
    o.compress = true;
    o.compress_choice = Some(algo.to_string());
    o
}

#[test]
fn ferrsync_client_with_every_algorithm() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for algo in ALGOS {
        for pull in [true, false] {
            let f = fixture();
            let t = Transfer::new(opts(algo));
            let cmd = RemoteCommand::local("rsync");
            let res = if pull {
                rt.block_on(t.pull(&cmd, &[slash(&f.src)], &f.dst))
            } else {
                rt.block_on(t.push(&cmd, &[slash(&f.src).into()], &slash(&f.dst)))
            };
            let what = format!("{} {algo}", if pull { "pull" } else { "push" });
            let report = res.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(report.exit_code().code(), 0, "{what}: {:?}", report.errors);
            assert!(
                report.stats.matched_data > 0 && report.stats.literal_data > 0,
                "{what}: {:?}",
                report.stats
            );
            check(&f, &what);
        }
    }
}

#[test]
fn rsync_client_with_every_algorithm() {
    for algo in ALGOS {
        for pull in [true, false] {
            let f = fixture();
            let (from, to) = if pull {
                (format!("localhost:{}", slash(&f.src)), slash(&f.dst))
            } else {
                (slash(&f.src), format!("localhost:{}", slash(&f.dst)))
            };
            let out = Command::new("rsync")
                .args(["-a", "--delete", "--stats", "-z"])
                .arg(format!("--compress-choice={algo}"))
                .arg("-e")
                .arg(&f.shim)
                .arg(format!("--rsync-path={}", env!("CARGO_BIN_EXE_ferrsync")))
                .arg(&from)
                .arg(&to)
                .output()
                .unwrap();
            let what = format!("rsync {} {algo}", if pull { "pull" } else { "push" });
            assert!(
                out.status.success(),
                "{what}: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            check(&f, &what);
        }
    }
}

#[test]
fn plain_z_negotiates_like_rsync() {
    // `-z` alone: names are negotiated from protocol 30 with a modern peer
    // (zstd first); without negotiation it is plain zlib.
    let rt = tokio::runtime::Runtime::new().unwrap();
    for protocol in [29, 30, 31, 32] {
        let f = fixture_for(protocol);
        let mut o = opts("zstd");
        o.compress_choice = None;
        o.protocol = Some(protocol);
        let t = Transfer::new(o);
        let report = rt
            .block_on(t.pull(&RemoteCommand::local("rsync"), &[slash(&f.src)], &f.dst))
            .unwrap_or_else(|e| panic!("-z p{protocol}: {e}"));
        assert_eq!(report.exit_code().code(), 0);
        let diffs = compare_trees(&f.src, &f.dst, Compare::all(protocol >= 31));
        assert!(diffs.is_empty(), "-z p{protocol}:\n{}", diffs.join("\n"));
    }
}

#[test]
fn text_travels_compressed() {
    // A new text file (no basis): the bytes on the wire must be well below
    // the literal data.
    let rt = tokio::runtime::Runtime::new().unwrap();
    for algo in ALGOS {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir(&src).unwrap();
        let mut text = Vec::new();
        for i in 0..60_000 {
            text.extend_from_slice(
                format!("{i:06} compressible log line with repeated words\n").as_bytes(),
            );
        }
        fs::write(src.join("log.txt"), &text).unwrap();
        let t = Transfer::new(opts(algo));
        let dst = tmp.path().join("dst");
        let report = rt
            .block_on(t.pull(&RemoteCommand::local("rsync"), &[slash(&src)], &dst))
            .unwrap();
        assert_eq!(fs::read(dst.join("log.txt")).unwrap(), text);
        let s = &report.stats;
        assert!(s.literal_data >= text.len() as u64, "{algo}: {s:?}");
        assert!(
            s.bytes_received * 3 < s.literal_data,
            "{algo}: {} bytes on the wire for {} literal",
            s.bytes_received,
            s.literal_data
        );
    }
}

#[test]
fn skip_compress_suffixes_go_at_level_zero() {
    // The same text named `.txt` and `.gz`: pushed with zlib and zlibx to
    // real rsync, the `.gz` copy travels at level 0 (stored deflate blocks,
    // so about its own size) while the `.txt` copy shrinks; rsync decodes
    // both. `--skip-compress=txt` turns the rule around.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut text = Vec::new();
    for i in 0..40_000 {
        text.extend_from_slice(format!("{i:06} compressible log line\n").as_bytes());
    }
    for algo in ["zlibx", "zlib"] {
        for (name, skip) in [("a.txt", None), ("a.gz", None), ("a.txt", Some("txt"))] {
            let tmp = tempfile::tempdir().unwrap();
            let src = tmp.path().join("src");
            fs::create_dir(&src).unwrap();
            fs::write(src.join(name), &text).unwrap();
            let mut o = opts(algo);
            o.skip_compress = skip.map(str::to_string);
            let dst = tmp.path().join("dst");
            let report = rt
                .block_on(Transfer::new(o).push(
                    &RemoteCommand::local("rsync"),
                    &[slash(&src).into()],
                    &slash(&dst),
                ))
                .unwrap();
            assert_eq!(fs::read(dst.join(name)).unwrap(), text, "{algo} {name}");
            let sent = report.stats.bytes_sent;
            let skipped = name.ends_with(".gz") || skip.is_some();
            if skipped {
                assert!(sent > text.len() as u64, "{algo} {name}: {sent}");
            } else {
                assert!(sent * 3 < text.len() as u64, "{algo} {name}: {sent}");
            }
        }
    }
}
