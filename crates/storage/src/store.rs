//! Every SQL statement of the project, as small methods on [`Store`], each with a one-line doc.
//!
//! Statements are written once with diesel's DSL and run on both backends through
//! [`DbConnection`]; only the claim's row locking and its set-based update differ per backend
//! (see `claim.rs`).

use crate::connection::{run_migrations, write_tx, DatabaseUrl, DbConnection, Manager, PoolConfig};
use crate::error::StorageError;
use crate::models::{EventRow, NewEventRow, NewOrderRow, OrderRow, ORDER_COLUMNS};
use crate::schema::{order_events, orders};
use ::orders::{
    rt_interval_start, truncate_ms, LocationType, NewOrder, Order, OrderEvent, OrderStatus, Pnl,
    Price, Side,
};
use chrono::{DateTime, Duration as ChronoDuration, NaiveDateTime, Utc};
use diesel::dsl::{count_star, min, sql};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::BigInt;
use serde::Serialize;
use serde_json::json;
use std::sync::{Arc, Mutex};

type Pool = r2d2::Pool<Manager>;
/// A connection checked out of the store's pool.
pub type PooledConnection = r2d2::PooledConnection<Manager>;

/// The order store: a connection pool over PostgreSQL or SQLite with migrations applied.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    postgres: bool,
    /// SQLite has one writer at a time; writers of this process queue here, in order, instead
    /// of in SQLite's busy handler, which sleeps in growing steps and would put milliseconds
    /// on the tail latency of every contended write. `None` on Postgres (row locks suffice).
    sqlite_writer: Option<Arc<Mutex<()>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend_name())
            .finish()
    }
}

/// An idempotency key with the fingerprint of the request it was first used for.
#[derive(Debug, Clone, Copy)]
pub struct Idempotency<'a> {
    /// The client's `Idempotency-Key`.
    pub key: &'a str,
    /// A digest of the request body; a repeat must match it.
    pub request_hash: &'a str,
}

/// The result of an insert: the order, and whether this call created it (false when an
/// idempotent repeat returned the original).
#[derive(Debug, Clone)]
pub struct Inserted {
    /// The stored order.
    pub order: Order,
    /// False when the idempotency key matched an earlier identical request.
    pub created: bool,
}

/// A manual status change (the seed's PATCH, cancel, settlement).
#[derive(Debug, Clone, Default)]
pub struct ManualChange {
    /// Target status; must be a legal transition from the current one.
    pub to: Option<OrderStatus>,
    /// Required to approve.
    pub rt_lmp: Option<Price>,
    /// Defaults to `MANUAL` on a manual approval.
    pub rt_source: Option<String>,
    /// Defaults to "Manual rejection" on a manual rejection.
    pub reject_reason: Option<String>,
}

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

/// A page of orders, newest first, and the cursor of the next page.
#[derive(Debug, Clone, Serialize)]
pub struct OrderPage {
    /// At most `limit` orders.
    pub orders: Vec<Order>,
    /// Pass as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

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

pub(crate) fn naive(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

impl Store {
    /// Opens a pool on `url` and applies pending migrations. Fails with one clear error when
    /// the URL is malformed or the database cannot be reached.
    pub fn open(url: &str, config: &PoolConfig) -> Result<Self, StorageError> {
        let store = Self::open_without_migrating(url, config)?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens a pool without touching the schema.
    pub fn open_without_migrating(url: &str, config: &PoolConfig) -> Result<Self, StorageError> {
        let url = DatabaseUrl::parse(url)?;
        let postgres = url.is_postgres();
        // Try one connection first so the caller sees the driver's own message, not a timeout.
        drop(url.connect()?);
        let pool = r2d2::Pool::builder()
            .max_size(config.max_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(config.connection_timeout)
            .build(Manager::new(url))?;
        Ok(Self {
            pool,
            postgres,
            sqlite_writer: (!postgres).then(|| Arc::new(Mutex::new(()))),
        })
    }

    /// Applies pending migrations (serialised between instances on Postgres).
    pub fn migrate(&self) -> Result<(), StorageError> {
        run_migrations(&mut *self.conn()?)
    }

    /// `"postgres"` or `"sqlite"`.
    pub fn backend_name(&self) -> &'static str {
        if self.postgres {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// Whether the store is on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.postgres
    }

    /// Connections open and connections idle in the pool.
    pub fn pool_state(&self) -> (u32, u32) {
        let s = self.pool.state();
        (s.connections, s.idle_connections)
    }

    /// Checks out a connection (for tests and tools that need raw access).
    pub fn conn(&self) -> Result<PooledConnection, StorageError> {
        Ok(self.pool.get()?)
    }

    /// Runs `f` in a write transaction (see [`write_tx`]), queued behind this process's other
    /// SQLite writers.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let _turn = self
            .sqlite_writer
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()));
        write_tx(&mut *self.conn()?, f)
    }

    /// Round-trips a trivial query.
    pub fn ping(&self) -> Result<(), StorageError> {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("1"))
            .get_result::<i32>(&mut *self.conn()?)?;
        Ok(())
    }

    /// Stores a new PENDING order and its creation event; with an idempotency key, a repeat of
    /// the same request returns the original order instead.
    pub fn insert_order(
        &self,
        new: &NewOrder,
        idempotency: Option<Idempotency<'_>>,
        actor: &str,
    ) -> Result<Inserted, StorageError> {
        let attempt = || {
            self.write(|c| {
                if let Some(idem) = idempotency {
                    if let Some(existing) = find_by_idempotency_key(c, idem)? {
                        return Ok(Inserted {
                            order: existing,
                            created: false,
                        });
                    }
                }
                let id = uuid::Uuid::now_v7().to_string();
                let now = truncate_ms(Utc::now());
                insert_rows(c, &[(id.as_str(), new)], now, idempotency, actor)?;
                Ok(Inserted {
                    order: as_stored(id, new, now),
                    created: true,
                })
            })
        };
        match attempt() {
            // Two requests with one key raced: the loser's insert hit the unique index; the
            // winner's row is committed now, so reading again answers like a plain repeat.
            Err(StorageError::Query(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                _,
            ))) if idempotency.is_some() => attempt(),
            other => other,
        }
    }

    /// Stores many PENDING orders at once (seeding, benchmarks), with their creation events.
    /// Returns their ids, in input order.
    pub fn insert_orders(
        &self,
        news: &[NewOrder],
        actor: &str,
    ) -> Result<Vec<String>, StorageError> {
        let ids: Vec<String> = news
            .iter()
            .map(|_| uuid::Uuid::now_v7().to_string())
            .collect();
        let pairs: Vec<(&str, &NewOrder)> = ids.iter().map(String::as_str).zip(news).collect();
        self.insert_orders_with_ids(&pairs, actor)?;
        Ok(ids)
    }

    /// Stores PENDING orders under ids chosen by the caller (imports, reproducible runs).
    pub fn insert_orders_with_ids(
        &self,
        orders: &[(&str, &NewOrder)],
        actor: &str,
    ) -> Result<(), StorageError> {
        let now = truncate_ms(Utc::now());
        self.write(|c| {
            for chunk in orders.chunks(1000) {
                insert_rows(c, chunk, now, None, actor)?;
            }
            Ok(())
        })
    }

    /// One order by id.
    pub fn get_order(&self, id: &str) -> Result<Order, StorageError> {
        get_order(&mut *self.conn()?, id)
    }

    /// An order's whole history, oldest first.
    pub fn order_events(&self, order_id: &str) -> Result<Vec<OrderEvent>, StorageError> {
        order_events::table
            .filter(order_events::order_id.eq(order_id))
            .order(order_events::id.asc())
            .load::<EventRow>(&mut *self.conn()?)?
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
            .load::<(EventRow, NaiveDateTime)>(&mut *self.conn()?)?;
        rows.into_iter()
            .map(|(e, due)| {
                Ok(EventWithDue {
                    event: e.decode()?,
                    hour_start_utc: due.and_utc(),
                })
            })
            .collect()
    }

    /// Highest event id so far (0 when there is none).
    pub fn last_event_id(&self) -> Result<i64, StorageError> {
        let max: Option<i64> = order_events::table
            .select(diesel::dsl::max(order_events::id))
            .first(&mut *self.conn()?)?;
        Ok(max.unwrap_or(0))
    }

    /// The seed's listing: open (PENDING) and closed (everything else) orders, newest first
    /// (by id: UUIDv7 ids sort by creation time).
    pub fn fetch_orders(
        &self,
        limit_open: i64,
        limit_closed: i64,
        location: Option<&str>,
    ) -> Result<(Vec<Order>, Vec<Order>), StorageError> {
        let mut conn = self.conn()?;
        let mut open = orders::table
            .select(ORDER_COLUMNS)
            .filter(orders::status.eq(OrderStatus::Pending.as_str()))
            .order(orders::id.desc())
            .limit(limit_open)
            .into_boxed();
        let mut closed = orders::table
            .select(ORDER_COLUMNS)
            .filter(orders::status.ne(OrderStatus::Pending.as_str()))
            .order(orders::id.desc())
            .limit(limit_closed)
            .into_boxed();
        if let Some(loc) = location {
            open = open.filter(orders::location.eq(loc.to_string()));
            closed = closed.filter(orders::location.eq(loc.to_string()));
        }
        let open = decode_all(open.load::<OrderRow>(&mut *conn)?)?;
        let closed = decode_all(closed.load::<OrderRow>(&mut *conn)?)?;
        Ok((open, closed))
    }

    /// Orders matching `filter`, newest first (by id, which is time-ordered), `limit` per page,
    /// continuing after `cursor` (the last id of the previous page).
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
        let mut rows = decode_all(
            q.order(orders::id.desc())
                .limit(limit + 1)
                .load::<OrderRow>(&mut *self.conn()?)?,
        )?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit.max(0) as usize);
        let next_cursor = if more {
            rows.last().map(|o| o.id.clone())
        } else {
            None
        };
        Ok(OrderPage {
            orders: rows,
            next_cursor,
        })
    }

    /// Counts for the scheduler status: due now, due within `window`, the next due time and the
    /// number of parked orders. Uses the (status, hour_start_utc) index only.
    pub fn due_summary(
        &self,
        now: DateTime<Utc>,
        window: ChronoDuration,
    ) -> Result<DueSummary, StorageError> {
        let mut conn = self.conn()?;
        let pending = || {
            orders::table
                .filter(orders::status.eq(OrderStatus::Pending.as_str()))
                .filter(orders::parked_reason.is_null())
        };
        let pending_due_now = pending()
            .filter(orders::hour_start_utc.le(naive(now)))
            .select(count_star())
            .first::<i64>(&mut *conn)?;
        let upcoming = pending()
            .filter(orders::hour_start_utc.gt(naive(now)))
            .filter(orders::hour_start_utc.le(naive(now + window)))
            .select(count_star())
            .first::<i64>(&mut *conn)?;
        let pending_later = pending()
            .filter(orders::hour_start_utc.gt(naive(now)))
            .select(count_star())
            .first::<i64>(&mut *conn)?;
        let next_due = pending()
            .select(min(orders::hour_start_utc))
            .first::<Option<NaiveDateTime>>(&mut *conn)?
            .map(|t| t.and_utc());
        let parked = orders::table
            .filter(orders::status.eq(OrderStatus::Pending.as_str()))
            .filter(orders::parked_reason.is_not_null())
            .select(count_star())
            .first::<i64>(&mut *conn)?;
        Ok(DueSummary {
            pending_due_now,
            upcoming,
            pending_later,
            next_due,
            parked,
        })
    }

    /// Earliest due time of any claimable (pending, not parked) order.
    pub fn next_due(&self) -> Result<Option<DateTime<Utc>>, StorageError> {
        let t = orders::table
            .filter(orders::status.eq(OrderStatus::Pending.as_str()))
            .filter(orders::parked_reason.is_null())
            .select(min(orders::hour_start_utc))
            .first::<Option<NaiveDateTime>>(&mut *self.conn()?)?;
        Ok(t.map(|t| t.and_utc()))
    }

    /// Distinct due times of pending orders in `(from, until]`, at most `limit`, soonest first.
    pub fn upcoming_due_times(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<DateTime<Utc>>, StorageError> {
        let times = orders::table
            .filter(orders::status.eq(OrderStatus::Pending.as_str()))
            .filter(orders::parked_reason.is_null())
            .filter(orders::hour_start_utc.gt(naive(from)))
            .filter(orders::hour_start_utc.le(naive(until)))
            .select(orders::hour_start_utc)
            .distinct()
            .order(orders::hour_start_utc.asc())
            .limit(limit)
            .load::<NaiveDateTime>(&mut *self.conn()?)?;
        Ok(times.into_iter().map(|t| t.and_utc()).collect())
    }

    /// Pending orders set aside by the scheduler, with the reason, at most `limit`.
    pub fn parked_orders(&self, limit: i64) -> Result<Vec<(String, String)>, StorageError> {
        let rows = orders::table
            .filter(orders::status.eq(OrderStatus::Pending.as_str()))
            .filter(orders::parked_reason.is_not_null())
            .select((orders::id, orders::parked_reason.assume_not_null()))
            .order(orders::id.asc())
            .limit(limit)
            .load::<(String, String)>(&mut *self.conn()?)?;
        Ok(rows)
    }

    /// Sets an order aside so that claims skip it; `reason` says why.
    pub fn park_order(&self, id: &str, reason: &str) -> Result<bool, StorageError> {
        let n = self.write(|c| {
            Ok(diesel::update(orders::table.filter(orders::id.eq(id)))
                .filter(orders::status.eq(OrderStatus::Pending.as_str()))
                .set(orders::parked_reason.eq(reason))
                .execute(c)?)
        })?;
        Ok(n == 1)
    }

    /// Applies a manual status change if it is legal from the order's current status, and
    /// records it; the update is conditional on that status, so a concurrent change is a
    /// [`StorageError::Conflict`], never a silent overwrite.
    pub fn transition(
        &self,
        id: &str,
        change: &ManualChange,
        actor: &str,
    ) -> Result<Order, StorageError> {
        let to = change
            .to
            .ok_or_else(|| StorageError::MissingField("status is required".into()))?;
        self.write(|c| {
            let current = get_order(c, id)?;
            current.status.check_transition(to)?;
            let now = truncate_ms(Utc::now());
            let mut details = json!({});
            let target = orders::table
                .filter(orders::id.eq(id))
                .filter(orders::status.eq(current.status.as_str()));
            let updated = match to {
                OrderStatus::Approved => {
                    let lmp = change.rt_lmp.ok_or_else(|| {
                        StorageError::MissingField("approval_rt_lmp is required to approve".into())
                    })?;
                    let source = change.rt_source.clone().unwrap_or_else(|| "MANUAL".into());
                    details = json!({ "rt_lmp": lmp, "rt_source": source });
                    diesel::update(target)
                        .set((
                            orders::status.eq(to.as_str()),
                            orders::approved_at.eq(Some(naive(now))),
                            orders::approval_rt_interval_start_utc
                                .eq(Some(naive(rt_interval_start(now)))),
                            orders::approval_rt_lmp_cents.eq(Some(lmp.scaled())),
                            orders::approval_rt_source.eq(Some(source)),
                        ))
                        .execute(c)?
                }
                OrderStatus::Rejected => {
                    let reason = change
                        .reject_reason
                        .clone()
                        .unwrap_or_else(|| "Manual rejection".into());
                    details = json!({ "reason": reason });
                    diesel::update(target)
                        .set((
                            orders::status.eq(to.as_str()),
                            orders::approved_at.eq(Some(naive(now))),
                            orders::reject_reason.eq(Some(reason)),
                        ))
                        .execute(c)?
                }
                _ => diesel::update(target)
                    .set(orders::status.eq(to.as_str()))
                    .execute(c)?,
            };
            if updated != 1 {
                return Err(StorageError::Conflict(id.to_string()));
            }
            insert_event(c, id, Some(current.status), to, now, actor, details)?;
            get_order(c, id)
        })
    }

    /// Totals over all orders (optionally of one location): counts by state and exact P&L.
    pub fn pnl_totals(&self, location: Option<&str>) -> Result<PnlTotals, StorageError> {
        // (lmp - limit) * qty * sign, summed in BIGINT: cents × thousandths of a MWh.
        let pnl_sql = "CAST(COALESCE(SUM(CASE WHEN status IN ('APPROVED', 'CLEARED') \
            AND approval_rt_lmp_cents IS NOT NULL THEN (approval_rt_lmp_cents - limit_price_cents) \
            * qty_milli_mwh * (CASE WHEN side = 'BUY' THEN 1 ELSE -1 END) ELSE 0 END), 0) AS BIGINT)";
        let count_of = |cond: &str| {
            format!("CAST(COALESCE(SUM(CASE WHEN {cond} THEN 1 ELSE 0 END), 0) AS BIGINT)")
        };
        let mut q = orders::table
            .select((
                sql::<BigInt>(&count_of("status = 'PENDING'")),
                sql::<BigInt>(&count_of("status <> 'PENDING'")),
                sql::<BigInt>(&count_of("status IN ('APPROVED', 'CLEARED')")),
                sql::<BigInt>(&count_of("status = 'REJECTED'")),
                sql::<BigInt>(&count_of("status = 'CANCELLED'")),
                sql::<BigInt>(pnl_sql),
            ))
            .into_boxed();
        if let Some(loc) = location {
            q = q.filter(orders::location.eq(loc.to_string()));
        }
        let (open, closed, approved, rejected, cancelled, pnl) =
            q.first::<(i64, i64, i64, i64, i64, i64)>(&mut *self.conn()?)?;
        Ok(PnlTotals {
            open_count: open,
            closed_count: closed,
            approved_count: approved,
            rejected_count: rejected,
            cancelled_count: cancelled,
            total_pnl: Pnl::from_scaled(pnl),
        })
    }

    /// Deletes orders (and, by cascade, their history): all of them, or only those with the
    /// given status. Returns how many orders were deleted.
    pub fn delete_orders(&self, status: Option<OrderStatus>) -> Result<usize, StorageError> {
        self.write(|c| {
            let mut q = diesel::delete(orders::table).into_boxed();
            if let Some(s) = status {
                q = q.filter(orders::status.eq(s.as_str()));
            }
            Ok(q.execute(c)?)
        })
    }

    /// Number of rows in `orders` and in `order_events` (for checks that nothing was written).
    pub fn row_counts(&self) -> Result<(i64, i64), StorageError> {
        let mut conn = self.conn()?;
        let o = orders::table
            .select(count_star())
            .first::<i64>(&mut *conn)?;
        let e = order_events::table
            .select(count_star())
            .first::<i64>(&mut *conn)?;
        Ok((o, e))
    }

    /// Per order, the number of moderation events (PENDING → APPROVED/REJECTED) it has,
    /// summarised as (orders with none, orders with exactly one, orders with more).
    pub fn moderation_event_multiplicity(&self) -> Result<(i64, i64, i64), StorageError> {
        let per_order = sql::<BigInt>(
            "(SELECT COUNT(*) FROM order_events e WHERE e.order_id = orders.id \
             AND e.from_status = 'PENDING' AND e.to_status IN ('APPROVED', 'REJECTED'))",
        );
        let counts: Vec<i64> = orders::table.select(per_order).load(&mut *self.conn()?)?;
        let none = counts.iter().filter(|&&n| n == 0).count() as i64;
        let one = counts.iter().filter(|&&n| n == 1).count() as i64;
        Ok((none, one, counts.len() as i64 - none - one))
    }
}

/// The order exactly as [`insert_rows`] stores it, without reading it back.
fn as_stored(id: String, new: &NewOrder, now: DateTime<Utc>) -> Order {
    Order {
        id,
        created_at: now,
        market: ::orders::Market::Da,
        location_type: new.location_type(),
        location: new.location().as_str().to_string(),
        hour_start_utc: new.hour_start_utc(),
        side: new.side(),
        qty_mwh: new.qty_mwh(),
        limit_price: new.limit_price(),
        status: OrderStatus::Pending,
        approved_at: None,
        approval_rt_interval_start_utc: None,
        approval_rt_lmp: None,
        approval_rt_source: None,
        reject_reason: None,
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

fn decode_all(rows: Vec<OrderRow>) -> Result<Vec<Order>, StorageError> {
    rows.into_iter().map(OrderRow::decode).collect()
}

fn find_by_idempotency_key(
    conn: &mut DbConnection,
    idem: Idempotency<'_>,
) -> Result<Option<Order>, StorageError> {
    let found = orders::table
        .filter(orders::idempotency_key.eq(idem.key))
        .select((orders::id, orders::request_hash))
        .first::<(String, Option<String>)>(conn)
        .optional()?;
    match found {
        None => Ok(None),
        Some((id, hash)) if hash.as_deref() == Some(idem.request_hash) => {
            Ok(Some(get_order(conn, &id)?))
        }
        Some((order_id, _)) => Err(StorageError::IdempotencyMismatch { order_id }),
    }
}

/// Inserts orders and their creation events. Multi-row inserts do not compile on the
/// connection enum, so they run on the inner connection.
fn insert_rows(
    conn: &mut DbConnection,
    news: &[(&str, &NewOrder)],
    now: DateTime<Utc>,
    idempotency: Option<Idempotency<'_>>,
    actor: &str,
) -> Result<(), StorageError> {
    let rows: Vec<NewOrderRow<'_>> = news
        .iter()
        .map(|(id, o)| NewOrderRow {
            id,
            created_at: naive(now),
            market: ::orders::Market::Da.as_str(),
            location_type: LocationType::as_str(o.location_type()),
            location: o.location().as_str(),
            hour_start_utc: naive(o.hour_start_utc()),
            side: o.side().as_str(),
            qty_milli_mwh: o.qty_mwh().scaled(),
            limit_price_cents: o.limit_price().scaled(),
            status: OrderStatus::Pending.as_str(),
            idempotency_key: idempotency.map(|i| i.key),
            request_hash: idempotency.map(|i| i.request_hash),
        })
        .collect();
    let events: Vec<NewEventRow<'_>> = news
        .iter()
        .map(|(id, o)| NewEventRow {
            order_id: id,
            from_status: None,
            to_status: OrderStatus::Pending.as_str(),
            at: naive(now),
            actor,
            details: json!({
                "side": o.side(), "qty_mwh": o.qty_mwh(), "limit_price": o.limit_price(),
                "location": o.location(),
            })
            .to_string(),
        })
        .collect();
    match conn {
        DbConnection::Pg(c) => {
            diesel::insert_into(orders::table)
                .values(&rows)
                .execute(c)?;
            diesel::insert_into(order_events::table)
                .values(&events)
                .execute(c)?;
        }
        DbConnection::Sqlite(c) => {
            diesel::insert_into(orders::table)
                .values(&rows)
                .execute(c)?;
            diesel::insert_into(order_events::table)
                .values(&events)
                .execute(c)?;
        }
    }
    Ok(())
}

/// Appends one history line.
pub(crate) fn insert_event(
    conn: &mut DbConnection,
    order_id: &str,
    from: Option<OrderStatus>,
    to: OrderStatus,
    at: DateTime<Utc>,
    actor: &str,
    details: serde_json::Value,
) -> Result<(), StorageError> {
    diesel::insert_into(order_events::table)
        .values(NewEventRow {
            order_id,
            from_status: from.map(OrderStatus::as_str),
            to_status: to.as_str(),
            at: naive(at),
            actor,
            details: details.to_string(),
        })
        .execute(conn)?;
    Ok(())
}
