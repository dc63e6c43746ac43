//! Tasks in Module mode against a real `rsync --daemon` (3.5.0): for each
//! task field, in both directions, the task's outcome equals what the
//! equivalent rsync command line produces from the same start.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::tree::{Compare, compare_trees, is_root};
use ferrsync::task::{Direction, RunStatus, Secret, Task};

use common::daemon::real_daemon;

fn set_mtime(p: &Path, secs: i64) {
    let t = filetime::FileTime::from_unix_time(secs, 0);
    filetime::set_symlink_file_times(p, t, t).unwrap();
}

/// The source tree: nested directories, files of several kinds and
/// modes, a symlink, fixed mtimes.
fn source_tree(root: &Path) {
    fs::create_dir_all(root.join("sub/deep")).unwrap();
    let files: &[(&str, &[u8], u32)] = &[
        ("a.txt", b"alpha\n", 0o644),
        ("b.tmp", b"scratch\n", 0o600),
        ("run.sh", b"#!/bin/sh\necho hi\n", 0o755),
        ("sub/c.dat", &[7u8; 70_000], 0o640),
        ("sub/deep/d.txt", b"deep text\n", 0o604),
        ("sub/changed.txt", b"new version of the file\n", 0o644),
    ];
    for (i, (name, data, mode)) in files.iter().enumerate() {
        let p = root.join(name);
        fs::write(&p, data).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
        set_mtime(&p, 1_600_000_000 + i64::try_from(i).unwrap() * 1000);
    }
    std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
    xattr::set(root.join("a.txt"), "user.note", b"kept by preserve_xattrs").unwrap();
    xattr::set(root.join("sub"), "user.long", &[b'L'; 100]).unwrap();
    fs::set_permissions(root.join("sub/deep"), fs::Permissions::from_mode(0o750)).unwrap();
    for (d, t) in [("sub/deep", 1_600_100_000), ("sub", 1_600_200_000)] {
        set_mtime(&root.join(d), t);
    }
}

/// What the destination holds before: an extraneous file and an old
/// version of one file (same size and mtime would hide it: not here).
fn dest_start(root: &Path, under: &str) {
    let base = root.join(under);
    fs::create_dir_all(base.join("sub")).unwrap();
    fs::write(base.join("extraneous.txt"), b"delete me?\n").unwrap();
    fs::write(base.join("sub/changed.txt"), b"old\n").unwrap();
    set_mtime(&base.join("sub/changed.txt"), 1_500_000_000);
}

/// The rsync command-line words for a task's fields (the mapping the
/// task layer documents, restated here on its own).
fn rsync_words(t: &Task) -> Vec<String> {
    let mut w = Vec::new();
    for (on, word) in [
        (t.recursive, "-r"),
        (t.times, "-t"),
        (t.compress, "-z"),
        (t.archive, "-a"),
        (t.delete, "--delete-delay"),
        (t.quiet, "-q"),
        (t.preserve_permissions, "-p"),
        (t.delay_updates, "--delay-updates"),
        (t.preserve_xattrs, "-X"),
    ] {
        if on {
            w.push(word.to_string());
        }
    }
    w.extend(t.extra.iter().map(|e| e.replace('\'', "")));
    w
}

struct Case {
    name: &'static str,
    change: fn(&mut Task),
    /// Whether mtimes are comparable (not when times are not kept).
    times: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "defaults",
        change: |_| {},
        times: true,
    },
    Case {
        name: "recursive off",
        change: |t| t.recursive = false,
        times: true,
    },
    Case {
        name: "times off",
        change: |t| t.times = false,
        times: false,
    },
    Case {
        name: "compress off",
        change: |t| t.compress = false,
        times: true,
    },
    Case {
        name: "archive",
        change: |t| t.archive = true,
        times: true,
    },
    Case {
        name: "delete",
        change: |t| t.delete = true,
        times: true,
    },
    Case {
        name: "quiet",
        change: |t| t.quiet = true,
        times: true,
    },
    Case {
        name: "preserve_permissions",
        change: |t| t.preserve_permissions = true,
        times: true,
    },
    Case {
        name: "preserve_xattrs",
        change: |t| t.preserve_xattrs = true,
        times: true,
    },
    Case {
        name: "delay_updates off",
        change: |t| t.delay_updates = false,
        times: true,
    },
    Case {
        name: "extra",
        change: |t| t.extra = vec!["--exclude='*.tmp'".into(), "--exclude=deep/".into()],
        times: true,
    },
    Case {
        name: "description, enabled, schedule",
        change: |t| {
            t.description = "nightly".into();
            t.enabled = false;
            t.schedule = "@daily".into();
        },
        times: true,
    },
    Case {
        name: "user (this process's)",
        change: |t| t.user = "root".into(),
        times: true,
    },
];

fn compare(a: &Path, b: &Path, times: bool) -> Vec<String> {
    let c = Compare {
        nsec: false,
        owners: is_root(),
        symlink_times: false,
        file_times: times,
        dir_times: false,
    };
    let mut d = compare_trees(a, b, c);
    // Extended attributes of the regular files and directories.
    let out = Command::new("find")
        .arg(a)
        .args(["-type", "f", "-o", "-type", "d"])
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let pa = Path::new(line);
        let rel = pa.strip_prefix(a).unwrap();
        let pb = b.join(rel);
        let get = |p: &Path| -> Vec<(String, Vec<u8>)> {
            let mut v: Vec<(String, Vec<u8>)> = xattr::list(p)
                .map(|names| {
                    names
                        .filter_map(|n| {
                            let n = n.to_string_lossy().into_owned();
                            xattr::get(p, &n).ok().flatten().map(|val| (n, val))
                        })
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        };
        if pb.exists() && get(pa) != get(&pb) {
            d.push(format!("{}: xattrs differ", rel.display()));
        }
    }
    d
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn run_rsync(words: &[String], src: &str, dst: &str) -> i32 {
    let out = Command::new("rsync")
        .args(words)
        .arg(src)
        .arg(dst)
        .output()
        .unwrap();
    out.status.code().unwrap_or(-1)
}

/// Push and pull, with and without a trailing slash on `path`, for every
/// field case.
#[test]
fn every_field_both_directions_matches_rsync() {
    if !is_root() {
        eprintln!("needs root (uid = 0 in the daemon config)");
    }
    let rt = rt();
    for case in CASES {
        for slash in [false, true] {
            for dir in [Direction::Push, Direction::Pull] {
                let tmp = tempfile::tempdir().unwrap();
                let t = tmp.path();
                source_tree(&t.join("src"));
                for d in ["ours", "theirs"] {
                    fs::create_dir_all(t.join(d)).unwrap();
                    dest_start(&t.join(d), if slash { "" } else { "src" });
                }
                let conf = format!(
                    "use chroot = no\nmunge symlinks = no\nuid = 0\ngid = 0\n\
                     [ours]\npath = {t}/ours\nread only = no\n\
                     [theirs]\npath = {t}/theirs\nread only = no\n\
                     [src]\npath = {t}/src\n",
                    t = t.display()
                );
                let d = real_daemon(t, &conf);
                let mut task = {
                    let mut k = Task::default();
                    k.remote_host = "127.0.0.1".into();
                    k.remote_port = Some(d.port);
                    k.direction = dir;
                    k
                };
                (case.change)(&mut task);
                let what = format!("{} / {dir:?} / slash {slash}", case.name);
                let words = rsync_words(&task);
                let (ours, theirs, code) = match dir {
                    Direction::Push => {
                        let mut p = t.join("src").into_os_string().into_string().unwrap();
                        if slash {
                            p.push('/');
                        }
                        task.path = PathBuf::from(&p);
                        task.remote_module = "ours".into();
                        let url = format!("rsync://127.0.0.1:{}/theirs/", d.port);
                        (
                            t.join("ours"),
                            t.join("theirs"),
                            run_rsync(&words, &p, &url),
                        )
                    }
                    Direction::Pull => {
                        // The module's contents land in `path`.
                        let sub = if slash { "" } else { "src" };
                        task.path = t.join("ours").join(sub);
                        task.remote_module = "src".into();
                        let url = format!("rsync://127.0.0.1:{}/src/", d.port);
                        let dst = t.join("theirs").join(sub);
                        (
                            t.join("ours"),
                            t.join("theirs"),
                            run_rsync(&words, &url, dst.to_str().unwrap()),
                        )
                    }
                };
                let report = rt.block_on(
                    task.run_now()
                        .unwrap_or_else(|e| panic!("{what}: {e}"))
                        .wait(),
                );
                assert_eq!(report.exit_code, code, "{what}: {report:?}");
                assert_eq!(report.status, RunStatus::Success, "{what}: {report:?}");
                let diffs = compare(&ours, &theirs, case.times);
                assert!(diffs.is_empty(), "{what}: {diffs:#?}");
                if task.quiet {
                    assert!(report.itemized.is_empty(), "{what}");
                } else if task.recursive || task.archive {
                    assert!(!report.itemized.is_empty(), "{what}");
                }
            }
        }
    }
}

#[test]
fn password_from_value_env_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    source_tree(&t.join("src"));
    let secrets = t.join("secrets");
    fs::write(&secrets, "alice:pw-1\n").unwrap();
    fs::set_permissions(&secrets, fs::Permissions::from_mode(0o600)).unwrap();
    let pwfile = t.join("pw");
    fs::write(&pwfile, "pw-1\n").unwrap();
    fs::set_permissions(&pwfile, fs::Permissions::from_mode(0o600)).unwrap();
    let conf = format!(
        "use chroot = no\nuid = 0\ngid = 0\n[auth]\npath = {}/src\nauth users = alice\nsecrets file = {}\n",
        t.display(),
        secrets.display()
    );
    let d = real_daemon(t, &conf);
    let rt = rt();
    // SAFETY of the test: the variable is unique to this test.
    unsafe_env_set("FERRSYNC_TASK_TEST_PW", "pw-1");
    for (i, set) in [
        |t: &mut Task, _: &Path| t.password = Some(Secret("pw-1".into())),
        |t: &mut Task, _: &Path| t.password_env = Some("FERRSYNC_TASK_TEST_PW".into()),
        |t: &mut Task, f: &Path| t.password_file = Some(f.to_path_buf()),
    ]
    .iter()
    .enumerate()
    {
        let dest = t.join(format!("got{i}"));
        fs::create_dir_all(&dest).unwrap();
        let mut task = {
            let mut k = Task::default();
            k.path = dest.clone();
            k.direction = Direction::Pull;
            k.remote_host = "alice@127.0.0.1".into();
            k.remote_port = Some(d.port);
            k.remote_module = "auth".into();
            k
        };
        set(&mut task, &pwfile);
        let r = rt.block_on(task.run_now().unwrap().wait());
        assert!(r.is_success(), "{i}: {r:?}");
        assert!(dest.join("sub/c.dat").exists());
    }
    let task = {
        let mut k = Task::default();
        k.path = t.join("got0");
        k.direction = Direction::Pull;
        k.remote_host = "alice@127.0.0.1".into();
        k.remote_port = Some(d.port);
        k.remote_module = "auth".into();
        k.password = Some(Secret("wrong".into()));
        k
    };
    let r = rt.block_on(task.run_now().unwrap().wait());
    assert_eq!(r.status, RunStatus::Failed, "{r:?}");
    assert_eq!(r.exit_code, 5, "{r:?}");
}

fn unsafe_env_set(k: &str, v: &str) {
    // Tests in this file that read it run after it is set; no other
    // thread writes the environment.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(k, v);
    }
}

#[test]
fn progress_stream_and_cancel() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let src = t.join("src");
    fs::create_dir_all(&src).unwrap();
    let big: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(src.join("big.bin"), &big).unwrap();
    let conf = format!(
        "use chroot = no\nuid = 0\ngid = 0\n[src]\npath = {}\n",
        src.display()
    );
    let d = real_daemon(t, &conf);
    let rt = rt();
    // Progress: a pull at a limited rate shows bytes moving and a rate.
    let dest = t.join("got");
    fs::create_dir_all(&dest).unwrap();
    let task = {
        let mut k = Task::default();
        k.path = dest.clone();
        k.direction = Direction::Pull;
        k.remote_host = "127.0.0.1".into();
        k.remote_port = Some(d.port);
        k.remote_module = "src".into();
        k.compress = false;
        k.extra = vec!["--bwlimit=4096".into()];
        k
    };
    let h = task.run_now().unwrap();
    let mut rx = h.progress();
    let seen = rt.block_on(async {
        let mut seen = Vec::new();
        while rx.changed().await.is_ok() {
            seen.push(rx.borrow().clone());
        }
        seen
    });
    let report = rt.block_on(h.wait());
    assert!(report.is_success(), "{report:?}");
    assert!(seen.iter().any(|p| p.current.as_deref() == Some("big.bin")
        && p.current_done > 0
        && p.current_done < p.current_total));
    assert!(seen.iter().any(|p| p.rate > 0.0 && p.eta.is_some()));
    let last = seen.last().unwrap();
    assert_eq!(last.bytes, big.len() as u64);
    assert_eq!(report.stats.as_ref().unwrap().total_size, big.len() as u64);
    assert!(
        report.itemized.iter().any(|l| l.ends_with(" big.bin")),
        "{:?}",
        report.itemized
    );
    // Cancel: a slow pull stops, leaves no partial file, reports it.
    let dest2 = t.join("got2");
    fs::create_dir_all(&dest2).unwrap();
    let mut task = task;
    task.path = dest2.clone();
    task.extra = vec!["--bwlimit=256".into()];
    let h = task.run_now().unwrap();
    let mut rx = h.progress();
    rt.block_on(async {
        while rx.changed().await.is_ok() {
            if rx.borrow().current_done > 0 {
                break;
            }
        }
    });
    h.cancel();
    let r = rt.block_on(h.wait());
    assert_eq!(r.status, RunStatus::Cancelled, "{r:?}");
    assert!(!dest2.join("big.bin").exists());
    assert!(
        fs::read_dir(&dest2).unwrap().next().is_none(),
        "temporary files were removed"
    );
}

#[test]
fn bad_extra_is_refused_before_running() {
    let tmp = tempfile::tempdir().unwrap();
    let task = {
        let mut k = Task::default();
        k.path = tmp.path().to_path_buf();
        k.remote_host = "127.0.0.1".into();
        k.remote_module = "m".into();
        k.extra = vec!["--rsync-path=/bin/evil".into(), "-essh".into()];
        k
    };
    let err = task.run_now().unwrap_err();
    assert!(err.has("extra[0]") && err.has("extra[1]"), "{err}");
}

/// rsync pulls nothing ("skipping directory .") and exits 0; so must we
/// (the sender's list is empty and it exits).
#[test]
fn recursive_off_pull_matches_rsync() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    source_tree(&t.join("src"));
    fs::create_dir_all(t.join("ours")).unwrap();
    let conf = format!(
        "use chroot = no\nuid = 0\ngid = 0\n[src]\npath = {}/src\n",
        t.display()
    );
    let d = real_daemon(t, &conf);
    let mut task = Task::default();
    task.path = t.join("ours");
    task.direction = Direction::Pull;
    task.remote_host = "127.0.0.1".into();
    task.remote_port = Some(d.port);
    task.remote_module = "src".into();
    task.recursive = false;
    let r = rt().block_on(task.run_now().unwrap().wait());
    assert_eq!(r.exit_code, 0, "{r:?}");
}

/// As root, a task with `user` runs its local file operations as that
/// user: pulled files belong to it, and a destination it can't write
/// fails as it would for that user.
#[test]
fn user_field_runs_local_side_as_that_user() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    fs::set_permissions(t, fs::Permissions::from_mode(0o755)).unwrap();
    source_tree(&t.join("src"));
    let conf = format!(
        "use chroot = no\nuid = 0\ngid = 0\n[src]\npath = {}/src\n",
        t.display()
    );
    let d = real_daemon(t, &conf);
    let nobody = Command::new("id").args(["-u", "nobody"]).output().unwrap();
    let uid: u32 = String::from_utf8_lossy(&nobody.stdout)
        .trim()
        .parse()
        .unwrap();
    let mine = t.join("nobody-dest");
    fs::create_dir_all(&mine).unwrap();
    std::os::unix::fs::chown(&mine, Some(uid), None).unwrap();
    let theirs = t.join("root-dest");
    fs::create_dir_all(&theirs).unwrap();
    let rt = rt();
    let mut task = Task::default();
    task.user = "nobody".into();
    task.direction = Direction::Pull;
    task.remote_host = "127.0.0.1".into();
    task.remote_port = Some(d.port);
    task.remote_module = "src".into();
    task.path = mine.clone();
    let r = rt.block_on(task.run_now().unwrap().wait());
    assert!(r.is_success(), "{r:?}");
    assert_eq!(fs::metadata(mine.join("sub/c.dat")).unwrap().uid(), uid);
    task.path = theirs.clone();
    let r = rt.block_on(task.run_now().unwrap().wait());
    assert!(
        !r.is_success(),
        "nobody can't write a root-owned 0755 directory: {r:?}"
    );
    assert!(!theirs.join("a.txt").exists());
}
