//! An embedded rsync-over-SSH endpoint: a russh server that lets
//! key-authenticated users run `rsync --server ...` against ferrsync's own
//! server role, confined to a root directory per user. Stock `rsync -e
//! ssh` clients (OpenSSH) talk to it as to `sshd` plus an installed rsync.
//!
//! Layer: task (L5), beside `daemon`. Joins russh (the SSH server), the
//! engine's server role and the daemon's path confinement
//! ([`crate::daemon::serve::sanitize`], [`crate::daemon::confine::check_inside`]).
//! Mirrors what upstream gets from sshd running `rsync --server` (main.c
//! `start_server`), with `rrsync`-like restrictions.
//!
//! Only exec requests are served; shells, subsystems, forwarding and any
//! command that is not `rsync --server` (without `--daemon`) are refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{PrivateKey, PublicKey};
use russh::server::{Auth, Msg, Session};
use russh::{Channel, ChannelId};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;

use crate::engine::{self, Hooks, ServerArgs, parse_server_args};
use crate::error::{Error, Result};
use crate::transport::ssh::split_shell_words;

/// A public key allowed in, the user names it may log in as, and the
/// directory it is confined to.
#[derive(Debug, Clone)]
pub struct AuthorizedKey {
    /// The key.
    pub key: PublicKey,
    /// The login name it must use; `None` for any.
    pub user: Option<String>,
    /// The root every path of its transfers stays under.
    pub root: PathBuf,
}

/// Settings of the endpoint.
#[derive(Clone)]
#[non_exhaustive]
pub struct SshServerConfig {
    /// The host keys offered to clients.
    pub host_keys: Vec<PrivateKey>,
    /// Who may log in, and where each is confined.
    pub authorized: Vec<AuthorizedKey>,
    /// Drop a connection after this long with nothing received.
    pub inactivity_timeout: Option<Duration>,
    /// How long a rejected login takes (against timing probes).
    pub auth_rejection_time: Duration,
}

impl std::fmt::Debug for SshServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshServerConfig")
            .field("host_keys", &self.host_keys.len())
            .field("authorized", &self.authorized)
            .finish_non_exhaustive()
    }
}

impl SshServerConfig {
    /// A configuration with one host key and no users yet.
    #[must_use]
    pub fn new(host_key: PrivateKey) -> Self {
        SshServerConfig {
            host_keys: vec![host_key],
            authorized: Vec::new(),
            inactivity_timeout: Some(Duration::from_secs(600)),
            auth_rejection_time: Duration::from_millis(300),
        }
    }

    /// Adds every key of an `authorized_keys` file, all confined to
    /// `root`, for any login name.
    ///
    /// # Errors
    /// The file cannot be read or a line does not parse.
    pub fn with_authorized_keys_file(mut self, path: &Path, root: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::local("read", path, e))?;
        for key in parse_authorized_keys(&text)
            .map_err(|e| Error::Syntax(format!("{}: {e}", path.display())))?
        {
            self.authorized.push(AuthorizedKey {
                key,
                user: None,
                root: root.to_path_buf(),
            });
        }
        Ok(self)
    }
}

/// Parses the keys of an `authorized_keys` file (OpenSSH format; leading
/// options such as `restrict,` are skipped, comments and blank lines too).
///
/// # Errors
/// A line with no key or a key that does not decode.
pub fn parse_authorized_keys(text: &str) -> std::result::Result<Vec<PublicKey>, String> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words
            .iter()
            .position(|w| {
                w.starts_with("ssh-") || w.starts_with("ecdsa-sha2-") || w.starts_with("sk-")
            })
            .ok_or_else(|| format!("line {}: no key type", n + 1))?;
        let b64 = words
            .get(at + 1)
            .ok_or_else(|| format!("line {}: no key", n + 1))?;
        let key = russh::keys::parse_public_key_base64(b64)
            .map_err(|e| format!("line {}: {e}", n + 1))?;
        keys.push(key);
    }
    Ok(keys)
}

/// Turns an exec request into server arguments whose paths are confined
/// to `root`: the command must be `rsync --server ...` (any program whose
/// name ends in `rsync`), not `--daemon`; each path is taken relative to
/// `root` (an absolute path too), must not climb above it with `..`, and
/// must not lead out of it through a symlink.
///
/// # Errors
/// The text for the client.
pub fn prepare_exec(command: &[u8], root: &Path) -> std::result::Result<ServerArgs, String> {
    let line = std::str::from_utf8(command)
        .map_err(|_| "refused: the command is not UTF-8".to_string())?;
    if let Some(c) = unquoted_operator(line) {
        return Err(format!(
            "refused: unquoted shell operator {c:?} in the command"
        ));
    }
    let words = split_shell_words(line).map_err(|e| format!("refused: {e}"))?;
    let is_rsync = words
        .first()
        .is_some_and(|w| w.rsplit('/').next().is_some_and(|b| b.ends_with("rsync")));
    if !is_rsync || words.get(1).map(String::as_str) != Some("--server") {
        return Err("refused: only `rsync --server` commands are served here".into());
    }
    let mut sa =
        parse_server_args(words.get(1..).unwrap_or_default()).map_err(|e| e.to_string())?;
    if sa.daemon {
        return Err("refused: daemon mode is not served over this endpoint".into());
    }
    if !sa.secluded {
        confine(&mut sa, root)?;
    }
    Ok(sa)
}

/// Maps the path words of `sa` under `root` (see [`prepare_exec`]).
///
/// # Errors
/// The text for the client.
pub fn confine(sa: &mut ServerArgs, root: &Path) -> std::result::Result<(), String> {
    if sa.paths.is_empty() {
        sa.paths.push(".".into());
    }
    for p in &mut sa.paths {
        if climbs_out(p) {
            return Err(format!("ERROR: {p} is outside the served directory"));
        }
        let rel = crate::daemon::serve::sanitize(p);
        let full = if rel.is_empty() {
            root.join(".")
        } else {
            root.join(&rel)
        };
        crate::daemon::confine::check_inside(root, &full, sa.sender)?;
        *p = full.to_string_lossy().into_owned();
    }
    Ok(())
}

/// The first character outside quotes (and not escaped) that a shell
/// would take as an operator, a substitution or a redirection: a command
/// line that has one is more than one `rsync --server` command.
fn unquoted_operator(line: &str) -> Option<char> {
    let mut quote = None;
    let mut escaped = false;
    for c in line.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (Some('"'), '\\') | (None, '\\') => escaped = true,
            (Some('"'), '$' | '`') => return Some(c),
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, ';' | '|' | '&' | '<' | '>' | '`' | '$' | '(' | ')' | '\n') => return Some(c),
            (None, _) => {}
        }
    }
    None
}

/// Whether `..` components take the path above its start.
fn climbs_out(path: &str) -> bool {
    let mut depth = 0usize;
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if depth == 0 {
                    return true;
                }
                depth -= 1;
            }
            _ => depth += 1,
        }
    }
    false
}

/// The endpoint: hand it connections.
#[derive(Debug, Clone)]
pub struct SshServer {
    cfg: Arc<SshServerConfig>,
    russh: Arc<russh::server::Config>,
}

impl SshServer {
    /// An endpoint with this configuration.
    #[must_use]
    pub fn new(cfg: SshServerConfig) -> Self {
        let russh = russh::server::Config {
            keys: cfg.host_keys.clone(),
            inactivity_timeout: cfg.inactivity_timeout,
            auth_rejection_time: cfg.auth_rejection_time,
            auth_rejection_time_initial: Some(Duration::ZERO),
            methods: russh::MethodSet::from(&[russh::MethodKind::PublicKey][..]),
            window_size: 8 << 20,
            nodelay: true,
            ..russh::server::Config::default()
        };
        SshServer {
            cfg: Arc::new(cfg),
            russh: Arc::new(russh),
        }
    }

    /// Accepts connections until the listener fails; each runs on its own
    /// task.
    ///
    /// # Errors
    /// Accepting failed.
    pub async fn serve(&self, listener: TcpListener) -> Result<()> {
        loop {
            let (sock, _) = listener.accept().await.map_err(Error::Connection)?;
            let _ = sock.set_nodelay(true);
            let me = self.clone();
            tokio::spawn(async move {
                let _ = me.serve_stream(sock).await;
            });
        }
    }

    /// Serves one connection (any byte stream) until it closes.
    ///
    /// # Errors
    /// The SSH session failed.
    pub async fn serve_stream<S>(&self, stream: S) -> Result<()>
    where
        S: AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let handler = ConnHandler {
            cfg: self.cfg.clone(),
            root: None,
            channels: HashMap::new(),
        };
        let session = russh::server::run_stream(self.russh.clone(), stream, handler)
            .await
            .map_err(|e| Error::Protocol(format!("ssh: {e}")))?;
        session
            .await
            .map_err(|e| Error::Protocol(format!("ssh: {e}")))
    }
}

struct ConnHandler {
    cfg: Arc<SshServerConfig>,
    root: Option<PathBuf>,
    channels: HashMap<ChannelId, Channel<Msg>>,
}

impl ConnHandler {
    fn find(&self, user: &str, key: &PublicKey) -> Option<&AuthorizedKey> {
        self.cfg.authorized.iter().find(|a| {
            a.key.key_data() == key.key_data() && a.user.as_deref().is_none_or(|u| u == user)
        })
    }
}

impl russh::server::Handler for ConnHandler {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        key: &PublicKey,
    ) -> std::result::Result<Auth, Self::Error> {
        Ok(if self.find(user, key).is_some() {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: &PublicKey,
    ) -> std::result::Result<Auth, Self::Error> {
        match self.find(user, key).map(|a| a.root.clone()) {
            Some(root) => {
                self.root = Some(root);
                Ok(Auth::Accept)
            }
            None => Ok(Auth::reject()),
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> std::result::Result<(), Self::Error> {
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        id: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> std::result::Result<(), Self::Error> {
        let (Some(channel), Some(root)) = (self.channels.remove(&id), self.root.clone()) else {
            session.channel_failure(id)?;
            return Ok(());
        };
        session.channel_success(id)?;
        let command = data.to_vec();
        tokio::spawn(run_exec(channel, command, root));
        Ok(())
    }

    async fn shell_request(
        &mut self,
        id: ChannelId,
        session: &mut Session,
    ) -> std::result::Result<(), Self::Error> {
        session.channel_failure(id)?;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        id: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> std::result::Result<(), Self::Error> {
        session.channel_failure(id)?;
        Ok(())
    }
}

/// Exit status for a refused command (as a shell's "cannot execute").
const REFUSED: u32 = 126;

async fn run_exec(channel: Channel<Msg>, command: Vec<u8>, root: PathBuf) {
    let (rd, wr) = channel.split();
    let code = match prepare_exec(&command, &root) {
        Err(msg) => {
            let _ = wr
                .extended_data_bytes(1, format!("ferrsync: {msg}\n").into_bytes())
                .await;
            if msg.starts_with("refused") {
                REFUSED
            } else {
                3
            }
        }
        Ok(mut sa) => {
            // Our own pump, so a server role that writes without reading
            // never stalls russh's session task (see ChannelReader).
            let (mut reader, _exit) = crate::transport::ssh::spawn_pump(rd, None);
            let mut ready = Ok(());
            if sa.secluded {
                ready = read_secluded(&mut reader)
                    .await
                    .and_then(|extra| {
                        // As `rsync --server` does: the command line's words,
                        // then those from stdin without their argv[0].
                        let line = String::from_utf8_lossy(&command);
                        let mut words = split_shell_words(&line)?;
                        words.remove(0);
                        words.extend(extra);
                        let mut all = parse_server_args(&words).map_err(|e| e.to_string())?;
                        all.secluded = false;
                        Ok(all)
                    })
                    .and_then(|mut all| confine(&mut all, &root).map(|()| all))
                    .map(|all| sa = all);
            }
            match ready {
                Err(msg) => {
                    let _ = wr
                        .extended_data_bytes(1, format!("ferrsync: {msg}\n").into_bytes())
                        .await;
                    3
                }
                Ok(()) => {
                    let writer = wr.make_writer();
                    match engine::run_server(reader, writer, &sa, &Hooks::default()).await {
                        Ok(report) => report.exit_code().code().unsigned_abs(),
                        Err(e) => e.exit_code().code().unsigned_abs(),
                    }
                }
            }
        }
    };
    let _ = wr.exit_status(code).await;
    let _ = wr.eof().await;
    let _ = wr.close().await;
}

/// Reads `-s` (secluded) arguments: NUL-terminated words, the first being
/// the program name, up to an empty word.
async fn read_secluded<R: AsyncRead + Unpin>(
    r: &mut R,
) -> std::result::Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = Vec::new();
    let mut total = 0usize;
    loop {
        let b = r
            .read_u8()
            .await
            .map_err(|e| format!("reading arguments: {e}"))?;
        total += 1;
        if total > 1 << 20 {
            return Err("argument list too long".into());
        }
        if b != 0 {
            cur.push(b);
            continue;
        }
        if cur.is_empty() {
            if !words.is_empty() {
                words.remove(0);
            }
            return Ok(words);
        }
        words.push(String::from_utf8_lossy(&std::mem::take(&mut cur)).into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_other_than_rsync_server_are_refused() {
        let t = tempfile::tempdir().unwrap();
        for cmd in [
            "ls -la",
            "rsync --version",
            "sh -c 'rsync --server . x'",
            "rsync --server --daemon .",
            "notrsync-really --server . x; id",
            "rsync --server 'unterminated",
            "rsync --server . x; id",
            "rsync --server . x && id",
            "rsync --server . $(id)",
            "rsync --server . \"`id`\"",
            "rsync --server . x > /etc/passwd",
        ] {
            let err = prepare_exec(cmd.as_bytes(), t.path()).unwrap_err();
            assert!(err.starts_with("refused"), "{cmd}: {err}");
        }
        let ok = prepare_exec(b"rsync --server . a\\;b 'c;$(d)' \"e;f\"", t.path()).unwrap();
        assert_eq!(ok.paths.len(), 3, "{ok:?}");
        let sa = prepare_exec(
            b"rsync --server --sender -logDtpre.iLsfxCIvu . a\\ b/",
            t.path(),
        );
        assert!(sa.is_ok(), "{sa:?}");
        let sa = sa.unwrap();
        assert!(sa.sender);
        assert_eq!(sa.paths, vec![format!("{}/a b/", t.path().display())]);
    }

    #[test]
    fn paths_are_confined_to_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("in")).unwrap();
        std::fs::create_dir_all(t.path().join("out")).unwrap();
        std::os::unix::fs::symlink(t.path().join("out"), root.join("esc")).unwrap();
        let map = |p: &str, sender: bool| {
            let mut sa = ServerArgs {
                sender,
                paths: vec![p.to_string()],
                ..ServerArgs::default()
            };
            confine(&mut sa, &root).map(|()| sa.paths[0].clone())
        };
        let r = root.display();
        let rows: &[(&str, Option<String>)] = &[
            ("in/", Some(format!("{r}/in/"))),
            ("/in", Some(format!("{r}/in"))),
            ("", Some(format!("{r}/."))),
            (".", Some(format!("{r}/."))),
            ("in/../in/x", Some(format!("{r}/in/x"))),
            ("..", None),
            ("../out", None),
            ("in/../../out", None),
            ("esc/", None),
            ("esc/file", None),
        ];
        for (p, want) in rows {
            for sender in [true, false] {
                assert_eq!(map(p, sender).ok(), *want, "{p:?} sender={sender}");
            }
        }
    }

    #[test]
    fn authorized_keys_lines() {
        let text = "# comment\n\n\
            ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGgNUu1CD5F1OqV2G1ytA4ZbSXSsbw06hOnSSqpi2Ob0 a@b\n\
            restrict,command=\"x y\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGgNUu1CD5F1OqV2G1ytA4ZbSXSsbw06hOnSSqpi2Ob0\n";
        assert_eq!(parse_authorized_keys(text).unwrap().len(), 2);
        assert!(parse_authorized_keys("garbage here\n").is_err());
    }
}
