//! SQLite: the zero-setup default, one file, one writer at a time. Writes begin with
//! `BEGIN IMMEDIATE`, so the claim holds the only write lock and needs no row locks; "now" is
//! the process clock; a batch travels as one JSON array read with `json_each`; other
//! connections' commits are noticed through `PRAGMA data_version`.

use super::{claimable_sql, Backend, DueRange, Guard};
use crate::claim::{settled, Decided, Written};
use crate::error::StorageError;
use crate::models::{NewEventRow, NewOrderRow, OrderRow, ORDER_COLUMNS, ORDER_COLUMN_NAMES};
use crate::schema::orders;
use ::orders::{Order, OrderStatus};
use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::connection::{AnsiTransactionManager, SimpleConnection};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text, Timestamp};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::io::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// The SQLite backend.
pub(crate) struct Sqlite;

/// Longest time the insert watcher goes without asking SQLite itself whether anything was
/// committed (it otherwise asks only when the write-ahead log file changed).
const DATA_VERSION_EVERY: Duration = Duration::from_millis(500);

impl Backend for Sqlite {
    type Conn = SqliteConnection;

    /// `busy_timeout` first: switching to WAL needs a lock another connection may hold.
    /// Temporary files in memory: a statement that may fail halfway through (the claim's
    /// update and history insert) keeps a statement journal of the pages it changes; in files
    /// these made a realistic catch-up write 10.7 KiB per order instead of 7.5
    /// (docs/BENCHMARKS.md, round twelve).
    fn configure(conn: &mut SqliteConnection) -> Result<(), StorageError> {
        Ok(conn.batch_execute(
            "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
        )?)
    }

    fn migrate(conn: &mut SqliteConnection) -> Result<(), StorageError> {
        conn.run_pending_migrations(MIGRATIONS)
            .map(|_| ())
            .map_err(|e| StorageError::Migration(e.to_string()))
    }

    /// `BEGIN IMMEDIATE` takes the write lock up front (waiting up to `busy_timeout`): a
    /// deferred transaction that reads before it writes could otherwise fail with "database is
    /// locked" without waiting.
    fn begin_write(conn: &mut SqliteConnection) -> Result<(), StorageError> {
        Ok(AnsiTransactionManager::begin_transaction_sql(
            conn,
            "BEGIN IMMEDIATE",
        )?)
    }

    /// A deferred transaction: in WAL mode its first read fixes the snapshot every later
    /// statement of the transaction sees, and it never blocks writers.
    fn begin_read(conn: &mut SqliteConnection) -> Result<(), StorageError> {
        Ok(AnsiTransactionManager::begin_transaction_sql(
            conn,
            "BEGIN DEFERRED",
        )?)
    }

    /// A sweep is forced onto the primary key's index: the planner would otherwise take the
    /// claimable index for its due-time range and sort the whole backlog by id for each batch.
    fn select_claimable(
        conn: &mut SqliteConnection,
        range: &DueRange,
        limit: i64,
    ) -> Result<Vec<OrderRow>, StorageError> {
        let until = range.until.unwrap_or_else(|| Utc::now().naive_utc());
        if let Some(after) = &range.after_id {
            return Ok(diesel::sql_query(format!(
                "SELECT {ORDER_COLUMN_NAMES} FROM orders INDEXED BY sqlite_autoindex_orders_1 \
                 WHERE id > ?1 AND {} AND hour_start_utc >= ?2 AND hour_start_utc <= ?3 \
                 ORDER BY id LIMIT ?4",
                claimable_sql()
            ))
            .bind::<Text, _>(after)
            .bind::<Timestamp, _>(range.from)
            .bind::<Timestamp, _>(until)
            .bind::<BigInt, _>(limit)
            .load(conn)?);
        }
        Ok(orders::table
            .select(ORDER_COLUMNS)
            .filter(diesel::dsl::sql::<Bool>(claimable_sql()))
            .filter(orders::hour_start_utc.ge(range.from))
            .filter(orders::hour_start_utc.le(until))
            .order(orders::hour_start_utc.asc())
            .limit(limit)
            .load(conn)?)
    }

    fn count_claimable(
        conn: &mut SqliteConnection,
        due: bool,
        cap: i64,
    ) -> Result<i64, StorageError> {
        // A statement must use every parameter bound to it: the clock is bound only when due.
        let sql = |until: &str| {
            format!(
                "SELECT count(*) AS n FROM (SELECT 1 FROM orders WHERE {}{until} LIMIT ?1)",
                claimable_sql()
            )
        };
        let count = if due {
            diesel::sql_query(sql(" AND hour_start_utc <= ?2"))
                .bind::<BigInt, _>(cap)
                .bind::<Timestamp, _>(Utc::now().naive_utc())
                .get_result::<super::Count>(conn)?
        } else {
            diesel::sql_query(sql(""))
                .bind::<BigInt, _>(cap)
                .get_result::<super::Count>(conn)?
        };
        Ok(count.n)
    }

    /// The batch travels as one JSON array, read back with `json_each`: one UPDATE joined on it
    /// (forced onto the primary-key index, else the planner walks every pending order and scans
    /// the array for each) and one INSERT of the events, whatever the batch size. The immediate
    /// transaction already holds the only write lock; the PENDING condition still guards
    /// against any other writer, and events are written only for updated rows.
    fn apply_batch(
        conn: &mut SqliteConnection,
        decided: Vec<(Order, Decided)>,
        at: DateTime<Utc>,
        actor: &str,
        guard: Guard,
    ) -> Result<Vec<Order>, StorageError> {
        #[derive(QueryableByName)]
        struct Updated {
            #[diesel(sql_type = Text)]
            id: String,
        }
        // Rows read ahead may have been parked, or moderated by a manual call, since; and
        // none may be written before it is due.
        let also = match guard {
            Guard::Claimed => "",
            Guard::Prepared => " AND orders.parked_reason IS NULL AND orders.hour_start_utc <= ?2",
        };
        // One array per order, read by index from `jsonb_each`: the objects `json_each` yields
        // are handed to `->>` as text and parsed again for every field (about half of a
        // batch's time went there), while `jsonb_each` yields each row already parsed. The
        // update's rows leave out the details, the largest field, which only the events need;
        // the events' rows carry them as JSON, not as a string of JSON, so that they are
        // neither escaped nor unescaped on the way.
        let mut updates = JsonRows::with_capacity(decided.len() * 120);
        for (o, d) in &decided {
            let (lmp, reason) = d.decision.lmp_or_reason();
            // Per order: each approval records the source and interval that priced it.
            let record = d.rt_record(at);
            updates.row(|j| {
                j.text(&o.id);
                j.text(d.decision.status().as_str());
                j.opt(lmp.map(|p| p.scaled()), JsonRows::int);
                j.opt_text(reason);
                j.opt_text(record.map(|(s, _)| s));
                j.opt(record.map(|(_, t)| t.naive_utc()), JsonRows::timestamp);
            });
        }
        let pending = OrderStatus::Pending.as_str();
        let update = format!(
            "WITH d AS (SELECT value ->> 0 AS id, value ->> 1 AS status, \
                 value ->> 2 AS lmp, value ->> 3 AS reason, \
                 value ->> 4 AS source, value ->> 5 AS interval \
                 FROM jsonb_each(?1)) \
             UPDATE orders INDEXED BY sqlite_autoindex_orders_1 \
             SET status = d.status, approved_at = ?2, \
                 approval_rt_interval_start_utc = d.interval, \
                 approval_rt_lmp_cents = d.lmp, \
                 approval_rt_source = d.source, \
                 reject_reason = d.reason \
             FROM d WHERE orders.id = d.id AND orders.status = '{pending}'{also}",
        );
        let updates = updates.finish()?;
        // Every order is written unless one changed since it was read (an order read ahead and
        // moderated by hand meanwhile, say). So the UPDATE runs first without `RETURNING`,
        // whose table of ids took about a tenth of a 1,000-order batch's write, and the count
        // of changed rows says whether all were written. If not, the savepoint undoes it and
        // it runs again, naming the orders it wrote; within the immediate transaction nothing
        // else writes between the two.
        //
        // Claimed rows were selected as claimable in this transaction, under the only write
        // lock, so all of them are written: no savepoint is taken for them. A savepoint makes
        // SQLite copy every page the statement first changes into a sub-journal, about a
        // sixth of the server's time in a catch-up. Should the count still differ, the whole
        // transaction is rolled back by the error and the batch is claimed again later.
        let guarded = guard == Guard::Prepared;
        if guarded {
            conn.batch_execute("SAVEPOINT apply_batch")?;
        }
        let changed = diesel::sql_query(&update)
            .bind::<Text, _>(&updates)
            .bind::<Timestamp, _>(at.naive_utc())
            .execute(conn)?;
        let written = if changed == decided.len() {
            Written::All
        } else if !guarded {
            let id = decided
                .first()
                .map(|(o, _)| o.id.clone())
                .unwrap_or_default();
            return Err(StorageError::Conflict(id));
        } else {
            conn.batch_execute("ROLLBACK TO apply_batch")?;
            let updated: Vec<Updated> = diesel::sql_query(format!("{update} RETURNING orders.id"))
                .bind::<Text, _>(&updates)
                .bind::<Timestamp, _>(at.naive_utc())
                .load(conn)?;
            Written::Only(updated.into_iter().map(|u| u.id).collect())
        };
        if guarded {
            conn.batch_execute("RELEASE apply_batch")?;
        }
        let mut events = JsonRows::with_capacity(decided.len() * 220);
        for (o, d) in decided.iter().filter(|(o, _)| written.includes(&o.id)) {
            events.row(|j| {
                j.text(&o.id);
                j.text(d.decision.status().as_str());
                j.json(&d.details);
            });
        }
        // `->` gives the details back as JSON text, as `to_string` would have written them.
        diesel::sql_query(format!(
            "INSERT INTO order_events (order_id, from_status, to_status, at, actor, details) \
             SELECT value ->> 0, '{pending}', value ->> 1, ?1, ?2, value -> 2 \
             FROM jsonb_each(?3) ORDER BY key",
        ))
        .bind::<Timestamp, _>(at.naive_utc())
        .bind::<Text, _>(actor)
        .bind::<Text, _>(events.finish()?)
        .execute(conn)?;
        Ok(settled(decided, &written, at))
    }

    /// Two statements over `json_each`, as [`Sqlite::apply_batch`] writes a decided batch: the
    /// orders travel as one JSON array of arrays, the events as another. diesel writes a
    /// multi-row insert of rows with optional columns as one statement per row on SQLite
    /// (2,000 statements, each binding its parameters, for a batch of 1,000); these are two,
    /// whatever the size. Each row is an array rather than an object: `->> 3` indexes, where
    /// `->> 'location'` would compare keys.
    fn insert_rows(
        conn: &mut SqliteConnection,
        rows: &[NewOrderRow<'_>],
        events: &[NewEventRow<'_>],
    ) -> Result<(), StorageError> {
        if !rows.is_empty() {
            let mut json = JsonRows::with_capacity(rows.len() * 200);
            for r in rows {
                json.row(|j| {
                    j.text(r.id);
                    j.timestamp(r.created_at);
                    j.text(r.market);
                    j.text(r.location_type);
                    j.text(r.location);
                    j.timestamp(r.hour_start_utc);
                    j.text(r.side);
                    j.int(r.qty_milli_mwh);
                    j.int(r.limit_price_cents);
                    j.text(r.status);
                    j.opt_text(r.idempotency_key);
                    j.opt_text(r.request_hash);
                });
            }
            diesel::sql_query(
                "INSERT INTO orders (id, created_at, market, location_type, location, \
                     hour_start_utc, side, qty_milli_mwh, limit_price_cents, status, \
                     idempotency_key, request_hash) \
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
                     value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9, \
                     value ->> 10, value ->> 11 \
                 FROM jsonb_each(?1) ORDER BY key",
            )
            .bind::<Text, _>(json.finish()?)
            .execute(conn)?;
        }
        if !events.is_empty() {
            let mut json = JsonRows::with_capacity(events.len() * 200);
            for e in events {
                json.row(|j| {
                    j.text(e.order_id);
                    j.opt_text(e.from_status);
                    j.text(e.to_status);
                    j.timestamp(e.at);
                    j.text(e.actor);
                    j.text(&e.details);
                });
            }
            // In input order, so event ids follow it as they did with one insert per row.
            diesel::sql_query(
                "INSERT INTO order_events (order_id, from_status, to_status, at, actor, details) \
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
                     value ->> 5 \
                 FROM jsonb_each(?1) ORDER BY key",
            )
            .bind::<Text, _>(json.finish()?)
            .execute(conn)?;
        }
        Ok(())
    }

    /// `PRAGMA data_version` changes when any other connection, in this process or another,
    /// commits; a change may be an insert, so the caller re-reads the next due time. Asking
    /// SQLite a hundred times a second would cost the idle server a noticeable share of a
    /// core, so every `poll` the loop only looks at the write-ahead log file's size and
    /// modification time (one `stat`: every commit appends to the log), and asks SQLite when
    /// they moved, or at least every [`DATA_VERSION_EVERY`] as a backstop.
    fn watch(
        conn: &mut SqliteConnection,
        poll: Duration,
        keep_going: &dyn Fn() -> bool,
        on_change: &mut dyn FnMut(Option<DateTime<Utc>>),
    ) -> Result<(), StorageError> {
        #[derive(QueryableByName)]
        struct Version {
            #[diesel(sql_type = BigInt)]
            data_version: i64,
        }
        #[derive(QueryableByName)]
        struct Database {
            #[diesel(sql_type = Text)]
            name: String,
            #[diesel(sql_type = Text)]
            file: String,
        }
        let read = |conn: &mut SqliteConnection| -> Result<i64, StorageError> {
            Ok(diesel::sql_query("PRAGMA data_version")
                .get_result::<Version>(conn)?
                .data_version)
        };
        let wal = diesel::sql_query("PRAGMA database_list")
            .load::<Database>(conn)?
            .into_iter()
            .find(|d| d.name == "main" && !d.file.is_empty())
            .map(|d| std::path::PathBuf::from(format!("{}-wal", d.file)));
        let stamp = || {
            wal.as_ref()
                .and_then(|w| std::fs::metadata(w).ok())
                .map(|m| (m.len(), m.modified().ok()))
        };
        let mut seen_stamp = stamp();
        let mut seen = read(conn)?;
        // Holding a version now: commits before it are found by reading, later ones move it.
        on_change(None);
        let mut asked = std::time::Instant::now();
        while keep_going() {
            std::thread::sleep(poll);
            let now_stamp = stamp();
            if now_stamp == seen_stamp
                && now_stamp.is_some()
                && asked.elapsed() < DATA_VERSION_EVERY
            {
                continue;
            }
            seen_stamp = now_stamp;
            asked = std::time::Instant::now();
            let now = read(conn)?;
            if now != seen {
                seen = now;
                on_change(None);
            }
        }
        Ok(())
    }
}

impl Sqlite {
    /// Every embedded migration, oldest first, with whether it is applied (for
    /// `migrate --status`). Reading the applied list creates diesel's bookkeeping table on a
    /// database that has never been migrated.
    pub(crate) fn migration_status(
        conn: &mut SqliteConnection,
    ) -> Result<Vec<crate::connection::MigrationState>, StorageError> {
        crate::connection::migration_states(conn, &MIGRATIONS)
    }
}

/// How diesel writes a `Timestamp` to SQLite: [`JsonRows`] writes the same text.
const TIMESTAMP_TEXT: &str = "%F %T%.f";

/// A JSON array of rows, each an array of values, written straight into one buffer: strings
/// escaped by `serde_json`, timestamps in the text form diesel writes them in (so the column
/// holds one form, which the claimable index and every comparison rely on).
struct JsonRows {
    buf: Vec<u8>,
    rows: usize,
    values: usize,
    /// The last timestamp written and its text: a batch's rows share their creation time, and
    /// a day-ahead book repeats its due hours.
    last_time: Option<(NaiveDateTime, String)>,
}

impl JsonRows {
    fn with_capacity(bytes: usize) -> JsonRows {
        let mut buf = Vec::with_capacity(bytes);
        buf.push(b'[');
        JsonRows {
            buf,
            rows: 0,
            values: 0,
            last_time: None,
        }
    }

    fn row(&mut self, write: impl FnOnce(&mut Self)) {
        if self.rows > 0 {
            self.buf.push(b',');
        }
        self.rows += 1;
        self.values = 0;
        self.buf.push(b'[');
        write(self);
        self.buf.push(b']');
    }

    fn separate(&mut self) {
        if self.values > 0 {
            self.buf.push(b',');
        }
        self.values += 1;
    }

    fn text(&mut self, value: &str) {
        self.separate();
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.buf, value);
    }

    fn opt_text(&mut self, value: Option<&str>) {
        self.opt(value, Self::text);
    }

    /// `write` for a value, JSON `null` for none.
    fn opt<T>(&mut self, value: Option<T>, write: impl FnOnce(&mut Self, T)) {
        match value {
            Some(v) => write(self, v),
            None => {
                self.separate();
                self.buf.extend_from_slice(b"null");
            }
        }
    }

    /// A JSON value as itself (an object stays an object), not as a string.
    fn json(&mut self, value: &serde_json::Value) {
        self.separate();
        let _ = serde_json::to_writer(&mut self.buf, value);
    }

    fn int(&mut self, value: i64) {
        self.separate();
        let _ = write!(self.buf, "{value}");
    }

    fn timestamp(&mut self, value: NaiveDateTime) {
        /// How diesel writes a `Timestamp` to SQLite, parsed once.
        static ITEMS: OnceLock<Vec<Item<'static>>> = OnceLock::new();
        let items = ITEMS.get_or_init(|| StrftimeItems::new(TIMESTAMP_TEXT).collect());
        let text = match self.last_time.take() {
            Some((t, text)) if t == value => text,
            _ => value.format_with_items(items.iter()).to_string(),
        };
        self.text(&text);
        self.last_time = Some((value, text));
    }

    fn finish(mut self) -> Result<String, StorageError> {
        self.buf.push(b']');
        // Only escaped `str`s and ASCII were written, so this holds; checked all the same.
        String::from_utf8(self.buf)
            .map_err(|e| StorageError::Query(diesel::result::Error::SerializationError(e.into())))
    }
}
