//! SSH client transport: connect with russh, check the host key, log in,
//! exec `rsync --server ...` and hand back the channel as a byte pipe.
//!
//! Layer: transport (L4). Uses tokio and russh; never the engine. Mirrors
//! what upstream rsync gets from `ssh HOST rsync --server ...` (main.c
//! `do_cmd`, and the quoting of remote arguments in `safe_arg`).
//!
//! The channel's messages are pumped by one spawned task: data goes to the
//! reading half of the returned [`SshExec`], extended data (the remote
//! stderr) to a sink, and the exit status to [`SshExec::wait`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey};
use russh::{ChannelMsg, Disconnect};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, mpsc, oneshot};

/// Where to connect: `[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// Host name or address.
    pub host: String,
    /// TCP port (22 by default).
    pub port: u16,
    /// The user to log in as.
    pub user: String,
}

impl SshTarget {
    /// A target on port 22.
    #[must_use]
    pub fn new(host: impl Into<String>, user: impl Into<String>) -> Self {
        SshTarget {
            host: host.into(),
            port: 22,
            user: user.into(),
        }
    }

    /// The same target on another port.
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The name under which `known_hosts` records this host: `host` on
    /// port 22, else `[host]:port` (as OpenSSH writes it).
    #[must_use]
    pub fn known_hosts_name(&self) -> String {
        if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }
}

/// How to prove who we are.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SshAuth {
    /// A private key file (OpenSSH or PKCS#8 format; ed25519, ECDSA, RSA),
    /// with the passphrase if it is encrypted.
    KeyFile {
        /// The private key file.
        path: PathBuf,
        /// Its passphrase, for an encrypted key.
        passphrase: Option<String>,
    },
    /// The keys of the ssh-agent at `$SSH_AUTH_SOCK`.
    Agent,
    /// The keys of the ssh-agent listening on this socket.
    AgentSocket(PathBuf),
    /// The user's `~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa` (those that
    /// exist and are not encrypted), then the agent.
    Default,
}

impl std::fmt::Debug for SshAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SshAuth::KeyFile { path, passphrase } => f
                .debug_struct("KeyFile")
                .field("path", path)
                .field("passphrase", &passphrase.as_ref().map(|_| "***"))
                .finish(),
            SshAuth::Agent => f.write_str("Agent"),
            SshAuth::AgentSocket(p) => f.debug_tuple("AgentSocket").field(p).finish(),
            SshAuth::Default => f.write_str("Default"),
        }
    }
}

/// What to do with the server's host key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostKeyPolicy {
    /// The host must be in `known_hosts` with this very key.
    #[default]
    Strict,
    /// An unknown host is trusted and recorded; a changed key is refused.
    AcceptNew,
    /// Any key is accepted (no protection against a man in the middle).
    Insecure,
}

impl std::str::FromStr for HostKeyPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "strict" | "yes" => Ok(HostKeyPolicy::Strict),
            "accept-new" => Ok(HostKeyPolicy::AcceptNew),
            "insecure" | "no" | "off" => Ok(HostKeyPolicy::Insecure),
            _ => Err(format!(
                "unknown host key policy {s:?} (strict, accept-new or insecure)"
            )),
        }
    }
}

/// Receives the remote side's standard error.
pub type StderrSink = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// Connection settings.
#[derive(Clone)]
#[non_exhaustive]
pub struct SshOptions {
    /// How to log in.
    pub auth: SshAuth,
    /// The `known_hosts` file (default `~/.ssh/known_hosts`).
    pub known_hosts: Option<PathBuf>,
    /// What to do with the host key.
    pub host_key_policy: HostKeyPolicy,
    /// Limit for TCP connect, key exchange and login together.
    pub connect_timeout: Option<Duration>,
    /// Close the connection after this long with nothing received.
    pub io_timeout: Option<Duration>,
    /// Send a keep-alive after this long with nothing received.
    pub keepalive: Option<Duration>,
    /// The remote rsync program (`--rsync-path`), `rsync` by default.
    pub rsync_path: String,
    /// Where the remote stderr goes (default: our stderr).
    pub stderr: Option<StderrSink>,
    /// Preferred ciphers, by SSH name (e.g. `aes128-gcm@openssh.com`);
    /// empty for russh's defaults.
    pub ciphers: Vec<String>,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            auth: SshAuth::Default,
            known_hosts: None,
            host_key_policy: HostKeyPolicy::Strict,
            connect_timeout: Some(Duration::from_secs(30)),
            io_timeout: None,
            keepalive: Some(Duration::from_secs(30)),
            rsync_path: "rsync".into(),
            stderr: None,
            ciphers: Vec::new(),
        }
    }
}

impl std::fmt::Debug for SshOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshOptions")
            .field("auth", &self.auth)
            .field("known_hosts", &self.known_hosts)
            .field("host_key_policy", &self.host_key_policy)
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .field("keepalive", &self.keepalive)
            .field("rsync_path", &self.rsync_path)
            .finish_non_exhaustive()
    }
}

/// Why an SSH connection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SshError {
    /// The TCP connection failed (refused, unreachable, name unknown).
    #[error("ssh: connect to {host} port {port}: {source}")]
    Connect {
        /// The host.
        host: String,
        /// The port.
        port: u16,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The host is not in `known_hosts` and the policy is strict.
    #[error("ssh: host key for {host} is not known ({fingerprint}); add it to {}", .known_hosts.display())]
    HostKeyUnknown {
        /// `host` or `[host]:port`.
        host: String,
        /// The server key's SHA256 fingerprint.
        fingerprint: String,
        /// The file consulted.
        known_hosts: PathBuf,
    },
    /// The host is in `known_hosts` with another key.
    #[error("ssh: HOST KEY FOR {host} HAS CHANGED ({fingerprint}); see line {line} of {}", .known_hosts.display())]
    HostKeyChanged {
        /// `host` or `[host]:port`.
        host: String,
        /// The offered key's SHA256 fingerprint.
        fingerprint: String,
        /// The file consulted.
        known_hosts: PathBuf,
        /// The line that recorded the other key.
        line: usize,
    },
    /// No offered key was accepted.
    #[error("ssh: permission denied for {user}@{host} ({tried})")]
    AuthFailed {
        /// The user.
        user: String,
        /// The host.
        host: String,
        /// What was offered.
        tried: String,
    },
    /// A key file cannot be read or decrypted.
    #[error("ssh: key {}: {message}", .path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Connecting and logging in took longer than the connect timeout.
    #[error("ssh: connection to {host} timed out")]
    Timeout {
        /// The host.
        host: String,
    },
    /// The server refused the exec request.
    #[error("ssh: the server refused to run the command")]
    ExecRefused,
    /// The SSH protocol failed.
    #[error("ssh: {0}")]
    Protocol(String),
}

impl From<russh::Error> for SshError {
    fn from(e: russh::Error) -> Self {
        SshError::Protocol(e.to_string())
    }
}

/// Quotes one word for a POSIX shell: words made only of safe characters
/// stay as they are, everything else goes in single quotes (a `'` inside
/// becomes `'\''`), so the remote shell passes it on as data.
#[must_use]
pub fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        return word.to_string();
    }
    let mut s = String::with_capacity(word.len() + 2);
    s.push('\'');
    for c in word.chars() {
        if c == '\'' {
            s.push_str("'\\''");
        } else {
            s.push(c);
        }
    }
    s.push('\'');
    s
}

/// The command line for the remote shell: the rsync program's words as
/// given (an `--rsync-path` may hold several, e.g. `sudo rsync`), then each
/// argument quoted with [`shell_quote`].
#[must_use]
pub fn remote_command_line(rsync_path: &str, args: &[String]) -> String {
    let mut line = if rsync_path.trim().is_empty() {
        "rsync".to_string()
    } else {
        rsync_path.trim().to_string()
    };
    for a in args {
        line.push(' ');
        line.push_str(&shell_quote(a));
    }
    line
}

/// Splits a command line into words the way a POSIX shell does for plain
/// words: blanks separate, single quotes keep everything, double quotes
/// keep everything but `\` before `"`, `\`, `$`, `` ` ``, and a backslash
/// outside quotes keeps the next character.
///
/// # Errors
/// An unterminated quote or a trailing backslash.
pub fn split_shell_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(n @ ('"' | '\\' | '$' | '`')) => cur.push(n),
                            Some('\n') => {}
                            Some(n) => {
                                cur.push('\\');
                                cur.push(n);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(n) => cur.push(n),
                    None => return Err("trailing backslash".into()),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// The default `known_hosts` file: `~/.ssh/known_hosts`.
#[must_use]
pub fn default_known_hosts() -> PathBuf {
    home().join(".ssh").join("known_hosts")
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

/// The SHA256 fingerprint of a public key, as OpenSSH prints it.
#[must_use]
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

struct Checker {
    name: String,
    host: String,
    port: u16,
    known_hosts: PathBuf,
    policy: HostKeyPolicy,
}

impl Checker {
    fn check(&self, key: &PublicKey) -> Result<bool, SshError> {
        if self.policy == HostKeyPolicy::Insecure {
            return Ok(true);
        }
        let fp = fingerprint(key);
        match russh::keys::check_known_hosts_path(&self.host, self.port, key, &self.known_hosts) {
            Ok(true) => Ok(true),
            Ok(false) => {
                if self.policy == HostKeyPolicy::AcceptNew {
                    russh::keys::known_hosts::learn_known_hosts_path(
                        &self.host,
                        self.port,
                        key,
                        &self.known_hosts,
                    )
                    .map_err(|e| SshError::Key {
                        path: self.known_hosts.clone(),
                        message: format!("cannot record the host key: {e}"),
                    })?;
                    return Ok(true);
                }
                Err(SshError::HostKeyUnknown {
                    host: self.name.clone(),
                    fingerprint: fp,
                    known_hosts: self.known_hosts.clone(),
                })
            }
            Err(russh::keys::Error::KeyChanged { line }) => Err(SshError::HostKeyChanged {
                host: self.name.clone(),
                fingerprint: fp,
                known_hosts: self.known_hosts.clone(),
                line,
            }),
            Err(e) => Err(SshError::Key {
                path: self.known_hosts.clone(),
                message: e.to_string(),
            }),
        }
    }
}

struct ClientHandler {
    checker: Checker,
}

impl client::Handler for ClientHandler {
    type Error = SshError;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, SshError> {
        self.checker.check(&key.public_key())
    }
}

/// A logged-in SSH connection.
pub struct SshSession {
    handle: Handle<ClientHandler>,
    target: SshTarget,
    rsync_path: String,
    stderr: Option<StderrSink>,
}

impl std::fmt::Debug for SshSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSession")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

fn client_config(opts: &SshOptions) -> client::Config {
    let mut cfg = client::Config {
        inactivity_timeout: opts.io_timeout,
        keepalive_interval: opts.keepalive,
        nodelay: true,
        window_size: 8 << 20,
        ..client::Config::default()
    };
    if !opts.ciphers.is_empty() {
        let wanted: Vec<russh::cipher::Name> = russh::cipher::ALL_CIPHERS
            .iter()
            .filter(|n| opts.ciphers.iter().any(|w| w == n.as_ref()))
            .map(|n| **n)
            .collect();
        if !wanted.is_empty() {
            cfg.preferred.cipher = wanted.into();
        }
    }
    cfg
}

impl SshSession {
    /// Connects to `target`, checks its host key and logs in.
    ///
    /// # Errors
    /// [`SshError::Connect`] for a refused or unreachable host,
    /// [`SshError::HostKeyUnknown`] / [`SshError::HostKeyChanged`] from the
    /// host key check, [`SshError::AuthFailed`] when no key is accepted,
    /// [`SshError::Timeout`] past the connect timeout.
    pub async fn connect(target: &SshTarget, opts: &SshOptions) -> Result<Self, SshError> {
        let fut = Self::connect_inner(target, opts);
        match opts.connect_timeout {
            Some(t) => tokio::time::timeout(t, fut)
                .await
                .map_err(|_| SshError::Timeout {
                    host: target.host.clone(),
                })?,
            None => fut.await,
        }
    }

    async fn connect_inner(target: &SshTarget, opts: &SshOptions) -> Result<Self, SshError> {
        let stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|source| SshError::Connect {
                host: target.host.clone(),
                port: target.port,
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let checker = Checker {
            name: target.known_hosts_name(),
            host: target.host.clone(),
            port: target.port,
            known_hosts: opts.known_hosts.clone().unwrap_or_else(default_known_hosts),
            policy: opts.host_key_policy,
        };
        let cfg = Arc::new(client_config(opts));
        let mut handle = client::connect_stream(cfg, stream, ClientHandler { checker }).await?;
        authenticate(&mut handle, target, &opts.auth).await?;
        Ok(SshSession {
            handle,
            target: target.clone(),
            rsync_path: opts.rsync_path.clone(),
            stderr: opts.stderr.clone(),
        })
    }

    /// Runs `rsync --server ARGS . PATHS` on the far side (the rsync
    /// program from [`SshOptions::rsync_path`], every word quoted).
    ///
    /// # Errors
    /// The channel cannot be opened or the exec is refused.
    pub async fn exec_rsync(
        &self,
        server_args: &[String],
        paths: &[String],
    ) -> Result<SshExec, SshError> {
        let mut args = server_args.to_vec();
        args.push(".".into());
        args.extend(paths.iter().map(|p| {
            if p.is_empty() {
                ".".to_string()
            } else if p.starts_with('-') {
                // A path, never an option of the remote rsync (as rsync's
                // `safe_arg`).
                format!("./{p}")
            } else {
                p.clone()
            }
        }));
        self.exec(&remote_command_line(&self.rsync_path, &args))
            .await
    }

    /// Runs one command line (already quoted for the remote shell).
    ///
    /// # Errors
    /// The channel cannot be opened or the exec is refused.
    pub async fn exec(&self, command: &str) -> Result<SshExec, SshError> {
        let channel = self.handle.channel_open_session().await?;
        let (mut rd, wr) = channel.split();
        wr.exec(true, command.as_bytes()).await?;
        // The reply to the exec comes before any data.
        loop {
            match rd.wait().await {
                Some(ChannelMsg::Success) => break,
                Some(ChannelMsg::Failure) | None => return Err(SshError::ExecRefused),
                Some(ChannelMsg::WindowAdjusted { .. }) => {}
                Some(other) => {
                    return Err(SshError::Protocol(format!(
                        "unexpected {other:?} before the exec reply"
                    )));
                }
            }
        }
        let sink = self.stderr.clone().unwrap_or_else(|| {
            Arc::new(|data: &[u8]| {
                let _ = std::io::Write::write_all(&mut std::io::stderr(), data);
            })
        });
        let (reader, exit_rx) = spawn_pump(rd, Some(sink));
        Ok(SshExec {
            reader,
            writer: Box::new(wr.make_writer()),
            exit: exit_rx,
        })
    }

    /// Says goodbye to the server.
    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// How many received bytes may wait for the engine before the pump stops
/// taking more off the channel.
const HIGH_WATER: usize = 64 << 20;

/// Bytes received on a channel, for the engine to read.
///
/// russh delivers a channel's messages from its one session task; if a
/// message cannot be handed over, that task waits and stops handling the
/// window adjustments of our own writes too. The engine may write for a
/// while without reading (a sender busy with a file while the generator
/// sends more requests), so a bounded pipe here would deadlock both sides.
/// This reader lets [`HIGH_WATER`] bytes wait before pushing back.
#[derive(Debug)]
pub struct ChannelReader {
    rx: mpsc::UnboundedReceiver<Bytes>,
    cur: Bytes,
    queued: Arc<Queued>,
}

#[derive(Debug, Default)]
struct Queued {
    bytes: AtomicUsize,
    drained: Notify,
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            if !self.cur.is_empty() {
                let n = self.cur.len().min(buf.remaining());
                buf.put_slice(&self.cur.split_to(n));
                self.queued.bytes.fetch_sub(n, Ordering::AcqRel);
                self.queued.drained.notify_one();
                return Poll::Ready(Ok(()));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(b)) => self.cur = b,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The sending end of a [`ChannelReader`].
#[derive(Debug)]
pub struct ChannelFeed {
    tx: Option<mpsc::UnboundedSender<Bytes>>,
    queued: Arc<Queued>,
}

impl ChannelFeed {
    /// A connected feed and reader.
    #[must_use]
    pub fn new() -> (ChannelFeed, ChannelReader) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(Queued::default());
        (
            ChannelFeed {
                tx: Some(tx),
                queued: queued.clone(),
            },
            ChannelReader {
                rx,
                cur: Bytes::new(),
                queued,
            },
        )
    }

    /// Hands `data` to the reader, waiting while too much is queued.
    /// Returns false once the reader is gone.
    pub async fn push(&mut self, data: Bytes) -> bool {
        loop {
            let drained = self.queued.drained.notified();
            if self.queued.bytes.load(Ordering::Acquire) <= HIGH_WATER {
                break;
            }
            drained.await;
        }
        let Some(tx) = &self.tx else { return false };
        self.queued.bytes.fetch_add(data.len(), Ordering::AcqRel);
        tx.send(data).is_ok()
    }

    /// Ends the stream (the reader sees EOF after what is queued).
    pub fn finish(&mut self) {
        self.tx = None;
    }
}

/// Takes a channel's messages off russh's session task: data to a
/// [`ChannelReader`], extended data to `stderr` (dropped when `None`), the
/// exit status to the returned receiver when the channel closes.
pub fn spawn_pump(
    mut rd: russh::ChannelReadHalf,
    stderr: Option<StderrSink>,
) -> (ChannelReader, oneshot::Receiver<Option<u32>>) {
    let (mut feed, reader) = ChannelFeed::new();
    let (exit_tx, exit_rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut status = None;
        let mut open = true;
        while let Some(msg) = rd.wait().await {
            match msg {
                // When the reader is gone, keep draining for the status.
                ChannelMsg::Data { data } if open && !feed.push(data.clone()).await => open = false,
                ChannelMsg::ExtendedData { data, .. } => {
                    if let Some(s) = &stderr {
                        s(&data);
                    }
                }
                ChannelMsg::Eof => feed.finish(),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::ExitSignal { .. } => status = status.or(Some(255)),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        feed.finish();
        let _ = exit_tx.send(status);
    });
    (reader, exit_rx)
}

async fn authenticate(
    handle: &mut Handle<ClientHandler>,
    target: &SshTarget,
    auth: &SshAuth,
) -> Result<(), SshError> {
    let mut tried = Vec::new();
    match auth {
        SshAuth::KeyFile { path, passphrase } => {
            let key = load_key(path, passphrase.as_deref())?;
            tried.push(path.display().to_string());
            if try_key(handle, &target.user, key).await? {
                return Ok(());
            }
        }
        SshAuth::Agent => {
            tried.push("agent".into());
            if try_agent(handle, &target.user, None).await? {
                return Ok(());
            }
        }
        SshAuth::AgentSocket(sock) => {
            tried.push(format!("agent at {}", sock.display()));
            if try_agent(handle, &target.user, Some(sock)).await? {
                return Ok(());
            }
        }
        SshAuth::Default => {
            for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
                let path = home().join(".ssh").join(name);
                if !path.exists() {
                    continue;
                }
                // An encrypted default key needs a passphrase we lack: skip
                // it, the agent may hold it.
                let Ok(key) = load_key(&path, None) else {
                    continue;
                };
                tried.push(path.display().to_string());
                if try_key(handle, &target.user, key).await? {
                    return Ok(());
                }
            }
            if std::env::var_os("SSH_AUTH_SOCK").is_some() {
                tried.push("agent".into());
                if try_agent(handle, &target.user, None).await? {
                    return Ok(());
                }
            }
        }
    }
    Err(SshError::AuthFailed {
        user: target.user.clone(),
        host: target.host.clone(),
        tried: if tried.is_empty() {
            "no key found".into()
        } else {
            format!("tried {}", tried.join(", "))
        },
    })
}

/// Loads a private key, decrypting it with `passphrase`.
///
/// # Errors
/// [`SshError::Key`] when the file is missing, malformed, encrypted
/// without a passphrase, or the passphrase is wrong.
pub fn load_key(
    path: &Path,
    passphrase: Option<&str>,
) -> Result<russh::keys::PrivateKey, SshError> {
    russh::keys::load_secret_key(path, passphrase).map_err(|e| SshError::Key {
        path: path.to_path_buf(),
        message: match e {
            russh::keys::Error::KeyIsEncrypted => {
                "the key is encrypted; a passphrase is needed".into()
            }
            other => other.to_string(),
        },
    })
}

async fn try_key(
    handle: &mut Handle<ClientHandler>,
    user: &str,
    key: russh::keys::PrivateKey,
) -> Result<bool, SshError> {
    let hash = if key.algorithm().is_rsa() {
        handle.best_supported_rsa_hash().await?.flatten()
    } else {
        None
    };
    let res = handle
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
        .await?;
    Ok(res.success())
}

async fn try_agent(
    handle: &mut Handle<ClientHandler>,
    user: &str,
    sock: Option<&Path>,
) -> Result<bool, SshError> {
    let agent = match sock {
        Some(p) => AgentClient::connect_uds(p).await.map(AgentClient::dynamic),
        None => AgentClient::connect_env().await.map(AgentClient::dynamic),
    };
    let mut agent =
        agent.map_err(|e| SshError::Protocol(format!("cannot reach the ssh-agent: {e}")))?;
    let ids = agent
        .request_identities()
        .await
        .map_err(|e| SshError::Protocol(format!("ssh-agent: {e}")))?;
    for id in ids {
        let key = id.public_key().into_owned();
        let hash = if key.algorithm().is_rsa() {
            handle.best_supported_rsa_hash().await?.flatten()
        } else {
            None
        };
        let res = handle
            .authenticate_publickey_with(user, key, hash, &mut agent)
            .await
            .map_err(|e| SshError::Protocol(format!("ssh-agent: {e}")))?;
        if res.success() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A remote command running over an SSH channel: read its stdout from
/// `reader`, write its stdin through `writer`, then [`SshExec::wait`].
pub struct SshExec {
    /// The remote standard output.
    pub reader: ChannelReader,
    /// The remote standard input; shutting it down sends EOF.
    pub writer: Box<dyn AsyncWrite + Send + Unpin>,
    exit: oneshot::Receiver<Option<u32>>,
}

impl std::fmt::Debug for SshExec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshExec").finish_non_exhaustive()
    }
}

impl SshExec {
    /// Takes the pipes, leaving a handle that waits for the exit status.
    #[must_use]
    pub fn into_parts(self) -> (ChannelReader, Box<dyn AsyncWrite + Send + Unpin>, SshExit) {
        (self.reader, self.writer, SshExit(self.exit))
    }
}

/// The exit status of a remote command, once the channel closes.
#[derive(Debug)]
pub struct SshExit(oneshot::Receiver<Option<u32>>);

impl SshExit {
    /// Waits for the channel to close: the exit status, 255 when the
    /// server closed it without one (as OpenSSH's client reports).
    pub async fn wait(self) -> i32 {
        match self.0.await {
            Ok(Some(code)) => i32::try_from(code).unwrap_or(255),
            _ => 255,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips_through_the_shell_rules() {
        let rows: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("a/b.c", "a/b.c"),
            ("", "''"),
            ("with space", "'with space'"),
            ("it's", "'it'\\''s'"),
            ("a;rm -rf /", "'a;rm -rf /'"),
            ("$(id)", "'$(id)'"),
            ("`id`", "'`id`'"),
            ("a\"b", "'a\"b'"),
            ("new\nline", "'new\nline'"),
            ("*", "'*'"),
        ];
        for (word, quoted) in rows {
            assert_eq!(shell_quote(word), *quoted, "{word:?}");
            assert_eq!(split_shell_words(quoted).unwrap(), vec![word.to_string()]);
        }
    }

    #[test]
    fn command_lines_split_back_into_the_same_words() {
        let args: Vec<String> = [
            "--server",
            "-logDtpre.iLsfxCIvu",
            ".",
            "dir with space/",
            "x';touch /tmp/p;'",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        let line = remote_command_line("rsync", &args);
        let mut words = split_shell_words(&line).unwrap();
        assert_eq!(words.remove(0), "rsync");
        assert_eq!(words, args);
    }

    #[test]
    fn shell_word_rules() {
        let rows: &[(&str, &[&str])] = &[
            ("rsync --server . a\\ b", &["rsync", "--server", ".", "a b"]),
            ("a  \"b c\" 'd'e", &["a", "b c", "de"]),
            ("\"x\\\"y\\n\"", &["x\"y\\n"]),
            ("''", &[""]),
            ("   ", &[]),
        ];
        for (line, words) in rows {
            assert_eq!(split_shell_words(line).unwrap(), *words, "{line:?}");
        }
        assert!(split_shell_words("'open").is_err());
        assert!(split_shell_words("\"open").is_err());
        assert!(split_shell_words("end\\").is_err());
    }

    #[test]
    fn policies_parse() {
        assert_eq!("strict".parse::<HostKeyPolicy>(), Ok(HostKeyPolicy::Strict));
        assert_eq!(
            "accept-new".parse::<HostKeyPolicy>(),
            Ok(HostKeyPolicy::AcceptNew)
        );
        assert_eq!(
            "insecure".parse::<HostKeyPolicy>(),
            Ok(HostKeyPolicy::Insecure)
        );
        assert!("maybe".parse::<HostKeyPolicy>().is_err());
        assert_eq!(SshTarget::new("h", "u").known_hosts_name(), "h");
        assert_eq!(
            SshTarget::new("h", "u").with_port(2222).known_hosts_name(),
            "[h]:2222"
        );
    }
}
