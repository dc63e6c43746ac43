//! Running a [`Task`] now: a handle with a progress stream, cancellation
//! and the final report.
//!
//! Layer: task. Uses the session API.
//!
//! The transfer runs on a thread of its own with a single-threaded
//! runtime, so that when the process is root and the task names another
//! user, that thread alone takes the user's uid, gid and groups (the
//! engine does its file work on the thread that drives it).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{oneshot, watch};

use super::{Direction, Invalid, Mode, Task, account};
use crate::engine::{Event, Stats};
use crate::error::Error;
use crate::session::{CancelToken, Transfer};

/// Where a run is.
///
/// Once the file list is known (it is complete before any file data
/// moves), `total_files` and `total_bytes` are set, and `eta` is the
/// estimate for the whole run: the bytes not yet accounted for (neither
/// moved nor found up to date) at the average rate so far.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Progress {
    /// Items finished and itemized (created, updated, or changed in their
    /// attributes only).
    pub files: u64,
    /// Bytes of file data done, the current file's included. On a pull
    /// they move as the data arrives; on a push a file's bytes count when
    /// its transfer starts (the sending side gets no per-file progress).
    pub bytes: u64,
    /// Regular files found up to date (no data needed).
    pub up_to_date: u64,
    /// Their total size.
    pub up_to_date_bytes: u64,
    /// Entries in the file list, once it is known.
    pub total_files: Option<u64>,
    /// Total size of the regular files in the list, once it is known.
    pub total_bytes: Option<u64>,
    /// The file being received, if any.
    pub current: Option<String>,
    /// Its bytes done and its size.
    pub current_done: u64,
    /// Its size.
    pub current_total: u64,
    /// Average bytes per second since the start.
    pub rate: f64,
    /// Time left for the whole run at that rate: `total_bytes` less
    /// `bytes` and `up_to_date_bytes`, divided by `rate` (None before the
    /// list is known or while nothing has moved).
    pub eta: Option<Duration>,
    /// Time left for the current file at that rate (rsync's `--progress`
    /// estimate).
    pub file_eta: Option<Duration>,
    /// Time since the start.
    pub elapsed: Duration,
}

impl Progress {
    /// The share of the whole run done, 0.0 to 1.0 (None before the file
    /// list is known).
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn fraction(&self) -> Option<f64> {
        let total = self.total_bytes?;
        if total == 0 {
            return Some(1.0);
        }
        let done = (self.bytes + self.up_to_date_bytes).min(total);
        Some(done as f64 / total as f64)
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Exit status 0, 24 (files vanished) or 25 (deletions limited).
    Success,
    /// Any other status.
    Failed,
    /// Cancelled through the handle.
    Cancelled,
}

/// The outcome of one run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunReport {
    /// When it started.
    pub started: SystemTime,
    /// When it ended.
    pub ended: SystemTime,
    /// Summary.
    pub status: RunStatus,
    /// rsync's exit code.
    pub exit_code: i32,
    /// Totals (None when the session failed before its end).
    pub stats: Option<Stats>,
    /// `%i name` lines of the itemized changes (empty when quiet).
    pub itemized: Vec<String>,
    /// Error and warning text from either side.
    pub messages: Vec<String>,
    /// The error that ended the session, if one did.
    pub error: Option<String>,
}

impl RunReport {
    /// Whether rsync would count the run a success (0, 24, 25).
    #[must_use]
    pub fn is_success(&self) -> bool {
        self.status == RunStatus::Success
    }
}

/// A run in progress.
#[derive(Debug)]
pub struct RunHandle {
    progress: watch::Receiver<Progress>,
    cancel: CancelToken,
    done: oneshot::Receiver<RunReport>,
    started: SystemTime,
}

impl RunHandle {
    /// The progress stream: the latest value, with change notification.
    #[must_use]
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }

    /// Cancels the run: files being received are discarded, every
    /// destination file stays old and whole or new and whole.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// A token that cancels this run.
    #[must_use]
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// Waits for the end and returns the report.
    pub async fn wait(self) -> RunReport {
        let started = self.started;
        self.done.await.unwrap_or_else(|_| RunReport {
            started,
            ended: SystemTime::now(),
            status: RunStatus::Failed,
            exit_code: 12,
            stats: None,
            itemized: Vec::new(),
            messages: Vec::new(),
            error: Some("the transfer thread ended without a report".into()),
        })
    }
}

struct Tracker {
    start: Instant,
    state: Mutex<Progress>,
    tx: watch::Sender<Progress>,
    itemized: Mutex<Vec<String>>,
    messages: Mutex<Vec<String>>,
    quiet: bool,
}

impl Tracker {
    fn on_event(&self, ev: &Event) {
        let mut p = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match ev {
            Event::Itemize {
                name,
                size,
                sending,
                kind,
                flags,
                ..
            } => {
                if !self.quiet {
                    if let Some(s) = ev.itemize_string() {
                        // As rsync prints it: directories end with `/`.
                        let slash = if *kind == crate::engine::ItemKind::Dir {
                            "/"
                        } else {
                            ""
                        };
                        let mut l = self
                            .itemized
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        l.push(format!("{s} {}{slash}", String::from_utf8_lossy(name)));
                    }
                }
                p.files += 1;
                // A receiving side counts bytes from its progress events;
                // a sending side gets none and counts the files it sends.
                if *sending && *flags & crate::engine::report::item::TRANSFER != 0 {
                    p.bytes += size;
                }
            }
            Event::Progress { name, done, total } => {
                let same = p.current.as_deref().map(str::as_bytes) == Some(name.as_slice());
                if same {
                    p.bytes = p.bytes - p.current_done + done;
                } else {
                    p.current = Some(String::from_utf8_lossy(name).into_owned());
                    p.bytes += done;
                }
                p.current_done = *done;
                p.current_total = *total;
            }
            Event::FileList { files, size } => {
                p.total_files = Some(*files);
                p.total_bytes = Some(*size);
            }
            Event::UpToDate { size, .. } => {
                p.up_to_date += 1;
                p.up_to_date_bytes += size;
            }
            Event::Message { error: true, text } => {
                let mut m = self
                    .messages
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                m.push(text.clone());
            }
            _ => return,
        }
        p.elapsed = self.start.elapsed();
        let secs = p.elapsed.as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        {
            p.rate = if secs > 0.0 {
                p.bytes as f64 / secs
            } else {
                0.0
            };
            let rate = p.rate;
            let at_rate = move |left: u64| Duration::from_secs_f64(left as f64 / rate);
            let moving = rate > 0.0;
            p.file_eta = (p.current.is_some() && moving)
                .then(|| at_rate(p.current_total.saturating_sub(p.current_done)));
            p.eta = p
                .total_bytes
                .filter(|_| moving)
                .map(|t| at_rate(t.saturating_sub(p.bytes + p.up_to_date_bytes)));
        }
        self.tx.send_replace(p.clone());
    }
}

impl Task {
    /// Starts the task now (whether enabled or not).
    ///
    /// # Errors
    /// Every validation problem; nothing runs then.
    pub fn run_now(&self) -> Result<RunHandle, Invalid> {
        self.validate()?;
        let mut opts = self.options()?;
        // Per-file progress events on the receiving side; nothing is sent.
        opts.progress = true;
        let (tx, rx) = watch::channel(Progress::default());
        let tracker = Arc::new(Tracker {
            start: Instant::now(),
            state: Mutex::new(Progress::default()),
            tx,
            itemized: Mutex::new(Vec::new()),
            messages: Mutex::new(Vec::new()),
            quiet: self.quiet,
        });
        let cancel = CancelToken::new();
        let (done_tx, done_rx) = oneshot::channel();
        let started = SystemTime::now();
        let task = self.clone();
        let token = cancel.clone();
        let switch_to = if task.user.is_empty() {
            None
        } else {
            account::lookup_user(&task.user).filter(|a| !account::is_current(a))
        };
        let spawned = std::thread::Builder::new()
            .name("ferrsync-task".into())
            .spawn(move || {
                let res = (|| {
                    if let Some(a) = &switch_to {
                        account::become_user(a).map_err(Error::Start)?;
                    }
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| Error::Start(format!("cannot start a runtime: {e}")))?;
                    rt.block_on(transfer(&task, opts, token, tracker.clone()))
                })();
                let _ = done_tx.send(finish(started, res, &tracker));
            });
        if let Err(e) = spawned {
            return Err(Invalid {
                problems: vec![super::Problem {
                    field: "user".into(),
                    message: format!("cannot start the transfer thread: {e}"),
                }],
            });
        }
        Ok(RunHandle {
            progress: rx,
            cancel,
            done: done_rx,
            started,
        })
    }
}

async fn transfer(
    task: &Task,
    opts: crate::engine::Options,
    cancel: CancelToken,
    tracker: Arc<Tracker>,
) -> crate::error::Result<crate::engine::Report> {
    let t2 = tracker.clone();
    let mut t = Transfer::new(opts)
        .with_cancel(cancel)
        .with_events(Arc::new(move |ev: &Event| tracker.on_event(ev)))
        .with_messages(Arc::new(move |code, text: &[u8]| {
            if code != crate::wire::MsgCode::Info {
                let mut m = t2
                    .messages
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                m.push(String::from_utf8_lossy(text).trim_end().to_string());
            }
        }));
    match task.mode {
        Mode::Module => {
            if let Some(p) = &task.password {
                t = t.with_password(p.0.clone());
            } else if let Some(var) = &task.password_env {
                let v =
                    std::env::var(var).map_err(|_| Error::Syntax(format!("${var} is not set")))?;
                t = t.with_password(v);
            } else if let Some(f) = &task.password_file {
                t = t.with_password_file(f);
            }
            let url = task.daemon_url();
            match task.direction {
                Direction::Push => t.push_daemon(std::slice::from_ref(&task.path), &url).await,
                Direction::Pull => t.pull_daemon(&url, &task.path).await,
            }
        }
        Mode::Ssh => super::ssh::run(task, t).await,
    }
}

fn finish(
    started: SystemTime,
    res: crate::error::Result<crate::engine::Report>,
    tracker: &Tracker,
) -> RunReport {
    let itemized = std::mem::take(
        &mut *tracker
            .itemized
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let messages = std::mem::take(
        &mut *tracker
            .messages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let (status, exit_code, stats, error) = match res {
        Ok(r) => {
            let code = r.exit_code().code();
            let status = if matches!(code, 0 | 24 | 25) {
                RunStatus::Success
            } else {
                RunStatus::Failed
            };
            let mut msgs = r.errors.clone();
            msgs.retain(|e| !e.is_empty());
            (status, code, Some(r.stats), msgs.first().cloned())
        }
        Err(Error::Cancelled) => (
            RunStatus::Cancelled,
            Error::Cancelled.exit_code().code(),
            None,
            Some("cancelled".into()),
        ),
        Err(e) => (
            RunStatus::Failed,
            e.exit_code().code(),
            None,
            Some(e.to_string()),
        ),
    };
    RunReport {
        started,
        ended: SystemTime::now(),
        status,
        exit_code,
        stats,
        itemized,
        messages,
        error,
    }
}
