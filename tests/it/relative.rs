//! `-R` / `--relative` (with `/./`, `--no-implied-dirs`) and
//! `--files-from` (local file, stdin, a file on the remote side,
//! `--from0`, with and without `-r`) against real rsync 3.5.0: every way
//! (our client pushing to / pulling from `rsync --server`, real rsync
//! pushing to / pulling from `ferrsync --server`) and the binary's local
//! copy must leave the tree rsync alone leaves from the same start.

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::tree::{Compare, compare_trees, write_shim};
use common::ways::{WAYS, Way};
use ferrsync::engine::options::parse_client_args;
use ferrsync::{RemoteCommand, Transfer};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferrsync")
}

const T: i64 = 1_600_000_000;

/// `name` (ending `/` for a directory), content, mode.
const SRC: &[(&str, &str, u32)] = &[
    ("a/", "", 0o750),
    ("a/b/", "", 0o711),
    ("a/b/c/", "", 0o755),
    ("a/b/c/f1", "one", 0o644),
    ("a/b/c/d/", "", 0o700),
    ("a/b/c/d/f2", "two", 0o600),
    ("a/b/g", "gee", 0o640),
    ("a/h", "aitch", 0o644),
    ("x/", "", 0o775),
    ("x/y/", "", 0o751),
    ("x/y/z", "zed", 0o644),
    ("top.txt", "top", 0o644),
    ("sp ace/", "", 0o755),
    ("sp ace/f", "f", 0o644),
];

fn write_src(root: &Path) {
    fs::create_dir_all(root).unwrap();
    for (p, c, _) in SRC {
        let path = root.join(p.trim_end_matches('/'));
        if p.ends_with('/') {
            fs::create_dir_all(&path).unwrap();
        } else {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, c).unwrap();
        }
    }
    // Modes and times last, deepest first, so directory times stay fixed.
    let mut all: Vec<&(&str, &str, u32)> = SRC.iter().collect();
    all.sort_by_key(|(p, _, _)| std::cmp::Reverse(p.len()));
    for (i, (p, _, mode)) in all.iter().enumerate() {
        let path = root.join(p.trim_end_matches('/'));
        fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).unwrap();
        let t = filetime::FileTime::from_unix_time(T + i as i64 * 100, 0);
        filetime::set_file_mtime(&path, t).unwrap();
    }
    let t = filetime::FileTime::from_unix_time(T - 5000, 0);
    filetime::set_file_mtime(root, t).unwrap();
}

/// A destination that already holds something: extraneous files at
/// several depths (for `--delete`).
fn write_dst(root: &Path) {
    for p in ["a/b/c/old", "a/b/stale", "a/b/c/d/old2", "keep"] {
        let path = root.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "old").unwrap();
        let t = filetime::FileTime::from_unix_time(T - 100, 0);
        filetime::set_file_mtime(&path, t).unwrap();
    }
    // The directories too (deepest first), so that one no transfer
    // touches has the same time in every copy.
    for d in ["a/b/c/d", "a/b/c", "a/b", "a"] {
        let t = filetime::FileTime::from_unix_time(T - 200, 0);
        filetime::set_file_mtime(root.join(d), t).unwrap();
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn run_prog(prog: &str, args: &[String], stdin: Option<&[u8]>) -> Result<String, String> {
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().unwrap();
    if let Some(data) = stdin {
        use std::io::Write;
        let mut i = child.stdin.take().unwrap();
        i.write_all(data).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{prog} {args:?}: {:?}\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// One transfer of `sources` into `dst` in `way`.
fn run_way(
    way: Way,
    args: &[String],
    sources: &[String],
    dst: &Path,
    shim: &Path,
) -> Result<(), String> {
    match way {
        Way::OursPush | Way::OursPull => {
            let cli = parse_client_args(args).map_err(|e| e.to_string())?;
            let t = Transfer::new(cli.opts);
            let cmd = RemoteCommand::local("rsync");
            let r = if matches!(way, Way::OursPush) {
                let srcs: Vec<PathBuf> = sources.iter().map(PathBuf::from).collect();
                rt().block_on(t.push(&cmd, &srcs, &format!("{}/", dst.display())))
            } else {
                rt().block_on(t.pull(&cmd, sources, dst))
            };
            let r = r.map_err(|e| format!("{way:?}: {e}"))?;
            if r.errors.is_empty() {
                Ok(())
            } else {
                Err(format!("{way:?}: {:?}", r.errors))
            }
        }
        Way::RsyncPush | Way::RsyncPull => {
            let mut a: Vec<String> = args.to_vec();
            a.push("-e".into());
            a.push(shim.display().to_string());
            a.push(format!("--rsync-path={}", bin()));
            if matches!(way, Way::RsyncPush) {
                a.extend(sources.iter().cloned());
                a.push(format!("localhost:{}/", dst.display()));
            } else {
                a.extend(sources.iter().map(|s| format!("localhost:{s}")));
                a.push(format!("{}/", dst.display()));
            }
            run_prog("rsync", &a, None).map(|_| ())
        }
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

/// Every way and the binary's local copy against rsync alone, from
/// fresh copies of the same start. `S` in a source word is the source
/// root; `L` in an argument is the files-from list's path.
fn check_case(args: &[&str], sources: &[&str], with_dst: bool, cmp: Compare, list: Option<&[u8]>) {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let shim = write_shim(&base);
    let src = base.join("src");
    write_src(&src);
    let list_path = base.join("list");
    if let Some(l) = list {
        fs::write(&list_path, l).unwrap();
    }
    let sub = |s: &str| {
        s.replace("{S}", &src.display().to_string())
            .replace("{L}", &list_path.display().to_string())
    };
    let args: Vec<String> = args.iter().map(|a| sub(a)).collect();
    let sources: Vec<String> = sources.iter().map(|s| sub(s)).collect();
    let fresh = |name: &str| {
        let d = base.join(name);
        if with_dst {
            write_dst(&d);
        }
        d
    };
    let reference = fresh("ref");
    // A list on the remote side is the same list to rsync alone.
    let remote_list = args.iter().any(|a| a.starts_with("--files-from=:"));
    let mut ra: Vec<String> = args
        .iter()
        .map(|a| a.replace("--files-from=:", "--files-from="))
        .collect();
    ra.extend(sources.iter().cloned());
    ra.push(format!("{}/", reference.display()));
    run_prog("rsync", &ra, None).unwrap();
    let mut failures = Vec::new();
    for way in WAYS {
        let dst = fresh(&format!("dst-{way:?}"));
        if let Err(e) = run_way(way, &args, &sources, &dst, &shim) {
            failures.push(format!("{way:?} {args:?} {sources:?}: {e}"));
            continue;
        }
        same_root_time(&reference, &dst);
        let diffs = compare_trees(&reference, &dst, cmp);
        if !diffs.is_empty() {
            failures.push(format!("{way:?} {args:?} {sources:?}: {diffs:?}"));
        }
    }
    if remote_list {
        // rsync refuses a remote list in a local copy, and so do we.
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        return;
    }
    // The binary, locally.
    let dst = fresh("dst-local");
    let mut la = args.clone();
    la.extend(sources.iter().cloned());
    la.push(format!("{}/", dst.display()));
    match run_prog(bin(), &la, None) {
        Ok(_) => {
            same_root_time(&reference, &dst);
            let diffs = compare_trees(&reference, &dst, cmp);
            if !diffs.is_empty() {
                failures.push(format!("local {args:?} {sources:?}: {diffs:?}"));
            }
        }
        Err(e) => failures.push(format!("local: {e}")),
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The destination directory itself is made by each run (at its own
/// time) unless "." is transferred: give it the reference's time.
fn same_root_time(reference: &Path, dst: &Path) {
    let m = fs::metadata(reference).unwrap();
    let t = filetime::FileTime::from_last_modification_time(&m);
    filetime::set_file_mtime(dst, t).unwrap();
}

fn all() -> Compare {
    Compare::all(true)
}

#[test]
fn relative_with_dot_marker_every_way() {
    check_case(
        &["-a", "-R"],
        &["{S}/./a/b/c", "{S}/./x/y"],
        false,
        all(),
        None,
    );
}

#[test]
fn relative_shared_parents_and_slash_ending() {
    check_case(
        &["-a", "-R"],
        &["{S}/./a/b/c/", "{S}/./a/b/g", "{S}/./a/h", "{S}/./x/y/"],
        false,
        all(),
        None,
    );
}

#[test]
fn relative_files_only_and_second_marker() {
    check_case(
        &["-rlpt", "-R"],
        &["{S}/./a/b/./c/f1", "{S}/./top.txt", "{S}/./x/./y/z"],
        false,
        all(),
        None,
    );
}

#[test]
fn relative_delete_only_in_content_dirs() {
    check_case(
        &["-a", "-R", "--delete"],
        &["{S}/./a/b/c/"],
        true,
        all(),
        None,
    );
}

/// Below protocol 30 the list has no content-directory flag: a top
/// directory and the directories under it are content, an implied `-R`
/// parent or a `--dirs` subdirectory is not, so `--delete` leaves them
/// alone (found: we deleted in `-R` parents at 29, both as receiver and,
/// by flagging the parents top, as sender). Every way against rsync alone.
#[test]
fn delete_scope_at_protocols_29_and_30() {
    for p in ["--protocol=29", "--protocol=30"] {
        check_case(
            &["-a", "-R", "--delete", p],
            &["{S}/./a/b/c/"],
            true,
            all(),
            None,
        );
        check_case(&["-lptd", "--delete", p], &["{S}/"], true, all(), None);
    }
}

#[test]
fn relative_dirs_without_recursion() {
    check_case(
        &["-lptd", "-R"],
        &["{S}/./a/b/", "{S}/./x"],
        false,
        all(),
        None,
    );
}

#[test]
fn no_implied_dirs() {
    // Missing parents are made with default permissions and the time of
    // their making; only the names, modes and file times can be equal.
    let cmp = Compare {
        dir_times: false,
        ..all()
    };
    check_case(
        &["-a", "-R", "--no-implied-dirs"],
        &["{S}/./a/b/c"],
        false,
        cmp,
        None,
    );
    // Existing parents keep their attributes.
    check_case(
        &["-a", "-R", "--no-implied-dirs"],
        &["{S}/./a/b/c/d"],
        true,
        cmp,
        None,
    );
}

#[test]
fn no_relative_undoes_relative() {
    check_case(
        &["-a", "-R", "--no-relative"],
        &["{S}/./a/b/c"],
        false,
        all(),
        None,
    );
}

// No comment lines: rsync forwards a local list to a remote sender as it
// is (only the sender's own reading skips comments), so a comment would
// be a missing name in a pull, for rsync alone as well.
const LIST: &[u8] = b"a/b/c\n\nx/y/z\ntop.txt\nsp ace/\n";

#[test]
fn files_from_local_file_without_recursion() {
    // -a with --files-from does not recurse: directories come alone.
    check_case(
        &["-a", "--files-from={L}"],
        &["{S}/"],
        false,
        all(),
        Some(LIST),
    );
}

#[test]
fn files_from_local_file_with_recursion() {
    check_case(
        &["-a", "-r", "--files-from={L}"],
        &["{S}/"],
        false,
        all(),
        Some(LIST),
    );
}

#[test]
fn files_from_from0_and_dot_marker() {
    check_case(
        &["-a", "--from0", "--files-from={L}"],
        &["{S}/"],
        false,
        all(),
        Some(b"a/./b/c/f1\0x/y\0a/h\0"),
    );
}

#[test]
fn files_from_remote_file() {
    check_case(
        &["-a", "--files-from=:{L}"],
        &["{S}/"],
        false,
        all(),
        Some(LIST),
    );
    check_case(
        &["-a", "-r", "--from0", "--files-from=:{L}"],
        &["{S}/"],
        false,
        all(),
        Some(b"a/b\0top.txt\0"),
    );
}

#[test]
fn files_from_no_relative() {
    check_case(
        &["-a", "--no-relative", "--files-from={L}"],
        &["{S}/"],
        false,
        all(),
        Some(b"a/b/c/f1\nx/y/z\n"),
    );
}

#[test]
fn files_from_stdin_through_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let shim = write_shim(&base);
    let src = base.join("src");
    write_src(&src);
    let s = format!("{}/", src.display());
    let cases: Vec<(Vec<String>, &str)> = vec![
        (strings(&["-a", "--files-from=-"]), "local"),
        (strings(&["-a", "-r", "--files-from=-"]), "local"),
        (
            vec![
                "-a".into(),
                "--files-from=-".into(),
                "-e".into(),
                shim.display().to_string(),
                "--rsync-path=rsync".into(),
            ],
            "pull",
        ),
        (
            vec![
                "-a".into(),
                "--files-from=-".into(),
                "-e".into(),
                shim.display().to_string(),
                "--rsync-path=rsync".into(),
            ],
            "push",
        ),
    ];
    for (k, (args, how)) in cases.iter().enumerate() {
        let reference = base.join(format!("ref{k}"));
        let mine = base.join(format!("mine{k}"));
        let mut ra = args.clone();
        ra.retain(|a| {
            !a.starts_with("--rsync-path")
                && !a.starts_with("-e")
                && *a != shim.display().to_string()
        });
        ra.push(s.clone());
        ra.push(format!("{}/", reference.display()));
        run_prog("rsync", &ra, Some(LIST)).unwrap();
        let mut ma = args.clone();
        match *how {
            "pull" => {
                ma.push(format!("localhost:{s}"));
                ma.push(format!("{}/", mine.display()));
            }
            "push" => {
                ma.push(s.clone());
                ma.push(format!("localhost:{}/", mine.display()));
            }
            _ => {
                ma.push(s.clone());
                ma.push(format!("{}/", mine.display()));
            }
        }
        run_prog(bin(), &ma, Some(LIST)).unwrap();
        same_root_time(&reference, &mine);
        let diffs = compare_trees(&reference, &mine, all());
        assert!(diffs.is_empty(), "{args:?} {how}: {diffs:?}");
    }
}

/// The itemized changes of the binary's local copy are rsync's.
#[test]
fn itemize_matches_rsync() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let src = base.join("src");
    write_src(&src);
    fs::write(base.join("list"), LIST).unwrap();
    let runs: Vec<Vec<String>> = vec![
        vec![
            "-a".into(),
            "-R".into(),
            "-i".into(),
            format!("{}/./a/b/c", src.display()),
            format!("{}/./x/y", src.display()),
        ],
        vec![
            "-a".into(),
            "-i".into(),
            format!("--files-from={}", base.join("list").display()),
            format!("{}/", src.display()),
        ],
    ];
    for (k, run) in runs.iter().enumerate() {
        let r = base.join(format!("r{k}"));
        let m = base.join(format!("m{k}"));
        fs::create_dir_all(&r).unwrap();
        fs::create_dir_all(&m).unwrap();
        let mut ra = run.clone();
        ra.push(format!("{}/", r.display()));
        let mut ma = run.clone();
        ma.push(format!("{}/", m.display()));
        let a = run_prog("rsync", &ra, None).unwrap();
        let b = run_prog(bin(), &ma, None).unwrap();
        let sorted = |s: &str| {
            let mut v: Vec<String> = s.lines().map(str::to_string).collect();
            v.sort();
            v
        };
        assert_eq!(sorted(&a), sorted(&b), "{run:?}");
    }
}

#[test]
fn dot_dot_in_relative_part_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let src = base.join("src");
    write_src(&src);
    let arg = format!("{}/./a/../x", src.display());
    let dst = format!("{}/", base.join("d").display());
    let a = Command::new("rsync")
        .args(["-a", "-R", &arg, &dst])
        .output()
        .unwrap();
    let b = Command::new(bin())
        .args(["-a", "-R", &arg, &dst])
        .output()
        .unwrap();
    assert_eq!(a.status.code(), b.status.code());
    assert!(String::from_utf8_lossy(&b.stderr).contains("found \"..\" dir in relative path"));
}

/// A `--files-from` list "on the remote side" of a local copy, or naming
/// another host than the transfer's, is refused as rsync refuses it: the
/// same text, the same exit code, nothing copied.
#[test]
fn remote_files_from_is_refused_where_rsync_refuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let src = base.join("src");
    write_src(&src);
    fs::write(base.join("list"), LIST).unwrap();
    let s = format!("{}/", src.display());
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "-a".into(),
                format!("--files-from=:{}", base.join("list").display()),
                s.clone(),
                "DST".into(),
            ],
            "--files-from cannot be remote when the transfer is local",
        ),
        (
            vec![
                "-a".into(),
                format!("--files-from=host:{}", base.join("list").display()),
                s.clone(),
                "DST".into(),
            ],
            "--files-from cannot be remote when the transfer is local",
        ),
        (
            vec![
                "-a".into(),
                format!("--files-from=other:{}", base.join("list").display()),
                format!("localhost:{s}"),
                "DST".into(),
            ],
            "--files-from hostname is not the same as the transfer hostname",
        ),
        (
            vec![
                "-a".into(),
                format!("--files-from=other:{}", base.join("list").display()),
                s.clone(),
                "localhost:DST".into(),
            ],
            "--files-from hostname is not the same as the transfer hostname",
        ),
    ];
    for (k, (args, text)) in cases.iter().enumerate() {
        let mut codes = Vec::new();
        for prog in ["rsync", bin()] {
            let dst = base.join(format!("d{k}-{}", codes.len()));
            let a: Vec<String> = args
                .iter()
                .map(|w| w.replace("DST", &format!("{}/", dst.display())))
                .collect();
            let out = Command::new(prog).args(&a).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr).to_string();
            assert!(err.contains(text), "{prog} {a:?}: {err}");
            assert!(!dst.exists(), "{prog} {a:?} copied something");
            codes.push(out.status.code());
        }
        assert_eq!(codes[0], codes[1], "{args:?}");
        assert_eq!(codes[0], Some(1));
    }
}

/// `--files-from` at protocols 29 and 30 (the list travels as plain
/// bytes between multiplexed parts), a local and a remote list, with and
/// without `--from0`, every way against rsync alone.
#[test]
fn files_from_at_protocols_29_and_30() {
    for p in ["--protocol=29", "--protocol=30"] {
        check_case(
            &["-a", p, "--files-from={L}"],
            &["{S}/"],
            false,
            all(),
            Some(LIST),
        );
        check_case(
            &["-a", "-r", p, "--from0", "--files-from={L}"],
            &["{S}/"],
            false,
            all(),
            Some(b"a/./b/c\0x/y\0top.txt\0"),
        );
        check_case(
            &["-a", p, "--files-from=:{L}"],
            &["{S}/"],
            false,
            all(),
            Some(LIST),
        );
        check_case(
            &["-a", p, "--from0", "--files-from=:{L}"],
            &["{S}/"],
            false,
            all(),
            Some(b"a/b/g\0sp ace/f\0"),
        );
    }
}

/// Runs `prog args`, killing it after `secs`: `Err` on failure or when
/// it had to be killed (a deadlock).
fn run_bounded(prog: &str, args: &[String], secs: u64) -> Result<std::time::Duration, String> {
    let start = std::time::Instant::now();
    let mut child = Command::new(prog)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return if st.success() {
                Ok(start.elapsed())
            } else {
                Err(format!(
                    "{prog} {:?}: {st}\n{err}",
                    &args[..args.len().min(6)]
                ))
            };
        }
        if start.elapsed().as_secs() > secs {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{prog}: still running after {secs} s (deadlock)"));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A huge `--files-from` list (60,000 names, 2.8 MB: forty times what
/// fits in the pipes) forwarded to
/// the sender: the forwarding interleaves with reading the sender's file
/// list, so neither side blocks on a full pipe. Our client pulling from
/// `rsync --server` with a local list, real rsync pulling from `ferrsync
/// --server` (our sender reads the forwarded list), and both pushes with
/// a list on the receiving side (`:FILE`: the receiver forwards it to
/// the sending client), each within a time bound, each equal to rsync
/// alone.
#[test]
fn huge_forwarded_files_from_list_does_not_deadlock() {
    const DIRS: usize = 60;
    const PER: usize = 1000;
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let shim = write_shim(&base);
    let src = base.join("src");
    let mut list = Vec::with_capacity(DIRS * PER * 40);
    let t = filetime::FileTime::from_unix_time(T, 0);
    for d in 0..DIRS {
        let dir = src.join(format!("directory-{d:04}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..PER {
            let name = format!("directory-{d:04}/a-rather-long-file-name-{f:06}");
            let p = src.join(&name);
            fs::File::create(&p).unwrap();
            filetime::set_file_mtime(&p, t).unwrap();
            list.extend_from_slice(name.as_bytes());
            list.push(b'\n');
        }
        filetime::set_file_mtime(&dir, t).unwrap();
    }
    filetime::set_file_mtime(&src, t).unwrap();
    assert!(list.len() > 2_500_000, "{}", list.len());
    let lp = base.join("list");
    fs::write(&lp, &list).unwrap();
    let s = format!("{}/", src.display());
    let reference = base.join("ref");
    let flags = |ff: &str| {
        vec![
            "-rt".to_string(),
            format!("--files-from={ff}{}", lp.display()),
        ]
    };
    let mut ra = flags("");
    ra.push(s.clone());
    ra.push(format!("{}/", reference.display()));
    let alone = run_bounded("rsync", &ra, 600).unwrap();
    let bound = 120 + 4 * alone.as_secs();
    let cmp = Compare {
        dir_times: false,
        ..all()
    };
    let mut failures = Vec::new();
    for how in ["pull", "rpull", "push", "rpush"] {
        let dst = base.join(format!("dst-{how}"));
        let mut a = flags(if how.ends_with("push") { ":" } else { "" });
        a.push("-e".into());
        a.push(shim.display().to_string());
        let (prog, server) = if how.starts_with('r') {
            ("rsync", bin())
        } else {
            (bin(), "rsync")
        };
        a.push(format!("--rsync-path={server}"));
        if how.ends_with("pull") {
            a.push(format!("localhost:{s}"));
            a.push(format!("{}/", dst.display()));
        } else {
            a.push(s.clone());
            a.push(format!("localhost:{}/", dst.display()));
        }
        match run_bounded(prog, &a, bound) {
            Ok(took) => {
                eprintln!("{how}: {took:?} (rsync alone {alone:?})");
                same_root_time(&reference, &dst);
                let diffs = compare_trees(&reference, &dst, cmp);
                if !diffs.is_empty() {
                    failures.push(format!(
                        "{how}: {} differences, first {:?}",
                        diffs.len(),
                        diffs.first()
                    ));
                }
            }
            Err(e) => failures.push(format!("{how}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
