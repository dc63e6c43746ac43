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

use crate::engine::{self, ClientRole, EventSink, Hooks, MessageSink, Options, Report};
use crate::error::{Error, Result};
use crate::transport::RemoteCommand;

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

/// A configured transfer.
#[derive(Clone, Debug)]
pub struct Transfer {
    opts: Options,
    hooks: Hooks,
    cancel: Option<CancelToken>,
}

impl Transfer {
    /// A transfer with these options.
    #[must_use]
    pub fn new(opts: Options) -> Self {
        Transfer {
            opts,
            hooks: Hooks::default(),
            cancel: None,
        }
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
        match engine::run_client(rd, wr, &self.opts, role, &self.hooks).await {
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
