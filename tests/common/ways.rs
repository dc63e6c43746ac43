//! The four ways to run a transfer: our client pushing to or pulling from
//! `rsync --server`, and real rsync pushing to or pulling from `ferrsync
//! --server` through a shim remote shell.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use ferrsync::{Options, RemoteCommand, Transfer};

/// One direction and client.
#[derive(Debug, Clone, Copy)]
pub enum Way {
    OursPush,
    OursPull,
    RsyncPush,
    RsyncPull,
}

/// Every way.
pub const WAYS: [Way; 4] = [Way::OursPush, Way::OursPull, Way::RsyncPush, Way::RsyncPull];

fn slash(p: &Path) -> String {
    format!("{}/", p.display())
}

/// Runs one transfer of `src/` into `dst/`; `Err` carries the error text
/// (a failed session, per-file errors, or rsync's stderr).
pub fn run(
    way: Way,
    opts: &Options,
    rsync_args: &[&str],
    src: &Path,
    dst: &Path,
    shim: &Path,
) -> Result<(), String> {
    match way {
        Way::OursPush | Way::OursPull => {
            let t = Transfer::new(opts.clone());
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let r = if matches!(way, Way::OursPush) {
                rt.block_on(t.push(
                    &RemoteCommand::local("rsync"),
                    &[slash(src).into()],
                    &slash(dst),
                ))
            } else {
                rt.block_on(t.pull(&RemoteCommand::local("rsync"), &[slash(src)], dst))
            };
            let r = r.map_err(|e| e.to_string())?;
            if r.errors.is_empty() {
                Ok(())
            } else {
                Err(format!("{:?}", r.errors))
            }
        }
        Way::RsyncPush | Way::RsyncPull => {
            let (a, b) = if matches!(way, Way::RsyncPush) {
                (slash(src), format!("localhost:{}", slash(dst)))
            } else {
                (format!("localhost:{}", slash(src)), slash(dst))
            };
            let out = Command::new("rsync")
                .args(rsync_args)
                .arg("-e")
                .arg(shim)
                .arg(format!("--rsync-path={}", env!("CARGO_BIN_EXE_ferrsync")))
                .arg(a)
                .arg(b)
                .output()
                .unwrap();
            if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        }
    }
}
