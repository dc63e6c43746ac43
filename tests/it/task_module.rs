//! Tasks in Module mode against a real `rsync --daemon` (3.5.0): for each
//! task field, in both directions, the task's outcome equals what the
//! equivalent rsync command line produces from the same start.

use crate::common;
use crate::task_cases;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::tree::is_root;
use ferrsync::task::{Direction, RunStatus, Secret, Task};
use task_cases::{CASES, compare, dest_start, rsync_words, source_tree};

use common::daemon::real_daemon;

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
    // Only this test reads the variable, after setting it. Other tests of
    // the process run meanwhile: std's own readers (`env::var`, spawning)
    // take the environment lock that `set_var` holds, and this is the one
    // `set_var` of the test binary, which adds a new variable: glibc then
    // copies the environment to a new array and frees nothing a libc
    // reader elsewhere may still be scanning.
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

/// The whole run's ETA: once the file list is known, `total_bytes` is the
/// size of every regular file in it, files found up to date count as done
/// (on a pull our generator finds them, on a push our sender learns it
/// from the files the daemon's generator passes over), and the ETA is
/// what is left of the total at the average rate.
#[test]
fn progress_totals_and_whole_run_eta() {
    const PART: usize = 512 << 10;
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // Incompressible (xorshift64*): the transfer is compressed, and data
    // an LZ window can shrink (an earlier multiplicative pattern) made the
    // throttled file move in 50 ms, with no progress step in between.
    let noise = |seed: u32, len: usize| -> Vec<u8> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(seed).wrapping_mul(0x1000_0001);
        (0..len)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect()
    };
    let src = t.join("src");
    fs::create_dir_all(&src).unwrap();
    // Four files the destinations already hold (same size and mtime),
    // listed before the one that moves.
    for d in ["src", "pulled", "pushed"] {
        fs::create_dir_all(t.join(d)).unwrap();
        for i in 0..4u32 {
            let p = t.join(d).join(format!("a{i}.bin"));
            fs::write(&p, noise(i, PART)).unwrap();
            task_cases::set_mtime(&p, 1_600_000_000);
        }
    }
    fs::write(src.join("z.bin"), noise(99, 8 * PART)).unwrap();
    task_cases::set_mtime(&src.join("z.bin"), 1_600_000_000);
    let total = 12 * PART as u64;
    let conf = format!(
        "use chroot = no\nuid = 0\ngid = 0\n[src]\npath = {t}/src\n\
         [pushed]\npath = {t}/pushed\nread only = no\n",
        t = t.display()
    );
    let d = real_daemon(t, &conf);
    let rt = rt();
    for dir in [Direction::Pull, Direction::Push] {
        let mut task = Task::default();
        task.direction = dir;
        task.remote_host = "127.0.0.1".into();
        task.remote_port = Some(d.port);
        // Compressed (the default): progress steps come from the
        // compressed token stream too.
        // About two seconds for the file that moves.
        task.extra = vec!["--bwlimit=2048".into()];
        match dir {
            Direction::Pull => {
                task.path = t.join("pulled");
                task.remote_module = "src".into();
            }
            Direction::Push => {
                task.path = t.join("src/");
                task.remote_module = "pushed".into();
            }
        }
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
        assert!(report.is_success(), "{dir:?}: {report:?}");
        let last = seen.last().unwrap();
        assert_eq!(last.total_bytes, Some(total), "{dir:?}: {last:?}");
        assert_eq!(
            last.total_files,
            Some(report.stats.as_ref().unwrap().num_files),
            "{dir:?}: {last:?}"
        );
        assert_eq!(
            (last.up_to_date, last.up_to_date_bytes),
            (4, 4 * PART as u64),
            "{dir:?}: {last:?}"
        );
        assert_eq!(last.bytes, 8 * PART as u64, "{dir:?}: {last:?}");
        assert_eq!(last.eta, Some(std::time::Duration::ZERO), "{dir:?}");
        assert_eq!(last.fraction(), Some(1.0), "{dir:?}");
        // The total is known before any data moves.
        let first_data = seen.iter().position(|p| p.bytes > 0).unwrap();
        assert!(
            seen[..=first_data]
                .iter()
                .any(|p| p.total_bytes == Some(total)),
            "{dir:?}"
        );
        if dir == Direction::Pull {
            // While z.bin moves, all that is left is the rest of z.bin: the
            // whole run's ETA is the file's, not counting the up-to-date
            // files as work still to do.
            let mid: Vec<_> = seen
                .iter()
                .filter(|p| p.current_done > 0 && p.current_done < p.current_total)
                .collect();
            assert!(mid.len() >= 2, "{seen:?}");
            for p in &mid {
                assert_eq!(p.up_to_date, 4, "{p:?}");
                assert!(p.eta.is_some() && p.eta == p.file_eta, "{p:?}");
                assert!(p.fraction().unwrap() > 0.3 && p.fraction().unwrap() < 1.0);
            }
            // And it goes down.
            assert!(
                mid.first().unwrap().eta > mid.last().unwrap().eta,
                "{mid:#?}"
            );
        }
        let dest = match dir {
            Direction::Pull => t.join("pulled"),
            Direction::Push => t.join("pushed"),
        };
        assert_eq!(
            fs::read(dest.join("z.bin")).unwrap(),
            fs::read(src.join("z.bin")).unwrap(),
            "{dir:?}"
        );
    }
}
