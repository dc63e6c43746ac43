//! The configuration layer a NAS or an application drives: [`Task`] (one
//! scheduled sync with a daemon module or over SSH), [`Module`] and
//! [`Service`] (this host's daemon and its modules, rendered to and read
//! from `rsyncd.conf`), and the [`Scheduler`] that runs tasks on their cron
//! schedules.
//!
//! Layer: task (L5). Uses everything below it: the engine's options and
//! command-line parser, the session API, the daemon.
//!
//! Every type here is plain data with public fields, `serde` (TOML and
//! JSON) with the same field names, and a `validate` that returns every
//! problem at once as (field, message) pairs ([`Invalid`]).

mod account;
mod conf;
mod config;
mod run;
mod schedule;
mod service;
mod ssh;

pub use conf::{Access, Module, Service};
pub use config::{Direction, Mode, Secret, Task};
pub use run::{Progress, RunHandle, RunReport, RunStatus};
pub use schedule::{EntryStatus, HistoryEntry, Runner, Scheduler, SchedulerEvent, SchedulerHandle};
pub use service::RunningService;
pub use ssh::RemotePath;

use std::fmt;

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field (`path`, `extra[2]`, `modules[1].name`, ...).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Invalid {
    /// The problems, in field order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid configuration:")?;
        for p in &self.problems {
            write!(f, " {}: {};", p.field, p.message)?;
        }
        Ok(())
    }
}

impl Invalid {
    /// Whether `field` has a problem.
    #[must_use]
    pub fn has(&self, field: &str) -> bool {
        self.problems.iter().any(|p| p.field == field)
    }
}

/// Collects problems.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }

    fn into_result(self) -> Result<(), Invalid> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Invalid { problems: self.0 })
        }
    }
}
