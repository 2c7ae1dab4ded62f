//! State the handle reads and the worker writes: the configuration both need, and the
//! counters and recent history behind [`Status`].
//!
//! The worker holds the lock only to update a few fields, never across a database call, so
//! `status()` does not wait for a batch.
//!
//! The worker works through a pool of its own (`own`); status reads go through the
//! embedder's pool (`store`), so no number of status calls can take a connection the worker
//! needs. The counts a status shows are read at most once a second ([`COUNTS_MAX_AGE`]), by
//! one caller at a time, and shared: a storm of status calls costs the database one bounded
//! query a second, and never runs on the worker thread. Counting a backlog costs in proportion
//! to it (a million due orders take Postgres a parallel scan), so counts that took long to read
//! are kept longer, in proportion ([`COUNTS_COST_SHARE`]), up to [`COUNTS_MAX_AGE_SLOW`].

use crate::report::{ParkedOrder, Status};
use crate::stats::LatenessWindow;
use chrono::{DateTime, Utc};
use moderator::Moderator;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use storage::{DueCounts, StorageError, Store};

/// How old the counts in a status may be.
pub(crate) const COUNTS_MAX_AGE: Duration = Duration::from_secs(1);
/// Counts that took `t` to read are kept for `t` times this at least: reading them then takes
/// at most a fiftieth of one connection's time, however often the status is polled, and a
/// dashboard polling during a catch-up does not take a core from the scheduler.
const COUNTS_COST_SHARE: u32 = 50;
/// Longest any counts are kept, however slow they were to read.
const COUNTS_MAX_AGE_SLOW: Duration = Duration::from_secs(15);

/// Most recently parked orders listed in the status.
const PARKED_RECENT: usize = 20;

/// How long counts that took `took` to read are kept.
fn counts_max_age(took: Duration) -> Duration {
    took.saturating_mul(COUNTS_COST_SHARE)
        .clamp(COUNTS_MAX_AGE, COUNTS_MAX_AGE_SLOW)
}

/// Configuration fixed at spawn, plus the mutable [`State`].
pub(crate) struct Shared {
    /// The policy and price source every pass decides with.
    pub(crate) moderator: Moderator,
    /// The worker's own pool.
    pub(crate) own: Store,
    /// The embedder's pool, for status reads.
    pub(crate) store: Store,
    counts: Mutex<Option<Counts>>,
    /// Set while one caller refreshes `counts`; the others use the cached value meanwhile.
    refreshing: AtomicBool,
    /// Written to the history as `scheduler:<instance_id>`, and shown in logs and status.
    pub(crate) instance_id: String,
    pub(crate) batch_size: usize,
    /// Transactions writing at once when a pass has several batches (1 on SQLite).
    pub(crate) writers: usize,
    pub(crate) check_interval: Duration,
    /// When set, outcomes depend only on (seed, order id, policy).
    pub(crate) seed: Option<u64>,
    /// While the worker sleeps until its deadline, that deadline in Unix milliseconds; while
    /// it sleeps stopped, [`STOPPED`]; while awake, [`NOT_ARMED`]. A create due at or after it
    /// need not wake the worker: the pass at the deadline (or the one `start` runs) reads the
    /// next due time from the database, after the create's commit.
    pub(crate) armed_until_ms: AtomicI64,
    state: Mutex<State>,
}

/// [`Shared::armed_until_ms`] while the worker is awake (handling a wake-up, perhaps about to
/// read the database): no due time is at or after it, so every one is sent.
pub(crate) const NOT_ARMED: i64 = i64::MAX;
/// [`Shared::armed_until_ms`] while the worker sleeps stopped: every due time is at or after
/// it, so none is sent. A stopped worker does nothing with one, and `start` runs a pass that
/// reads the next due time from the database.
pub(crate) const STOPPED: i64 = i64::MIN;

/// What the worker has done since it started, for the status.
#[derive(Default)]
pub(crate) struct State {
    /// Whether the loop moderates by itself; the worker's `Start` and `Stop` flip it.
    pub(crate) running: bool,
    pub(crate) last_check: Option<DateTime<Utc>>,
    pub(crate) processed: u64,
    /// Of `processed`, orders read ahead of their due instant.
    pub(crate) read_ahead: u64,
    /// Passes that swept a backlog in id order.
    pub(crate) sweeps: u64,
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
    /// When the current run of failed passes began (`None` after a success).
    pub(crate) failing_since: Option<DateTime<Utc>>,
}

/// Counts of due and parked orders, as read at `at`.
#[derive(Clone)]
struct Counts {
    read_at: Instant,
    /// How long they are kept: [`COUNTS_MAX_AGE`], or more if they were slow to read.
    max_age: Duration,
    at: DateTime<Utc>,
    result: Result<(DueCounts, i64), String>,
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
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        moderator: Moderator,
        own: Store,
        store: Store,
        instance_id: String,
        batch_size: usize,
        writers: usize,
        check_interval: Duration,
        seed: Option<u64>,
        running: bool,
    ) -> Self {
        Shared {
            moderator,
            own,
            store,
            counts: Mutex::new(None),
            refreshing: AtomicBool::new(false),
            instance_id,
            batch_size,
            writers,
            check_interval,
            seed,
            armed_until_ms: AtomicI64::new(NOT_ARMED),
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

    /// Counts no older than [`COUNTS_MAX_AGE`] (longer if they were slow to read): read by this
    /// caller if they are stale and no other caller is reading them, else the cached ones
    /// (which may then be slightly older).
    fn counts(&self) -> Option<Counts> {
        let cached = self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let fresh = cached
            .as_ref()
            .is_some_and(|c| c.read_at.elapsed() < c.max_age);
        if fresh || (cached.is_some() && self.refreshing.swap(true, Ordering::AcqRel)) {
            return cached;
        }
        let at = Utc::now();
        let started = Instant::now();
        let result = self
            .store
            .due_counts(at, chrono::Duration::minutes(10))
            .and_then(|due| Ok((due, self.store.parked_count()?)))
            .map_err(|e: StorageError| one_line(&e.to_string()));
        let read_at = Instant::now();
        let counts = Counts {
            read_at,
            max_age: counts_max_age(read_at - started),
            at,
            result,
        };
        *self.counts.lock().unwrap_or_else(|p| p.into_inner()) = Some(counts.clone());
        self.refreshing.store(false, Ordering::Release);
        Some(counts)
    }

    /// The full status. Counts of due orders are read through the claimable index, at most
    /// once a second (`counts_computed_at` says when); they are `None` when the database
    /// cannot be reached, and that error then shows as `last_error`.
    pub(crate) fn status(&self, thread_alive: bool) -> Status {
        let counts = self.counts();
        let ok = counts.as_ref().and_then(|c| c.result.as_ref().ok());
        let mut st = self.lock();
        let lateness_ms = st.lateness.summary();
        Status {
            running: st.running,
            thread_alive,
            pending_due_now: ok.map(|(d, _)| d.due_now),
            upcoming_10_min: ok.map(|(d, _)| d.upcoming),
            next_due_order: ok.and_then(|(d, _)| d.next_due),
            last_check: st.last_check,
            check_interval_seconds: self.check_interval.as_secs_f64(),
            instance_id: self.instance_id.clone(),
            batch_size: self.batch_size,
            writers: self.writers,
            processed: st.processed,
            read_ahead: st.read_ahead,
            backlog_sweeps: st.sweeps,
            approved: st.approved,
            rejected: st.rejected,
            failed: st.failed,
            panics: st.panics,
            parked: ok.map(|(_, parked)| *parked),
            parked_recent: st.parked_recent.iter().cloned().collect(),
            passes: st.passes,
            last_pass_ms: st.last_pass_ms,
            lateness_ms,
            next_wake: st.next_wake,
            last_error: match counts.as_ref().map(|c| &c.result) {
                Some(Err(e)) => Some(e.clone()),
                _ => st.last_error.clone(),
            },
            last_error_at: st.last_error_at,
            consecutive_failures: st.consecutive_failures,
            failing_since: st.failing_since,
            moderation_seed: self.seed,
            policy: self.moderator.policy().describe(),
            price_source: self.moderator.prices().name().to_string(),
            counts_computed_at: counts.map(|c| c.at),
        }
    }
}

/// Folds a message onto one line: drivers' messages (libpq's) span several.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_counts_are_kept_in_proportion_within_bounds() {
        let ms = Duration::from_millis;
        assert_eq!(
            counts_max_age(ms(2)),
            COUNTS_MAX_AGE,
            "fast counts: once a second"
        );
        assert_eq!(counts_max_age(ms(100)), ms(5_000));
        assert_eq!(counts_max_age(ms(4_000)), COUNTS_MAX_AGE_SLOW);
    }
}
