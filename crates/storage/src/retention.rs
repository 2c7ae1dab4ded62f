//! Retention: deleting closed orders (any status but `PENDING`) older than a cut-off, with
//! their history, in small batches so that no transaction holds the database for long.
//!
//! Closed means decided: an order's age is its decision time (`approved_at`, set on approval
//! and rejection) or, when it has none (a cancellation), its creation time. Every statement
//! filters `status <> 'PENDING'`, so a sweep never locks or waits on a row the scheduler may
//! claim. One sweeper runs at a time: on Postgres the caller holds a session advisory lock
//! ([`Store::try_retention_lock`]) on a connection of its own, released when that connection
//! closes; on SQLite, where one process owns the file, a process-wide flag.

use crate::backend::closed_sql;
use crate::error::StorageError;
use crate::schema::{order_events, orders};
use crate::store::{naive, Store};
use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::Bool;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};

/// What one batch (or a whole sweep) deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// Orders deleted.
    pub orders: usize,
    /// History rows deleted with them.
    pub events: usize,
}

impl std::ops::AddAssign for Pruned {
    fn add_assign(&mut self, o: Self) {
        self.orders += o.orders;
        self.events += o.events;
    }
}

/// Proof that this caller is the only sweeper; dropping it lets another one run.
pub struct RetentionLock {
    // Postgres: the session holding `pg_try_advisory_lock`; closing it releases the lock.
    _pg: Option<diesel::pg::PgConnection>,
    local: bool,
}

impl std::fmt::Debug for RetentionLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetentionLock")
            .field("postgres", &self._pg.is_some())
            .finish()
    }
}

/// The SQLite sweeper's flag (one process owns an SQLite file).
static LOCAL_SWEEPER: AtomicBool = AtomicBool::new(false);

impl Drop for RetentionLock {
    fn drop(&mut self) {
        if self.local {
            LOCAL_SWEEPER.store(false, Ordering::Release);
        }
    }
}

impl Store {
    /// Takes the right to sweep without waiting: `None` when another sweeper (another
    /// instance, on Postgres) holds it.
    pub fn try_retention_lock(&self) -> Result<Option<RetentionLock>, StorageError> {
        match self.url() {
            crate::DatabaseUrl::Postgres(url) => Ok(crate::backend::pg::Pg::try_retention_lock(
                url,
            )?
            .map(|c| RetentionLock {
                _pg: Some(c),
                local: false,
            })),
            crate::DatabaseUrl::Sqlite(_) => Ok(LOCAL_SWEEPER
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
                .then_some(RetentionLock {
                    _pg: None,
                    local: true,
                })),
        }
    }

    /// Deletes at most `limit` closed orders decided (or, undecided, created) before `before`,
    /// and their history, in one short transaction, continuing after `cursor` and advancing
    /// it. Call it until [`PruneCursor::is_done`]; the lock proves the caller is the only
    /// sweeper.
    ///
    /// The cursor is why a sweep costs the same per batch at its end as at its start: without
    /// it every batch would walk the closed-orders index from its beginning, over the entries
    /// of every order deleted before (dead until vacuumed on Postgres), so a million-order
    /// sweep did quadratic work and its batches grew long enough to delay the scheduler.
    pub fn prune_closed_batch(
        &self,
        _lock: &RetentionLock,
        before: DateTime<Utc>,
        limit: i64,
        cursor: &mut PruneCursor,
    ) -> Result<Pruned, StorageError> {
        if cursor.done {
            return Ok(Pruned::default());
        }
        let before = naive(before);
        let after = cursor.after.clone();
        let (pruned, ids) = self.write(|c| {
            // The literal predicate matches the partial index `orders_closed` (id order).
            let mut q = orders::table
                .filter(sql::<Bool>(closed_sql()))
                .filter(
                    orders::approved_at.lt(before).or(orders::approved_at
                        .is_null()
                        .and(orders::created_at.lt(before))),
                )
                .select(orders::id)
                .order(orders::id.asc())
                .limit(limit)
                .into_boxed();
            if let Some(after) = &after {
                q = q.filter(orders::id.gt(after.clone()));
            }
            let ids: Vec<String> = q.load(c)?;
            if ids.is_empty() {
                return Ok((Pruned::default(), ids));
            }
            let events =
                diesel::delete(order_events::table.filter(order_events::order_id.eq_any(&ids)))
                    .execute(c)?;
            // Conditional again: an order cannot become pending, but the rule costs nothing.
            let orders = diesel::delete(
                orders::table
                    .filter(orders::id.eq_any(&ids))
                    .filter(sql::<Bool>(closed_sql())),
            )
            .execute(c)?;
            Ok((Pruned { orders, events }, ids))
        })?;
        cursor.done = (ids.len() as i64) < limit;
        if let Some(last) = ids.into_iter().next_back() {
            cursor.after = Some(last);
        }
        Ok(pruned)
    }
}

impl Store {
    /// After a batch, on SQLite: folds the write-ahead log back into the database file now,
    /// with a passive checkpoint (it waits for no reader or writer). Otherwise the pages a
    /// batch dirtied stay in the log until some commit crosses the autocheckpoint size, and
    /// that committer, likely the scheduler moderating an order that just fell due, copies
    /// them all before it returns. On Postgres, whose checkpointer is a server process of its
    /// own, nothing.
    pub fn checkpoint_after_prune(&self) -> Result<(), StorageError> {
        use diesel::connection::SimpleConnection;
        if let crate::DbConnection::Sqlite(c) = &mut *self.checkout()? {
            c.batch_execute("PRAGMA wal_checkpoint(PASSIVE)")?;
        }
        Ok(())
    }
}

/// How far one sweep has got: the last order id its batches looked at. A new sweep starts
/// from [`PruneCursor::default`].
#[derive(Debug, Clone, Default)]
pub struct PruneCursor {
    after: Option<String>,
    done: bool,
}

impl PruneCursor {
    /// True once a batch found fewer old closed orders than its limit: the sweep is over.
    pub fn is_done(&self) -> bool {
        self.done
    }
}
