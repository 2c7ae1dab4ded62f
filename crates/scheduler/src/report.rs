//! What a pass or a manual moderation did, in the original system's JSON shapes, and the
//! scheduler status.
//!
//! The serialized field names are a compatibility contract (`docs/DESIGN.md`): the Rust names
//! say "due" where the JSON says "hour" (`hour_start_utc`), because a due time has millisecond
//! precision, but the JSON keeps the original names.

use chrono::{DateTime, Utc};
use orders::{time::serde_ms, Order, OrderStatus};
use serde::Serialize;
use std::collections::BTreeMap;

/// The original system's `moderation_result`: one due time's orders and how they were decided.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct DueReport {
    /// The due time the orders shared (ms precision; the JSON keeps the original name).
    #[serde(with = "serde_ms")]
    pub hour_start_utc: DateTime<Utc>,
    /// Orders moderated for this due time.
    pub total_orders: usize,
    /// Of `total_orders`, how many were approved.
    pub approved: usize,
    /// Of `total_orders`, how many were rejected.
    pub rejected: usize,
    /// `approved / total_orders`, 0 when there were none.
    pub approval_rate: f64,
    /// The moderated orders (capped, see [`ORDER_LIST_CAP`]).
    pub orders: Vec<Order>,
}

/// Most orders listed in one report, so a force-run over a huge backlog stays small; the
/// counts are always complete.
pub const ORDER_LIST_CAP: usize = 1_000;

/// The original system's force-run entry: one due time.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct DueResult {
    /// The due time (repeated from `moderation_result`, as the original system did).
    #[serde(with = "serde_ms")]
    pub hour_start_utc: DateTime<Utc>,
    /// Orders moderated for it (equals `moderation_result.total_orders`).
    pub orders_count: usize,
    /// Counts and the moderated orders of this due time.
    pub moderation_result: DueReport,
}

/// Most due times listed in one report; a backlog spread over more is still counted in
/// `processed`, and the report says it was cut.
pub const DUE_LIST_CAP: usize = 10_000;

/// What a forced pass did, grouped by due time as the original system's force-run reported
/// it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct PassReport {
    /// Orders moderated, all due times included (also those beyond the list's cap).
    pub processed: usize,
    /// One entry per due time, soonest first (at most [`DUE_LIST_CAP`]).
    pub results: Vec<DueResult>,
    /// Present (and true) only when more due times were moderated than listed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub results_truncated: bool,
    /// When the pass ended.
    #[serde(with = "serde_ms")]
    pub timestamp: DateTime<Utc>,
}

/// Accumulates moderated orders: totals always, and per due time while under a cap, so that a
/// pass over a backlog of millions of distinct due times stays in constant memory.
#[derive(Debug, Default)]
pub(crate) struct Grouper {
    by_due: BTreeMap<DateTime<Utc>, DueReport>,
    /// Most distinct due times kept (0: totals only).
    max_due_times: usize,
    /// Due times seen but not kept (the report says its list was cut).
    pub(crate) truncated: bool,
    listed: usize,
    pub(crate) processed: usize,
    pub(crate) approved: usize,
    pub(crate) rejected: usize,
}

impl Grouper {
    /// Keeps per-due-time reports for at most `max_due_times` due times.
    pub(crate) fn with_due_times(max_due_times: usize) -> Self {
        Self {
            max_due_times,
            ..Self::default()
        }
    }

    /// Adds orders; lists them only while under the caps.
    pub(crate) fn add(&mut self, moderated: &[Order], keep_orders: bool) {
        for o in moderated {
            let approved = o.status == OrderStatus::Approved;
            self.processed += 1;
            if approved {
                self.approved += 1;
            } else {
                self.rejected += 1;
            }
            if !self.by_due.contains_key(&o.hour_start_utc)
                && self.by_due.len() >= self.max_due_times
            {
                self.truncated = true;
                continue;
            }
            let h = self
                .by_due
                .entry(o.hour_start_utc)
                .or_insert_with(|| DueReport {
                    hour_start_utc: o.hour_start_utc,
                    total_orders: 0,
                    approved: 0,
                    rejected: 0,
                    approval_rate: 0.0,
                    orders: Vec::new(),
                });
            h.total_orders += 1;
            if approved {
                h.approved += 1;
            } else {
                h.rejected += 1;
            }
            if keep_orders && self.listed < ORDER_LIST_CAP {
                h.orders.push(o.clone());
                self.listed += 1;
            }
        }
    }

    /// Number of distinct due times so far.
    pub(crate) fn due_time_count(&self) -> usize {
        self.by_due.len()
    }

    /// The per-due-time reports, soonest first.
    pub(crate) fn into_reports(self) -> Vec<DueReport> {
        self.by_due
            .into_values()
            .map(|mut h| {
                h.approval_rate = if h.total_orders == 0 {
                    0.0
                } else {
                    h.approved as f64 / h.total_orders as f64
                };
                h
            })
            .collect()
    }

    /// The original system's force-run report.
    pub(crate) fn into_pass_report(self) -> PassReport {
        let processed = self.processed;
        let results_truncated = self.truncated;
        let results = self
            .into_reports()
            .into_iter()
            .map(|h| DueResult {
                hour_start_utc: h.hour_start_utc,
                orders_count: h.total_orders,
                moderation_result: h,
            })
            .collect();
        PassReport {
            processed,
            results,
            results_truncated,
            timestamp: Utc::now(),
        }
    }
}

/// The scheduler's status: the original system's fields with their original names, then ours.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Status {
    /// Whether the loop moderates due orders by itself (false after `stop`).
    pub running: bool,
    /// Whether the scheduler thread is alive (it stays alive while stopped, to serve
    /// force-runs).
    pub thread_alive: bool,
    /// Pending orders already due (`null` when the database cannot be reached).
    pub pending_due_now: Option<i64>,
    /// Pending orders due in the next ten minutes.
    pub upcoming_10_min: Option<i64>,
    /// Earliest due time of any pending order.
    #[serde(serialize_with = "serde_ms::option::serialize")]
    pub next_due_order: Option<DateTime<Utc>>,
    /// When the loop last looked for due orders (not the time of this request).
    #[serde(serialize_with = "serde_ms::option::serialize")]
    pub last_check: Option<DateTime<Utc>>,
    /// Longest sleep between checks when nothing is due sooner.
    pub check_interval_seconds: f64,
    /// This scheduler's name in the history (`actor` = `scheduler:<instance_id>`).
    pub instance_id: String,
    /// Orders claimed per transaction.
    pub batch_size: usize,
    /// Transactions writing at once when a pass has more than one batch to write: the
    /// configured Postgres writers, 1 on SQLite.
    pub writers: usize,
    /// Orders moderated since the thread started.
    pub processed: u64,
    /// Of `processed`, orders whose rows were read shortly before their due instant, so that
    /// at the instant only their decisions and write were left.
    pub read_ahead: u64,
    /// Passes that found a large backlog and took it in id order (the order rows are stored
    /// in) instead of due order, which writes far fewer pages per order.
    pub backlog_sweeps: u64,
    /// Of `processed`, how many were approved.
    pub approved: u64,
    /// Of `processed`, how many were rejected.
    pub rejected: u64,
    /// Passes or batches that failed (and were retried).
    pub failed: u64,
    /// Panics caught inside passes.
    pub panics: u64,
    /// Orders set aside because they could not be moderated (in the database, all instances).
    pub parked: Option<i64>,
    /// Orders this instance set aside (the last 20), most recent last.
    pub parked_recent: Vec<ParkedOrder>,
    /// Passes run.
    pub passes: u64,
    /// Duration of the last pass that moderated something, in milliseconds.
    pub last_pass_ms: Option<f64>,
    /// Lateness (moderation time minus due time) of recently moderated orders, ms.
    pub lateness_ms: LatenessSummary,
    /// When the loop will next look, unless woken earlier.
    #[serde(serialize_with = "serde_ms::option::serialize")]
    pub next_wake: Option<DateTime<Utc>>,
    /// The last error (database outage, failed batch, panic), kept after recovery.
    pub last_error: Option<String>,
    /// When `last_error` happened (not updated by an unreachable database seen by a status
    /// read).
    #[serde(serialize_with = "serde_ms::option::serialize")]
    pub last_error_at: Option<DateTime<Utc>>,
    /// Failures in a row; 0 once a pass succeeds again.
    pub consecutive_failures: u32,
    /// Moderation seed, when outcomes are reproducible.
    pub moderation_seed: Option<u64>,
    /// The moderation policy with its parameters, such as
    /// `random(approval_probability=0.7)` or `clearing(rejection_rate=0)`.
    pub policy: String,
    /// Where prices come from: `SIMULATED_RT`, `FILE:<name>`, or `FILE:<name>|SIMULATED_RT`
    /// when missing prices fall back to the simulated model.
    pub price_source: String,
    /// When the current run of failed passes began (`null` while passes succeed).
    #[serde(serialize_with = "serde_ms::option::serialize")]
    pub failing_since: Option<DateTime<Utc>>,
    /// When `pending_due_now`, `upcoming_10_min`, `next_due_order` and `parked` were read:
    /// they are shared between status calls for up to a second.
    #[serde(serialize_with = "serde_ms::option::serialize")]
    pub counts_computed_at: Option<DateTime<Utc>>,
}

/// An order the scheduler set aside: it stays `PENDING` with `parked_reason` set, and claims
/// skip it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ParkedOrder {
    /// Id of the parked order.
    pub id: String,
    /// The decode or decision failure, as stored in `parked_reason`.
    pub reason: String,
}

/// Lateness of the most recent moderations (the last 4,096), milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct LatenessSummary {
    /// Lateness of the last order moderated.
    pub last: Option<i64>,
    /// Median of the window ([`percentile`](crate::stats::percentile) 50, nearest rank).
    pub p50: Option<i64>,
    /// 99th percentile of the window (nearest rank).
    pub p99: Option<i64>,
    /// Maximum of the window.
    pub max: Option<i64>,
    /// How many values the window holds.
    pub samples: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(second: i64, approved: bool) -> Order {
        let mut o = moderator::example_order();
        o.hour_start_utc = DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(second);
        o.status = if approved {
            OrderStatus::Approved
        } else {
            OrderStatus::Rejected
        };
        o
    }

    #[test]
    fn grouping_is_capped_but_totals_are_complete() {
        let orders: Vec<Order> = (0..100).map(|i| order(i, i % 2 == 0)).collect();
        let mut counting = Grouper::with_due_times(0);
        counting.add(&orders, false);
        assert_eq!(
            (counting.processed, counting.approved, counting.rejected),
            (100, 50, 50)
        );
        assert_eq!(
            counting.due_time_count(),
            0,
            "a scheduled pass keeps no per-due-time state"
        );
        let mut capped = Grouper::with_due_times(3);
        capped.add(&orders, true);
        let report = capped.into_pass_report();
        assert_eq!(report.processed, 100);
        assert_eq!(report.results.len(), 3);
        assert!(report.results_truncated);
        let json = serde_json::to_value(&report).unwrap_or_default();
        assert_eq!(json["results_truncated"], true);
        let mut small = Grouper::with_due_times(10);
        small.add(&orders[..4], true);
        let json = serde_json::to_value(small.into_pass_report()).unwrap_or_default();
        assert!(
            json.get("results_truncated").is_none(),
            "the original shape when nothing was cut"
        );
    }
}
