//! `-A` against real rsync 3.5.0 in every direction: the result must equal
//! what rsync alone makes of the same start, POSIX ACLs included (access
//! ACLs with named users and groups and a mask, default ACLs of
//! directories, files with only mode bits, ACLs removed on the receiving
//! side), compared with `getfacl`. Below protocol 30 `-A` is refused, as
//! rsync does. Needs `setfacl`/`getfacl` (the `acl` package) and a file
//! system with ACLs; skipped with a note otherwise.

use crate::common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::tree::{Compare, compare_trees, leftover_temps, write_shim};
use common::ways::WAYS;
use ferrsync::Options;

fn slash(p: &Path) -> String {
    format!("{}/", p.display())
}

fn setfacl(p: &Path, args: &[&str]) {
    let out = Command::new("setfacl").args(args).arg(p).output().unwrap();
    assert!(
        out.status.success(),
        "setfacl {args:?} {}: {}",
        p.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether `setfacl` exists and the temporary file system takes ACLs.
fn acls_available() -> bool {
    let tmp = tempfile::tempdir().unwrap();
    let ok = Command::new("setfacl")
        .args(["-m", "u:1:r"])
        .arg(tmp.path())
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipping: setfacl missing or no ACL support on the temp file system");
    }
    ok
}

/// `getfacl -R -n -P` of the tree, relative names, sorted by path.
fn acls_of(root: &Path) -> String {
    let out = Command::new("getfacl")
        .args(["-R", "-n", "-P", "-p", "."])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut blocks: Vec<&str> = text
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .collect();
    blocks.sort_unstable();
    blocks.join("\n\n")
}

fn differences(a: &Path, b: &Path) -> Vec<String> {
    let mut d = compare_trees(a, b, Compare::all(true));
    let (x, y) = (acls_of(a), acls_of(b));
    if x != y {
        d.push(format!("ACLs differ:\n--- rsync alone\n{x}\n--- ours\n{y}"));
    }
    d
}

fn set_times(root: &Path, secs: i64) {
    let t = filetime::FileTime::from_unix_time(secs, 0);
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
    for p in items.iter().rev() {
        filetime::set_symlink_file_times(p, t, t).unwrap();
    }
}

fn mode(p: &Path, m: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
}

/// The source: access ACLs with named users (with and without a local
/// name) and groups, a restricting mask, an owning group that differs from
/// the mask, default ACLs on directories, the same ACL twice (sent by
/// index), files with only mode bits, and a symlink.
fn source_tree(src: &Path) {
    fs::create_dir_all(src.join("dir/sub")).unwrap();
    fs::create_dir_all(src.join("plain_dir")).unwrap();
    for (f, m) in [
        ("a.txt", 0o644),
        ("plain.txt", 0o640),
        ("masked.txt", 0o664),
        ("group.txt", 0o600),
        ("same.txt", 0o644),
        ("dir/c.txt", 0o644),
        ("dir/sub/d.txt", 0o600),
    ] {
        fs::write(src.join(f), format!("{f}\n")).unwrap();
        mode(&src.join(f), m);
    }
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    setfacl(
        &src.join("a.txt"),
        &["-m", "u:daemon:rw,g:adm:r,u:4242:rwx"],
    );
    setfacl(
        &src.join("dir/c.txt"),
        &["-m", "u:daemon:rw,g:adm:r,u:4242:rwx"],
    );
    setfacl(&src.join("masked.txt"), &["-m", "u:bin:rwx,m::r"]);
    setfacl(&src.join("group.txt"), &["-m", "g::r-x,g:users:rw,m::rw"]);
    setfacl(&src.join("same.txt"), &["-m", "g:4343:rw"]);
    setfacl(&src.join("dir"), &["-m", "u:bin:rx"]);
    setfacl(
        &src.join("dir"),
        &["-d", "-m", "u:daemon:rwx,g:users:rx,o::-"],
    );
    setfacl(&src.join("dir/sub"), &["-d", "-m", "g:adm:rwx"]);
    set_times(src, 1_700_000_000);
}

/// The receiving side before the transfer: ACLs that must go or change,
/// and `same.txt` with the source's data and time but another ACL.
fn basis_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst.join("dir/sub")).unwrap();
    fs::create_dir_all(dst.join("plain_dir")).unwrap();
    fs::write(dst.join("plain.txt"), b"old\n").unwrap();
    setfacl(&dst.join("plain.txt"), &["-m", "u:daemon:rwx"]);
    setfacl(&dst.join("plain_dir"), &["-d", "-m", "u:bin:rwx"]);
    setfacl(&dst.join("dir/sub"), &["-d", "-m", "u:daemon:r"]);
    fs::copy(src.join("same.txt"), dst.join("same.txt")).unwrap();
    setfacl(&dst.join("same.txt"), &["-b", "-m", "u:nobody:r"]);
    set_times(dst, 1_600_000_000);
    let t = filetime::FileTime::from_unix_time(1_700_000_000, 0);
    filetime::set_file_mtime(dst.join("same.txt"), t).unwrap();
}

/// Changes between the first and the second run: an ACL removed, one
/// changed, a default ACL removed, one added.
fn change_source(src: &Path) {
    setfacl(&src.join("a.txt"), &["-b"]);
    setfacl(&src.join("dir/c.txt"), &["-m", "u:daemon:r,g:users:rwx"]);
    setfacl(&src.join("dir"), &["-k"]);
    setfacl(&src.join("plain_dir"), &["-d", "-m", "g:adm:rx"]);
    setfacl(&src.join("plain.txt"), &["-m", "u:bin:r"]);
    set_times(src, 1_700_000_000);
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

fn acl_options(numeric: bool) -> Options {
    let mut o = if numeric {
        Options::archive()
    } else {
        let mut o = Options::default();
        o.recursive = true;
        o.times = true;
        o.perms = true;
        o.links = true;
        o
    };
    o.acls = true;
    o.numeric_ids = numeric;
    o
}

fn check(args: &[&str], numeric: bool) {
    for way in WAYS {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let dst = tmp.path().join("dst");
        let reference = tmp.path().join("ref");
        source_tree(&src);
        basis_tree(&src, &dst);
        basis_tree(&src, &reference);
        let o = acl_options(numeric);
        let shim = write_shim(tmp.path());
        for round in 1..=2 {
            if round == 2 {
                change_source(&src);
            }
            rsync_alone(args, &src, &reference);
            common::ways::run(way, &o, args, &src, &dst, &shim)
                .unwrap_or_else(|e| panic!("{way:?} {args:?} run {round}: {e}"));
            let d = differences(&reference, &dst);
            assert!(
                d.is_empty(),
                "{way:?} {args:?} run {round}:\n{}",
                d.join("\n")
            );
            assert!(leftover_temps(&dst).is_empty());
            // The ACLs really travelled.
            let text = acls_of(&dst);
            let want = if round == 1 {
                "user:4242:rwx"
            } else {
                "group:100:rwx"
            };
            assert!(text.contains(want), "{way:?} run {round}: {text}");
        }
    }
}

#[test]
fn acls_match_rsync_alone_every_way() {
    if !acls_available() {
        return;
    }
    check(&["-rtplA"], false);
}

#[test]
fn acls_with_archive_and_numeric_ids_match_rsync_alone() {
    if !acls_available() {
        return;
    }
    check(&["-a", "-A", "--numeric-ids"], true);
}

#[test]
fn acls_are_refused_below_protocol_30() {
    if !acls_available() {
        return;
    }
    for way in WAYS {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let dst = tmp.path().join("dst");
        source_tree(&src);
        fs::create_dir_all(&dst).unwrap();
        let mut o = acl_options(false);
        o.protocol = Some(29);
        let shim = write_shim(tmp.path());
        let err = common::ways::run(way, &o, &["-rtpA", "--protocol=29"], &src, &dst, &shim)
            .expect_err("-A at protocol 29");
        assert!(
            err.contains("--acls requires protocol 30 or higher") || err.contains("code 2"),
            "{way:?}: {err}"
        );
        assert_eq!(fs::read_dir(&dst).unwrap().count(), 0, "{way:?}");
    }
}

#[test]
fn our_client_sends_the_server_words_rsync_sends() {
    // `rsync -rtA` sends `-tpAre.…` (-A implies -p): our client must name
    // the same options in its server command line.
    let o = acl_options(false);
    let line = format!("{:?}", o.server_args(false));
    assert!(line.contains('A') && line.contains('p'), "{line}");
    let rs = Command::new("rsync")
        .args(["-rtA", "-e", "sh -c 'shift; echo \"$@\" >&2; exit 1' x"])
        .arg("/nonexistent-src/")
        .arg("h:/x")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&rs.stderr);
    assert!(err.contains("-tpAr"), "{err}");
}
