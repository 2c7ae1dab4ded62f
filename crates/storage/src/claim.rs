//! Claim-and-apply: the one transaction in which due orders are taken, decided, written and
//! recorded.
//!
//! **Invariant:** an order is moderated exactly once. Claimed rows are locked for the whole
//! transaction (Postgres: `FOR UPDATE SKIP LOCKED`, so concurrent claimers take disjoint rows;
//! SQLite: `BEGIN IMMEDIATE`, one writer at a time), every update is conditional on
//! `status = 'PENDING'`, and the status and its event are written in the same transaction, so a
//! crash or an error leaves the order `PENDING` with no event.
//!
//! Orders may also be read ahead of their due instant ([`Store::read_due_at`]) and written at
//! it ([`Store::apply_prepared`]) without a claim's `SELECT`: the write itself then re-checks
//! every condition the claim would have (claimable, due, not held elsewhere), so the invariant
//! does not depend on the rows being unchanged since they were read. Orders read ahead may
//! also be decided outside the write ([`DecidedBatch::decide`]) and written apart
//! ([`Store::write_decided`]), with the same checks, so that one thread decides the next batch
//! while another writes this one.

use crate::backend::{claimable_sql, on_backend, Backend, DueRange, Guard};
use crate::error::StorageError;
use crate::models::ORDER_COLUMNS;
use crate::schema::orders;
use crate::store::Store;
use ::orders::{rt_interval_start, truncate_ms, Decision, Order, RT_SOURCE};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Bool;
use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Which pending orders a claim takes.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    DueAt(DateTime<Utc>),
    /// Orders due by now whose id sorts after the given one, taken in id order: a sweep
    /// through a large backlog ([`Store::backlog_worth_sweeping`]). Ids grow with creation
    /// (UUIDv7), and so does a row's place in the table and in the indexes keyed by id, while
    /// a day-ahead book's due times have nothing to do with its creation order: a batch of such
    /// a book taken in due order changes a page of the table and of each id-keyed index per
    /// order, the same batch taken in id order changes neighbouring pages. Within a backlog,
    /// whose orders are all late already, the order of moderation matters less than its pace.
    DueAfterId(String),
}

/// What the caller's closure decided for one order, with the inputs worth auditing.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The decision.
    pub decision: Decision,
    /// Stored in the event's `details` (policy, seed, lateness...).
    pub details: serde_json::Value,
    /// For an approval, the price source written to `approval_rt_source` (`FILE:lmps.csv`,
    /// say); `None` writes [`RT_SOURCE`], the original's simulated source.
    pub rt_source: Option<String>,
    /// For an approval, the start of the interval whose price was used, written to
    /// `approval_rt_interval_start_utc`; `None` writes the 5-minute interval containing the
    /// moderation time, as the original did.
    pub rt_interval_start_utc: Option<DateTime<Utc>>,
}

impl Decided {
    /// A decision priced the original's way (simulated source, interval of the moderation
    /// time).
    pub fn new(decision: Decision, details: serde_json::Value) -> Self {
        Self {
            decision,
            details,
            rt_source: None,
            rt_interval_start_utc: None,
        }
    }

    /// What an approval records as `(approval_rt_source, approval_rt_interval_start_utc)` when
    /// moderated at `at`; `None` for a rejection, which records neither.
    pub(crate) fn rt_record(&self, at: DateTime<Utc>) -> Option<(&str, DateTime<Utc>)> {
        match self.decision {
            Decision::Approved { .. } => Some((
                self.rt_source.as_deref().unwrap_or(RT_SOURCE),
                truncate_ms(
                    self.rt_interval_start_utc
                        .unwrap_or_else(|| rt_interval_start(at)),
                ),
            )),
            Decision::Rejected { .. } => None,
        }
    }
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

    /// Ids of the rows taken by the claim, moderated or parked: where a sweep continues.
    fn taken_ids(&self) -> impl Iterator<Item = &str> {
        self.moderated
            .iter()
            .map(|o| o.id.as_str())
            .chain(self.parked.iter().map(|(id, _)| id.as_str()))
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
        let range = scope.range();
        self.write(|c| {
            let rows =
                on_backend!(&mut *c, c => B::select_claimable(c, &range, limit.max(1) as i64))?;
            if rows.is_empty() {
                return Ok(ClaimResult::default());
            }
            let at = truncate_ms(Utc::now());
            let mut parked = Vec::new();
            let mut readable = Vec::with_capacity(rows.len());
            for row in rows {
                match row.decode() {
                    Ok(order) => readable.push(order),
                    Err(StorageError::Corrupt { id, reason }) => parked.push((id, reason)),
                    Err(e) => return Err(e),
                }
            }
            let decided = decide_each(readable, at, &mut decide)?;
            for (id, reason) in &parked {
                diesel::update(orders::table.filter(orders::id.eq(id)))
                    .set(orders::parked_reason.eq(reason))
                    .execute(c)?;
            }
            let moderated =
                on_backend!(&mut *c, c => B::apply_batch(c, decided, at, actor, Guard::Claimed))?;
            Ok(ClaimResult {
                moderated,
                parked,
                at: Some(at),
            })
        })
    }

    /// The claimable orders due at exactly `due`, up to `limit`, read without taking or
    /// writing anything. A scheduler reads the orders of the next due instant shortly before
    /// it, so that at that instant only the decisions and the write are left
    /// ([`Store::apply_prepared`]). Rows that do not decode are left out: a claim parks them.
    pub fn read_due_at(
        &self,
        due: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Order>, StorageError> {
        let rows: Vec<crate::models::OrderRow> = orders::table
            .select(ORDER_COLUMNS)
            .filter(diesel::dsl::sql::<Bool>(claimable_sql()))
            .filter(orders::hour_start_utc.eq(due.naive_utc()))
            .limit(limit as i64)
            .load(&mut *self.checkout()?)?;
        Ok(rows.into_iter().filter_map(|r| r.decode().ok()).collect())
    }

    /// Moderates orders read ahead by [`Store::read_due_at`] in one transaction, as a claim
    /// would: decides each with `decide(order, at)` and writes those whose rows are, at the
    /// write, still claimable (PENDING, not parked), due by now on the backend's clock, and
    /// (Postgres) not held by another claimer. The rest are left untouched for a later claim,
    /// so exactly-once holds whatever happened to the rows since they were read. Orders not yet
    /// due on this process's clock are not decided.
    pub fn apply_prepared<F>(
        &self,
        prepared: Vec<Order>,
        actor: &str,
        mut decide: F,
    ) -> Result<ClaimResult, StorageError>
    where
        F: FnMut(&Order, DateTime<Utc>) -> Result<Decided, String>,
    {
        self.write(|c| {
            let batch = DecidedBatch::decide(prepared, &mut decide)?;
            write_decided(c, batch, actor)
        })
    }

    /// Writes a batch decided outside any transaction, in one transaction, as
    /// [`Store::apply_prepared`] does: only the orders still claimable, due by the time they
    /// were decided at, and (Postgres) not held by another claimer are written.
    pub fn write_decided(
        &self,
        batch: DecidedBatch,
        actor: &str,
    ) -> Result<ClaimResult, StorageError> {
        if batch.decided.is_empty() {
            return Ok(ClaimResult::default());
        }
        self.write(|c| write_decided(c, batch, actor))
    }
}

/// Orders decided outside a transaction, with the moderation time they were decided at;
/// written by [`Store::write_decided`].
#[derive(Debug)]
pub struct DecidedBatch {
    decided: Vec<(Order, Decided)>,
    at: DateTime<Utc>,
}

impl DecidedBatch {
    /// Decides each of `orders` due by now with `decide(order, now)`; those not yet due on
    /// this process's clock are left out. The first failure fails the whole batch, naming
    /// its order ([`StorageError::Decide`]).
    pub fn decide<F>(orders: Vec<Order>, decide: F) -> Result<DecidedBatch, StorageError>
    where
        F: FnMut(&Order, DateTime<Utc>) -> Result<Decided, String>,
    {
        let mut decide = decide;
        let at = truncate_ms(Utc::now());
        let due: Vec<Order> = orders
            .into_iter()
            .filter(|o| o.hour_start_utc <= at)
            .collect();
        Ok(DecidedBatch {
            decided: decide_each(due, at, &mut decide)?,
            at,
        })
    }

    /// Orders in the batch.
    pub fn len(&self) -> usize {
        self.decided.len()
    }

    /// True if no order was due.
    pub fn is_empty(&self) -> bool {
        self.decided.is_empty()
    }
}

/// Writes a decided batch with every row re-checked ([`Guard::Prepared`]).
fn write_decided(
    c: &mut crate::connection::DbConnection,
    batch: DecidedBatch,
    actor: &str,
) -> Result<ClaimResult, StorageError> {
    let DecidedBatch { decided, at } = batch;
    if decided.is_empty() {
        return Ok(ClaimResult::default());
    }
    let moderated =
        on_backend!(&mut *c, c => B::apply_batch(c, decided, at, actor, Guard::Prepared))?;
    Ok(ClaimResult {
        moderated,
        parked: Vec::new(),
        at: Some(at),
    })
}

/// Decides each order at `at`; the first error or panic fails the whole batch, naming its
/// order ([`StorageError::Decide`]).
fn decide_each<F>(
    orders: Vec<Order>,
    at: DateTime<Utc>,
    decide: &mut F,
) -> Result<Vec<(Order, Decided)>, StorageError>
where
    F: FnMut(&Order, DateTime<Utc>) -> Result<Decided, String>,
{
    let mut decided = Vec::with_capacity(orders.len());
    for order in orders {
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
    Ok(decided)
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

impl ClaimScope {
    /// Where the next claim of a pass continues after `result`, the outcome of a claim in this
    /// scope: a due-order claim from the latest due time it took, a sweep from the greatest id
    /// it took (moderated or parked). A claim that took nothing leaves the scope as it was.
    pub fn after(self, result: &ClaimResult) -> ClaimScope {
        match self {
            ClaimScope::DueAfterId(after) => {
                ClaimScope::DueAfterId(result.taken_ids().max().map_or(after, str::to_string))
            }
            ClaimScope::DueAt(t) => ClaimScope::DueAt(t),
            scope => match result.moderated.iter().map(|o| o.hour_start_utc).max() {
                Some(latest) => ClaimScope::DueFrom(latest),
                None => scope,
            },
        }
    }

    /// A sweep starting just after the smallest id `result` took: orders with smaller ids,
    /// closed history for the most part, are not walked again (a due one among them is left
    /// to the due-order claims that follow a sweep). `None` if it took nothing.
    pub fn sweep_from(result: &ClaimResult) -> Option<ClaimScope> {
        result
            .taken_ids()
            .min()
            .map(|id| ClaimScope::DueAfterId(id.to_string()))
    }

    /// True for a sweep in id order ([`ClaimScope::DueAfterId`]).
    pub fn is_sweep(&self) -> bool {
        matches!(self, ClaimScope::DueAfterId(_))
    }

    /// The due times (and, for a sweep, the ids) this scope covers; all but `DueAt` end at
    /// "now" on the backend's clock, read inside the claim's transaction.
    fn range(self) -> DueRange {
        // Before any due time an order can have (validation keeps them in 2000–2099).
        let origin = DateTime::UNIX_EPOCH.naive_utc();
        match self {
            ClaimScope::Due => DueRange {
                from: origin,
                until: None,
                after_id: None,
            },
            ClaimScope::DueFrom(from) => DueRange {
                from: from.naive_utc(),
                until: None,
                after_id: None,
            },
            ClaimScope::DueAt(t) => DueRange {
                from: t.naive_utc(),
                until: Some(t.naive_utc()),
                after_id: None,
            },
            ClaimScope::DueAfterId(id) => DueRange {
                from: origin,
                until: None,
                after_id: Some(id),
            },
        }
    }
}

impl Store {
    /// Whether a pass should sweep the due orders in id order ([`ClaimScope::DueAfterId`])
    /// rather than take them in due order: at least `min_due` orders are due, and they are at
    /// least 1/`SWEEP_DENSITY` of all claimable orders, because a sweep walks every pending
    /// order from where it starts, due or not. Both counts are bounded queries on the
    /// claimable index, cheap beside the backlog they are asked about.
    pub fn backlog_worth_sweeping(&self, min_due: usize) -> Result<bool, StorageError> {
        let mut c = self.checkout()?;
        let due = on_backend!(&mut *c, c => B::count_claimable(c, true, SWEEP_COUNT_CAP))?;
        if due < min_due as i64 {
            return Ok(false);
        }
        if due >= SWEEP_COUNT_CAP {
            return Ok(true);
        }
        let cap = due.saturating_mul(SWEEP_DENSITY).saturating_add(1);
        let all = on_backend!(&mut *c, c => B::count_claimable(c, false, cap))?;
        Ok(all < cap)
    }
}

/// A sweep is chosen only if the due orders are at least this fraction (1/n) of all claimable
/// ones: a sweep walks the pending orders in id order, due or not, at a fraction of a due-order
/// claim's cost per order, so it pays off well before the due orders are the majority.
pub const SWEEP_DENSITY: i64 = 16;

/// Due orders counted at most when choosing a sweep: past this the backlog is worth a sweep
/// however large the future book, and counting further would only cost time.
const SWEEP_COUNT_CAP: i64 = 1 << 22;

/// Which orders of a decided batch a backend wrote: an order read ahead may have changed
/// since, and its conditional write then leaves it alone.
pub(crate) enum Written {
    /// Every one (the count of changed rows was the batch's size).
    All,
    /// The orders with these ids only.
    Only(HashSet<String>),
}

impl Written {
    pub(crate) fn includes(&self, id: &str) -> bool {
        match self {
            Written::All => true,
            Written::Only(ids) => ids.contains(id),
        }
    }
}

/// The orders of a decided batch that the backend wrote, with their decisions applied to the
/// in-memory copies exactly as they were written.
pub(crate) fn settled(
    decided: Vec<(Order, Decided)>,
    written: &Written,
    at: DateTime<Utc>,
) -> Vec<Order> {
    decided
        .into_iter()
        .filter(|(o, _)| written.includes(&o.id))
        .map(|(mut order, d)| {
            order.status = d.decision.status();
            order.approved_at = Some(at);
            if let Some((source, interval)) = d.rt_record(at) {
                order.approval_rt_interval_start_utc = Some(interval);
                order.approval_rt_source = Some(source.to_string());
            }
            match d.decision {
                Decision::Approved { rt_lmp } => {
                    order.approval_rt_lmp = Some(rt_lmp);
                }
                Decision::Rejected { reason } => order.reject_reason = Some(reason),
            }
            order
        })
        .collect()
}
