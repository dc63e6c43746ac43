//! The session API: one call per transfer, local or through a spawned
//! peer.
//!
//! Layer: task (L5). Joins the engine and the transports.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferrsync::Error> {
//! use ferrsync::{Options, Transfer};
//! let report = Transfer::new(Options::archive())
//!     .local(&["src/".into()], "dst/".as_ref())
//!     .await?;
//! println!("{} files, {} literal bytes", report.stats.num_files, report.stats.literal_data);
//! # Ok(()) }
//! ```

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::engine::{self, ClientRole, EventSink, Hooks, MessageSink, Options, Report};
use crate::error::{Error, Result};
use crate::handshake::daemon::AuthDigest;
use crate::transport::RemoteCommand;
use crate::transport::daemon::{self as dclient, Credentials, DaemonUrl, ModuleListing};
use crate::transport::ssh::{SshOptions, SshSession, SshTarget};

/// Stops a running transfer from elsewhere (another task or thread).
///
/// Cancelling makes the transfer return [`Error::Cancelled`]; files being
/// received are discarded (their temporary files removed) and every file in
/// the destination stays either old and whole or new and whole.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<CancelInner>);

#[derive(Debug, Default)]
struct CancelInner {
    flag: AtomicBool,
    notify: Notify,
}

impl CancelToken {
    /// A token that is not cancelled.
    #[must_use]
    pub fn new() -> Self {
        CancelToken::default()
    }

    /// Cancels every transfer that holds this token.
    pub fn cancel(&self) {
        self.0.flag.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    /// Whether [`CancelToken::cancel`] was called.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.0.flag.load(Ordering::SeqCst)
    }

    async fn cancelled(&self) {
        loop {
            let wait = self.0.notify.notified();
            if self.is_cancelled() {
                return;
            }
            wait.await;
        }
    }
}

/// Receives a daemon's message of the day, one line per call.
pub type MotdSink = Arc<dyn Fn(&str) + Send + Sync>;

/// A configured transfer.
#[derive(Clone)]
pub struct Transfer {
    opts: Options,
    hooks: Hooks,
    cancel: Option<CancelToken>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    daemon_shell: Option<RemoteCommand>,
    motd: Option<MotdSink>,
    digests: Vec<AuthDigest>,
}

impl std::fmt::Debug for Transfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfer")
            .field("opts", &self.opts)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("password_file", &self.password_file)
            .field("daemon_shell", &self.daemon_shell)
            .finish_non_exhaustive()
    }
}

impl Transfer {
    /// A transfer with these options.
    #[must_use]
    pub fn new(opts: Options) -> Self {
        Transfer {
            opts,
            hooks: Hooks::default(),
            cancel: None,
            password: None,
            password_file: None,
            daemon_shell: None,
            motd: None,
            digests: AuthDigest::OFFERED.to_vec(),
        }
    }

    /// Offers only these daemon auth digests (strongest first; the default
    /// is every one rsync 3.5.0 offers).
    #[must_use]
    pub fn with_auth_digests(mut self, digests: &[AuthDigest]) -> Self {
        self.digests = digests.to_vec();
        self
    }

    /// The password for daemon modules with `auth users` (else
    /// `--password-file`, else `$RSYNC_PASSWORD`).
    #[must_use]
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Reads the daemon password from this file (`--password-file`: first
    /// line; the file must not be other-accessible).
    #[must_use]
    pub fn with_password_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.password_file = Some(path.into());
        self
    }

    /// Reaches daemons through this remote shell instead of TCP (rsync's
    /// `-e ssh host::module`): the command runs `rsync --server --daemon .`
    /// on the far side.
    #[must_use]
    pub fn with_daemon_shell(mut self, cmd: RemoteCommand) -> Self {
        self.daemon_shell = Some(cmd);
        self
    }

    /// Receives the daemon's message of the day, line by line.
    #[must_use]
    pub fn with_motd(mut self, sink: MotdSink) -> Self {
        self.motd = Some(sink);
        self
    }

    /// Lets `token` cancel this transfer.
    #[must_use]
    pub fn with_cancel(mut self, token: CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }

    async fn guarded<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        match &self.cancel {
            None => fut.await,
            Some(token) => {
                tokio::select! {
                    res = fut => res,
                    () = token.cancelled() => Err(Error::Cancelled),
                }
            }
        }
    }

    /// Observes per-item events (itemize, deletions, progress).
    #[must_use]
    pub fn with_events(mut self, sink: EventSink) -> Self {
        self.hooks.events = Some(sink);
        self
    }

    /// Observes text messages from the peer.
    #[must_use]
    pub fn with_messages(mut self, sink: MessageSink) -> Self {
        self.hooks.messages = Some(sink);
        self
    }

    /// The options.
    #[must_use]
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Copies local sources into a local destination, both sides in this
    /// process.
    ///
    /// # Errors
    /// A fatal error of either side.
    pub async fn local(&self, sources: &[PathBuf], dest: &Path) -> Result<Report> {
        self.guarded(engine::run_local(sources, dest, &self.opts, &self.hooks))
            .await
    }

    /// Pulls `remote_paths` from the peer reached by `cmd` into `dest`.
    ///
    /// # Errors
    /// A fatal session error; the peer's exit status is folded in.
    pub async fn pull(
        &self,
        cmd: &RemoteCommand,
        remote_paths: &[String],
        dest: &Path,
    ) -> Result<Report> {
        let role = ClientRole::Receiver {
            dest: dest.to_path_buf(),
        };
        self.guarded(self.through(cmd, true, remote_paths, role))
            .await
    }

    /// Pushes local `sources` to `remote_dest` on the peer reached by `cmd`.
    ///
    /// # Errors
    /// A fatal session error; the peer's exit status is folded in.
    pub async fn push(
        &self,
        cmd: &RemoteCommand,
        sources: &[PathBuf],
        remote_dest: &str,
    ) -> Result<Report> {
        let role = ClientRole::Sender {
            sources: sources.to_vec(),
        };
        self.through(cmd, false, &[remote_dest.to_string()], role)
            .await
    }

    /// Lists the modules of the daemon at `url` (`rsync://host[:port]/`).
    ///
    /// # Errors
    /// Connection failures and `@ERROR` refusals.
    pub async fn list_modules(&self, url: &DaemonUrl) -> Result<Vec<ModuleListing>> {
        let ours = self
            .opts
            .protocol
            .unwrap_or(crate::wire::ProtocolVersion::MAX.0);
        let motd = self.motd.clone();
        let mut sink = move |line: &str| {
            if let Some(m) = &motd {
                m(line);
            }
        };
        let fut = async {
            if let Some(cmd) = &self.daemon_shell {
                let (mut io, peer) = spawn_daemon_shell(cmd)?;
                let list = dclient::list_modules(&mut io, ours, &mut sink).await;
                let _ = peer.kill().await;
                list
            } else {
                let mut io = url.connect().await?;
                dclient::list_modules(&mut io, ours, &mut sink).await
            }
        };
        let fut = within_idle_timeout(&self.opts, fut);
        self.guarded(fut).await
    }

    /// Pulls `url` (`rsync://host/module/path`) into `dest`.
    ///
    /// # Errors
    /// Connection failures, `@ERROR` refusals, fatal session errors.
    pub async fn pull_daemon(&self, url: &DaemonUrl, dest: &Path) -> Result<Report> {
        let role = ClientRole::Receiver {
            dest: dest.to_path_buf(),
        };
        self.guarded(self.via_daemon(url, true, role)).await
    }

    /// Pushes local `sources` to `url` (`rsync://host/module/path`).
    ///
    /// # Errors
    /// Connection failures, `@ERROR` refusals, fatal session errors.
    pub async fn push_daemon(&self, sources: &[PathBuf], url: &DaemonUrl) -> Result<Report> {
        let role = ClientRole::Sender {
            sources: sources.to_vec(),
        };
        self.guarded(self.via_daemon(url, false, role)).await
    }

    fn credentials(&self, url: &DaemonUrl) -> Result<Credentials> {
        let password = match (&self.password, &self.password_file) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(file)) => {
                Some(crate::daemon::secrets::read_password_file(file).map_err(Error::Syntax)?)
            }
            (None, None) => std::env::var("RSYNC_PASSWORD").ok(),
        };
        Ok(Credentials {
            user: url.auth_user(),
            password,
            digests: self.digests.clone(),
        })
    }

    async fn via_daemon(
        &self,
        url: &DaemonUrl,
        server_sends: bool,
        role: ClientRole,
    ) -> Result<Report> {
        if url.module.is_empty() {
            return Err(Error::Syntax(
                "a module name is needed for a transfer (rsync://host/module/path)".into(),
            ));
        }
        let creds = self.credentials(url)?;
        if let Some(cmd) = &self.daemon_shell {
            let (io, peer) = spawn_daemon_shell(cmd)?;
            let res = self
                .daemon_session(io, url, server_sends, role, &creds)
                .await;
            match res {
                Ok(mut report) => {
                    report.remote_exit = Some(peer.wait().await?);
                    Ok(report)
                }
                Err(e) => {
                    let _ = peer.kill().await;
                    Err(e)
                }
            }
        } else {
            let io = url.connect().await?;
            self.daemon_session(io, url, server_sends, role, &creds)
                .await
        }
    }

    async fn daemon_session<S>(
        &self,
        mut io: S,
        url: &DaemonUrl,
        server_sends: bool,
        role: ClientRole,
        creds: &Credentials,
    ) -> Result<Report>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let ours = self
            .opts
            .protocol
            .unwrap_or(crate::wire::ProtocolVersion::MAX.0);
        let motd = self.motd.clone();
        let mut sink = move |line: &str| {
            if let Some(m) = &motd {
                m(line);
            }
        };
        let opts = self.opts.clone();
        let args = move |protocol: u8| {
            let mut o = opts.clone();
            o.protocol = Some(protocol);
            o.server_args(server_sends)
        };
        let paths = vec![url.path_word()];
        let open =
            dclient::open_module(&mut io, ours, &url.module, creds, &mut sink, &args, &paths);
        let protocol = within_idle_timeout(&self.opts, open).await?;
        let word = format!("{}/{}", url.module, url.path);
        let mut opts = self.requesting(server_sends, &[word], true);
        opts.protocol = Some(protocol);
        let (rd, wr) = tokio::io::split(io);
        engine::run_client_with(rd, wr, &opts, role, &self.hooks, Some(protocol)).await
    }

    /// The options with the source words of a pull recorded, for the
    /// check of the pulled list (see [`Options::requested`]).
    fn requesting(&self, server_sends: bool, paths: &[String], in_module: bool) -> Options {
        let mut o = self.opts.clone();
        if server_sends && o.requested.is_empty() {
            o.requested = paths.to_vec();
            o.requested_in_module = in_module;
        }
        o
    }

    async fn through(
        &self,
        cmd: &RemoteCommand,
        server_sends: bool,
        paths: &[String],
        role: ClientRole,
    ) -> Result<Report> {
        let args = self.opts.server_args(server_sends);
        let mut peer = cmd.spawn(&args, paths)?;
        let (Some(rd), Some(wr)) = (peer.stdout.take(), peer.stdin.take()) else {
            return Err(Error::Start("peer has no pipes".into()));
        };
        let opts = self.requesting(server_sends, paths, false);
        match engine::run_client(rd, wr, &opts, role, &self.hooks).await {
            Ok(mut report) => {
                let code = peer.wait().await?;
                report.remote_exit = Some(code);
                Ok(report)
            }
            Err(e) => {
                let code = peer.kill().await;
                match e {
                    Error::UnexpectedEof(_) if code != 0 && code != 125 => Err(Error::Remote {
                        code,
                        message: format!("remote side exited with status {code}"),
                    }),
                    other => Err(other),
                }
            }
        }
    }
}

impl Transfer {
    /// Pulls `remote_paths` from `rsync --server` on `target`, reached with
    /// the built-in SSH client, into `dest`.
    ///
    /// # Errors
    /// [`Error::Ssh`] when connecting, the host key check or the login
    /// fails (nothing is written then); a fatal session error; the remote
    /// exit status is folded in.
    pub async fn pull_ssh(
        &self,
        target: &SshTarget,
        ssh: &SshOptions,
        remote_paths: &[String],
        dest: &Path,
    ) -> Result<Report> {
        let role = ClientRole::Receiver {
            dest: dest.to_path_buf(),
        };
        self.guarded(self.via_ssh(target, ssh, true, remote_paths, role))
            .await
    }

    /// Pushes local `sources` to `remote_dest` on `target` through the
    /// built-in SSH client.
    ///
    /// # Errors
    /// As [`Transfer::pull_ssh`].
    pub async fn push_ssh(
        &self,
        target: &SshTarget,
        ssh: &SshOptions,
        sources: &[PathBuf],
        remote_dest: &str,
    ) -> Result<Report> {
        let role = ClientRole::Sender {
            sources: sources.to_vec(),
        };
        self.guarded(self.via_ssh(target, ssh, false, &[remote_dest.to_string()], role))
            .await
    }

    async fn via_ssh(
        &self,
        target: &SshTarget,
        ssh: &SshOptions,
        server_sends: bool,
        paths: &[String],
        role: ClientRole,
    ) -> Result<Report> {
        let session = SshSession::connect(target, ssh).await?;
        let args = self.opts.server_args(server_sends);
        let exec = session.exec_rsync(&args, paths).await?;
        let (rd, wr, exit) = exec.into_parts();
        let opts = self.requesting(server_sends, paths, false);
        let res = engine::run_client(rd, wr, &opts, role, &self.hooks).await;
        let code = if res.is_ok() {
            exit.wait().await
        } else {
            // A failed session may leave the peer waiting for us.
            tokio::time::timeout(std::time::Duration::from_secs(2), exit.wait())
                .await
                .unwrap_or(255)
        };
        session.close().await;
        match res {
            Ok(mut report) => {
                report.remote_exit = Some(code);
                Ok(report)
            }
            Err(Error::UnexpectedEof(_)) if code != 0 => Err(Error::Remote {
                code,
                message: format!("remote side exited with status {code}"),
            }),
            Err(e) => Err(e),
        }
    }
}

type ShellIo = tokio::io::Join<tokio::process::ChildStdout, tokio::process::ChildStdin>;

/// Starts `rsync --server --daemon .` through a remote shell and joins its
/// pipes into one stream.
fn spawn_daemon_shell(cmd: &RemoteCommand) -> Result<(ShellIo, crate::transport::SpawnedPeer)> {
    let mut peer = cmd.spawn(&["--server".into(), "--daemon".into()], &[])?;
    let (Some(rd), Some(wr)) = (peer.stdout.take(), peer.stdin.take()) else {
        return Err(Error::Start("peer has no pipes".into()));
    };
    Ok((tokio::io::join(rd, wr), peer))
}

/// Runs a daemon's text dialogue (greeting, module, authentication) under
/// the session's idle timeout (`--timeout`, else
/// `Options::limits.idle_timeout_secs`): a daemon that accepts the
/// connection and then says nothing ends the session with rsync's timeout
/// error instead of hanging.
async fn within_idle_timeout<T>(
    opts: &crate::engine::Options,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let secs = if opts.timeout > 0 {
        opts.timeout
    } else {
        opts.limits.idle_timeout_secs
    };
    if secs == 0 {
        return fut.await;
    }
    tokio::time::timeout(std::time::Duration::from_secs(u64::from(secs)), fut)
        .await
        .map_err(|_| Error::Timeout)?
}
