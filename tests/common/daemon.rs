//! Daemons started by the tests on free 127.0.0.1 ports: real
//! `rsync --daemon` and the `ferrsync` binary.
#![allow(dead_code)]

use std::fs;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A daemon process, killed when dropped.
pub struct RealDaemon {
    pub child: Child,
    pub port: u16,
}

impl Drop for RealDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `program --daemon --no-detach --config=FILE --port=P
/// --address=ADDR` on a free port and waits until it listens. Another
/// test may grab the same port first: the port then answers although our
/// daemon failed to bind and exited, so the child must still be alive a
/// moment after the port opens; otherwise another port is tried.
pub fn start(program: &str, conf_file: &Path, address: &str) -> RealDaemon {
    for _ in 0..8 {
        let port = free_port();
        let child = Command::new(program)
            .args(["--daemon", "--no-detach"])
            .arg(format!("--config={}", conf_file.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--address={address}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut d = RealDaemon { child, port };
        for _ in 0..250 {
            if let Ok(Some(_)) = d.child.try_wait() {
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                std::thread::sleep(Duration::from_millis(150));
                if let Ok(None) = d.child.try_wait() {
                    return d;
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("{program} --daemon did not start");
}

/// Real `rsync --daemon` with `conf` written to `dir/rsyncd.conf`.
pub fn real_daemon(dir: &Path, conf: &str) -> RealDaemon {
    let cfg = dir.join("rsyncd.conf");
    fs::write(&cfg, conf).unwrap();
    start("rsync", &cfg, "127.0.0.1")
}
