//! What a pass or a manual moderation did, in the seed's JSON shapes, and the scheduler status.

use chrono::{DateTime, Utc};
use orders::{time::serde_ms, Order, OrderStatus};
use serde::Serialize;
use std::collections::BTreeMap;

/// The seed's `moderation_result`: one due time's orders and how they were decided.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HourReport {
    /// The due time.
    #[serde(with = "serde_ms")]
    pub hour_start_utc: DateTime<Utc>,
    /// Orders moderated for this due time.
    pub total_orders: usize,
    /// Of which approved.
    pub approved: usize,
    /// Of which rejected.
    pub rejected: usize,
    /// `approved / total_orders`, 0 when there were none.
    pub approval_rate: f64,
    /// The moderated orders (capped, see [`ORDER_LIST_CAP`]).
    pub orders: Vec<Order>,
}

/// Most orders listed in one report, so a force-run over a huge backlog stays small; the
/// counts are always complete.
pub const ORDER_LIST_CAP: usize = 1_000;

/// The seed's force-run entry: one due time.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HourResult {
    /// The due time.
    #[serde(with = "serde_ms")]
    pub hour_start_utc: DateTime<Utc>,
    /// Orders moderated for it.
    pub orders_count: usize,
    /// The details.
    pub moderation_result: HourReport,
}

/// What a forced pass did, grouped by due time as the seed's force-run reported it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PassReport {
    /// Orders moderated.
    pub processed: usize,
    /// One entry per due time, soonest first.
    pub results: Vec<HourResult>,
    /// When the pass ended.
    #[serde(with = "serde_ms")]
    pub timestamp: DateTime<Utc>,
}

/// Accumulates moderated orders by due time.
#[derive(Debug, Default)]
pub(crate) struct Grouper {
    hours: BTreeMap<DateTime<Utc>, HourReport>,
    listed: usize,
    pub(crate) processed: usize,
    pub(crate) approved: usize,
    pub(crate) rejected: usize,
}

impl Grouper {
    /// Adds orders; lists them only while under the cap.
    pub(crate) fn add(&mut self, moderated: &[Order], keep_orders: bool) {
        for o in moderated {
            let h = self
                .hours
                .entry(o.hour_start_utc)
                .or_insert_with(|| HourReport {
                    hour_start_utc: o.hour_start_utc,
                    total_orders: 0,
                    approved: 0,
                    rejected: 0,
                    approval_rate: 0.0,
                    orders: Vec::new(),
                });
            h.total_orders += 1;
            self.processed += 1;
            if o.status == OrderStatus::Approved {
                h.approved += 1;
                self.approved += 1;
            } else {
                h.rejected += 1;
                self.rejected += 1;
            }
            if keep_orders && self.listed < ORDER_LIST_CAP {
                h.orders.push(o.clone());
                self.listed += 1;
            }
        }
    }

    /// Number of distinct due times so far.
    pub(crate) fn hour_count(&self) -> usize {
        self.hours.len()
    }

    /// The per-hour reports, soonest first.
    pub(crate) fn into_hours(self) -> Vec<HourReport> {
        self.hours
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

    /// The seed's force-run report.
    pub(crate) fn into_pass_report(self) -> PassReport {
        let processed = self.processed;
        let results = self
            .into_hours()
            .into_iter()
            .map(|h| HourResult {
                hour_start_utc: h.hour_start_utc,
                orders_count: h.total_orders,
                moderation_result: h,
            })
            .collect();
        PassReport {
            processed,
            results,
            timestamp: Utc::now(),
        }
    }
}

/// The scheduler's status: the seed's fields with the seed's names, then ours.
#[derive(Debug, Clone, Serialize, PartialEq)]
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
    /// Orders moderated since the thread started.
    pub processed: u64,
    /// Of which approved.
    pub approved: u64,
    /// Of which rejected.
    pub rejected: u64,
    /// Passes or batches that failed (and were retried).
    pub failed: u64,
    /// Panics caught inside passes.
    pub panics: u64,
    /// Orders set aside because they could not be moderated (in the database, all instances).
    pub parked: Option<i64>,
    /// Orders this instance set aside: (id, reason), most recent last.
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
    /// When it happened.
    #[serde(serialize_with = "serde_ms::option::serialize")]
    pub last_error_at: Option<DateTime<Utc>>,
    /// Failures in a row; 0 once a pass succeeds again.
    pub consecutive_failures: u32,
    /// Moderation seed, when outcomes are reproducible.
    pub moderation_seed: Option<u64>,
}

/// An order the scheduler set aside.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ParkedOrder {
    /// The order.
    pub id: String,
    /// Why.
    pub reason: String,
}

/// Lateness of the most recent moderations (the last 4,096), milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LatenessSummary {
    /// Of the last order moderated.
    pub last: Option<i64>,
    /// Median of the window.
    pub p50: Option<i64>,
    /// 99th percentile of the window.
    pub p99: Option<i64>,
    /// Maximum of the window.
    pub max: Option<i64>,
    /// How many values the window holds.
    pub samples: usize,
}
