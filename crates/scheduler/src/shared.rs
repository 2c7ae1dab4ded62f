//! State the handle reads and the worker writes: the configuration both need, and the
//! counters and recent history behind [`Status`].
//!
//! The worker holds the lock only to update a few fields, never across a database call, so
//! `status()` does not wait for a batch.

use crate::report::{ParkedOrder, Status};
use crate::stats::LatenessWindow;
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use storage::Store;

/// Most recently parked orders listed in the status.
const PARKED_RECENT: usize = 20;

/// Configuration fixed at spawn, plus the mutable [`State`].
pub(crate) struct Shared {
    pub(crate) store: Store,
    /// Written to the history as `scheduler:<instance_id>`, and shown in logs and status.
    pub(crate) instance_id: String,
    pub(crate) batch_size: usize,
    pub(crate) check_interval: Duration,
    /// When set, outcomes depend only on (seed, order id, policy).
    pub(crate) seed: Option<u64>,
    state: Mutex<State>,
}

/// What the worker has done since it started, for the status.
#[derive(Default)]
pub(crate) struct State {
    /// Whether the loop moderates by itself; the worker's `Start` and `Stop` flip it.
    pub(crate) running: bool,
    pub(crate) last_check: Option<DateTime<Utc>>,
    pub(crate) processed: u64,
    pub(crate) approved: u64,
    pub(crate) rejected: u64,
    /// Passes that ended with a storage error.
    pub(crate) failed: u64,
    /// Passes that ended with a caught panic.
    pub(crate) panics: u64,
    pub(crate) passes: u64,
    pub(crate) last_pass_ms: Option<f64>,
    pub(crate) lateness: LatenessWindow,
    parked_recent: VecDeque<ParkedOrder>,
    /// The worker's deadline as a wall-clock time (`None` while stopped).
    pub(crate) next_wake: Option<DateTime<Utc>>,
    pub(crate) last_error: Option<String>,
    pub(crate) last_error_at: Option<DateTime<Utc>>,
    pub(crate) consecutive_failures: u32,
}

impl State {
    /// Lists an order this instance parked, dropping the oldest beyond [`PARKED_RECENT`].
    pub(crate) fn note_parked(&mut self, id: &str, reason: &str) {
        if self.parked_recent.len() == PARKED_RECENT {
            self.parked_recent.pop_front();
        }
        self.parked_recent.push_back(ParkedOrder {
            id: id.to_string(),
            reason: reason.to_string(),
        });
    }
}

impl Shared {
    pub(crate) fn new(
        store: Store,
        instance_id: String,
        batch_size: usize,
        check_interval: Duration,
        seed: Option<u64>,
        running: bool,
    ) -> Self {
        Shared {
            store,
            instance_id,
            batch_size,
            check_interval,
            seed,
            state: Mutex::new(State {
                running,
                ..State::default()
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave counters inconsistent in a harmful way.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The full status. Counts of due orders are read from the database through its index
    /// (outside the lock); they are `None` when the database cannot be reached, and that
    /// error then shows as `last_error`.
    pub(crate) fn status(&self, thread_alive: bool) -> Status {
        let summary = self
            .store
            .due_summary(Utc::now(), chrono::Duration::minutes(10));
        let st = self.lock();
        let counts = summary.as_ref().ok();
        Status {
            running: st.running,
            thread_alive,
            pending_due_now: counts.map(|s| s.pending_due_now),
            upcoming_10_min: counts.map(|s| s.upcoming),
            next_due_order: counts.and_then(|s| s.next_due),
            last_check: st.last_check,
            check_interval_seconds: self.check_interval.as_secs_f64(),
            instance_id: self.instance_id.clone(),
            batch_size: self.batch_size,
            processed: st.processed,
            approved: st.approved,
            rejected: st.rejected,
            failed: st.failed,
            panics: st.panics,
            parked: counts.map(|s| s.parked),
            parked_recent: st.parked_recent.iter().cloned().collect(),
            passes: st.passes,
            last_pass_ms: st.last_pass_ms,
            lateness_ms: st.lateness.summary(),
            next_wake: st.next_wake,
            last_error: match &summary {
                Err(e) => Some(one_line(&e.to_string())),
                Ok(_) => st.last_error.clone(),
            },
            last_error_at: st.last_error_at,
            consecutive_failures: st.consecutive_failures,
            moderation_seed: self.seed,
        }
    }
}

/// Folds a message onto one line: drivers' messages (libpq's) span several.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
