//! Everything that differs between PostgreSQL and SQLite, one file per backend behind the
//! private [`Backend`] trait; the rest of the crate writes its queries once, in diesel's DSL.
//!
//! What differs: opening and configuring a connection, migrating, beginning a write
//! transaction, the clock a claim compares due times with, locking the claimed rows, writing a
//! decided batch in one statement, multi-row inserts (which do not compile on the connection
//! enum), and watching for orders inserted by other processes. The [`on_backend!`] macro is the
//! one place that matches on [`DbConnection`]'s variants to reach these.

pub(crate) mod pg;
pub(crate) mod sqlite;

use crate::claim::Decided;
use crate::error::StorageError;
use crate::models::{NewEventRow, NewOrderRow, OrderRow};
use ::orders::Order;
use chrono::{DateTime, NaiveDateTime, Utc};
use std::time::Duration;

/// The due times a claim may take: from `from` to `until`, both inclusive; with `after_id`,
/// only orders whose id sorts after it, taken in id order instead of due order (a sweep).
#[derive(Debug, Clone)]
pub(crate) struct DueRange {
    /// Earliest due time taken.
    pub from: NaiveDateTime,
    /// Latest due time taken; `None` is "now" on the backend's clock.
    pub until: Option<NaiveDateTime>,
    /// For a sweep, the id the claim starts after ([`crate::ClaimScope::DueAfterId`]).
    pub after_id: Option<String>,
}

/// One `count(*) AS n`, read by [`Backend::count_claimable`].
#[derive(diesel::QueryableByName)]
pub(crate) struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub n: i64,
}

/// What a decided batch's write must check of each row besides its being PENDING.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guard {
    /// The rows were claimed in this transaction (locked on Postgres, under the only write
    /// lock on SQLite): nothing else can have changed them.
    Claimed,
    /// The rows were read ahead, outside this transaction ([`crate::Store::read_due_at`]):
    /// each is written only if it is still claimable (PENDING, not parked) and due by now on
    /// the backend's clock, and on Postgres only if no other claimer holds it (`SKIP LOCKED`).
    Prepared,
}

/// What a backend must provide. Implemented by the zero-sized [`pg::Pg`] and
/// [`sqlite::Sqlite`]; reached through [`on_backend!`].
pub(crate) trait Backend {
    /// The diesel connection type.
    type Conn;

    /// Applies the per-connection settings right after connecting.
    fn configure(conn: &mut Self::Conn) -> Result<(), StorageError>;

    /// Runs the pending embedded migrations.
    fn migrate(conn: &mut Self::Conn) -> Result<(), StorageError>;

    /// Begins the transaction every write runs in.
    fn begin_write(conn: &mut Self::Conn) -> Result<(), StorageError>;

    /// Begins a read-only transaction whose statements all see one snapshot, so that a
    /// response built from several queries is consistent.
    fn begin_read(conn: &mut Self::Conn) -> Result<(), StorageError>;

    /// Up to `limit` claimable rows due in `range`, soonest first (a sweep: smallest id
    /// first), held for this transaction.
    fn select_claimable(
        conn: &mut Self::Conn,
        range: &DueRange,
        limit: i64,
    ) -> Result<Vec<OrderRow>, StorageError>;

    /// Claimable rows (only those due by now on the backend's clock, if `due`), counted up to
    /// `cap`.
    fn count_claimable(conn: &mut Self::Conn, due: bool, cap: i64) -> Result<i64, StorageError>;

    /// Writes a decided batch (conditionally on each row still being PENDING, and on what
    /// `guard` adds) and its events; returns the orders actually moderated, as they are now.
    fn apply_batch(
        conn: &mut Self::Conn,
        decided: Vec<(Order, Decided)>,
        at: DateTime<Utc>,
        actor: &str,
        guard: Guard,
    ) -> Result<Vec<Order>, StorageError>;

    /// Multi-row insert of orders and their creation events.
    fn insert_rows(
        conn: &mut Self::Conn,
        rows: &[NewOrderRow<'_>],
        events: &[NewEventRow<'_>],
    ) -> Result<(), StorageError>;

    /// Blocks until `keep_going` turns false (then `Ok`) or the connection fails (then `Err`;
    /// the caller reconnects), calling `on_change` whenever another connection may have
    /// inserted orders: with the earliest due time inserted when the backend knows it
    /// (Postgres's notification carries it), or `None` when the caller must re-read it.
    /// `poll` bounds how long a change waits to be noticed. It calls `on_change(None)` once as
    /// soon as it is watching (listening, or holding its first data version), so that what was
    /// inserted before is read after that point: reading first and listening second would miss
    /// an insert committed between the two until the scheduler's periodic check.
    fn watch(
        conn: &mut Self::Conn,
        poll: Duration,
        keep_going: &dyn Fn() -> bool,
        on_change: &mut dyn FnMut(Option<DateTime<Utc>>),
    ) -> Result<(), StorageError>;
}

/// Runs `$body` with `$c` bound to the inner connection and `B` to its [`Backend`].
macro_rules! on_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::connection::DbConnection::Pg($c) => {
                #[allow(unused)]
                type B = $crate::backend::pg::Pg;
                $body
            }
            $crate::connection::DbConnection::Sqlite($c) => {
                #[allow(unused)]
                type B = $crate::backend::sqlite::Sqlite;
                $body
            }
        }
    };
}
pub(crate) use on_backend;

/// The filter every claimable-order query shares, as literal SQL so that both planners match it
/// against the partial index `orders_claimable_due` (a bound parameter would not prove the
/// index's predicate).
pub(crate) fn claimable_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "status = '{}' AND parked_reason IS NULL",
            ::orders::OrderStatus::Pending.as_str()
        )
    })
}

/// Closed (no longer pending) orders, spelled to match the partial index `orders_closed`.
pub(crate) fn closed_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| format!("status <> '{}'", ::orders::OrderStatus::Pending.as_str()))
}

/// Parked orders, spelled to match the partial index `orders_parked`.
pub(crate) fn parked_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "status = '{}' AND parked_reason IS NOT NULL",
            ::orders::OrderStatus::Pending.as_str()
        )
    })
}
