//! PostgreSQL: shared by many instances. Claimed rows are locked with `FOR UPDATE SKIP LOCKED`
//! so concurrent claimers take disjoint rows; "now" is the database's clock, which all
//! instances share; a batch is written by one statement over `unnest`ed arrays; inserts are
//! announced on the `order_scheduler_due` channel by a trigger (see the migrations).

use super::{claimable_sql, Backend, DueRange, Guard};
use crate::claim::{settled, Decided, Written};
use crate::error::StorageError;
use crate::models::{NewEventRow, NewOrderRow, OrderRow, ORDER_COLUMNS};
use crate::schema::orders;
use ::orders::{Order, OrderStatus};
use chrono::{DateTime, Utc};
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text, Timestamp};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::time::Duration;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Arbitrary, fixed key of the advisory lock that serialises migrations between instances.
const MIGRATION_LOCK_KEY: i64 = 0x6f72_6465_7273; // "orders"

/// The channel the insert trigger notifies, with the earliest inserted due time (Unix ms).
pub(crate) const DUE_CHANNEL: &str = "order_scheduler_due";

/// The PostgreSQL backend.
pub(crate) struct Pg;

impl Backend for Pg {
    type Conn = PgConnection;

    fn configure(conn: &mut PgConnection) -> Result<(), StorageError> {
        // TIMESTAMP columns hold UTC; pin the session so CURRENT_TIMESTAMP agrees.
        Ok(conn.batch_execute("SET TIME ZONE 'UTC'")?)
    }

    /// Under an advisory lock, because diesel takes none and instances starting together
    /// would otherwise race on the same DDL.
    fn migrate(conn: &mut PgConnection) -> Result<(), StorageError> {
        conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))?;
        let result = conn
            .run_pending_migrations(MIGRATIONS)
            .map(|_| ())
            .map_err(|e| StorageError::Migration(e.to_string()));
        conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))?;
        result
    }

    /// A plain `BEGIN`: row locks are taken by the statements themselves.
    fn begin_write(conn: &mut PgConnection) -> Result<(), StorageError> {
        Ok(AnsiTransactionManager::begin_transaction(conn)?)
    }

    /// Repeatable read: every statement sees the snapshot taken by the first one (read
    /// committed would take a new snapshot per statement).
    fn begin_read(conn: &mut PgConnection) -> Result<(), StorageError> {
        Ok(AnsiTransactionManager::begin_transaction_sql(
            conn,
            "BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        )?)
    }

    /// A sweep walks the primary key from its last id (`ORDER BY id LIMIT n` finds its rows at
    /// the front of it).
    fn select_claimable(
        conn: &mut PgConnection,
        range: &DueRange,
        limit: i64,
    ) -> Result<Vec<OrderRow>, StorageError> {
        let due = orders::table
            .select(ORDER_COLUMNS)
            .filter(diesel::dsl::sql::<Bool>(claimable_sql()))
            .filter(orders::hour_start_utc.ge(range.from))
            // "Now" is the transaction's start on the database's clock, which every instance
            // shares; one expression for both cases keeps one query shape.
            .filter(
                diesel::dsl::sql::<Bool>("hour_start_utc <= COALESCE(")
                    .bind::<Nullable<Timestamp>, _>(range.until)
                    .sql(", LOCALTIMESTAMP)"),
            );
        Ok(match &range.after_id {
            Some(after) => {
                // Without statistics (a table just filled, not yet analysed) the planner
                // expects one due row, takes the claimable index and sorts the whole backlog
                // by id for every batch. A sweep exists to walk the primary key in order, so
                // sorting is ruled out for this statement only (`SET LOCAL` would otherwise
                // last until the transaction's end).
                conn.batch_execute("SET LOCAL enable_sort = off")?;
                let rows = due
                    .filter(orders::id.gt(after))
                    .order(orders::id.asc())
                    .limit(limit)
                    .for_update()
                    .skip_locked()
                    .load(conn)?;
                conn.batch_execute("SET LOCAL enable_sort TO DEFAULT")?;
                rows
            }
            None => due
                .order(orders::hour_start_utc.asc())
                .limit(limit)
                .for_update()
                .skip_locked()
                .load(conn)?,
        })
    }

    fn count_claimable(conn: &mut PgConnection, due: bool, cap: i64) -> Result<i64, StorageError> {
        let until = if due {
            "AND hour_start_utc <= LOCALTIMESTAMP"
        } else {
            ""
        };
        Ok(diesel::sql_query(format!(
            "SELECT count(*) AS n FROM (SELECT 1 FROM orders WHERE {} {until} LIMIT $1) AS c",
            claimable_sql()
        ))
        .bind::<BigInt, _>(cap)
        .get_result::<super::Count>(conn)?
        .n)
    }

    /// One set-based UPDATE over `unnest`ed arrays that also inserts the events, so a batch
    /// costs one round trip whatever its size.
    fn apply_batch(
        conn: &mut PgConnection,
        decided: Vec<(Order, Decided)>,
        at: DateTime<Utc>,
        actor: &str,
        guard: Guard,
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
        let (mut sources, mut intervals) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for (order, d) in &decided {
            ids.push(order.id.clone());
            statuses.push(d.decision.status().as_str());
            let (lmp, reason) = d.decision.lmp_or_reason();
            lmps.push(lmp.map(|p| p.scaled()));
            reasons.push(reason.map(str::to_string));
            details.push(d.details.to_string());
            // Per order: each approval records the source and interval that priced it.
            let record = d.rt_record(at);
            sources.push(record.map(|(s, _)| s.to_string()));
            intervals.push(record.map(|(_, t)| t.naive_utc()));
        }
        let pending = OrderStatus::Pending.as_str();
        // Rows read ahead are taken here as a claim takes them: locked, skipping those another
        // claimer holds, and only while still claimable and due on the database's clock (they
        // may have been parked, moderated or claimed elsewhere since they were read).
        let (lock, only_locked) = match guard {
            Guard::Claimed => (String::new(), ""),
            Guard::Prepared => (
                format!(
                    "c AS (SELECT id FROM orders WHERE id = ANY($1::text[]) AND {} \
                         AND hour_start_utc <= LOCALTIMESTAMP FOR UPDATE SKIP LOCKED), ",
                    claimable_sql()
                ),
                " AND o.id IN (SELECT id FROM c)",
            ),
        };
        let updated: Vec<Updated> = diesel::sql_query(format!(
            "WITH d(id, status, lmp, reason, details, source, interval) AS ( \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], \
                     $6::text[], $7::timestamp[])), {lock}\
             u AS ( \
                 UPDATE orders o SET status = d.status, approved_at = $8, \
                     approval_rt_interval_start_utc = d.interval, \
                     approval_rt_lmp_cents = d.lmp, \
                     approval_rt_source = d.source, \
                     reject_reason = d.reason \
                 FROM d WHERE o.id = d.id AND o.status = '{pending}'{only_locked} \
                 RETURNING o.id, d.status, d.details) \
             INSERT INTO order_events (order_id, from_status, to_status, at, actor, details) \
             SELECT id, '{pending}', status, $8, $9, details FROM u ORDER BY id \
             RETURNING order_id",
        ))
        .bind::<Array<Text>, _>(&ids)
        .bind::<Array<Text>, _>(&statuses)
        .bind::<Array<Nullable<BigInt>>, _>(&lmps)
        .bind::<Array<Nullable<Text>>, _>(&reasons)
        .bind::<Array<Text>, _>(&details)
        .bind::<Array<Nullable<Text>>, _>(&sources)
        .bind::<Array<Nullable<Timestamp>>, _>(&intervals)
        .bind::<Timestamp, _>(at.naive_utc())
        .bind::<Text, _>(actor)
        .load(conn)?;
        let written = Written::Only(updated.into_iter().map(|u| u.order_id).collect());
        Ok(settled(decided, &written, at))
    }

    /// One statement over `unnest`ed arrays, as [`Pg::apply_batch`] writes a decided batch: a
    /// multi-row `VALUES` binds 12 parameters per order (12,000 for a batch of 1,000, which
    /// Postgres parses and plans anew every time, and which hits the protocol's 65,535
    /// parameter limit past 5,461 rows), this binds 18 arrays whatever the size. The orders
    /// go in through a data-modifying `WITH`, so the statement-level insert trigger still
    /// notifies once with the earliest due time, and the events' foreign keys are checked at
    /// the end of the statement, when the orders are there.
    fn insert_rows(
        conn: &mut PgConnection,
        rows: &[NewOrderRow<'_>],
        events: &[NewEventRow<'_>],
    ) -> Result<(), StorageError> {
        if rows.is_empty() && events.is_empty() {
            return Ok(());
        }
        fn column<'r, R, T>(rows: &'r [R], f: impl Fn(&'r R) -> T) -> Vec<T> {
            rows.iter().map(f).collect()
        }
        diesel::sql_query(
            "WITH o AS ( \
                 INSERT INTO orders (id, created_at, market, location_type, location, \
                     hour_start_utc, side, qty_milli_mwh, limit_price_cents, status, \
                     idempotency_key, request_hash) \
                 SELECT * FROM unnest($1::text[], $2::timestamp[], $3::text[], $4::text[], \
                     $5::text[], $6::timestamp[], $7::text[], $8::int8[], $9::int8[], \
                     $10::text[], $11::text[], $12::text[])) \
             INSERT INTO order_events (order_id, from_status, to_status, at, actor, details) \
             SELECT * FROM unnest($13::text[], $14::text[], $15::text[], $16::timestamp[], \
                 $17::text[], $18::text[])",
        )
        .bind::<Array<Text>, _>(column(rows, |r| r.id))
        .bind::<Array<Timestamp>, _>(column(rows, |r| r.created_at))
        .bind::<Array<Text>, _>(column(rows, |r| r.market))
        .bind::<Array<Text>, _>(column(rows, |r| r.location_type))
        .bind::<Array<Text>, _>(column(rows, |r| r.location))
        .bind::<Array<Timestamp>, _>(column(rows, |r| r.hour_start_utc))
        .bind::<Array<Text>, _>(column(rows, |r| r.side))
        .bind::<Array<BigInt>, _>(column(rows, |r| r.qty_milli_mwh))
        .bind::<Array<BigInt>, _>(column(rows, |r| r.limit_price_cents))
        .bind::<Array<Text>, _>(column(rows, |r| r.status))
        .bind::<Array<Nullable<Text>>, _>(column(rows, |r| r.idempotency_key))
        .bind::<Array<Nullable<Text>>, _>(column(rows, |r| r.request_hash))
        .bind::<Array<Text>, _>(column(events, |e| e.order_id))
        .bind::<Array<Nullable<Text>>, _>(column(events, |e| e.from_status))
        .bind::<Array<Text>, _>(column(events, |e| e.to_status))
        .bind::<Array<Timestamp>, _>(column(events, |e| e.at))
        .bind::<Array<Text>, _>(column(events, |e| e.actor))
        .bind::<Array<Text>, _>(column(events, |e| e.details.as_str()))
        .execute(conn)?;
        Ok(())
    }

    /// `LISTEN`s on [`DUE_CHANNEL`]. diesel hands over only notifications already received
    /// (each look is a non-blocking `PQconsumeInput`, which also notices a dropped
    /// connection), so the loop looks every `poll`.
    fn watch(
        conn: &mut PgConnection,
        poll: Duration,
        keep_going: &dyn Fn() -> bool,
        on_change: &mut dyn FnMut(Option<DateTime<Utc>>),
    ) -> Result<(), StorageError> {
        conn.batch_execute(&format!("LISTEN {DUE_CHANNEL}"))?;
        // Listening now: anything inserted before is found by reading, anything after is
        // notified.
        on_change(None);
        while keep_going() {
            let mut earliest: Option<DateTime<Utc>> = None;
            let mut unparsed = false;
            for note in conn.notifications_iter() {
                let note = note?;
                match note
                    .payload
                    .parse::<i64>()
                    .ok()
                    .and_then(DateTime::from_timestamp_millis)
                {
                    Some(t) => earliest = Some(earliest.map_or(t, |e| e.min(t))),
                    None => unparsed = true,
                }
            }
            if unparsed {
                on_change(None);
            } else if earliest.is_some() {
                on_change(earliest);
            }
            std::thread::sleep(poll);
        }
        Ok(())
    }
}

impl Pg {
    /// Every embedded migration, oldest first, with whether it is applied (for
    /// `migrate --status`). Reading the applied list creates diesel's bookkeeping table on a
    /// database that has never been migrated.
    pub(crate) fn migration_status(
        conn: &mut PgConnection,
    ) -> Result<Vec<crate::connection::MigrationState>, StorageError> {
        crate::connection::migration_states(conn, &MIGRATIONS)
    }
}

/// Arbitrary, fixed key of the advisory lock that lets one instance at a time prune closed
/// orders (retention).
pub(crate) const RETENTION_LOCK_KEY: i64 = 0x7265_7461_696e; // "retain"

impl Pg {
    /// Opens a connection of its own and takes the retention lock on it without waiting:
    /// `Some(connection)` holds the lock until it is dropped (the session's end releases it,
    /// whatever happens to the sweep), `None` means another instance holds it.
    pub(crate) fn try_retention_lock(url: &str) -> Result<Option<PgConnection>, StorageError> {
        let mut conn =
            PgConnection::establish(url).map_err(|e| StorageError::Unavailable(e.to_string()))?;
        Self::configure(&mut conn)?;
        let got = diesel::select(diesel::dsl::sql::<Bool>(&format!(
            "pg_try_advisory_lock({RETENTION_LOCK_KEY})"
        )))
        .get_result::<bool>(&mut conn)?;
        Ok(got.then_some(conn))
    }
}
