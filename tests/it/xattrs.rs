//! `-X` against real rsync 3.5.0 in every direction and at protocols 30,
//! 31 and 32: the result must equal what rsync alone makes of the same
//! start, extended attributes included (values up to 32 bytes travel in
//! the list, longer ones are requested; names that are not listed are
//! removed). Below protocol 30 `-X` is refused, as rsync does.

use crate::common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::tree::{Compare, compare_trees, is_root, leftover_temps, write_shim};
use ferrsync::{Options, RemoteCommand, Transfer};

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

use common::ways::{WAYS, Way};

fn run_way(
    way: Way,
    opts: &Options,
    rsync_args: &[&str],
    src: &Path,
    dst: &Path,
    shim: &Path,
) -> Result<(), String> {
    common::ways::run(way, opts, rsync_args, src, dst, shim)
}

fn set(p: &Path, name: &str, value: &[u8]) {
    xattr::set(p, name, value).unwrap_or_else(|e| panic!("{}: {name}: {e}", p.display()));
}

/// Every item's attributes (all namespaces but `system.`), by path.
fn xattrs_of(root: &Path) -> BTreeMap<PathBuf, BTreeMap<Vec<u8>, Vec<u8>>> {
    fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, BTreeMap<Vec<u8>, Vec<u8>>>) {
        let p = root.join(rel);
        let mut m = BTreeMap::new();
        for n in xattr::list(&p).unwrap() {
            let n = n.as_bytes().to_vec();
            if !n.starts_with(b"system.") {
                let v = xattr::get(&p, OsStr::from_bytes(&n))
                    .unwrap()
                    .unwrap_or_default();
                m.insert(n, v);
            }
        }
        out.insert(rel.to_path_buf(), m);
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            let mut names: Vec<_> = fs::read_dir(&p)
                .unwrap()
                .map(|d| d.unwrap().file_name())
                .collect();
            names.sort();
            for n in names {
                walk(root, &rel.join(n), out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), &mut out);
    out
}

fn differences(a: &Path, b: &Path, nsec: bool) -> Vec<String> {
    let mut d = compare_trees(a, b, Compare::all(nsec));
    let (xa, xb) = (xattrs_of(a), xattrs_of(b));
    for (p, m) in &xa {
        if xb.get(p) != Some(m) {
            d.push(format!("xattrs of {p:?}: {m:?} vs {:?}", xb.get(p)));
        }
    }
    d
}

/// The source: small and abbreviated values on files and directories, a
/// file without attributes, and (as root) a `trusted.` attribute.
fn source_tree(src: &Path) {
    fs::create_dir_all(src.join("dir/sub")).unwrap();
    fs::write(src.join("a.txt"), b"file with xattrs\n").unwrap();
    fs::write(src.join("plain.txt"), b"no xattrs\n").unwrap();
    fs::write(src.join("same.txt"), b"data that does not change\n").unwrap();
    fs::write(src.join("dir/c.txt"), b"inside\n".repeat(300)).unwrap();
    fs::write(src.join("dir/sub/d.txt"), b"deeper\n").unwrap();
    set(&src.join("a.txt"), "user.small", b"hi");
    set(&src.join("a.txt"), "user.big", &[b'B'; 64]);
    set(&src.join("a.txt"), "user.exactly32", &[b'3'; 32]);
    set(&src.join("a.txt"), "user.empty", b"");
    set(&src.join("dir"), "user.dirattr", b"d");
    set(&src.join("dir"), "user.dirbig", &[7u8; 100]);
    set(&src.join("dir/c.txt"), "user.big", &[b'C'; 40]);
    // The same list as a.txt: sent by index.
    set(&src.join("dir/sub/d.txt"), "user.small", b"hi");
    set(&src.join("dir/sub/d.txt"), "user.big", &[b'B'; 64]);
    set(&src.join("dir/sub/d.txt"), "user.exactly32", &[b'3'; 32]);
    set(&src.join("dir/sub/d.txt"), "user.empty", b"");
    // Unchanged data, changed attributes: a long value of the same length
    // (only its digest differs), a new one, and one that must go.
    set(&src.join("same.txt"), "user.long", &[b'N'; 50]);
    set(&src.join("same.txt"), "user.new", b"n");
    if is_root() {
        set(&src.join("a.txt"), "trusted.t", b"root only");
        set(&src.join("dir"), "trusted.big", &[b'T'; 33]);
    }
    set_times(src, 1_700_000_000, 123_456_789);
}

/// Gives every item under `root` (and `root`) this mtime, so that rsync's
/// whole-second comparison sees the source and the receiving side as
/// plainly different or plainly equal.
fn set_times(root: &Path, secs: i64, nsec: u32) {
    let t = filetime::FileTime::from_unix_time(secs, nsec);
    let mut items = vec![root.to_path_buf()];
    let mut i = 0;
    while i < items.len() {
        if fs::symlink_metadata(&items[i]).unwrap().is_dir() {
            for d in fs::read_dir(&items[i]).unwrap() {
                items.push(d.unwrap().path());
            }
        }
        i += 1;
    }
    // Deepest first: setting a directory's time after its contents.
    for p in items.iter().rev() {
        filetime::set_symlink_file_times(p, t, t).unwrap();
    }
}

/// The receiving side before the transfer.
fn basis_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst.join("dir")).unwrap();
    fs::write(dst.join("a.txt"), b"old content\n").unwrap();
    set(&dst.join("a.txt"), "user.big", &[b'B'; 64]);
    set(&dst.join("a.txt"), "user.stale", b"old");
    set(&dst.join("dir"), "user.gone", &[1u8; 60]);
    let same = dst.join("same.txt");
    fs::copy(src.join("same.txt"), &same).unwrap();
    let m = fs::metadata(src.join("same.txt")).unwrap();
    fs::set_permissions(&same, m.permissions()).unwrap();
    set(&same, "user.long", &[b'O'; 50]);
    set(&same, "user.gone", b"bye");
    fs::write(dst.join("plain.txt"), b"no xattrs\n").unwrap();
    set(&dst.join("plain.txt"), "user.leftover", &[b'L'; 80]);
    set_times(dst, 1_600_000_000, 0);
    // Same data and time as the source: only the attributes differ.
    filetime::set_file_mtime(&same, filetime::FileTime::from_last_modification_time(&m)).unwrap();
}

/// Changes between the first and the second run: one attribute removed,
/// one value changed, one file gains a long value.
fn change_source(src: &Path) {
    xattr::remove(src.join("a.txt"), "user.small").unwrap();
    set(&src.join("dir/c.txt"), "user.big", &[b'D'; 40]);
    set(&src.join("plain.txt"), "user.late", &[b'Z'; 1000]);
    xattr::remove(src.join("dir"), "user.dirattr").unwrap();
    set_times(src, 1_700_000_100, 5);
}

fn rsync_alone(args: &[&str], src: &Path, dst: &Path) {
    let out = Command::new("rsync")
        .args(args)
        .arg(slash(src))
        .arg(slash(dst))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn xattrs_match_rsync_alone_every_way_and_protocol() {
    for protocol in [30u8, 31, 32] {
        for way in WAYS {
            let tmp = tempfile::tempdir().unwrap();
            let src = tmp.path().join("src");
            let dst = tmp.path().join("dst");
            let reference = tmp.path().join("ref");
            source_tree(&src);
            basis_tree(&src, &dst);
            basis_tree(&src, &reference);
            let p = format!("--protocol={protocol}");
            let args = ["-aX", "--delete", p.as_str()];
            let mut o = Options::archive();
            o.xattrs = 1;
            o.delete = Some(ferrsync::DeleteTiming::Auto);
            o.protocol = Some(protocol);
            let shim = write_shim(tmp.path());
            for round in 1..=2 {
                if round == 2 {
                    change_source(&src);
                }
                rsync_alone(&args, &src, &reference);
                run_way(way, &o, &args, &src, &dst, &shim)
                    .unwrap_or_else(|e| panic!("{way:?} p{protocol} run {round}: {e}"));
                let d = differences(&reference, &dst, protocol >= 31);
                assert!(
                    d.is_empty(),
                    "{way:?} p{protocol} run {round}:\n{}",
                    d.join("\n")
                );
                assert!(leftover_temps(&dst).is_empty());
            }
            // The reference really carries the attributes.
            let x = xattrs_of(&dst);
            assert_eq!(
                x[Path::new("same.txt")].get(&b"user.long"[..]),
                Some(&vec![b'N'; 50]),
                "{way:?} p{protocol}"
            );
            assert!(!x[Path::new("same.txt")].contains_key(&b"user.gone"[..]));
            assert_eq!(
                x[Path::new("plain.txt")].get(&b"user.late"[..]),
                Some(&vec![b'Z'; 1000])
            );
        }
    }
}

#[test]
fn xattrs_are_refused_below_protocol_30() {
    // Every way fails (each side refuses by itself; whichever is first
    // ends the session) and nothing is copied.
    for way in WAYS {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let dst = tmp.path().join("dst");
        source_tree(&src);
        fs::create_dir_all(&dst).unwrap();
        let args = ["-aX", "--protocol=29"];
        let mut o = Options::archive();
        o.xattrs = 1;
        o.protocol = Some(29);
        let shim = write_shim(tmp.path());
        let err = run_way(way, &o, &args, &src, &dst, &shim).expect_err("-X at protocol 29");
        assert!(
            err.contains("requires protocol 30 or higher") || err.contains("code 2"),
            "{way:?}: {err}"
        );
        assert_eq!(fs::read_dir(&dst).unwrap().count(), 0, "{way:?}");
    }
    // Our client says it in rsync's words.
    let tmp = tempfile::tempdir().unwrap();
    let mut o = Options::archive();
    o.xattrs = 1;
    o.protocol = Some(29);
    let t = Transfer::new(o);
    let err = rt()
        .block_on(t.pull(
            &RemoteCommand::local(env!("CARGO_BIN_EXE_ferrsync")),
            &[slash(tmp.path())],
            &tmp.path().join("d"),
        ))
        .expect_err("-X at protocol 29");
    assert!(
        err.to_string()
            .contains("--xattrs requires protocol 30 or higher (negotiated 29)."),
        "{err}"
    );
    // So does our server, to the client, before it reads anything more.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrsync"))
        .args(["--server", "-logDtpXr", "."])
        .arg(tmp.path().join("d"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&29i32.to_le_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--xattrs requires protocol 30 or higher (negotiated 29)."),
        "{text:?}"
    );
}

#[test]
fn xattrs_with_inplace_delay_updates_hard_links_and_double_x() {
    // (rsync args, options) at protocol 32; the source also holds rsync's
    // own `user.rsync.%stat`, sent only with -XX (and removed from the
    // receiving side with one -X, as rsync does).
    type Tweak = fn(&mut Options);
    let variants: [(&[&str], Tweak); 4] = [
        (&["-aX", "--inplace"], |o| o.inplace = true),
        (&["-aX", "--delay-updates"], |o| o.delay_updates = true),
        (&["-aXH"], |o| o.hard_links = true),
        (&["-aXX"], |o| o.xattrs = 2),
    ];
    for (args, tweak) in variants {
        for way in WAYS {
            let tmp = tempfile::tempdir().unwrap();
            let src = tmp.path().join("src");
            let dst = tmp.path().join("dst");
            let reference = tmp.path().join("ref");
            source_tree(&src);
            set(&src.join("a.txt"), "user.rsync.%stat", b"100644 0,0 0:0");
            fs::hard_link(src.join("a.txt"), src.join("dir/a-link.txt")).unwrap();
            set_times(&src, 1_700_000_000, 123_456_789);
            basis_tree(&src, &dst);
            basis_tree(&src, &reference);
            for root in [&dst, &reference] {
                set(&root.join("plain.txt"), "user.rsync.%stat", b"keep?");
            }
            let mut o = Options::archive();
            o.xattrs = 1;
            tweak(&mut o);
            let shim = write_shim(tmp.path());
            rsync_alone(args, &src, &reference);
            run_way(way, &o, args, &src, &dst, &shim)
                .unwrap_or_else(|e| panic!("{way:?} {args:?}: {e}"));
            let d = differences(&reference, &dst, true);
            assert!(d.is_empty(), "{way:?} {args:?}:\n{}", d.join("\n"));
            let sent = xattrs_of(&dst)[Path::new("a.txt")].contains_key(&b"user.rsync.%stat"[..]);
            assert_eq!(sent, o.xattrs == 2, "{way:?} {args:?}");
            assert!(leftover_temps(&dst).is_empty());
        }
    }
}
