//! Tasks in SSH mode against real OpenSSH `sshd` and real `rsync --server`:
//! each field case, push and pull, equals what the equivalent `rsync -e ssh`
//! command line produces from the same start.

mod common;
#[path = "common/sshd.rs"]
mod sshd;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::tree::{Compare, compare_trees, is_root};
use ferrsync::task::{Direction, Mode, RunStatus, Secret, Task};
use sshd::{Keys, Sshd};

fn source_tree(root: &Path) {
    fs::create_dir_all(root.join("sub/deep")).unwrap();
    for (i, (name, data)) in [
        ("a.txt", &b"alpha\n"[..]),
        ("b.tmp", b"temporary\n"),
        ("sub/c.txt", b"gamma gamma\n"),
        ("sub/deep/d.bin", &[7u8; 3000][..]),
    ]
    .iter()
    .enumerate()
    {
        let p = root.join(name);
        fs::write(&p, data).unwrap();
        let t = filetime::FileTime::from_unix_time(1_600_000_000 + i as i64 * 100, 0);
        filetime::set_file_mtime(&p, t).unwrap();
    }
    xattr::set(root.join("a.txt"), "user.tag", b"over ssh").unwrap();
}

fn dest_start(root: &Path) {
    fs::create_dir_all(root).unwrap();
    fs::write(root.join("extraneous"), b"delete me?").unwrap();
}

fn words(t: &Task) -> Vec<String> {
    let mut w = Vec::new();
    for (on, word) in [
        (t.recursive, "-r"),
        (t.times, "-t"),
        (t.compress, "-z"),
        (t.archive, "-a"),
        (t.delete, "--delete-delay"),
        (t.quiet, "-q"),
        (t.preserve_permissions, "-p"),
        (t.preserve_xattrs, "-X"),
        (t.delay_updates, "--delay-updates"),
    ] {
        if on {
            w.push(word.to_string());
        }
    }
    w.extend(t.extra.iter().cloned());
    w
}

type Change = fn(&mut Task);

#[test]
fn ssh_tasks_match_rsync_over_openssh() {
    if !is_root() {
        eprintln!("needs root (sshd, login as root)");
        return;
    }
    let cases: &[(&str, Change)] = &[
        ("defaults", |_| {}),
        ("archive + delete", |t| {
            t.archive = true;
            t.delete = true;
        }),
        ("xattrs + permissions", |t| {
            t.preserve_xattrs = true;
            t.preserve_permissions = true;
        }),
        ("extra exclude, compress off", |t| {
            t.extra = vec!["--exclude=*.tmp".into()];
            t.compress = false;
        }),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (name, change) in cases {
        for dir in [Direction::Push, Direction::Pull] {
            let tmp = tempfile::tempdir().unwrap();
            let t = tmp.path();
            let keys = Keys::new(&t.join("keys"));
            let sshd = Sshd::start(&keys);
            source_tree(&t.join("src"));
            for d in ["ours", "theirs"] {
                dest_start(&t.join(d));
            }
            let mut task = Task::default();
            task.mode = Mode::Ssh;
            task.direction = dir;
            task.remote_host = "127.0.0.1".into();
            task.remote_port = Some(sshd.port);
            task.remote_user = "root".into();
            task.private_key_file = Some(keys.user.clone());
            task.known_hosts_file = Some(keys.known_hosts.clone());
            change(&mut task);
            let mut w = words(&task);
            w.push("-e".into());
            w.push(keys.ssh_command(sshd.port));
            let (src_arg, dst_arg) = match dir {
                Direction::Push => {
                    task.path = t.join("src/");
                    task.remote_path = format!("{}/", t.join("ours").display());
                    (
                        format!("{}/", t.join("src").display()),
                        format!("127.0.0.1:{}/", t.join("theirs").display()),
                    )
                }
                Direction::Pull => {
                    task.path = t.join("ours");
                    task.remote_path = format!("{}/", t.join("src").display());
                    (
                        format!("127.0.0.1:{}/", t.join("src").display()),
                        format!("{}/", t.join("theirs").display()),
                    )
                }
            };
            let out = Command::new("rsync")
                .args(&w)
                .arg(&src_arg)
                .arg(&dst_arg)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name}: rsync: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let report = rt.block_on(task.run_now().unwrap().wait());
            assert_eq!(
                report.status,
                RunStatus::Success,
                "{name} {dir:?}: {report:?}"
            );
            assert_eq!(report.exit_code, 0);
            let mut c = Compare::all(false);
            c.dir_times = false;
            let d = compare_trees(&t.join("ours"), &t.join("theirs"), c);
            assert!(d.is_empty(), "{name} {dir:?}: {}", d.join("\n"));
            let x = |p: &Path| xattr::get(p, "user.tag").ok().flatten();
            assert_eq!(
                x(&t.join("ours/a.txt")),
                x(&t.join("theirs/a.txt")),
                "{name} {dir:?}"
            );
        }
    }
    // An in-memory key and known host key work the same.
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let keys = Keys::new(&t.join("keys"));
    let sshd = Sshd::start(&keys);
    source_tree(&t.join("src"));
    let mut task = Task::default();
    task.mode = Mode::Ssh;
    task.direction = Direction::Pull;
    task.remote_host = "root@127.0.0.1".into();
    task.remote_port = Some(sshd.port);
    task.remote_user = "root".into();
    task.private_key = Some(Secret(fs::read_to_string(&keys.user).unwrap()));
    let host_pub = fs::read_to_string(keys.host.with_extension("pub")).unwrap();
    task.known_host_keys = vec![
        host_pub
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" "),
    ];
    fs::create_dir_all(t.join("mem")).unwrap();
    task.path = t.join("mem");
    task.remote_path = format!("{}/", t.join("src").display());
    let report = rt.block_on(task.run_now().unwrap().wait());
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
    assert_eq!(fs::read(t.join("mem/a.txt")).unwrap(), b"alpha\n");
}
