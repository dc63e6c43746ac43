//! SSH mode of a [`Task`]: the built-in russh client runs `rsync --server`
//! on the remote host, and checks (or creates) the remote path before a
//! task is saved ([`Task::validate_remote`]).
//!
//! Layer: task. Uses the session API's SSH transport.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::{Direction, Invalid, Mode, Problems, Task};
use crate::engine::Report;
use crate::error::{Error, Result};
use crate::session::Transfer;
use crate::transport::ssh::{
    HostKeyPolicy, SshAuth, SshError, SshOptions, SshSession, SshTarget, shell_quote,
};

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

/// The target and connection settings of an SSH task, with the scratch
/// files holding in-memory keys (keep it alive while connecting).
fn connection(task: &Task) -> Result<(SshTarget, SshOptions, Scratch)> {
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
    Ok((target, o, scratch))
}

/// Runs an SSH task with the prepared transfer.
pub(crate) async fn run(task: &Task, t: Transfer) -> Result<Report> {
    let (target, o, _scratch) = connection(task)?;
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

/// What [`Task::validate_remote`] found at the remote path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemotePath {
    /// Not checked: a Module task, or `validate_remote_path` is off.
    NotChecked,
    /// An existing directory.
    Exists,
    /// It was missing and has been created (`create_remote_path`).
    Created,
}

/// The field an SSH connection failure belongs to.
fn connect_field(task: &Task, e: &SshError) -> &'static str {
    let key = if task.private_key.is_some() {
        "private_key"
    } else {
        "private_key_file"
    };
    match e {
        SshError::HostKeyUnknown { .. } | SshError::HostKeyChanged { .. } => {
            if task.known_hosts_file.is_some() {
                "known_hosts_file"
            } else {
                "known_host_keys"
            }
        }
        SshError::AuthFailed { .. } | SshError::Key { .. } => key,
        _ => "remote_host",
    }
}

fn problem(field: &str, message: impl Into<String>) -> Invalid {
    let mut p = Problems::default();
    p.add(field, message);
    Invalid { problems: p.0 }
}

/// The remote path as one word for the remote shell: quoted so that no
/// character in it is ever interpreted there, and never read as an option
/// (a relative path starting with `-` gets `./` in front).
fn remote_word(path: &str) -> String {
    if path.starts_with('-') {
        shell_quote(&format!("./{path}"))
    } else {
        shell_quote(path)
    }
}

/// Runs one command on the session: its exit status and standard error.
async fn status_of(
    session: &SshSession,
    command: &str,
    stderr: &Arc<Mutex<Vec<u8>>>,
) -> std::result::Result<i32, SshError> {
    stderr
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clear();
    let (_out, mut stdin, exit) = session.exec(command).await?.into_parts();
    let _ = stdin.shutdown().await;
    Ok(exit.wait().await)
}

impl Task {
    /// What an application calls before saving a task: every
    /// [`Task::validate`] problem; then, for an SSH task with
    /// `validate_remote_path`, connects with the task's own SSH settings
    /// and checks that `remote_path` is a directory on the remote host
    /// (with `create_remote_path`, a missing one is created, parents
    /// included, as `mkdir -p` does).
    ///
    /// The remote commands are `test -d PATH`, `test -e PATH` and
    /// `mkdir -p -- PATH`, each with the path as one quoted word: nothing
    /// in it (blanks, quotes, `$(...)`, `;`) reaches the remote shell as
    /// anything but data. The path is checked as the transfer will use it
    /// (relative to the login directory unless absolute).
    ///
    /// # Errors
    /// Every validation problem; else one problem: a connection failure
    /// (on `remote_host`, the host key field or the private key field),
    /// or on `remote_path` a path that is missing, not a directory, or
    /// could not be created.
    pub async fn validate_remote(&self) -> std::result::Result<RemotePath, Invalid> {
        self.validate()?;
        if self.mode != Mode::Ssh || !self.validate_remote_path {
            return Ok(RemotePath::NotChecked);
        }
        let (target, mut o, _scratch) =
            connection(self).map_err(|e| problem("private_key", e.to_string()))?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        o.stderr = Some(Arc::new(move |data: &[u8]| {
            sink.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(data);
        }));
        let session = SshSession::connect(&target, &o)
            .await
            .map_err(|e| problem(connect_field(self, &e), e.to_string()))?;
        let res = self.check_path(&session, &stderr).await;
        session.close().await;
        res.map_err(|e| problem("remote_host", e.to_string()))?
    }

    async fn check_path(
        &self,
        session: &SshSession,
        stderr: &Arc<Mutex<Vec<u8>>>,
    ) -> std::result::Result<std::result::Result<RemotePath, Invalid>, SshError> {
        let word = remote_word(&self.remote_path);
        let text = || {
            String::from_utf8_lossy(
                &stderr
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            )
            .trim()
            .to_string()
        };
        if status_of(session, &format!("test -d {word}"), stderr).await? == 0 {
            return Ok(Ok(RemotePath::Exists));
        }
        if status_of(session, &format!("test -e {word}"), stderr).await? == 0 {
            return Ok(Err(problem(
                "remote_path",
                format!(
                    "{:?} exists on the remote host but is not a directory",
                    self.remote_path
                ),
            )));
        }
        if !self.create_remote_path {
            return Ok(Err(problem(
                "remote_path",
                format!(
                    "{:?} does not exist on the remote host (create_remote_path creates it)",
                    self.remote_path
                ),
            )));
        }
        let code = status_of(session, &format!("mkdir -p -- {word}"), stderr).await?;
        let why = text();
        if code == 0 && status_of(session, &format!("test -d {word}"), stderr).await? == 0 {
            return Ok(Ok(RemotePath::Created));
        }
        Ok(Err(problem(
            "remote_path",
            format!(
                "cannot create {:?} on the remote host (exit status {code}){}",
                self.remote_path,
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {why}")
                }
            ),
        )))
    }
}
