//! Claim-and-apply: the one transaction in which due orders are taken, decided, written and
//! recorded.
//!
//! **Invariant:** an order is moderated exactly once. Claimed rows are locked for the whole
//! transaction (Postgres: `FOR UPDATE SKIP LOCKED`, so concurrent claimers take disjoint rows;
//! SQLite: `BEGIN IMMEDIATE`, one writer at a time), every update is conditional on
//! `status = 'PENDING'`, and the status and its event are written in the same transaction, so a
//! crash or an error leaves the order `PENDING` with no event.

use crate::connection::DbConnection;
use crate::error::StorageError;
use crate::models::{OrderRow, ORDER_COLUMNS};
use crate::schema::orders;
use crate::store::{naive, Store};
use ::orders::{rt_interval_start, truncate_ms, Decision, Order, OrderStatus, RT_SOURCE};
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};
use diesel::sqlite::SqliteConnection;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Which pending orders a claim takes.
#[derive(Debug, Clone, Copy)]
pub enum ClaimScope {
    /// Orders due by now (on Postgres "now" is the database's clock, shared by all instances).
    Due,
    /// Orders due by now and not before the given instant: the next batch of a pass, which
    /// starts where the last batch ended. On Postgres the index still holds entries of the rows
    /// moderated moments ago (dead until vacuum); starting every claim at the front would walk
    /// more of them with every batch, making a long drain quadratic.
    DueFrom(DateTime<Utc>),
    /// Orders due at exactly this instant, whether or not it has passed (manual moderation of
    /// one hour).
    Hour(DateTime<Utc>),
}

/// What the caller's closure decided for one order, with the inputs worth auditing.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The decision.
    pub decision: Decision,
    /// Stored in the event's `details` (policy, seed, lateness...).
    pub details: serde_json::Value,
}

/// The outcome of one claim.
#[derive(Debug, Clone, Default)]
pub struct ClaimResult {
    /// Orders moderated by this claim, as they are now.
    pub moderated: Vec<Order>,
    /// Orders set aside because their rows do not decode: (id, reason).
    pub parked: Vec<(String, String)>,
    /// Moderation time written to every order of the batch (milliseconds).
    pub at: Option<DateTime<Utc>>,
}

impl ClaimResult {
    /// Rows taken by the claim (moderated or parked); zero means nothing was claimable.
    pub fn claimed(&self) -> usize {
        self.moderated.len() + self.parked.len()
    }
}

impl Store {
    /// Claims up to `limit` pending orders in `scope`, decides each with `decide(order, at)`,
    /// writes the new statuses where the row is still PENDING and appends their events, all in
    /// one transaction. Rows that do not decode are parked (skipped by later claims).
    ///
    /// If `decide` returns an error or panics, the whole batch is rolled back and the error
    /// names the order ([`StorageError::Decide`]).
    pub fn claim_and_apply<F>(
        &self,
        scope: ClaimScope,
        limit: usize,
        actor: &str,
        mut decide: F,
    ) -> Result<ClaimResult, StorageError>
    where
        F: FnMut(&Order, DateTime<Utc>) -> Result<Decided, String>,
    {
        self.write(|c| {
            let rows = select_claimable(c, scope, limit.max(1) as i64)?;
            if rows.is_empty() {
                return Ok(ClaimResult::default());
            }
            let at = truncate_ms(Utc::now());
            let mut parked = Vec::new();
            let mut decided = Vec::with_capacity(rows.len());
            for row in rows {
                match row.decode() {
                    Ok(order) => {
                        let outcome = catch_unwind(AssertUnwindSafe(|| decide(&order, at)))
                            .unwrap_or_else(|panic| Err(panic_message(&*panic)));
                        match outcome {
                            Ok(d) => decided.push((order, d)),
                            Err(reason) => {
                                return Err(StorageError::Decide {
                                    order_id: order.id,
                                    reason,
                                })
                            }
                        }
                    }
                    Err(StorageError::Corrupt { id, reason }) => parked.push((id, reason)),
                    Err(e) => return Err(e),
                }
            }
            for (id, reason) in &parked {
                diesel::update(orders::table.filter(orders::id.eq(id)))
                    .set(orders::parked_reason.eq(reason))
                    .execute(c)?;
            }
            let moderated = match c {
                DbConnection::Pg(pg) => apply_pg(pg, decided, at, actor)?,
                DbConnection::Sqlite(sqlite) => apply_sqlite(sqlite, decided, at, actor)?,
            };
            Ok(ClaimResult {
                moderated,
                parked,
                at: Some(at),
            })
        })
    }
}

/// The text of a caught panic payload, prefixed with `panicked: `. The one place that turns a
/// `catch_unwind` payload into words, for the claim here and for the scheduler's passes.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("panicked: {text}")
}

/// The pending rows a claim may take, soonest due first. On Postgres they are locked, and rows
/// another transaction holds are skipped rather than waited for.
fn select_claimable(
    conn: &mut DbConnection,
    scope: ClaimScope,
    limit: i64,
) -> Result<Vec<OrderRow>, StorageError> {
    let base = orders::table
        .select(ORDER_COLUMNS)
        .filter(orders::status.eq(OrderStatus::Pending.as_str()))
        .filter(orders::parked_reason.is_null())
        .order(orders::hour_start_utc.asc())
        .limit(limit);
    Ok(match (conn, scope) {
        (DbConnection::Pg(pg), ClaimScope::Due) => base
            .filter(orders::hour_start_utc.le(diesel::dsl::now))
            .for_update()
            .skip_locked()
            .load(pg)?,
        (DbConnection::Pg(pg), ClaimScope::DueFrom(from)) => base
            .filter(orders::hour_start_utc.ge(naive(from)))
            .filter(orders::hour_start_utc.le(diesel::dsl::now))
            .for_update()
            .skip_locked()
            .load(pg)?,
        (DbConnection::Pg(pg), ClaimScope::Hour(t)) => base
            .filter(orders::hour_start_utc.eq(naive(t)))
            .for_update()
            .skip_locked()
            .load(pg)?,
        (DbConnection::Sqlite(s), ClaimScope::Due) => base
            .filter(orders::hour_start_utc.le(naive(Utc::now())))
            .load(s)?,
        (DbConnection::Sqlite(s), ClaimScope::DueFrom(from)) => base
            .filter(orders::hour_start_utc.ge(naive(from)))
            .filter(orders::hour_start_utc.le(naive(Utc::now())))
            .load(s)?,
        (DbConnection::Sqlite(s), ClaimScope::Hour(t)) => {
            base.filter(orders::hour_start_utc.eq(naive(t))).load(s)?
        }
    })
}

/// Applies a moderated order's decision to its in-memory copy, mirroring what was written.
fn settled(mut order: Order, decision: &Decision, at: DateTime<Utc>) -> Order {
    order.status = decision.status();
    order.approved_at = Some(at);
    match decision {
        Decision::Approved { rt_lmp } => {
            order.approval_rt_lmp = Some(*rt_lmp);
            order.approval_rt_interval_start_utc = Some(rt_interval_start(at));
            order.approval_rt_source = Some(RT_SOURCE.to_string());
        }
        Decision::Rejected { reason } => order.reject_reason = Some(reason.clone()),
    }
    order
}

/// Postgres: one set-based UPDATE over `unnest`ed arrays that also inserts the events, so a
/// batch costs one round trip whatever its size.
fn apply_pg(
    pg: &mut PgConnection,
    decided: Vec<(Order, Decided)>,
    at: DateTime<Utc>,
    actor: &str,
) -> Result<Vec<Order>, StorageError> {
    #[derive(QueryableByName)]
    struct Updated {
        #[diesel(sql_type = Text)]
        order_id: String,
    }
    let n = decided.len();
    let (mut ids, mut statuses, mut lmps, mut reasons, mut details) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (order, d) in &decided {
        ids.push(order.id.clone());
        statuses.push(d.decision.status().as_str());
        let (lmp, reason) = d.decision.lmp_or_reason();
        lmps.push(lmp.map(|p| p.scaled()));
        reasons.push(reason.map(str::to_string));
        details.push(d.details.to_string());
    }
    let updated: Vec<Updated> = diesel::sql_query(
        "WITH d(id, status, lmp, reason, details) AS ( \
             SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[])), \
         u AS ( \
             UPDATE orders o SET status = d.status, approved_at = $6, \
                 approval_rt_interval_start_utc = CASE WHEN d.lmp IS NULL THEN NULL ELSE $7 END, \
                 approval_rt_lmp_cents = d.lmp, \
                 approval_rt_source = CASE WHEN d.lmp IS NULL THEN NULL ELSE $8 END, \
                 reject_reason = d.reason \
             FROM d WHERE o.id = d.id AND o.status = 'PENDING' \
             RETURNING o.id, d.status, d.details) \
         INSERT INTO order_events (order_id, from_status, to_status, at, actor, details) \
         SELECT id, 'PENDING', status, $6, $9, details FROM u ORDER BY id \
         RETURNING order_id",
    )
    .bind::<Array<Text>, _>(&ids)
    .bind::<Array<Text>, _>(&statuses)
    .bind::<Array<Nullable<BigInt>>, _>(&lmps)
    .bind::<Array<Nullable<Text>>, _>(&reasons)
    .bind::<Array<Text>, _>(&details)
    .bind::<Timestamp, _>(naive(at))
    .bind::<Timestamp, _>(naive(rt_interval_start(at)))
    .bind::<Text, _>(RT_SOURCE)
    .bind::<Text, _>(actor)
    .load(pg)?;
    let done: std::collections::HashSet<String> = updated.into_iter().map(|u| u.order_id).collect();
    Ok(decided
        .into_iter()
        .filter(|(o, _)| done.contains(&o.id))
        .map(|(o, d)| settled(o, &d.decision, at))
        .collect())
}

/// SQLite: the batch travels as one JSON array, read back with `json_each`: one UPDATE joined
/// on it (forced onto the primary-key index, else SQLite's planner walks every pending order
/// and scans the array for each) and one INSERT of the events, whatever the batch size. The
/// immediate transaction already holds the only write lock; the `status = 'PENDING'` condition
/// still guards against any other writer, and events are written only for updated rows.
fn apply_sqlite(
    sqlite: &mut SqliteConnection,
    decided: Vec<(Order, Decided)>,
    at: DateTime<Utc>,
    actor: &str,
) -> Result<Vec<Order>, StorageError> {
    #[derive(QueryableByName)]
    struct Updated {
        #[diesel(sql_type = Text)]
        id: String,
    }
    let rows = |keep: &dyn Fn(&Order) -> bool| -> String {
        let items: Vec<serde_json::Value> = decided
            .iter()
            .filter(|(o, _)| keep(o))
            .map(|(o, d)| {
                let (lmp, reason) = d.decision.lmp_or_reason();
                serde_json::json!({
                    "id": o.id, "status": d.decision.status().as_str(), "lmp": lmp.map(|p| p.scaled()),
                    "reason": reason, "details": d.details.to_string(),
                })
            })
            .collect();
        serde_json::Value::Array(items).to_string()
    };
    let batch = rows(&|_| true);
    let updated: Vec<Updated> = diesel::sql_query(
        "WITH d AS (SELECT value ->> 'id' AS id, value ->> 'status' AS status, \
             value ->> 'lmp' AS lmp, value ->> 'reason' AS reason FROM json_each(?1)) \
         UPDATE orders INDEXED BY sqlite_autoindex_orders_1 \
         SET status = d.status, approved_at = ?2, \
             approval_rt_interval_start_utc = CASE WHEN d.lmp IS NULL THEN NULL ELSE ?3 END, \
             approval_rt_lmp_cents = d.lmp, \
             approval_rt_source = CASE WHEN d.lmp IS NULL THEN NULL ELSE ?4 END, \
             reject_reason = d.reason \
         FROM d WHERE orders.id = d.id AND orders.status = 'PENDING' \
         RETURNING orders.id",
    )
    .bind::<Text, _>(&batch)
    .bind::<Timestamp, _>(naive(at))
    .bind::<Timestamp, _>(naive(rt_interval_start(at)))
    .bind::<Text, _>(RT_SOURCE)
    .load(sqlite)?;
    let done: std::collections::HashSet<String> = updated.into_iter().map(|u| u.id).collect();
    let events = if done.len() == decided.len() {
        batch
    } else {
        rows(&|o| done.contains(&o.id))
    };
    diesel::sql_query(
        "INSERT INTO order_events (order_id, from_status, to_status, at, actor, details) \
         SELECT value ->> 'id', 'PENDING', value ->> 'status', ?1, ?2, value ->> 'details' \
         FROM json_each(?3) ORDER BY key",
    )
    .bind::<Timestamp, _>(naive(at))
    .bind::<Text, _>(actor)
    .bind::<Text, _>(&events)
    .execute(sqlite)?;
    Ok(decided
        .into_iter()
        .filter(|(o, _)| done.contains(&o.id))
        .map(|(o, d)| settled(o, &d.decision, at))
        .collect())
}
