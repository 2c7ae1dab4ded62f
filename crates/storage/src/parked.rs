//! Parked orders: pending orders the scheduler set aside because it could not decode or decide
//! them. Operators list them, retry them (un-park: the next pass claims them again) or discard
//! them (rejected, with the reason in the history).
//!
//! Every query filters with [`parked_sql`], spelled as the partial index `orders_parked`'s
//! predicate, so listing and counting read that small index, not the book. Rows are read as
//! stored text: a parked row is often one that does not decode.

use crate::backend::parked_sql;
use crate::error::StorageError;
use crate::manual::insert_event;
use crate::schema::orders;
use crate::store::{naive, Store};
use ::orders::{truncate_ms, OrderStatus};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::Bool;
use serde::Serialize;
use serde_json::json;

/// A parked order as stored: the columns an operator needs to decide, undecoded.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ParkedOrder {
    /// The order's id.
    pub id: String,
    /// Why the scheduler set it aside.
    pub parked_reason: String,
    /// Due time.
    #[serde(with = "::orders::time::serde_ms")]
    pub hour_start_utc: DateTime<Utc>,
    /// Creation time.
    #[serde(with = "::orders::time::serde_ms")]
    pub created_at: DateTime<Utc>,
    /// Side, as stored (it may be what failed to decode).
    pub side: String,
    /// Location, as stored.
    pub location: String,
}

type ParkedRow = (String, String, NaiveDateTime, NaiveDateTime, String, String);

/// What discarding a parked order did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Discarded {
    /// The order's id.
    pub id: String,
    /// The rejection reason written: `Discarded by operator: ...`.
    pub reject_reason: String,
}

/// Prefix of the rejection reason of a discarded order.
pub const DISCARD_PREFIX: &str = "Discarded by operator";

fn parked() -> diesel::dsl::Filter<orders::table, diesel::expression::SqlLiteral<Bool>> {
    orders::table.filter(sql::<Bool>(parked_sql()))
}

impl Store {
    /// Pending orders set aside by the scheduler, with the reason, at most `limit`.
    pub fn parked_orders(&self, limit: i64) -> Result<Vec<(String, String)>, StorageError> {
        let rows = parked()
            .select((orders::id, orders::parked_reason.assume_not_null()))
            .order(orders::id.asc())
            .limit(limit)
            .load::<(String, String)>(&mut *self.checkout()?)?;
        Ok(rows)
    }

    /// Parked orders with what an operator needs to decide, oldest first, at most `limit`.
    pub fn parked_list(&self, limit: i64) -> Result<Vec<ParkedOrder>, StorageError> {
        let rows = parked()
            .select((
                orders::id,
                orders::parked_reason.assume_not_null(),
                orders::hour_start_utc,
                orders::created_at,
                orders::side,
                orders::location,
            ))
            .order(orders::id.asc())
            .limit(limit)
            .load::<ParkedRow>(&mut *self.checkout()?)?;
        Ok(rows
            .into_iter()
            .map(
                |(id, parked_reason, due, created, side, location)| ParkedOrder {
                    id,
                    parked_reason,
                    hour_start_utc: due.and_utc(),
                    created_at: created.and_utc(),
                    side,
                    location,
                },
            )
            .collect())
    }

    /// Un-parks one order (`Some(id)`) or every parked order (`None`), so that the next pass
    /// claims them again. Returns how many were un-parked; an id that is not parked (any more)
    /// counts 0. The caller wakes its scheduler.
    pub fn retry_parked(&self, id: Option<&str>) -> Result<usize, StorageError> {
        self.write(|c| {
            let mut q = diesel::update(parked()).into_boxed();
            if let Some(id) = id {
                q = q.filter(orders::id.eq(id));
            }
            Ok(q.set(orders::parked_reason.eq(None::<String>)).execute(c)?)
        })
    }

    /// Rejects a parked order with the reason `Discarded by operator: <note>` and records it in
    /// the history. Conditional on the order still being pending and parked: an order retried
    /// (or moderated) meanwhile is a [`StorageError::Conflict`], an unknown id
    /// [`StorageError::NotFound`].
    pub fn discard_parked(
        &self,
        id: &str,
        note: &str,
        actor: &str,
    ) -> Result<Discarded, StorageError> {
        let note = note.trim();
        let reason = if note.is_empty() {
            DISCARD_PREFIX.to_string()
        } else {
            format!("{DISCARD_PREFIX}: {note}")
        };
        self.write(|c| {
            let now = truncate_ms(Utc::now());
            let parked_reason = parked()
                .filter(orders::id.eq(id))
                .select(orders::parked_reason.assume_not_null())
                .first::<String>(c)
                .optional()?;
            let Some(parked_reason) = parked_reason else {
                let exists = orders::table
                    .filter(orders::id.eq(id))
                    .select(orders::id)
                    .first::<String>(c)
                    .optional()?
                    .is_some();
                return Err(if exists {
                    StorageError::Conflict(id.to_string())
                } else {
                    StorageError::NotFound(id.to_string())
                });
            };
            // The same predicate again in the UPDATE: the write is conditional on what was
            // read, whatever another writer did in between.
            let n = diesel::update(parked().filter(orders::id.eq(id)))
                .set((
                    orders::status.eq(OrderStatus::Rejected.as_str()),
                    orders::approved_at.eq(Some(naive(now))),
                    orders::reject_reason.eq(Some(reason.clone())),
                ))
                .execute(c)?;
            if n != 1 {
                return Err(StorageError::Conflict(id.to_string()));
            }
            insert_event(
                c,
                id,
                Some(OrderStatus::Pending),
                OrderStatus::Rejected,
                now,
                actor,
                json!({ "reason": reason, "parked_reason": parked_reason }),
            )?;
            Ok(Discarded {
                id: id.to_string(),
                reject_reason: reason,
            })
        })
    }
}
