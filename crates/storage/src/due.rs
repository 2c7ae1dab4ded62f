//! What is due and what is next: the questions the scheduler asks at every wake, and the
//! counts its status shows.
//!
//! Every query here that the scheduler or a status call runs is bounded by what is due, not by
//! the size of the book: they read the partial index `orders_claimable_due` (pending, not
//! parked, by due time) through [`claimable_sql`], so "next due" is one index probe and "due
//! within a window" one range. Only [`Store::book_counts`] counts the whole pending book; it is
//! meant to be cached by its caller.

use crate::backend::{claimable_sql, parked_sql};
use crate::error::StorageError;
use crate::schema::orders;
use crate::store::{naive, Store};
use chrono::{DateTime, Duration as ChronoDuration, NaiveDateTime, Utc};
use diesel::dsl::{count_star, min, sql};
use diesel::prelude::*;
use diesel::sql_types::Bool;
use serde::Serialize;

/// What is due and what is next, for the scheduler's status.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DueSummary {
    /// Pending orders whose due time has passed.
    pub pending_due_now: i64,
    /// Pending orders due within the window after now.
    pub upcoming: i64,
    /// Pending orders not yet due (any time in the future).
    pub pending_later: i64,
    /// Earliest due time of any pending order.
    pub next_due: Option<DateTime<Utc>>,
    /// Pending orders set aside because they could not be moderated.
    pub parked: i64,
}

/// The part of [`DueSummary`] that costs in proportion to what is due soon, not to the book.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct DueCounts {
    /// Claimable orders whose due time has passed.
    pub due_now: i64,
    /// Claimable orders due within the window after now.
    pub upcoming: i64,
    /// Earliest due time of any claimable order.
    pub next_due: Option<DateTime<Utc>>,
}

/// The part of [`DueSummary`] that counts the whole pending book: cache it.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct BookCounts {
    /// Claimable orders not yet due.
    pub pending_later: i64,
    /// Pending orders set aside because they could not be moderated.
    pub parked: i64,
}

/// Claimable orders, spelled so that the planner uses the partial index.
fn claimable() -> diesel::dsl::Filter<orders::table, diesel::expression::SqlLiteral<Bool>> {
    orders::table.filter(sql::<Bool>(claimable_sql()))
}

impl Store {
    /// [`DueCounts`] and [`BookCounts`] together. The book counts walk every pending order;
    /// the scheduler's status caches them rather than calling this per request.
    pub fn due_summary(
        &self,
        now: DateTime<Utc>,
        window: ChronoDuration,
    ) -> Result<DueSummary, StorageError> {
        let due = self.due_counts(now, window)?;
        let book = self.book_counts(now)?;
        Ok(DueSummary {
            pending_due_now: due.due_now,
            upcoming: due.upcoming,
            pending_later: book.pending_later,
            next_due: due.next_due,
            parked: book.parked,
        })
    }

    /// Orders due by `now`, due within `window` after it, and the next due time: two index
    /// ranges bounded by what is due, and one index probe.
    pub fn due_counts(
        &self,
        now: DateTime<Utc>,
        window: ChronoDuration,
    ) -> Result<DueCounts, StorageError> {
        let mut conn = self.checkout()?;
        let due_now = claimable()
            .filter(orders::hour_start_utc.le(naive(now)))
            .select(count_star())
            .first::<i64>(&mut *conn)?;
        let upcoming = claimable()
            .filter(orders::hour_start_utc.gt(naive(now)))
            .filter(orders::hour_start_utc.le(naive(now + window)))
            .select(count_star())
            .first::<i64>(&mut *conn)?;
        let next_due = claimable()
            .select(min(orders::hour_start_utc))
            .first::<Option<NaiveDateTime>>(&mut *conn)?
            .map(|t| t.and_utc());
        Ok(DueCounts {
            due_now,
            upcoming,
            next_due,
        })
    }

    /// Claimable orders due after `now`, and parked orders: an index-only count over the whole
    /// pending book, so callers cache it.
    pub fn book_counts(&self, now: DateTime<Utc>) -> Result<BookCounts, StorageError> {
        let mut conn = self.checkout()?;
        let pending_later = claimable()
            .filter(orders::hour_start_utc.gt(naive(now)))
            .select(count_star())
            .first::<i64>(&mut *conn)?;
        drop(conn);
        Ok(BookCounts {
            pending_later,
            parked: self.parked_count()?,
        })
    }

    /// Pending orders set aside by the scheduler: a count over their own small index.
    pub fn parked_count(&self) -> Result<i64, StorageError> {
        Ok(orders::table
            .filter(sql::<Bool>(parked_sql()))
            .select(count_star())
            .first::<i64>(&mut *self.checkout()?)?)
    }

    /// Earliest due time of any claimable (pending, not parked) order: one index probe.
    pub fn next_due(&self) -> Result<Option<DateTime<Utc>>, StorageError> {
        let t = claimable()
            .select(min(orders::hour_start_utc))
            .first::<Option<NaiveDateTime>>(&mut *self.checkout()?)?;
        Ok(t.map(|t| t.and_utc()))
    }

    /// Distinct due times of claimable orders in `(from, until]`, at most `limit`, soonest
    /// first.
    pub fn upcoming_due_times(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<DateTime<Utc>>, StorageError> {
        let times = claimable()
            .filter(orders::hour_start_utc.gt(naive(from)))
            .filter(orders::hour_start_utc.le(naive(until)))
            .select(orders::hour_start_utc)
            .distinct()
            .order(orders::hour_start_utc.asc())
            .limit(limit)
            .load::<NaiveDateTime>(&mut *self.checkout()?)?;
        Ok(times.into_iter().map(|t| t.and_utc()).collect())
    }
}
