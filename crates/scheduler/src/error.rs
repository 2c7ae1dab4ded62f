//! The scheduler's two error types: what a caller of the handle can get back
//! ([`SchedulerError`]), and why one pass ended early ([`PassError`]).
//!
//! They are separate because a pass fails in ways the handle does not (a panic caught inside
//! the pass), and the loop decides its retry and parking from the pass's error alone.

use std::time::Duration;
use storage::StorageError;

/// Failures of a call on the [`Scheduler`](crate::Scheduler) handle.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The operating system refused to start the thread (`spawn`).
    #[error("cannot spawn the scheduler thread: {0}")]
    Spawn(#[from] std::io::Error),
    /// The thread is gone (it panicked outside a pass, or was shut down).
    #[error("the scheduler thread is not running")]
    ThreadGone,
    /// The thread did not answer in time (a long batch, or a database that hangs).
    #[error("the scheduler did not answer within {0:?}")]
    Timeout(Duration),
    /// A forced pass failed in the database; kept apart from panics so that callers can map
    /// an unavailable database to "try again later".
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A forced pass panicked (in the decider, an observer, ...); nothing it claimed was
    /// written.
    #[error("pass {message}")]
    Panicked {
        /// The panic's text, as [`storage::panic_message`] renders it.
        message: String,
    },
}

/// Why a pass ended early. Everything the pass claimed in the failing batch was rolled back,
/// so the orders are still pending and the next pass retries them.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// A claim failed in the database. [`StorageError::Decide`] names the order whose
    /// decision failed, which the loop counts towards parking it.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Something inside the pass panicked; the panic was caught so the thread survives.
    #[error("pass {message}")]
    Panicked {
        /// The panic's text, as [`storage::panic_message`] renders it.
        message: String,
    },
}

impl PassError {
    /// True when the database could not be reached: the loop then backs off for longer.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, PassError::Storage(e) if e.is_unavailable())
    }
}

impl From<PassError> for SchedulerError {
    fn from(e: PassError) -> Self {
        match e {
            PassError::Storage(s) => SchedulerError::Storage(s),
            PassError::Panicked { message } => SchedulerError::Panicked { message },
        }
    }
}
