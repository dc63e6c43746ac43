//! Keep-alives. With `--timeout`, rsync's receiving side gives up on a
//! sender that stays silent that long before its file list is out
//! ("io timeout after 2 seconds", exit 30); a big tree or `--checksum`
//! takes our sender that long to list. With `--timeout` we send empty
//! data frames while the list is being built (and while the generator
//! works without writing), as rsync does when it waits. Here our sender
//! lists 2 GiB with `--checksum` (md5: seconds without a byte to send)
//! to real rsync with `--timeout=2` (at 1 rsync's whole-second check
//! fails itself with a write every second).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use ferrsync::Options;

use crate::common;
use crate::common::ways::{self, Way};

const FILES: u32 = 32;
const SIZE: usize = 64 << 20;

/// `FILES` files of `SIZE` in `src`, the same inodes hard-linked into
/// `dst` (a no-change run that still reads every byte under `-c`).
fn tree(src: &Path, dst: &Path) {
    fs::create_dir_all(src).unwrap();
    fs::create_dir_all(dst).unwrap();
    for i in 0..FILES {
        let mut data = vec![0u8; SIZE];
        let mut x = 0x2545_F491_4F6C_DD1Du64 ^ u64::from(i);
        for chunk in data.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        let p = src.join(format!("f{i:02}"));
        fs::write(&p, &data).unwrap();
        fs::hard_link(&p, dst.join(format!("f{i:02}"))).unwrap();
    }
}

const ARGS: &[&str] = &["-a", "-c", "--checksum-choice=md5", "--timeout=2"];

/// Our binary pushing (`ferrsync` as the client, real `rsync --server`
/// receiving), or real rsync pulling from `ferrsync --server`.
fn run(binary_push: bool, keepalive: bool, src: &Path, dst: &Path, shim: &Path) -> (i32, String) {
    let mut c = if binary_push {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ferrsync"));
        c.args(ARGS)
            .arg("-e")
            .arg(shim)
            .arg("--rsync-path=rsync")
            .arg(format!("{}/", src.display()))
            .arg(format!("localhost:{}/", dst.display()));
        c
    } else {
        let mut c = Command::new("rsync");
        c.args(ARGS)
            .arg("-e")
            .arg(shim)
            .arg(format!("--rsync-path={}", env!("CARGO_BIN_EXE_ferrsync")))
            .arg(format!("localhost:{}/", src.display()))
            .arg(format!("{}/", dst.display()));
        c
    };
    if !keepalive {
        c.env("FERRSYNC_NO_KEEPALIVE", "1");
    }
    let t0 = Instant::now();
    let out = c.output().unwrap();
    let text = format!(
        "after {:?}: {}{}",
        t0.elapsed(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_sender_listing_for_long_keeps_a_timing_rsync_alive() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let dst = tmp.path().join("dst");
    tree(&src, &dst);
    let shim = common::tree::write_shim(tmp.path());
    // Without keep-alives real rsync gives up on our silent sender: the
    // case is a real one on this machine (once: each run reads 2 GiB
    // twice).
    let (code, text) = run(true, false, &src, &dst, &shim);
    assert_ne!(code, 0, "without keep-alives: {text}");
    assert!(text.contains("timeout"), "{text}");
    // With them it completes, our binary pushing and rsync pulling.
    for binary_push in [true, false] {
        let (code, text) = run(binary_push, true, &src, &dst, &shim);
        assert_eq!(code, 0, "push {binary_push}: {text}");
    }
    // The library as the client, pushing to rsync --server.
    let mut o = Options::archive();
    o.checksum = true;
    o.checksum_choice = Some("md5".into());
    o.timeout = 2;
    let t0 = Instant::now();
    let r = ways::run(Way::OursPush, &o, ARGS, &src, &dst, &shim);
    assert!(r.is_ok(), "library push after {:?}: {r:?}", t0.elapsed());
    for i in 0..FILES {
        let n = format!("f{i:02}");
        assert_eq!(
            fs::metadata(src.join(&n)).unwrap().len(),
            fs::metadata(dst.join(&n)).unwrap().len()
        );
    }
}
