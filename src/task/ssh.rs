//! SSH mode of a [`Task`]: the built-in russh client runs `rsync --server`
//! on the remote host.
//!
//! Layer: task. Uses the session API's SSH transport.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::{Direction, Task};
use crate::engine::Report;
use crate::error::{Error, Result};
use crate::session::Transfer;
use crate::transport::ssh::{HostKeyPolicy, SshAuth, SshOptions, SshTarget};

/// Files that hold in-memory keys for the duration of a run (private
/// directory, mode 0600 files), removed when dropped.
struct Scratch {
    dir: Option<PathBuf>,
}

impl Scratch {
    fn file(&mut self, name: &str, text: &str) -> Result<PathBuf> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = match &self.dir {
            Some(d) => d.clone(),
            None => {
                let d = std::env::temp_dir().join(format!(
                    "ferrsync-task-{}-{}",
                    std::process::id(),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos())
                ));
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&d)
                    .map_err(|e| Error::Local {
                        op: "mkdir",
                        path: d.clone(),
                        source: e,
                    })?;
                self.dir = Some(d.clone());
                d
            }
        };
        let p = dir.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
            .map_err(|e| Error::Local {
                op: "create",
                path: p.clone(),
                source: e,
            })?;
        f.write_all(text.as_bytes()).map_err(|e| Error::Local {
            op: "write",
            path: p.clone(),
            source: e,
        })?;
        Ok(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(d) = self.dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// The host part of `remote_host` (a `user@` prefix is allowed there too;
/// IPv6 literals may be bracketed).
fn split_host(task: &Task) -> (String, Option<String>) {
    let h = task.remote_host.trim();
    let (user, host) = match h.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_string()), h),
        None => (None, h),
    };
    (
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        user,
    )
}

/// Runs an SSH task with the prepared transfer.
pub(crate) async fn run(task: &Task, t: Transfer) -> Result<Report> {
    let (host, user_in_host) = split_host(task);
    let user = if task.remote_user.is_empty() {
        user_in_host.unwrap_or_else(|| "root".to_string())
    } else {
        task.remote_user.clone()
    };
    let target = SshTarget::new(host.clone(), user).with_port(task.remote_port.unwrap_or(22));
    let mut scratch = Scratch { dir: None };
    let mut o = SshOptions::default();
    if let Some(f) = &task.private_key_file {
        o.auth = SshAuth::KeyFile {
            path: f.clone(),
            passphrase: None,
        };
    } else if let Some(k) = &task.private_key {
        let p = scratch.file("id", &k.0)?;
        o.auth = SshAuth::KeyFile {
            path: p,
            passphrase: None,
        };
    }
    if let Some(f) = &task.known_hosts_file {
        o.known_hosts = Some(f.clone());
    } else if !task.known_host_keys.is_empty() {
        // Bare keys (`ssh-ed25519 AAAA...`) are given for this host.
        let port = task.remote_port.unwrap_or(22);
        let name = if port == 22 {
            host.clone()
        } else {
            format!("[{host}]:{port}")
        };
        let mut text = String::new();
        for k in &task.known_host_keys {
            let k = k.trim();
            if k.starts_with("ssh-") || k.starts_with("ecdsa-") {
                text.push_str(&format!("{name} {k}\n"));
            } else {
                text.push_str(k);
                text.push('\n');
            }
        }
        o.known_hosts = Some(scratch.file("known_hosts", &text)?);
    }
    o.host_key_policy = HostKeyPolicy::Strict;
    o.connect_timeout = Some(Duration::from_secs(task.connect_timeout.unwrap_or(10)));
    let remote = if task.remote_path.is_empty() {
        ".".to_string()
    } else {
        task.remote_path.clone()
    };
    match task.direction {
        Direction::Push => {
            t.push_ssh(&target, &o, std::slice::from_ref(&task.path), &remote)
                .await
        }
        Direction::Pull => t.pull_ssh(&target, &o, &[remote], &task.path).await,
    }
}
