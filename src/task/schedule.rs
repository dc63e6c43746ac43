//! [`Scheduler`]: runs enabled tasks when their cron schedule fires.
//!
//! Layer: task. Uses croner for the schedules and tokio's clock.
//!
//! Time is the wall clock at [`Scheduler::start`] plus tokio's monotonic
//! time since, so a test with tokio's paused clock drives it exactly, and
//! a wall-clock jump does not make it fire twice. Schedules are read in
//! local time. A run due while the task's previous run is still going is
//! skipped and reported ([`SchedulerEvent::Skipped`]); missed times while
//! a run goes on are not made up afterwards.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Local};
use tokio::sync::{broadcast, watch};

use super::{Invalid, Problems, RunReport, RunStatus, Task};
use crate::engine::Stats;

/// What runs a task (the default: [`Task::run_now`] and wait).
pub type Runner =
    Arc<dyn Fn(Task) -> Pin<Box<dyn Future<Output = RunReport> + Send>> + Send + Sync>;

/// How one scheduled time went.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryStatus {
    /// Ran and succeeded (0, 24, 25).
    Success,
    /// Ran and failed.
    Failed,
    /// Cancelled.
    Cancelled,
    /// Not run: the previous run was still going.
    Skipped,
}

/// One line of a task's history.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HistoryEntry {
    /// The scheduled time.
    pub due: DateTime<Local>,
    /// When the run started (the due time for a skipped one).
    pub started: DateTime<Local>,
    /// When it ended.
    pub ended: DateTime<Local>,
    /// How it went.
    pub status: EntryStatus,
    /// rsync's exit code, when it ran.
    pub exit_code: Option<i32>,
    /// Its totals, when it ran to the end.
    pub stats: Option<Stats>,
}

/// What the scheduler reports as it goes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SchedulerEvent {
    /// A run started.
    Started {
        /// The task's name.
        task: String,
        /// The scheduled time.
        due: DateTime<Local>,
    },
    /// A run ended.
    Finished {
        /// The task's name.
        task: String,
        /// Its history line.
        entry: HistoryEntry,
    },
    /// A due run was skipped because the previous one was still going.
    Skipped {
        /// The task's name.
        task: String,
        /// The scheduled time.
        due: DateTime<Local>,
    },
}

struct Entry {
    name: String,
    task: Task,
    cron: croner::Cron,
    running: bool,
    history: VecDeque<HistoryEntry>,
}

/// Runs tasks on their schedules. Build it, add tasks, then
/// [`Scheduler::start`].
pub struct Scheduler {
    entries: Vec<Entry>,
    history_len: usize,
    runner: Runner,
    start_time: Option<DateTime<Local>>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("tasks", &self.entries.len())
            .field("history_len", &self.history_len)
            .finish_non_exhaustive()
    }
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler::new()
    }
}

impl Scheduler {
    /// No tasks, 50 history lines per task, runs with [`Task::run_now`].
    #[must_use]
    pub fn new() -> Self {
        Scheduler {
            entries: Vec::new(),
            history_len: 50,
            runner: Arc::new(|t: Task| {
                Box::pin(async move {
                    match t.run_now() {
                        Ok(h) => h.wait().await,
                        Err(e) => failed_report(&e.to_string()),
                    }
                })
            }),
            start_time: None,
        }
    }

    /// Keeps at most `n` history lines per task (at least 1).
    #[must_use]
    pub fn with_history(mut self, n: usize) -> Self {
        self.history_len = n.max(1);
        self
    }

    /// Runs tasks with `runner` instead of [`Task::run_now`].
    #[must_use]
    pub fn with_runner(mut self, runner: Runner) -> Self {
        self.runner = runner;
        self
    }

    /// Takes `t` as the wall-clock time at start (tests; the default is
    /// now).
    #[must_use]
    pub fn with_start_time(mut self, t: DateTime<Local>) -> Self {
        self.start_time = Some(t);
        self
    }

    /// Adds a task under a name (disabled tasks are kept, never run).
    ///
    /// # Errors
    /// A bad schedule or a name already taken.
    pub fn add(&mut self, name: impl Into<String>, task: Task) -> Result<(), Invalid> {
        let name = name.into();
        let mut p = Problems::default();
        if self.entries.iter().any(|e| e.name == name) {
            p.add("name", format!("a task called {name:?} exists"));
        }
        let cron = match super::config::parse_schedule(&task.schedule) {
            Ok(c) => Some(c),
            Err(e) => {
                p.add("schedule", format!("{:?}: {e}", task.schedule));
                None
            }
        };
        p.into_result()?;
        if let Some(cron) = cron {
            self.entries.push(Entry {
                name,
                task,
                cron,
                running: false,
                history: VecDeque::new(),
            });
        }
        Ok(())
    }

    /// Starts the schedule on the current tokio runtime.
    #[must_use]
    pub fn start(self) -> SchedulerHandle {
        let base_wall = self.start_time.unwrap_or_else(Local::now);
        let base = tokio::time::Instant::now();
        let (events, _) = broadcast::channel(256);
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            entries: Mutex::new(self.entries),
            history_len: self.history_len,
            events,
            base_wall,
            base,
        });
        let s = shared.clone();
        let runner = self.runner;
        let join = tokio::spawn(async move { s.run(runner, stop_rx).await });
        SchedulerHandle {
            shared,
            stop: stop_tx,
            join,
        }
    }
}

fn failed_report(msg: &str) -> RunReport {
    let now = std::time::SystemTime::now();
    RunReport {
        started: now,
        ended: now,
        status: RunStatus::Failed,
        exit_code: 1,
        stats: None,
        itemized: Vec::new(),
        messages: Vec::new(),
        error: Some(msg.to_string()),
    }
}

struct Shared {
    entries: Mutex<Vec<Entry>>,
    history_len: usize,
    events: broadcast::Sender<SchedulerEvent>,
    base_wall: DateTime<Local>,
    base: tokio::time::Instant,
}

impl Shared {
    fn now(&self) -> DateTime<Local> {
        let since = tokio::time::Instant::now() - self.base;
        self.base_wall
            + chrono::Duration::from_std(since).unwrap_or_else(|_| chrono::Duration::zero())
    }

    fn instant_at(&self, t: DateTime<Local>) -> tokio::time::Instant {
        let ahead = (t - self.base_wall).to_std().unwrap_or(Duration::ZERO);
        self.base + ahead
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(&self, i: usize, entry: HistoryEntry) {
        let mut entries = self.lock();
        if let Some(e) = entries.get_mut(i) {
            e.history.push_back(entry);
            while e.history.len() > self.history_len {
                e.history.pop_front();
            }
        }
    }

    async fn run(self: Arc<Self>, runner: Runner, mut stop: watch::Receiver<bool>) {
        let mut runs = tokio::task::JoinSet::new();
        let mut next: HashMap<usize, DateTime<Local>> = HashMap::new();
        loop {
            let now = self.now();
            let wake = {
                let entries = self.lock();
                for (i, e) in entries.iter().enumerate() {
                    if e.task.enabled && !next.contains_key(&i) {
                        if let Ok(t) = e.cron.find_next_occurrence(&now, false) {
                            next.insert(i, t);
                        }
                    }
                }
                next.values().min().copied()
            };
            let sleep = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(self.instant_at(t)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = sleep => {}
                _ = stop.changed() => break,
                Some(_) = runs.join_next(), if !runs.is_empty() => continue,
            }
            let now = self.now();
            let due: Vec<(usize, DateTime<Local>)> = next
                .iter()
                .filter(|(_, t)| **t <= now)
                .map(|(i, t)| (*i, *t))
                .collect();
            for (i, at) in due {
                next.remove(&i);
                self.fire(i, at, &runner, &mut runs);
            }
        }
        // Graceful: no new runs; those in flight finish.
        while runs.join_next().await.is_some() {}
    }

    fn fire(
        self: &Arc<Self>,
        i: usize,
        due: DateTime<Local>,
        runner: &Runner,
        runs: &mut tokio::task::JoinSet<()>,
    ) {
        let (name, task) = {
            let mut entries = self.lock();
            let Some(e) = entries.get_mut(i) else { return };
            if e.running {
                let name = e.name.clone();
                drop(entries);
                self.record(
                    i,
                    HistoryEntry {
                        due,
                        started: due,
                        ended: due,
                        status: EntryStatus::Skipped,
                        exit_code: None,
                        stats: None,
                    },
                );
                let _ = self
                    .events
                    .send(SchedulerEvent::Skipped { task: name, due });
                return;
            }
            e.running = true;
            (e.name.clone(), e.task.clone())
        };
        let _ = self.events.send(SchedulerEvent::Started {
            task: name.clone(),
            due,
        });
        let fut = runner(task);
        let me = self.clone();
        runs.spawn(async move {
            let started = me.now();
            let report = fut.await;
            let entry = HistoryEntry {
                due,
                started,
                ended: me.now(),
                status: match report.status {
                    RunStatus::Success => EntryStatus::Success,
                    RunStatus::Failed => EntryStatus::Failed,
                    RunStatus::Cancelled => EntryStatus::Cancelled,
                },
                exit_code: Some(report.exit_code),
                stats: report.stats,
            };
            me.record(i, entry.clone());
            if let Some(e) = me.lock().get_mut(i) {
                e.running = false;
            }
            let _ = me
                .events
                .send(SchedulerEvent::Finished { task: name, entry });
        });
    }
}

/// A started [`Scheduler`].
#[derive(Debug)]
pub struct SchedulerHandle {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    join: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

impl SchedulerHandle {
    /// Events from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<SchedulerEvent> {
        self.shared.events.subscribe()
    }

    /// The history of the task called `name`, oldest first.
    #[must_use]
    pub fn history(&self, name: &str) -> Vec<HistoryEntry> {
        self.shared
            .lock()
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.history.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether the task called `name` is running.
    #[must_use]
    pub fn is_running(&self, name: &str) -> bool {
        self.shared
            .lock()
            .iter()
            .any(|e| e.name == name && e.running)
    }

    /// Stops scheduling and waits for the runs in flight to end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.join.await;
    }
}

#[cfg(test)]
mod tests;
