//! Why an apply (or its rollback) failed. The kind tells the failures apart for the journal,
//! the log and the alert; every message is the one an operator reads.

use std::time::Duration;

use super::dropin::DropinError;
use crate::sys::fs::FileError;
use crate::sys::systemd::ActuateError;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The wanted environment cannot be written as a drop-in.
    #[error(transparent)]
    Render(#[from] DropinError),
    /// The drop-in could not be written, restored or removed.
    #[error(transparent)]
    File(#[from] FileError),
    /// systemd refused or did not answer (reload, restart, status).
    #[error(transparent)]
    Systemd(#[from] ActuateError),
    /// The restart job ended in something else than `done`.
    #[error("restart job of {unit} ended {result:?}")]
    JobFailed { unit: String, result: String },
    /// The unit landed in `failed`: the new environment does not start.
    #[error("{unit} failed to start ({sub_state}, exit status {exit_status})")]
    UnitFailed {
        unit: String,
        sub_state: String,
        exit_status: i32,
    },
    /// The unit, its environment or Ollama's `HEAD /` did not check out in time.
    #[error("not verified within {}: {last}", humantime::format_duration(*within))]
    NotVerified { within: Duration, last: String },
    /// The journal shows an apply the agent died in.
    #[error("the agent stopped in the middle of this apply")]
    Interrupted,
}
