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
use crate::models::{NewEventRow, OrderRow, ORDER_COLUMNS};
use crate::schema::{order_events, orders};
use crate::store::{naive, Store};
use ::orders::{rt_interval_start, truncate_ms, Decision, Order, OrderStatus, RT_SOURCE};
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Which pending orders a claim takes.
#[derive(Debug, Clone, Copy)]
pub enum ClaimScope {
    /// Orders due by now (on Postgres "now" is the database's clock, shared by all instances).
    Due,
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
                            .unwrap_or_else(|panic| Err(panic_message(&panic)));
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
                DbConnection::Sqlite(_) => apply_portable(c, decided, at, actor)?,
            };
            Ok(ClaimResult {
                moderated,
                parked,
                at: Some(at),
            })
        })
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
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
        (DbConnection::Pg(pg), ClaimScope::Hour(t)) => base
            .filter(orders::hour_start_utc.eq(naive(t)))
            .for_update()
            .skip_locked()
            .load(pg)?,
        (DbConnection::Sqlite(s), ClaimScope::Due) => base
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
        match &d.decision {
            Decision::Approved { rt_lmp } => {
                lmps.push(Some(rt_lmp.scaled()));
                reasons.push(None);
            }
            Decision::Rejected { reason } => {
                lmps.push(None);
                reasons.push(Some(reason.clone()));
            }
        }
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

/// SQLite: one conditional UPDATE and one event INSERT per order, on cached prepared
/// statements. The immediate transaction already holds the only write lock, so these are
/// cheap, and the `status = 'PENDING'` condition still guards against any other writer.
fn apply_portable(
    conn: &mut DbConnection,
    decided: Vec<(Order, Decided)>,
    at: DateTime<Utc>,
    actor: &str,
) -> Result<Vec<Order>, StorageError> {
    let mut moderated = Vec::with_capacity(decided.len());
    let interval = naive(rt_interval_start(at));
    for (order, d) in decided {
        let target = orders::table
            .filter(orders::id.eq(&order.id))
            .filter(orders::status.eq(OrderStatus::Pending.as_str()));
        let status = d.decision.status();
        let n = match &d.decision {
            Decision::Approved { rt_lmp } => diesel::update(target)
                .set((
                    orders::status.eq(status.as_str()),
                    orders::approved_at.eq(Some(naive(at))),
                    orders::approval_rt_interval_start_utc.eq(Some(interval)),
                    orders::approval_rt_lmp_cents.eq(Some(rt_lmp.scaled())),
                    orders::approval_rt_source.eq(Some(RT_SOURCE)),
                ))
                .execute(conn)?,
            Decision::Rejected { reason } => diesel::update(target)
                .set((
                    orders::status.eq(status.as_str()),
                    orders::approved_at.eq(Some(naive(at))),
                    orders::reject_reason.eq(Some(reason.as_str())),
                ))
                .execute(conn)?,
        };
        if n == 1 {
            diesel::insert_into(order_events::table)
                .values(NewEventRow {
                    order_id: &order.id,
                    from_status: Some(OrderStatus::Pending.as_str()),
                    to_status: status.as_str(),
                    at: naive(at),
                    actor,
                    details: d.details.to_string(),
                })
                .execute(conn)?;
            moderated.push(settled(order, &d.decision, at));
        }
    }
    Ok(moderated)
}
