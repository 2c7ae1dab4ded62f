//! Benchmark support (feature `bench`): the SQL that `order-scheduler-bench` needs and the
//! service does not. Bulk loading of due orders (rows identical in shape to what
//! [`Store::insert_orders`] writes, creation events included), the set-based baseline UPDATE
//! a database could do on the same rows, database creation and copies, and read-outs
//! (pending orders, moderation counts, lateness).
//!
//! Loading is fast rather than general: on Postgres one `INSERT ... SELECT ... FROM
//! generate_series` per chunk writes orders and events together; on SQLite large multi-row
//! inserts run inside one immediate transaction.

use crate::backend::{on_backend, Backend};
use crate::connection::{write_tx, DatabaseUrl, DbConnection};
use crate::error::StorageError;
use crate::models::{NewEventRow, NewOrderRow};
use crate::schema::{order_events, orders};
use crate::store::{naive, Store};
use ::orders::{
    rt_interval_start, truncate_ms, Location, LocationType, OrderStatus, Price, Quantity, Side,
    REJECT_REASONS, RT_SOURCE,
};
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text, Timestamp};
use serde_json::json;

/// Orders per SQL statement while bulk loading.
const LOAD_CHUNK: usize = 100_000;
/// Rows per multi-row INSERT on SQLite (12 binds each, below SQLite's 32,766 variables).
const SQLITE_ROWS_PER_INSERT: usize = 1_000;
/// Probability resolution of the baseline's random draw (one integer draw per row).
const DRAW_SCALE: i64 = 1_000_000;

/// One of the few (side, quantity, price) combinations the loader cycles through, with the
/// creation-event details `Store::insert_order` would write for it.
struct Shape {
    side: &'static str,
    qty_milli: i64,
    price_cents: i64,
    details: String,
}

/// The combinations loaded rows cycle through.
fn shapes() -> Result<Vec<Shape>, StorageError> {
    let location = Location::parse(Location::DEFAULT)
        .map_err(|e| StorageError::MissingField(e.to_string()))?;
    let combos = [
        (Side::Buy, 2_500, 4_000),
        (Side::Sell, 1_000, 3_550),
        (Side::Buy, 10_000, 4_275),
        (Side::Sell, 500, 5_010),
        (Side::Buy, 125, 3_999),
        (Side::Sell, 7_750, 4_100),
        (Side::Buy, 3_000, 2_990),
        (Side::Sell, 42_000, 4_500),
    ];
    Ok(combos
        .into_iter()
        .map(|(side, qty, price)| Shape {
            side: side.as_str(),
            qty_milli: qty,
            price_cents: price,
            details: json!({
                "side": side, "qty_mwh": Quantity::from_scaled(qty),
                "limit_price": Price::from_scaled(price), "location": &location,
            })
            .to_string(),
        })
        .collect())
}

/// Due time of row `i` of `n`: spread evenly over `[first, first + span)`, whole milliseconds.
fn due_of(first: DateTime<Utc>, span: Duration, i: usize, n: usize) -> DateTime<Utc> {
    let offset = span.num_milliseconds() * i as i64 / n.max(1) as i64;
    truncate_ms(first + Duration::milliseconds(offset))
}

/// Bulk-loads `n` PENDING orders due evenly over `[first_due, first_due + span)`, each with its
/// creation event by `actor`, in one transaction. Returns how many were written.
pub fn load_orders(
    store: &Store,
    n: usize,
    first_due: DateTime<Utc>,
    span: Duration,
    actor: &str,
) -> Result<usize, StorageError> {
    let shapes = shapes()?;
    let now = truncate_ms(Utc::now());
    let first_due = truncate_ms(first_due);
    let mut conn = store.conn()?;
    write_tx(&mut conn, |c| match c {
        DbConnection::Pg(pg) => load_pg(pg, &shapes, n, first_due, span, now, actor),
        DbConnection::Sqlite(s) => load_sqlite(s, &shapes, n, first_due, span, now, actor),
    })
}

/// Postgres: orders and events of a chunk in one `INSERT ... SELECT ... FROM generate_series`.
fn load_pg(
    pg: &mut diesel::pg::PgConnection,
    shapes: &[Shape],
    n: usize,
    first_due: DateTime<Utc>,
    span: Duration,
    now: DateTime<Utc>,
    actor: &str,
) -> Result<usize, StorageError> {
    let sides: Vec<&str> = shapes.iter().map(|s| s.side).collect();
    let qtys: Vec<i64> = shapes.iter().map(|s| s.qty_milli).collect();
    let prices: Vec<i64> = shapes.iter().map(|s| s.price_cents).collect();
    let details: Vec<&str> = shapes.iter().map(|s| s.details.as_str()).collect();
    let mut start = 0usize;
    while start < n {
        let end = (start + LOAD_CHUNK).min(n);
        diesel::sql_query(
            "WITH g AS MATERIALIZED ( \
                 SELECT gen_random_uuid()::text AS id, i, (i % cardinality($1::text[])) + 1 AS s \
                 FROM generate_series($2::bigint, $3::bigint - 1) AS i), \
             ins AS ( \
                 INSERT INTO orders (id, created_at, market, location_type, location, \
                     hour_start_utc, side, qty_milli_mwh, limit_price_cents, status) \
                 SELECT id, $4, 'DA', 'ZONE', 'PJM-RTO', \
                     $5 + ((i * $6) / $7) * interval '1 millisecond', \
                     ($1::text[])[s], ($8::int8[])[s], ($9::int8[])[s], 'PENDING' FROM g) \
             INSERT INTO order_events (order_id, from_status, to_status, at, actor, details) \
             SELECT id, NULL, 'PENDING', $4, $10, ($11::text[])[s] FROM g ORDER BY i",
        )
        .bind::<Array<Text>, _>(&sides)
        .bind::<BigInt, _>(start as i64)
        .bind::<BigInt, _>(end as i64)
        .bind::<Timestamp, _>(naive(now))
        .bind::<Timestamp, _>(naive(first_due))
        .bind::<BigInt, _>(span.num_milliseconds())
        .bind::<BigInt, _>(n.max(1) as i64)
        .bind::<Array<BigInt>, _>(&qtys)
        .bind::<Array<BigInt>, _>(&prices)
        .bind::<Text, _>(actor)
        .bind::<Array<Text>, _>(&details)
        .execute(pg)?;
        start = end;
    }
    Ok(n)
}

/// The order rows and creation events of one chunk of a bulk load, built exactly as
/// `Store::insert_orders` builds them: row `k` of the chunk is load row `start + k`, with id
/// `ids[k]`, the shape `start + k` cycles to, and due time `due(start + k)`.
fn chunk_rows<'a>(
    ids: &'a [String],
    start: usize,
    shapes: &'a [Shape],
    due: &dyn Fn(usize) -> NaiveDateTime,
    now: DateTime<Utc>,
    actor: &'a str,
) -> (Vec<NewOrderRow<'a>>, Vec<NewEventRow<'a>>) {
    let shape = |i: usize| &shapes[i % shapes.len()];
    let rows = ids
        .iter()
        .zip(start..)
        .map(|(id, i)| NewOrderRow {
            id,
            created_at: naive(now),
            market: ::orders::Market::Da.as_str(),
            location_type: LocationType::Zone.as_str(),
            location: Location::DEFAULT,
            hour_start_utc: due(i),
            side: shape(i).side,
            qty_milli_mwh: shape(i).qty_milli,
            limit_price_cents: shape(i).price_cents,
            status: OrderStatus::Pending.as_str(),
            idempotency_key: None,
            request_hash: None,
        })
        .collect();
    let events = ids
        .iter()
        .zip(start..)
        .map(|(id, i)| NewEventRow {
            order_id: id,
            from_status: None,
            to_status: OrderStatus::Pending.as_str(),
            at: naive(now),
            actor,
            details: shape(i).details.clone(),
        })
        .collect();
    (rows, events)
}

/// SQLite: multi-row inserts of rows built exactly as `Store::insert_orders` builds them.
fn load_sqlite(
    s: &mut diesel::sqlite::SqliteConnection,
    shapes: &[Shape],
    n: usize,
    first_due: DateTime<Utc>,
    span: Duration,
    now: DateTime<Utc>,
    actor: &str,
) -> Result<usize, StorageError> {
    let mut start = 0usize;
    while start < n {
        let end = (start + SQLITE_ROWS_PER_INSERT).min(n);
        let ids: Vec<String> = (start..end)
            .map(|_| uuid::Uuid::now_v7().to_string())
            .collect();
        let due = |i: usize| naive(due_of(first_due, span, i, n));
        let (rows, events) = chunk_rows(&ids, start, shapes, &due, now, actor);
        diesel::insert_into(orders::table)
            .values(&rows)
            .execute(s)?;
        diesel::insert_into(order_events::table)
            .values(&events)
            .execute(s)?;
        start = end;
    }
    Ok(n)
}

/// Bulk-loads one PENDING order per entry of `dues`, in that order: row `i` is created `i`th
/// (its UUIDv7 id sorts after row `i - 1`'s) and falls due at `dues[i]`, so the caller decides
/// how due order relates to creation order (a real day-ahead book: not at all). Each order
/// gets its creation event by `actor`; one transaction, both databases through the same
/// multi-row inserts. With `rejected_at`, the orders are written already closed instead:
/// REJECTED at that instant (an old, decided book for retention to prune; no moderation event,
/// so they never count in lateness read-outs). Returns how many were written.
pub fn load_orders_due_at(
    store: &Store,
    dues: &[DateTime<Utc>],
    actor: &str,
    rejected_at: Option<DateTime<Utc>>,
) -> Result<usize, StorageError> {
    let shapes = shapes()?;
    let now = truncate_ms(Utc::now());
    let mut conn = store.conn()?;
    write_tx(&mut conn, |c| {
        let mut start = 0usize;
        while start < dues.len() {
            let end = (start + SQLITE_ROWS_PER_INSERT).min(dues.len());
            let ids: Vec<String> = (start..end)
                .map(|_| uuid::Uuid::now_v7().to_string())
                .collect();
            let due = |i: usize| naive(truncate_ms(dues[i]));
            let (rows, events) = chunk_rows(&ids, start, &shapes, &due, now, actor);
            let close = rejected_at.map(|at| {
                diesel::update(orders::table.filter(orders::id.eq_any(&ids))).set((
                    orders::status.eq(OrderStatus::Rejected.as_str()),
                    orders::approved_at.eq(Some(naive(truncate_ms(at)))),
                    orders::reject_reason.eq(Some(REJECT_REASONS[0])),
                ))
            });
            on_backend!(&mut *c, inner => B::insert_rows(inner, &rows, &events))?;
            if let Some(close) = close {
                close.execute(c)?;
            }
            start = end;
        }
        Ok(dues.len())
    })
}

/// Brings a freshly loaded database to a steady state (Postgres: `VACUUM ANALYZE`; SQLite:
/// a WAL checkpoint), so that timed work does not pay for the load.
pub fn settle(store: &Store) -> Result<(), StorageError> {
    let mut conn = store.conn()?;
    match &mut *conn {
        DbConnection::Pg(pg) => {
            // One statement per call: a multi-statement string runs as one transaction block,
            // where VACUUM is refused.
            for statement in [
                "VACUUM ANALYZE orders",
                "VACUUM ANALYZE order_events",
                "CHECKPOINT",
            ] {
                pg.batch_execute(statement)?;
            }
        }
        DbConnection::Sqlite(s) => s.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)")?,
    }
    Ok(())
}

/// The limit a database allows: one set-based UPDATE moderating every due PENDING order from
/// one random draw per row (status, real-time price and reject reason, with the policy's 70 %
/// approval at 40 ± 10 $/MWh). Returns the number of rows updated.
pub fn baseline_update(store: &Store) -> Result<usize, StorageError> {
    let now = truncate_ms(Utc::now());
    let approve = DRAW_SCALE * 7 / 10;
    // One integer draw r in [0, DRAW_SCALE): r < approve approves at 30.00 + r * 2001 / approve
    // cents; otherwise the reason is picked from the rest of the range.
    let set = format!(
        "status = CASE WHEN d.r < {approve} THEN 'APPROVED' ELSE 'REJECTED' END, \
         approved_at = $1, \
         approval_rt_interval_start_utc = CASE WHEN d.r < {approve} THEN $2 END, \
         approval_rt_lmp_cents = CASE WHEN d.r < {approve} THEN 3000 + d.r * 2001 / {approve} END, \
         approval_rt_source = CASE WHEN d.r < {approve} THEN '{RT_SOURCE}' END, \
         reject_reason = CASE WHEN d.r >= {approve} THEN {reasons} END",
        reasons = reason_case(approve),
    );
    let mut conn = store.conn()?;
    let n = match &mut *conn {
        DbConnection::Pg(pg) => diesel::sql_query(format!(
            "UPDATE orders o SET {set} FROM ( \
                 SELECT ctid AS t, floor(random() * {DRAW_SCALE})::bigint AS r FROM orders \
                 WHERE status = 'PENDING' AND parked_reason IS NULL AND hour_start_utc <= $1) d \
             WHERE o.ctid = d.t",
        ))
        .bind::<Timestamp, _>(naive(now))
        .bind::<Timestamp, _>(naive(rt_interval_start(now)))
        .execute(pg)?,
        DbConnection::Sqlite(s) => diesel::sql_query(
            format!(
                // MATERIALIZED: a flattened subquery would draw again at every use of d.r.
                "WITH d AS MATERIALIZED ( \
                     SELECT rowid AS t, abs(random() % {DRAW_SCALE}) AS r FROM orders \
                     WHERE status = 'PENDING' AND parked_reason IS NULL AND hour_start_utc <= ?1) \
                 UPDATE orders SET {set} FROM d WHERE orders.rowid = d.t",
            )
            .replace('$', "?"),
        )
        .bind::<Timestamp, _>(naive(now))
        .bind::<Timestamp, _>(naive(rt_interval_start(now)))
        .execute(s)?,
    };
    Ok(n)
}

/// `CASE` choosing one of the four reject reasons from the part of the draw above `approve`.
fn reason_case(approve: i64) -> String {
    let count = REJECT_REASONS.len() as i64;
    let width = (DRAW_SCALE - approve) / count;
    let mut case = String::from("CASE");
    for (k, reason) in (1..).zip(REJECT_REASONS) {
        let bound = if k == count {
            DRAW_SCALE
        } else {
            approve + width * k
        };
        case.push_str(&format!(
            " WHEN d.r < {bound} THEN '{}'",
            reason.replace('\'', "''")
        ));
    }
    case.push_str(" END");
    case
}

/// The baseline's history lines: one set-based INSERT of a moderation event per order the
/// baseline UPDATE changed. Returns the number of events written.
pub fn baseline_events(store: &Store) -> Result<usize, StorageError> {
    let n = diesel::sql_query(
        "INSERT INTO order_events (order_id, from_status, to_status, at, actor, details) \
         SELECT id, 'PENDING', status, approved_at, 'bench:limit', '{}' FROM orders \
         WHERE status IN ('APPROVED', 'REJECTED')",
    )
    .execute(&mut *store.conn()?)?;
    Ok(n)
}

/// Whether any claimable (PENDING, not parked) order is left: one probe of the claimable
/// index (ordered by due time, so that Postgres, whose statistics say most rows are PENDING,
/// does not pick a sequential scan).
pub fn any_pending(store: &Store) -> Result<bool, StorageError> {
    let found = orders::table
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
            crate::backend::claimable_sql(),
        ))
        .order(orders::hour_start_utc.asc())
        .select(orders::id)
        .first::<String>(&mut *store.conn()?)
        .optional()?;
    Ok(found.is_some())
}

/// Bytes of write-ahead log the Postgres cluster has generated so far (`pg_stat_wal`, which
/// counts every database of the cluster, so deltas are meaningful only on a quiet cluster);
/// `None` on SQLite, whose writes the caller reads from the writing process's I/O counters.
pub fn wal_bytes(store: &Store) -> Result<Option<i64>, StorageError> {
    #[derive(QueryableByName)]
    struct Wal {
        #[diesel(sql_type = BigInt)]
        bytes: i64,
    }
    let mut conn = store.conn()?;
    match &mut *conn {
        DbConnection::Pg(pg) => {
            let w: Wal = diesel::sql_query("SELECT wal_bytes::bigint AS bytes FROM pg_stat_wal")
                .get_result(pg)?;
            Ok(Some(w.bytes))
        }
        DbConnection::Sqlite(_) => Ok(None),
    }
}

/// Number of PENDING orders.
pub fn pending_count(store: &Store) -> Result<i64, StorageError> {
    Ok(orders::table
        .filter(orders::status.eq(OrderStatus::Pending.as_str()))
        .count()
        .get_result(&mut *store.conn()?)?)
}

/// Moderation events (from PENDING to APPROVED or REJECTED) and the distinct orders they
/// concern; equal numbers mean nothing was moderated twice.
pub fn moderation_counts(store: &Store) -> Result<(i64, i64), StorageError> {
    #[derive(QueryableByName)]
    struct Counts {
        #[diesel(sql_type = BigInt)]
        events: i64,
        #[diesel(sql_type = BigInt)]
        orders: i64,
    }
    let c: Counts = diesel::sql_query(
        "SELECT COUNT(*) AS events, COUNT(DISTINCT order_id) AS orders FROM order_events \
         WHERE from_status = 'PENDING' AND to_status IN ('APPROVED', 'REJECTED')",
    )
    .get_result(&mut *store.conn()?)?;
    Ok((c.events, c.orders))
}

/// Lateness of every moderation, in milliseconds: event `at` minus the order's due time.
pub fn moderation_lateness_ms(store: &Store) -> Result<Vec<i64>, StorageError> {
    let rows = order_events::table
        .inner_join(orders::table)
        .filter(order_events::from_status.eq(OrderStatus::Pending.as_str()))
        .filter(order_events::to_status.eq_any([
            OrderStatus::Approved.as_str(),
            OrderStatus::Rejected.as_str(),
        ]))
        .select((order_events::at, orders::hour_start_utc))
        .load::<(NaiveDateTime, NaiveDateTime)>(&mut *store.conn()?)?;
    Ok(rows
        .into_iter()
        .map(|(at, due)| (at - due).num_milliseconds())
        .collect())
}

/// Checks that a database name is a plain identifier (`bench_` letters, digits, underscores).
fn checked_name(name: &str) -> Result<&str, StorageError> {
    let ok = name.starts_with("bench_")
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(name)
    } else {
        Err(StorageError::InvalidUrl(format!(
            "benchmark database names are bench_[a-z0-9_]*, got '{name}'"
        )))
    }
}

/// Runs one statement outside a transaction on a Postgres server reached through `admin_url`.
fn pg_admin(admin_url: &str, statement: &str) -> Result<(), StorageError> {
    match DatabaseUrl::parse(admin_url)?.connect()? {
        DbConnection::Pg(mut pg) => Ok(pg.batch_execute(statement)?),
        DbConnection::Sqlite(_) => Err(StorageError::InvalidUrl(
            "a postgres:// URL is needed to create databases".into(),
        )),
    }
}

/// Creates the Postgres database `name` (which must start with `bench_`), or a copy of
/// `template` when given (no one may be connected to the template).
pub fn pg_create_database(
    admin_url: &str,
    name: &str,
    template: Option<&str>,
) -> Result<(), StorageError> {
    let name = checked_name(name)?;
    let statement = match template {
        Some(t) => format!("CREATE DATABASE {name} TEMPLATE {}", checked_name(t)?),
        None => format!("CREATE DATABASE {name}"),
    };
    pg_admin(admin_url, &statement)
}

/// Drops the Postgres database `name` if it exists, disconnecting anyone still on it.
pub fn pg_drop_database(admin_url: &str, name: &str) -> Result<(), StorageError> {
    let name = checked_name(name)?;
    pg_admin(
        admin_url,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
}

/// The URL of database `name` on the server of `admin_url` (its path replaced).
pub fn pg_url_for(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin_url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut url = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// Copies an SQLite database into a new file with `VACUUM INTO` (same rows, compacted).
pub fn sqlite_copy(store: &Store, to: &std::path::Path) -> Result<(), StorageError> {
    let target = to.to_string_lossy().replace('\'', "''");
    let mut conn = store.conn()?;
    match &mut *conn {
        DbConnection::Sqlite(s) => Ok(s.batch_execute(&format!("VACUUM INTO '{target}'"))?),
        DbConnection::Pg(_) => Err(StorageError::InvalidUrl(
            "sqlite_copy needs an SQLite store".into(),
        )),
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::testing::{Backend, TestDb};
    use crate::PoolConfig;
    use ::orders::NewOrder;

    /// The storage class of every column of a row (SQLite), or its nullness (Postgres).
    fn column_kinds(store: &Store, id: &str) -> Vec<String> {
        #[derive(QueryableByName)]
        struct Kind {
            #[diesel(sql_type = Text)]
            k: String,
        }
        let cols = [
            "id",
            "created_at",
            "market",
            "location_type",
            "location",
            "hour_start_utc",
            "side",
            "qty_milli_mwh",
            "limit_price_cents",
            "status",
            "approved_at",
            "reject_reason",
            "idempotency_key",
        ];
        let mut conn = store.conn().expect("conn");
        let sqlite = !store.is_postgres();
        cols.iter()
            .map(|c| {
                let expr = if sqlite {
                    format!("typeof({c}) || ':' || CASE WHEN '{c}' = 'hour_start_utc' THEN {c} ELSE '' END")
                } else {
                    format!("CASE WHEN {c} IS NULL THEN 'null' ELSE 'value' END")
                };
                let sql = format!("SELECT {expr} AS k FROM orders WHERE id = '{id}'");
                let k: Kind = diesel::sql_query(sql).get_result(&mut *conn).expect("row");
                format!("{c}={}", k.k)
            })
            .collect()
    }

    fn check(backend: Backend) {
        let Some(db) = TestDb::new(backend) else {
            return;
        };
        let store = Store::open(&db.url, &PoolConfig::default()).expect("open");
        let due = truncate_ms(Utc::now() - Duration::hours(1)) + Duration::milliseconds(7);
        load_orders(&store, 20, due, Duration::minutes(30), "api").expect("load");
        let new = NewOrder::new(
            Side::Buy,
            Quantity::from_scaled(2_500),
            Price::from_scaled(4_000),
            Location::parse("PJM-RTO").expect("loc"),
            LocationType::Zone,
            due,
        )
        .expect("new");
        let ids = store.insert_orders(&[new], "api").expect("insert");
        let first_loaded: String = orders::table
            .select(orders::id)
            .filter(orders::id.ne(&ids[0]))
            .filter(orders::hour_start_utc.eq(naive(due)))
            .first(&mut *store.conn().expect("conn"))
            .expect("first loaded row");
        let (a, b) = (
            store.get_order(&first_loaded).expect("get"),
            store.get_order(&ids[0]).expect("get"),
        );
        assert_eq!(
            (a.side, a.qty_mwh, a.limit_price, a.hour_start_utc, a.status),
            (b.side, b.qty_mwh, b.limit_price, b.hour_start_utc, b.status)
        );
        assert_eq!(a.location, b.location);
        assert_eq!(
            column_kinds(&store, &first_loaded),
            column_kinds(&store, &ids[0])
        );
        let (ea, eb) = (
            store.order_events(&first_loaded).expect("events"),
            store.order_events(&ids[0]).expect("events"),
        );
        assert_eq!(ea.len(), 1);
        assert_eq!(
            (
                ea[0].from_status,
                ea[0].to_status,
                &ea[0].actor,
                &ea[0].details
            ),
            (
                eb[0].from_status,
                eb[0].to_status,
                &eb[0].actor,
                &eb[0].details
            )
        );
        assert_eq!(pending_count(&store).expect("count"), 21);
        settle(&store).expect("settle");
        assert_eq!(baseline_update(&store).expect("update"), 21);
        assert!(!any_pending(&store).expect("pending"));
        for o in store
            .list_orders(&Default::default(), None, 100)
            .expect("list")
            .orders
        {
            assert!(
                o.approval_rt_lmp.is_some() != o.reject_reason.is_some(),
                "{o:?}"
            );
            if let Some(p) = o.approval_rt_lmp {
                assert!((3_000..=5_000).contains(&p.scaled()), "{p:?}");
            }
        }
        assert_eq!(baseline_events(&store).expect("events"), 21);
        assert_eq!(moderation_counts(&store).expect("counts"), (21, 21));
        assert_eq!(moderation_lateness_ms(&store).expect("late").len(), 21);
    }

    /// Rows loaded by `load_orders_due_at` are created in the given order (ids ascending) and
    /// due exactly when asked, here in the reverse of creation order.
    fn check_due_at(backend: Backend) {
        let Some(db) = TestDb::new(backend) else {
            return;
        };
        let store = Store::open(&db.url, &PoolConfig::default()).expect("open");
        let first = truncate_ms(Utc::now() - Duration::hours(1));
        let dues: Vec<_> = (0..2_500i64)
            .rev()
            .map(|i| first + Duration::milliseconds(i * 13))
            .collect();
        assert_eq!(
            load_orders_due_at(&store, &dues, "api", None).expect("load"),
            2_500
        );
        let by_id: Vec<NaiveDateTime> = orders::table
            .select(orders::hour_start_utc)
            .order(orders::id.asc())
            .load(&mut *store.conn().expect("conn"))
            .expect("rows");
        let wanted: Vec<NaiveDateTime> = dues.iter().map(|d| naive(*d)).collect();
        assert_eq!(by_id, wanted);
        assert_eq!(pending_count(&store).expect("count"), 2_500);
        // Written closed: REJECTED when asked, with a reason, and no moderation event.
        let at = first - Duration::days(40);
        load_orders_due_at(&store, &dues[..10], "api", Some(at)).expect("load closed");
        assert_eq!(pending_count(&store).expect("count"), 2_500);
        let closed: Vec<(String, Option<NaiveDateTime>, Option<String>)> = orders::table
            .filter(orders::status.ne(OrderStatus::Pending.as_str()))
            .select((orders::status, orders::approved_at, orders::reject_reason))
            .load(&mut *store.conn().expect("conn"))
            .expect("closed rows");
        assert_eq!(closed.len(), 10);
        for (status, approved_at, reason) in closed {
            assert_eq!(status, OrderStatus::Rejected.as_str());
            assert_eq!(approved_at, Some(naive(at)));
            assert_eq!(reason.as_deref(), Some(REJECT_REASONS[0]));
        }
        assert_eq!(moderation_counts(&store).expect("counts"), (0, 0));
    }

    #[test]
    fn due_at_loader_keeps_creation_and_due_order_apart_sqlite() {
        check_due_at(Backend::Sqlite);
    }

    #[test]
    fn due_at_loader_keeps_creation_and_due_order_apart_postgres() {
        check_due_at(Backend::Postgres);
    }

    #[test]
    fn loaded_rows_match_insert_orders_and_baseline_moderates_all_sqlite() {
        check(Backend::Sqlite);
    }

    #[test]
    fn loaded_rows_match_insert_orders_and_baseline_moderates_all_postgres() {
        check(Backend::Postgres);
    }

    #[test]
    fn sqlite_copy_has_the_same_rows() {
        let db = TestDb::sqlite();
        let store = Store::open(&db.url, &PoolConfig::default()).expect("open");
        load_orders(&store, 10, Utc::now(), Duration::seconds(1), "api").expect("load");
        let copy = std::path::Path::new(&db.url).with_file_name("copy.db");
        sqlite_copy(&store, &copy).expect("copy");
        let copied = Store::open(&copy.to_string_lossy(), &PoolConfig::default()).expect("open");
        assert_eq!(copied.row_counts().expect("counts"), (10, 10));
    }

    #[test]
    fn pg_url_for_replaces_the_database() {
        assert_eq!(
            pg_url_for("postgres://postgres@127.0.0.1:5432/postgres", "bench_x"),
            "postgres://postgres@127.0.0.1:5432/bench_x"
        );
        assert_eq!(
            pg_url_for("postgres://u@h/db?sslmode=disable", "bench_y"),
            "postgres://u@h/bench_y?sslmode=disable"
        );
        assert!(checked_name("postgres").is_err());
    }
}
