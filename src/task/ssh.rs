//! SSH mode of a [`Task`].
//!
//! Layer: task. Uses the session API's SSH transport.

use super::Task;
use crate::engine::Report;
use crate::error::{Error, Result};
use crate::session::Transfer;

/// Runs an SSH task with the prepared transfer.
pub(crate) async fn run(_task: &Task, _t: Transfer) -> Result<Report> {
    Err(Error::Start("SSH mode is not available in this build yet".into()))
}
