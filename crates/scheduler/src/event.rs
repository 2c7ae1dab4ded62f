//! What the scheduler tells observers (metrics, event streams, tests) as it works.
//!
//! Events are the scheduler's test signals too: a test can wait for `PassFinished` or
//! `Moderated` instead of polling the database against the wall clock.

use chrono::{DateTime, Utc};
use orders::Order;
use std::sync::Arc;
use std::time::Duration;

/// Something that happened in the scheduler, for observers (metrics, event streams).
#[derive(Debug)]
pub enum SchedulerEvent<'a> {
    /// The loop (re)started moderating by itself.
    Started,
    /// The loop stopped moderating by itself.
    Stopped,
    /// A batch was moderated and committed at `at`.
    Moderated {
        /// The orders as written: new status, price or reason, and history already stored.
        orders: &'a [Order],
        /// The batch's moderation time, as written in the history (lateness is `at` minus
        /// an order's due time).
        at: DateTime<Utc>,
    },
    /// A pass ended (scheduled or forced), whether or not anything was due.
    PassFinished {
        /// Orders moderated in the pass, over all its batches.
        processed: usize,
        /// Wall time of the pass.
        duration: Duration,
    },
    /// An order was set aside and will not be claimed again until someone clears it.
    Parked {
        /// Id of the parked order.
        id: &'a str,
        /// The decode or decision failure, as stored in `parked_reason`.
        reason: &'a str,
    },
    /// A pass or batch failed; it will be retried.
    Failed {
        /// The error on one line (the same text as the status's `last_error`).
        error: &'a str,
    },
}

/// A callback receiving [`SchedulerEvent`]s on the scheduler thread; keep it quick, since the
/// loop waits for it. A panic in it during a pass is caught and counted like any panic there;
/// one on `Started` or `Stopped`, which are sent outside passes, ends the thread.
pub type Observer = Arc<dyn Fn(&SchedulerEvent<'_>) + Send + Sync>;
