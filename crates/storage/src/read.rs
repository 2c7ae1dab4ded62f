//! Reading orders and their history: one order, listings, the event log, P&L totals.
//!
//! A listing never fails because of one stored row that does not decode (a side or status
//! written by another tool, an order parked for it and later discarded): it returns the rows
//! that decode and names the others, with the reason, as [`Unreadable`]. One order read by id
//! still fails with [`StorageError::Corrupt`], since there is nothing else to show.

use crate::backend::{claimable_sql, closed_sql, on_backend, parked_sql, Backend};
use crate::connection::DbConnection;
use crate::error::StorageError;
use crate::models::{EventRow, OrderRow, ORDER_COLUMNS};
use crate::schema::{order_events, orders};
use crate::store::{naive, Store};
use ::orders::{Order, OrderEvent, OrderStatus, Pnl, Side};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::dsl::{count_star, sql};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool};
use serde::Serialize;

/// Filters for [`Store::list_orders`].
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    /// Only this status.
    pub status: Option<OrderStatus>,
    /// Only this side.
    pub side: Option<Side>,
    /// Only this location.
    pub location: Option<String>,
    /// Due at or after.
    pub due_from: Option<DateTime<Utc>>,
    /// Due before.
    pub due_to: Option<DateTime<Utc>>,
}

/// A stored order row that does not decode into an [`Order`], listed beside the readable
/// orders instead of failing the listing that met it. An operator fixes the row by hand or
/// deletes it; reading it by id answers [`StorageError::Corrupt`] with the same reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    /// The row's id.
    pub id: String,
    /// What did not decode, such as `'HOLD' is not a valid side; expected one of BUY, SELL`.
    pub reason: String,
}

/// A page of orders, newest first, and the cursor of the next page.
#[derive(Debug, Clone, Serialize)]
pub struct OrderPage {
    /// The orders of the page that decode. With `unreadable`, at most `limit` rows.
    pub orders: Vec<Order>,
    /// Pass as `cursor` to get the next page; `None` on the last page. It moves past
    /// unreadable rows too, so paging never stops at one.
    pub next_cursor: Option<String>,
    /// The page's rows that do not decode, newest first; usually empty.
    pub unreadable: Vec<Unreadable>,
}

/// Open (PENDING) and closed orders read from one snapshot, newest first, and the rows among
/// them that do not decode (each counted against the limit of its list).
#[derive(Debug, Clone, Default, Serialize)]
pub struct OpenClosed {
    /// Pending orders that decode.
    pub open: Vec<Order>,
    /// Orders no longer pending that decode.
    pub closed: Vec<Order>,
    /// Rows of either list that do not decode: open ones first, each list newest first.
    pub unreadable: Vec<Unreadable>,
}

/// P&L totals over every order matching a location filter.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PnlTotals {
    /// Orders still pending.
    pub open_count: i64,
    /// Orders no longer pending.
    pub closed_count: i64,
    /// Approved (or cleared) orders.
    pub approved_count: i64,
    /// Rejected orders.
    pub rejected_count: i64,
    /// Cancelled orders.
    pub cancelled_count: i64,
    /// Sum of every closed position's P&L, exact.
    pub total_pnl: Pnl,
}

/// An event with its order's due time, as the event stream sends it.
#[derive(Debug, Clone, Serialize)]
pub struct EventWithDue {
    /// The history line.
    #[serde(flatten)]
    pub event: OrderEvent,
    /// The order's due time.
    #[serde(with = "::orders::time::serde_ms")]
    pub hour_start_utc: DateTime<Utc>,
}

impl Store {
    /// One order by id.
    pub fn get_order(&self, id: &str) -> Result<Order, StorageError> {
        get_order(&mut *self.checkout()?, id)
    }

    /// An order's whole history, oldest first.
    pub fn order_events(&self, order_id: &str) -> Result<Vec<OrderEvent>, StorageError> {
        order_events::table
            .filter(order_events::order_id.eq(order_id))
            .order(order_events::id.asc())
            .load::<EventRow>(&mut *self.checkout()?)?
            .into_iter()
            .map(EventRow::decode)
            .collect()
    }

    /// Events with an id above `after_id`, oldest first, with their orders' due times.
    pub fn events_after(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<EventWithDue>, StorageError> {
        let rows = order_events::table
            .inner_join(orders::table)
            .filter(order_events::id.gt(after_id))
            .order(order_events::id.asc())
            .limit(limit)
            .select((order_events::all_columns, orders::hour_start_utc))
            .load::<(EventRow, NaiveDateTime)>(&mut *self.checkout()?)?;
        rows.into_iter()
            .map(|(e, due)| {
                Ok(EventWithDue {
                    event: e.decode()?,
                    hour_start_utc: due.and_utc(),
                })
            })
            .collect()
    }

    /// The events among `ids` that are committed now, oldest first, with their orders' due
    /// times (the event stream re-reads ids it saw missing, which a late commit may fill).
    pub fn events_with_ids(&self, ids: &[i64]) -> Result<Vec<EventWithDue>, StorageError> {
        let mut out = Vec::new();
        let mut conn = self.checkout()?;
        for chunk in ids.chunks(500) {
            let rows = order_events::table
                .inner_join(orders::table)
                .filter(order_events::id.eq_any(chunk))
                .order(order_events::id.asc())
                .select((order_events::all_columns, orders::hour_start_utc))
                .load::<(EventRow, NaiveDateTime)>(&mut *conn)?;
            for (e, due) in rows {
                out.push(EventWithDue {
                    event: e.decode()?,
                    hour_start_utc: due.and_utc(),
                });
            }
        }
        Ok(out)
    }

    /// Ids of the events above `after_id`, oldest first, at most `limit`: what the event stream
    /// reads while nobody is subscribed. It must still see which ids are committed, to keep its
    /// position and the ids that may commit late, but neither the rows nor their orders.
    pub fn event_ids_after(&self, after_id: i64, limit: i64) -> Result<Vec<i64>, StorageError> {
        Ok(order_events::table
            .filter(order_events::id.gt(after_id))
            .order(order_events::id.asc())
            .limit(limit)
            .select(order_events::id)
            .load(&mut *self.checkout()?)?)
    }

    /// The ids among `ids` whose events are committed now, ascending (the ids form of
    /// [`Store::events_with_ids`]).
    pub fn committed_event_ids(&self, ids: &[i64]) -> Result<Vec<i64>, StorageError> {
        let mut out = Vec::new();
        let mut conn = self.checkout()?;
        for chunk in ids.chunks(500) {
            out.extend(
                order_events::table
                    .filter(order_events::id.eq_any(chunk))
                    .order(order_events::id.asc())
                    .select(order_events::id)
                    .load::<i64>(&mut *conn)?,
            );
        }
        Ok(out)
    }

    /// Postgres's transaction horizon: `(xmin, xmax)` of a snapshot taken now. Every
    /// transaction with an id below `xmin` has ended; every one that starts writing later gets
    /// an id at or above `xmax`. `None` on SQLite, whose single writer commits event ids in
    /// order, so a gap there is always a rollback.
    pub fn transaction_horizon(&self) -> Result<Option<(i64, i64)>, StorageError> {
        if !self.is_postgres() {
            return Ok(None);
        }
        let (xmin, xmax) = diesel::select((
            sql::<diesel::sql_types::Text>("CAST(pg_snapshot_xmin(pg_current_snapshot()) AS TEXT)"),
            sql::<diesel::sql_types::Text>("CAST(pg_snapshot_xmax(pg_current_snapshot()) AS TEXT)"),
        ))
        .get_result::<(String, String)>(&mut *self.checkout()?)?;
        let parse = |v: &str| {
            v.parse::<i64>()
                .map_err(|e| StorageError::Unavailable(format!("transaction id '{v}': {e}")))
        };
        Ok(Some((parse(&xmin)?, parse(&xmax)?)))
    }

    /// Highest event id so far (0 when there is none).
    pub fn last_event_id(&self) -> Result<i64, StorageError> {
        let max: Option<i64> = order_events::table
            .select(diesel::dsl::max(order_events::id))
            .first(&mut *self.checkout()?)?;
        Ok(max.unwrap_or(0))
    }

    /// Runs `f` inside one read-only transaction, so every query it makes sees the same
    /// snapshot (Postgres: repeatable read, read only; SQLite: one deferred read
    /// transaction). The transaction is ended whatever `f` returns, and on a panic.
    pub fn read_snapshot<T>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut conn = self.checkout()?;
        let conn = &mut *conn;
        on_backend!(&mut *conn, c => B::begin_read(c))?;
        crate::connection::finish_tx(conn, f)
    }

    /// The original system's listing: open (PENDING) and closed (everything else) orders,
    /// newest first (by id: UUIDv7 ids sort by creation time), both read from one snapshot
    /// so that no order is listed as both open and closed. Rows that do not decode are named
    /// in [`OpenClosed::unreadable`] (and logged) instead of failing the listing.
    pub fn fetch_orders(
        &self,
        limit_open: i64,
        limit_closed: i64,
        location: Option<&str>,
    ) -> Result<OpenClosed, StorageError> {
        let listed =
            self.read_snapshot(|conn| fetch_orders(conn, limit_open, limit_closed, location))?;
        warn_unreadable("fetch_orders", &listed.unreadable);
        Ok(listed)
    }

    /// Open and closed orders (up to `limit` each) and the totals over every order, all from
    /// one snapshot, so that the rows and the totals describe the same book. The totals are
    /// computed in SQL and so count unreadable rows too; the rows are as for
    /// [`Store::fetch_orders`].
    pub fn positions(
        &self,
        limit: i64,
        location: Option<&str>,
    ) -> Result<(OpenClosed, PnlTotals), StorageError> {
        let (listed, totals) = self.read_snapshot(|conn| {
            let listed = fetch_orders(conn, limit, limit, location)?;
            Ok((listed, pnl_totals(conn, location)?))
        })?;
        warn_unreadable("positions", &listed.unreadable);
        Ok((listed, totals))
    }

    /// Orders matching `filter`, newest first (by id, which is time-ordered), `limit` rows per
    /// page, continuing after `cursor` (the last id of the previous page). Rows that do not
    /// decode are named in [`OrderPage::unreadable`] (and logged) instead of failing the page.
    pub fn list_orders(
        &self,
        filter: &OrderFilter,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<OrderPage, StorageError> {
        let mut q = orders::table.select(ORDER_COLUMNS).into_boxed();
        if let Some(s) = filter.status {
            q = q.filter(orders::status.eq(s.as_str()));
        }
        if let Some(s) = filter.side {
            q = q.filter(orders::side.eq(s.as_str()));
        }
        if let Some(loc) = &filter.location {
            q = q.filter(orders::location.eq(loc.clone()));
        }
        if let Some(t) = filter.due_from {
            q = q.filter(orders::hour_start_utc.ge(naive(t)));
        }
        if let Some(t) = filter.due_to {
            q = q.filter(orders::hour_start_utc.lt(naive(t)));
        }
        if let Some(c) = cursor {
            q = q.filter(orders::id.lt(c.to_string()));
        }
        let mut rows = q
            .order(orders::id.desc())
            .limit(limit + 1)
            .load::<OrderRow>(&mut *self.checkout()?)?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit.max(0) as usize);
        // The last row's id, readable or not, so the next page starts after it.
        let next_cursor = if more {
            rows.last().map(|r| r.id.clone())
        } else {
            None
        };
        let (orders, unreadable) = decode_listed(rows)?;
        warn_unreadable("list_orders", &unreadable);
        Ok(OrderPage {
            orders,
            next_cursor,
            unreadable,
        })
    }

    /// Totals over all orders (optionally of one location): counts by state and exact P&L.
    pub fn pnl_totals(&self, location: Option<&str>) -> Result<PnlTotals, StorageError> {
        pnl_totals(&mut *self.checkout()?, location)
    }

    /// Number of rows in `orders` and in `order_events` (for checks that nothing was written).
    pub fn row_counts(&self) -> Result<(i64, i64), StorageError> {
        let mut conn = self.checkout()?;
        let o = orders::table
            .select(count_star())
            .first::<i64>(&mut *conn)?;
        let e = order_events::table
            .select(count_star())
            .first::<i64>(&mut *conn)?;
        Ok((o, e))
    }
}

pub(crate) fn get_order(conn: &mut DbConnection, id: &str) -> Result<Order, StorageError> {
    orders::table
        .select(ORDER_COLUMNS)
        .filter(orders::id.eq(id))
        .first::<OrderRow>(conn)
        .optional()?
        .ok_or_else(|| StorageError::NotFound(id.to_string()))?
        .decode()
}

/// Decodes listed rows, setting aside those that do not decode ([`StorageError::Corrupt`])
/// with their reason; any other error still fails the listing.
fn decode_listed(rows: Vec<OrderRow>) -> Result<(Vec<Order>, Vec<Unreadable>), StorageError> {
    let mut orders = Vec::with_capacity(rows.len());
    let mut unreadable = Vec::new();
    for row in rows {
        match row.decode() {
            Ok(order) => orders.push(order),
            Err(StorageError::Corrupt { id, reason }) => unreadable.push(Unreadable { id, reason }),
            Err(other) => return Err(other),
        }
    }
    Ok((orders, unreadable))
}

/// Most ids one warning names; a listing may meet thousands of bad rows.
const WARN_IDS: usize = 10;

/// One warning per listing call that met unreadable rows, naming them, so an operator learns
/// of rows that the answers leave out of the tables.
fn warn_unreadable(listing: &str, unreadable: &[Unreadable]) {
    let Some(first) = unreadable.first() else {
        return;
    };
    let ids: Vec<&str> = unreadable
        .iter()
        .take(WARN_IDS)
        .map(|u| u.id.as_str())
        .collect();
    let more = unreadable.len().saturating_sub(WARN_IDS);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    log::warn!(
        "{listing}: {n} stored order(s) could not be read and were left out: {ids}{more} \
         (first reason: {reason}); fix or delete the rows",
        n = unreadable.len(),
        ids = ids.join(", "),
        reason = first.reason
    );
}

/// Totals over all orders (optionally of one location): counts by state and exact P&L.
///
/// Two queries, each through a partial index, so neither reads the other's rows: the open
/// count over the claimable and parked indexes (index-only without a location), and the closed
/// counts and P&L over the closed-orders index. Callers wanting one snapshot run this inside
/// [`Store::read_snapshot`].
pub(crate) fn pnl_totals(
    conn: &mut DbConnection,
    location: Option<&str>,
) -> Result<PnlTotals, StorageError> {
    let mut open = 0;
    for predicate in [claimable_sql(), parked_sql()] {
        let mut q = orders::table
            .filter(sql::<Bool>(predicate))
            .select(count_star())
            .into_boxed();
        if let Some(loc) = location {
            q = q.filter(orders::location.eq(loc.to_string()));
        }
        open += q.first::<i64>(conn)?;
    }
    // (lmp - limit) * qty * sign, summed in BIGINT: cents × thousandths of a MWh.
    let pnl_sql = "CAST(COALESCE(SUM(CASE WHEN status IN ('APPROVED', 'CLEARED') \
        AND approval_rt_lmp_cents IS NOT NULL THEN (approval_rt_lmp_cents - limit_price_cents) \
        * qty_milli_mwh * (CASE WHEN side = 'BUY' THEN 1 ELSE -1 END) ELSE 0 END), 0) AS BIGINT)";
    let count_of = |cond: &str| {
        format!("CAST(COALESCE(SUM(CASE WHEN {cond} THEN 1 ELSE 0 END), 0) AS BIGINT)")
    };
    let mut q = orders::table
        .filter(sql::<Bool>(closed_sql()))
        .select((
            count_star(),
            sql::<BigInt>(&count_of("status IN ('APPROVED', 'CLEARED')")),
            sql::<BigInt>(&count_of("status = 'REJECTED'")),
            sql::<BigInt>(&count_of("status = 'CANCELLED'")),
            sql::<BigInt>(pnl_sql),
        ))
        .into_boxed();
    if let Some(loc) = location {
        q = q.filter(orders::location.eq(loc.to_string()));
    }
    let (closed, approved, rejected, cancelled, pnl) =
        q.first::<(i64, i64, i64, i64, i64)>(conn)?;
    Ok(PnlTotals {
        open_count: open,
        closed_count: closed,
        approved_count: approved,
        rejected_count: rejected,
        cancelled_count: cancelled,
        total_pnl: Pnl::from_scaled(pnl),
    })
}

pub(crate) fn fetch_orders(
    conn: &mut DbConnection,
    limit_open: i64,
    limit_closed: i64,
    location: Option<&str>,
) -> Result<OpenClosed, StorageError> {
    let mut open = orders::table
        .select(ORDER_COLUMNS)
        .filter(orders::status.eq(OrderStatus::Pending.as_str()))
        .order(orders::id.desc())
        .limit(limit_open)
        .into_boxed();
    // Through the closed-orders index: `status <> ...` as a bound parameter would walk the id
    // index past every pending order.
    let mut closed = orders::table
        .select(ORDER_COLUMNS)
        .filter(sql::<Bool>(closed_sql()))
        .order(orders::id.desc())
        .limit(limit_closed)
        .into_boxed();
    if let Some(loc) = location {
        open = open.filter(orders::location.eq(loc.to_string()));
        closed = closed.filter(orders::location.eq(loc.to_string()));
    }
    let (open, mut unreadable) = decode_listed(open.load::<OrderRow>(conn)?)?;
    let (closed, unreadable_closed) = decode_listed(closed.load::<OrderRow>(conn)?)?;
    unreadable.extend(unreadable_closed);
    Ok(OpenClosed {
        open,
        closed,
        unreadable,
    })
}
