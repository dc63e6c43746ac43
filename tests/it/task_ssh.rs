//! Tasks in SSH mode against real OpenSSH `sshd` and real `rsync --server`:
//! for each task field, push and pull, with and without a trailing slash,
//! the outcome equals what the equivalent `rsync -e ssh` command line
//! produces from the same start; and `validate_remote` checks (and
//! creates) the remote path over the same connection settings.

use crate::common;
use crate::sshd;
use crate::task_cases;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::tree::is_root;
use ferrsync::task::{Direction, Mode, RemotePath, RunStatus, Secret, Task};
use sshd::{Keys, Sshd};
use task_cases::{CASES, compare, dest_start, rsync_words, source_tree};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An SSH task for the test sshd, logging in as root with the test key.
fn ssh_task(keys: &Keys, sshd: &Sshd) -> Task {
    let mut task = Task::default();
    task.mode = Mode::Ssh;
    task.remote_host = "127.0.0.1".into();
    task.remote_port = Some(sshd.port);
    task.remote_user = "root".into();
    task.private_key_file = Some(keys.user.clone());
    task.known_hosts_file = Some(keys.known_hosts.clone());
    task
}

/// The host key as a bare `ssh-ed25519 AAAA...` line.
fn host_key(keys: &Keys) -> String {
    sshd::public_line(&keys.host)
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every field case of the Module tests, over SSH: push and pull, `path`
/// (push) or `remote_path` (pull) with and without a trailing slash, each
/// against `rsync -e "ssh ..."` with the same words from the same start.
/// One sshd serves them all.
#[test]
fn every_field_both_directions_matches_rsync_over_openssh() {
    if !is_root() {
        eprintln!("skipped: needs root (sshd, login as root)");
        return;
    }
    let keys_dir = tempfile::tempdir().unwrap();
    let keys = Keys::new(&keys_dir.path().join("keys"));
    let sshd = Sshd::start(&keys);
    let rt = rt();
    let mut runs = 0;
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
                let mut task = ssh_task(&keys, &sshd);
                task.direction = dir;
                (case.change)(&mut task);
                let what = format!("{} / {dir:?} / slash {slash}", case.name);
                let mut words = rsync_words(&task);
                words.push("-e".into());
                words.push(keys.ssh_command(sshd.port));
                let src = format!(
                    "{}{}",
                    t.join("src").display(),
                    if slash { "/" } else { "" }
                );
                let (src_arg, dst_arg) = match dir {
                    Direction::Push => {
                        task.path = src.clone().into();
                        task.remote_path = format!("{}/", t.join("ours").display());
                        (src, format!("127.0.0.1:{}/", t.join("theirs").display()))
                    }
                    Direction::Pull => {
                        task.path = t.join("ours");
                        task.remote_path = src.clone();
                        (
                            format!("127.0.0.1:{src}"),
                            format!("{}/", t.join("theirs").display()),
                        )
                    }
                };
                let out = Command::new("rsync")
                    .args(&words)
                    .arg(&src_arg)
                    .arg(&dst_arg)
                    .output()
                    .unwrap();
                let code = out.status.code().unwrap_or(-1);
                let report = rt.block_on(
                    task.run_now()
                        .unwrap_or_else(|e| panic!("{what}: {e}"))
                        .wait(),
                );
                assert_eq!(
                    report.exit_code,
                    code,
                    "{what}: {report:?}; rsync: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert_eq!(report.status, RunStatus::Success, "{what}: {report:?}");
                let diffs = compare(&t.join("ours"), &t.join("theirs"), case.times);
                assert!(diffs.is_empty(), "{what}: {diffs:#?}");
                if task.quiet {
                    assert!(report.itemized.is_empty(), "{what}");
                } else if task.recursive || task.archive {
                    assert!(!report.itemized.is_empty(), "{what}");
                }
                runs += 1;
            }
        }
    }
    assert_eq!(runs, CASES.len() * 4);
}

/// An in-memory key and a host key given inline work as the files do.
#[test]
fn in_memory_key_and_inline_host_key() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let keys = Keys::new(&t.join("keys"));
    let sshd = Sshd::start(&keys);
    source_tree(&t.join("src"));
    let mut task = ssh_task(&keys, &sshd);
    task.direction = Direction::Pull;
    task.remote_host = "root@127.0.0.1".into();
    task.private_key_file = None;
    task.known_hosts_file = None;
    task.private_key = Some(Secret(fs::read_to_string(&keys.user).unwrap()));
    task.known_host_keys = vec![host_key(&keys)];
    fs::create_dir_all(t.join("mem")).unwrap();
    task.path = t.join("mem");
    task.remote_path = format!("{}/", t.join("src").display());
    let report = rt().block_on(task.run_now().unwrap().wait());
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
    assert_eq!(fs::read(t.join("mem/a.txt")).unwrap(), b"alpha\n");
}

/// As root, `user` makes the local side of an SSH pull run as that user
/// (the in-memory key is written where that user can read it): the files
/// belong to it, and a directory it can't write fails as it would for it.
#[test]
fn user_field_runs_local_side_as_that_user_over_ssh() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    fs::set_permissions(t, fs::Permissions::from_mode(0o755)).unwrap();
    let keys = Keys::new(&t.join("keys"));
    let sshd = Sshd::start(&keys);
    source_tree(&t.join("src"));
    let out = Command::new("id").args(["-u", "nobody"]).output().unwrap();
    let uid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let mine = t.join("nobody-dest");
    fs::create_dir_all(&mine).unwrap();
    std::os::unix::fs::chown(&mine, Some(uid), None).unwrap();
    let mut task = ssh_task(&keys, &sshd);
    task.user = "nobody".into();
    task.direction = Direction::Pull;
    task.private_key_file = None;
    task.known_hosts_file = None;
    task.private_key = Some(Secret(fs::read_to_string(&keys.user).unwrap()));
    task.known_host_keys = vec![host_key(&keys)];
    task.remote_path = format!("{}/", t.join("src").display());
    task.path = mine.clone();
    let rt = rt();
    let r = rt.block_on(task.run_now().unwrap().wait());
    assert!(r.is_success(), "{r:?}");
    assert_eq!(fs::metadata(mine.join("sub/c.dat")).unwrap().uid(), uid);
    let theirs = t.join("root-dest");
    fs::create_dir_all(&theirs).unwrap();
    task.path = theirs.clone();
    let r = rt.block_on(task.run_now().unwrap().wait());
    assert!(
        !r.is_success(),
        "nobody can't write a root-owned 0755 directory: {r:?}"
    );
    assert!(!theirs.join("a.txt").exists());
}

/// `validate_remote`: an existing directory passes; a missing one is a
/// `remote_path` problem unless `create_remote_path` creates it; a file is
/// not a directory; a path full of shell syntax is only ever data; and a
/// connection problem names the field to fix.
#[test]
fn validate_remote_path_over_openssh() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let keys = Keys::new(&t.join("keys"));
    let sshd = Sshd::start(&keys);
    let rt = rt();
    fs::create_dir_all(t.join("src")).unwrap();
    fs::write(t.join("src/f.txt"), b"payload\n").unwrap();
    fs::create_dir_all(t.join("there")).unwrap();
    fs::write(t.join("plain-file"), b"x").unwrap();
    let base = {
        let mut k = ssh_task(&keys, &sshd);
        k.path = t.join("src/");
        k.validate_remote_path = true;
        k
    };
    let check = |k: &Task| rt.block_on(k.validate_remote());

    let mut k = base.clone();
    k.remote_path = format!("{}/", t.join("there").display());
    assert_eq!(check(&k), Ok(RemotePath::Exists));

    k.remote_path = t.join("missing/deeper").display().to_string();
    let e = check(&k).unwrap_err();
    assert!(e.has("remote_path") && e.problems.len() == 1, "{e}");
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert!(!t.join("missing").exists());

    k.create_remote_path = true;
    assert_eq!(check(&k), Ok(RemotePath::Created));
    assert!(t.join("missing/deeper").is_dir());
    assert_eq!(check(&k), Ok(RemotePath::Exists));

    k.remote_path = t.join("plain-file").display().to_string();
    let e = check(&k).unwrap_err();
    assert!(
        e.has("remote_path") && e.to_string().contains("not a directory"),
        "{e}"
    );

    // Blanks, both quotes, command substitutions, `;`, a glob and a
    // newline: one directory of exactly that name, and nothing runs.
    let pwned = t.join("pwned");
    let evil = format!(
        "we ird 'q' \"dq\" $(touch {p}) `touch {p}`; touch {p} * \n end",
        p = pwned.display()
    );
    k.remote_path = format!("{}/", t.join(&evil).display());
    assert_eq!(check(&k), Ok(RemotePath::Created));
    assert!(t.join(&evil).is_dir());
    assert!(!pwned.exists(), "a remote command ran");
    let names: Vec<_> = fs::read_dir(t)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    // And the task pushes into it.
    let r = rt.block_on(k.run_now().unwrap().wait());
    assert!(r.is_success(), "{r:?}");
    assert_eq!(fs::read(t.join(&evil).join("f.txt")).unwrap(), b"payload\n");
    assert!(!pwned.exists());

    // Not asked for: nothing is checked (no connection either).
    let mut k = base.clone();
    k.remote_path = "/nowhere".into();
    k.remote_port = Some(sshd::free_port());
    k.validate_remote_path = false;
    assert_eq!(check(&k), Ok(RemotePath::NotChecked));

    // Connection problems, each on the field to fix.
    k.validate_remote_path = true;
    let e = check(&k).unwrap_err();
    assert!(e.has("remote_host"), "{e}");
    let mut k = base.clone();
    k.remote_path = "/".into();
    k.known_hosts_file = None;
    k.known_host_keys = vec![
        sshd::public_line(&keys.stranger)
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" "),
    ];
    let e = check(&k).unwrap_err();
    assert!(e.has("known_host_keys"), "{e}");
    let mut k = base.clone();
    k.remote_path = "/".into();
    k.private_key_file = Some(keys.stranger.clone());
    let e = check(&k).unwrap_err();
    assert!(e.has("private_key_file"), "{e}");
    // Validation problems come first, all of them, without connecting.
    let mut k = base.clone();
    k.remote_path = String::new();
    k.schedule = "bad".into();
    let e = check(&k).unwrap_err();
    assert!(e.has("remote_path") && e.has("schedule"), "{e}");
}
