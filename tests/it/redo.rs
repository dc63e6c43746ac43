//! The redo phase: a block whose rolling checksum and 2-byte strong sum
//! collide (the shared capture tree `--redo`, seed 305419896, md5) makes the
//! whole-file check fail; the file must be requested again with full-length
//! sums and arrive intact, in both directions.

use crate::common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use ferrsync::{Event, Options, RemoteCommand, Transfer};

const SEED: i32 = 305_419_896;

fn build(dir: &Path) {
    let script = common::tap::captures_dir().join("transfer-build-tree.py");
    let st = Command::new("python3")
        .arg(script)
        .arg("--redo")
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new("cp")
        .arg("-a")
        .arg(dir.join("basis3"))
        .arg(dir.join("dst"))
        .status()
        .unwrap();
    assert!(st.success());
}

fn assert_same_content(a: &Path, b: &Path) {
    for e in fs::read_dir(a).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            let other = b.join(e.file_name());
            assert_eq!(
                fs::read(e.path()).unwrap(),
                fs::read(&other).unwrap(),
                "{:?}",
                e.file_name()
            );
        }
    }
}

#[test]
fn ferrsync_client_redoes_a_failed_file() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path());
    let mut o = Options::archive();
    o.protocol = Some(31);
    o.checksum_seed = Some(SEED);
    o.checksum_choice = Some("md5".into());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = Arc::clone(&seen);
    let t = Transfer::new(o).with_events(Arc::new(move |e: &Event| {
        s2.lock().unwrap().push(e.clone())
    }));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let src = format!("{}/", tmp.path().join("src3").display());
    let report = rt
        .block_on(t.pull(
            &RemoteCommand::local("rsync"),
            &[src],
            &tmp.path().join("dst"),
        ))
        .unwrap();
    assert_eq!(report.exit_code().code(), 0, "{:?}", report.errors);
    assert_same_content(&tmp.path().join("src3"), &tmp.path().join("dst"));
    let warned = seen.lock().unwrap().iter().any(|e| {
        matches!(e, Event::Message { text, .. } if text.contains("failed verification -- update discarded (will try again)"))
    });
    assert!(warned, "no redo happened: {:?}", seen.lock().unwrap());
}

#[test]
fn rsync_client_gets_a_redo_from_ferrsync_server() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path());
    let shim = common::tree::write_shim(tmp.path());
    let out = Command::new("rsync")
        .args(["-ai", "--protocol=31", "--checksum-choice=md5"])
        .arg(format!("--checksum-seed={SEED}"))
        .arg("-e")
        .arg(&shim)
        .arg(format!("--rsync-path={}", env!("CARGO_BIN_EXE_ferrsync")))
        .arg(format!("localhost:{}/", tmp.path().join("src3").display()))
        .arg(format!("{}/", tmp.path().join("dst").display()))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("failed verification -- update discarded (will try again)"),
        "no redo happened:\n{text}"
    );
    assert_same_content(&tmp.path().join("src3"), &tmp.path().join("dst"));
}
