//! Creating orders: one at a time with an optional idempotency key, or many at once (a whole
//! batch under one key); each with its creation event, in one transaction.

use crate::backend::{on_backend, Backend};
use crate::connection::DbConnection;
use crate::error::StorageError;
use crate::models::{NewEventRow, NewOrderRow, OrderRow, ORDER_COLUMNS};
use crate::read::get_order;
use crate::schema::orders;
use crate::store::{naive, Store};
use ::orders::{truncate_ms, LocationType, NewOrder, Order, OrderStatus};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde_json::json;

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

/// One create in its own transaction (an uncontended create, or a retry after its group
/// failed). Two requests with one key may race: the loser's insert hits the unique index; the
/// winner's row is committed by then, so reading again answers like a plain repeat.
pub(crate) fn insert_alone(
    store: &Store,
    new: &NewOrder,
    idempotency: Option<Idempotency<'_>>,
    actor: &str,
) -> Result<Inserted, StorageError> {
    let attempt = || {
        store.write(|c| {
            let mut results = insert_each(c, std::iter::once((new, idempotency, actor)))?;
            results
                .pop()
                .ok_or_else(|| StorageError::Unavailable("no insert result".into()))
        })
    };
    match attempt() {
        Err(StorageError::Query(DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            _,
        ))) if idempotency.is_some() => attempt(),
        other => other,
    }
}

/// A group of queued creates inside one transaction, answers in request order. Keyless
/// creates go in one multi-row insert; keyed ones one by one, after a lookup of their key
/// (which sees rows written earlier in this same transaction).
pub(crate) fn insert_in(
    conn: &mut DbConnection,
    group: &[crate::group_commit::Request],
) -> Result<Vec<Inserted>, StorageError> {
    insert_each(
        conn,
        group
            .iter()
            .map(|r| (&r.new, r.idempotency(), r.actor.as_str())),
    )
}

fn insert_each<'a>(
    conn: &mut DbConnection,
    requests: impl Iterator<Item = (&'a NewOrder, Option<Idempotency<'a>>, &'a str)>,
) -> Result<Vec<Inserted>, StorageError> {
    let now = truncate_ms(Utc::now());
    let mut results: Vec<Option<Inserted>> = Vec::new();
    // Keyless creates, by actor (history rows carry it), inserted together at the end.
    let mut keyless: Vec<(usize, String, &NewOrder, &str)> = Vec::new();
    for (new, idempotency, actor) in requests {
        let slot = results.len();
        results.push(None);
        let id = uuid::Uuid::now_v7().to_string();
        match idempotency {
            None => keyless.push((slot, id, new, actor)),
            Some(idem) => {
                if let Some(existing) = find_by_idempotency_key(conn, idem)? {
                    results[slot] = Some(Inserted {
                        order: existing,
                        created: false,
                    });
                    continue;
                }
                insert_rows(conn, &[(id.as_str(), new)], now, Some(idem), actor)?;
                results[slot] = Some(Inserted {
                    order: as_stored(id, new, now),
                    created: true,
                });
            }
        }
    }
    let mut actors: Vec<&str> = keyless.iter().map(|k| k.3).collect();
    actors.sort_unstable();
    actors.dedup();
    for actor in actors {
        let rows: Vec<(&str, &NewOrder)> = keyless
            .iter()
            .filter(|k| k.3 == actor)
            .map(|k| (k.1.as_str(), k.2))
            .collect();
        insert_rows(conn, &rows, now, None, actor)?;
    }
    for (slot, id, new, _) in keyless {
        results[slot] = Some(Inserted {
            order: as_stored(id, new, now),
            created: true,
        });
    }
    results
        .into_iter()
        .map(|r| r.ok_or_else(|| StorageError::Unavailable("no insert result".into())))
        .collect()
}

impl Store {
    /// Stores a batch of orders (a day-ahead book) in one transaction, with one multi-row
    /// insert, answering in input order. Under an idempotency key, row `i` carries the key
    /// `{key}\u{1f}{i}` with the batch's request hash: a repeat of the same batch finds row 0
    /// and returns all of them (`created: false`); the same key with another hash is an
    /// [`StorageError::IdempotencyMismatch`] naming the batch's first order. The separator is a
    /// control character an HTTP header cannot carry, so a batch's keys never meet a single
    /// create's. Two racing repeats: the loser hits the unique index and reads again.
    pub fn insert_batch(
        &self,
        news: &[NewOrder],
        idempotency: Option<Idempotency<'_>>,
        actor: &str,
    ) -> Result<Vec<Inserted>, StorageError> {
        if news.is_empty() {
            return Ok(Vec::new());
        }
        // Everything but the lookup and the inserts is prepared before the write starts:
        // SQLite's writers take turns, so work done inside holds up every other writer.
        let now = truncate_ms(Utc::now());
        let ids: Vec<String> = news
            .iter()
            .map(|_| uuid::Uuid::now_v7().to_string())
            .collect();
        let keys: Vec<String> = match idempotency {
            Some(idem) => (0..news.len()).map(|i| batch_key(idem.key, i)).collect(),
            None => Vec::new(),
        };
        let pairs: Vec<(&str, &NewOrder)> = ids.iter().map(String::as_str).zip(news).collect();
        let key_of = |i: usize| {
            idempotency.and_then(|idem| {
                keys.get(i).map(|key| Idempotency {
                    key,
                    request_hash: idem.request_hash,
                })
            })
        };
        let (rows, events) = rows_of(&pairs, now, key_of, actor);
        // `Some(orders)`: an earlier batch under this key; `None`: this one was written.
        let attempt = || {
            self.write(|c| {
                if let Some(idem) = idempotency {
                    if let Some(existing) = find_batch(c, idem, news.len())? {
                        return Ok(Some(existing));
                    }
                }
                write_rows(c, &rows, &events)?;
                Ok(None)
            })
        };
        let outcome = match attempt() {
            Err(StorageError::Query(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                _,
            ))) if idempotency.is_some() => attempt(),
            other => other,
        }?;
        Ok(match outcome {
            Some(existing) => existing
                .into_iter()
                .map(|order| Inserted {
                    order,
                    created: false,
                })
                .collect(),
            None => pairs
                .iter()
                .map(|(id, new)| Inserted {
                    order: as_stored(id.to_string(), new, now),
                    created: true,
                })
                .collect(),
        })
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
}

/// The stored key of row `index` of a batch created under `key`.
fn batch_key(key: &str, index: usize) -> String {
    format!("{key}\u{1f}{index}")
}

/// The orders of an earlier batch under this key, in its input order; `None` if the key is
/// unused.
fn find_batch(
    conn: &mut DbConnection,
    idem: Idempotency<'_>,
    n: usize,
) -> Result<Option<Vec<Order>>, StorageError> {
    let first = orders::table
        .filter(orders::idempotency_key.eq(batch_key(idem.key, 0)))
        .select((orders::id, orders::request_hash))
        .first::<(String, Option<String>)>(conn)
        .optional()?;
    match first {
        None => return Ok(None),
        Some((order_id, hash)) if hash.as_deref() != Some(idem.request_hash) => {
            return Err(StorageError::IdempotencyMismatch { order_id });
        }
        Some(_) => {}
    }
    let keys: Vec<String> = (0..n).map(|i| batch_key(idem.key, i)).collect();
    let mut slots: Vec<Option<Order>> = vec![None; n];
    for chunk in keys.chunks(500) {
        let rows = orders::table
            .filter(orders::idempotency_key.eq_any(chunk))
            .select((orders::idempotency_key, ORDER_COLUMNS))
            .load::<(Option<String>, OrderRow)>(conn)?;
        for (key, row) in rows {
            let index = key
                .as_deref()
                .and_then(|k| k.rsplit_once('\u{1f}'))
                .and_then(|(_, i)| i.parse::<usize>().ok())
                .filter(|i| *i < n);
            if let Some(i) = index {
                slots[i] = Some(row.decode()?);
            }
        }
    }
    // The request hash covers the whole batch, so a match has all n rows unless some were
    // deleted since (retention); a partial answer would be a lie.
    slots
        .into_iter()
        .enumerate()
        .map(|(i, o)| o.ok_or_else(|| StorageError::NotFound(batch_key(idem.key, i))))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
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

/// Inserts orders and their creation events, all under one key (or none).
fn insert_rows(
    conn: &mut DbConnection,
    news: &[(&str, &NewOrder)],
    now: DateTime<Utc>,
    idempotency: Option<Idempotency<'_>>,
    actor: &str,
) -> Result<(), StorageError> {
    insert_rows_keyed(conn, news, now, |_| idempotency, actor)
}

/// Inserts orders and their creation events, row `i` under the key `key_of(i)`.
fn insert_rows_keyed<'k>(
    conn: &mut DbConnection,
    news: &[(&str, &NewOrder)],
    now: DateTime<Utc>,
    key_of: impl Fn(usize) -> Option<Idempotency<'k>>,
    actor: &str,
) -> Result<(), StorageError> {
    let (rows, events) = rows_of(news, now, key_of, actor);
    write_rows(conn, &rows, &events)
}

/// The rows [`write_rows`] stores for these orders, row `i` under the key `key_of(i)`.
fn rows_of<'a, 'k: 'a>(
    news: &'a [(&'a str, &'a NewOrder)],
    now: DateTime<Utc>,
    key_of: impl Fn(usize) -> Option<Idempotency<'k>>,
    actor: &'a str,
) -> (Vec<NewOrderRow<'a>>, Vec<NewEventRow<'a>>) {
    let rows: Vec<NewOrderRow<'a>> = news
        .iter()
        .enumerate()
        .map(|(i, (id, o))| (key_of(i), id, o))
        .map(|(idempotency, id, o)| NewOrderRow {
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
    let events: Vec<NewEventRow<'a>> = news
        .iter()
        .map(|(id, o)| NewEventRow {
            order_id: id,
            from_status: None,
            to_status: OrderStatus::Pending.as_str(),
            at: naive(now),
            actor,
            details: creation_details(o),
        })
        .collect();
    (rows, events)
}

/// The creation event's details: the text `json!({"side", "qty_mwh", "limit_price",
/// "location"}).to_string()` gave (keys sorted, the amounts as JSON floats), written without
/// building a map and reparsing each amount's exact text into a float: that cost about 1 µs an
/// order, a millisecond for a batch of 1,000.
fn creation_details(o: &NewOrder) -> String {
    #[derive(serde::Serialize)]
    struct Details<'a> {
        limit_price: f64,
        location: &'a ::orders::Location,
        qty_mwh: f64,
        side: ::orders::Side,
    }
    // `to_f64` divides the scaled integer by a power of ten, which rounds exactly as parsing
    // the decimal text does: the float, and so its shortest text, is the one `json!` printed.
    serde_json::to_string(&Details {
        limit_price: o.limit_price().to_f64(),
        location: o.location(),
        qty_mwh: o.qty_mwh().to_f64(),
        side: o.side(),
    })
    .unwrap_or_else(|_| {
        json!({
            "side": o.side(), "qty_mwh": o.qty_mwh(), "limit_price": o.limit_price(),
            "location": o.location(),
        })
        .to_string()
    })
}

/// Executes the multi-row inserts (on the inner connection: they do not compile on the enum).
fn write_rows(
    conn: &mut DbConnection,
    rows: &[NewOrderRow<'_>],
    events: &[NewEventRow<'_>],
) -> Result<(), StorageError> {
    on_backend!(conn, c => B::insert_rows(c, rows, events))
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::testing::TestDb;
    use crate::PoolConfig;
    use ::orders::{format_ms, NewOrderFields};
    use chrono::Duration;
    use diesel::sql_types::{Nullable, Text, Timestamp};

    fn order(due: DateTime<Utc>, side: &str, price: &str, location: &str) -> NewOrder {
        NewOrder::from_fields(&NewOrderFields {
            side: Some(side),
            qty_mwh: Some("1.125"),
            limit_price: Some(price),
            hour_start_utc: Some(&format_ms(&due)),
            location: Some(location),
            location_type: Some("HUB"),
        })
        .expect("valid order")
    }

    /// A batch with due times of every millisecond form (none, .5, .12, .007), in no order.
    fn book(n: usize) -> Vec<NewOrder> {
        let start = truncate_ms(Utc::now() + Duration::days(1));
        let start = start - Duration::milliseconds(start.timestamp_subsec_millis().into());
        let offsets = [0, 500, 120, 7, 999];
        (0..n)
            .map(|i| {
                let due = start
                    + Duration::hours(((i * 7) % 24) as i64)
                    + Duration::milliseconds(offsets[i % offsets.len()]);
                let price = format!("{}.{:02}", 30 + i % 9, i % 100);
                let side = if i % 2 == 0 { "BUY" } else { "SELL" };
                order(
                    due,
                    side,
                    &price,
                    if i % 3 == 0 { "PJM-RTO" } else { "BGE" },
                )
            })
            .collect()
    }

    #[derive(QueryableByName)]
    struct Raw {
        #[diesel(sql_type = Text)]
        created: String,
        #[diesel(sql_type = Text)]
        due: String,
        #[diesel(sql_type = Nullable<Text>)]
        key: Option<String>,
    }

    #[derive(QueryableByName)]
    struct Encoded {
        #[diesel(sql_type = Text)]
        text: String,
    }

    /// What diesel itself binds for a timestamp on SQLite: the form every query compares
    /// with, so every stored time must have it.
    fn diesel_text(conn: &mut DbConnection, t: DateTime<Utc>) -> String {
        diesel::sql_query("SELECT CAST(? AS TEXT) AS text")
            .bind::<Timestamp, _>(t.naive_utc())
            .get_result::<Encoded>(conn)
            .map(|e| e.text)
            .expect("encode")
    }

    /// Every column as diesel's own insert wrote it: decoded equal to the answer, times in
    /// diesel's text form, keys with characters JSON must escape intact (a repeat finds
    /// them), one creation event per order with its details, events in input order.
    fn batch_rows_are_stored_as_diesel_writes_them(db: &TestDb) {
        let store = db.store();
        let news = book(40);
        let key = "day \"ahead\" \\ \u{7f} ü ☃";
        let idem = Idempotency {
            key,
            request_hash: "hash \"h\"",
        };
        let inserted = store
            .insert_batch(&news, Some(idem), "api:\"tester\"")
            .expect("batch");
        let mut conn = store.checkout().expect("conn");
        let mut last_event = 0;
        for (i, (got, new)) in inserted.iter().zip(&news).enumerate() {
            assert!(got.created);
            assert_eq!(got.order.hour_start_utc, new.hour_start_utc());
            assert_eq!(store.get_order(&got.order.id).expect("stored"), got.order);
            let events = store.order_events(&got.order.id).expect("events");
            assert_eq!(events.len(), 1);
            let event = &events[0];
            assert!(event.id > last_event, "event ids follow the input order");
            last_event = event.id;
            assert_eq!(event.actor, "api:\"tester\"");
            assert_eq!(event.from_status, None);
            assert_eq!(event.to_status, OrderStatus::Pending);
            assert_eq!(event.at, got.order.created_at);
            assert_eq!(
                event.details,
                json!({
                    "side": new.side(), "qty_mwh": new.qty_mwh(),
                    "limit_price": new.limit_price(), "location": new.location(),
                })
            );
            let raw: Raw = diesel::sql_query(format!(
                "SELECT CAST(created_at AS TEXT) AS created, CAST(hour_start_utc AS TEXT) AS due, \
                 idempotency_key AS key FROM orders WHERE id = '{}'",
                got.order.id
            ))
            .get_result(&mut *conn)
            .expect("raw row");
            assert_eq!(raw.key.as_deref(), Some(batch_key(key, i).as_str()));
            if !store.is_postgres() {
                // SQLite compares times as text: one form, diesel's, or the index and every
                // "due by" query go wrong.
                assert_eq!(raw.due, diesel_text(&mut conn, new.hour_start_utc()));
                assert_eq!(raw.created, diesel_text(&mut conn, got.order.created_at));
            }
        }
        drop(conn);
        let again = store
            .insert_batch(&news, Some(idem), "api")
            .expect("repeat");
        assert!(again.iter().all(|i| !i.created));
        assert_eq!(
            again.iter().map(|i| &i.order).collect::<Vec<_>>(),
            inserted.iter().map(|i| &i.order).collect::<Vec<_>>()
        );
        assert_eq!(store.row_counts().expect("counts"), (40, 40));
    }

    /// More orders than one multi-row `VALUES` could bind on Postgres (65,535 parameters at
    /// 12 per order) go in one call.
    fn a_batch_larger_than_the_parameter_limit_is_stored(db: &TestDb) {
        let store = db.store();
        let news = book(6_000);
        let inserted = store.insert_batch(&news, None, "api").expect("batch");
        assert_eq!(inserted.len(), 6_000);
        assert_eq!(store.row_counts().expect("counts"), (6_000, 6_000));
        let last = &inserted[5_999].order;
        assert_eq!(store.get_order(&last.id).expect("stored"), *last);
    }

    /// The insert is noticed by a watcher on another pool, with the batch's earliest due time
    /// (on Postgres through the insert trigger's notification, which must still fire).
    fn a_batch_wakes_the_watchers_with_its_earliest_due_time(db: &TestDb) {
        let watched = db.store();
        let (tx, rx) = std::sync::mpsc::channel();
        let _watch = watched
            .watch_due(std::time::Duration::from_millis(10), move |t| {
                let _ = tx.send(t);
            })
            .expect("watcher");
        // Listening by then (an empty book: nothing to report on connect).
        std::thread::sleep(std::time::Duration::from_millis(500));
        let other = Store::open(&db.url, &PoolConfig::default()).expect("second store");
        let base = truncate_ms(Utc::now() + Duration::hours(2));
        let news: Vec<NewOrder> = [3, 1, 2]
            .iter()
            .map(|h| order(base + Duration::hours(*h), "BUY", "40.00", "PJM-RTO"))
            .collect();
        other.insert_batch(&news, None, "cli").expect("batch");
        let earliest = base + Duration::hours(1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut heard = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(t) if t == earliest => return,
                Ok(t) => heard.push(t),
                Err(_) => break,
            }
        }
        panic!("the watcher did not report {earliest}; it reported {heard:?}");
    }

    /// The details text is the one `json!` wrote before, over the whole range of amounts.
    #[test]
    fn creation_details_are_the_json_macro_text() {
        let due = Utc::now() + Duration::days(1);
        let prices = [
            "-1000", "-999.99", "-0.01", "0", "0.1", "0.10", "40.1", "40.10", "49.99",
        ];
        let more = [
            "1234.56", "9999.99", "10000", "0.07", "33.33", "3.3", "1e2", "0.3",
        ];
        let quantities = [
            "0.001", "0.1", "1", "1.125", "2.5", "3.333", "9999.999", "10000",
        ];
        for (i, price) in prices.iter().chain(&more).enumerate() {
            for qty in quantities {
                let new = NewOrder::from_fields(&NewOrderFields {
                    side: Some(if i % 2 == 0 { "BUY" } else { "sell" }),
                    qty_mwh: Some(qty),
                    limit_price: Some(price),
                    hour_start_utc: Some(&format_ms(&due)),
                    location: Some("West_Hub.2"),
                    location_type: None,
                })
                .expect("valid order");
                let before = json!({
                    "side": new.side(), "qty_mwh": new.qty_mwh(),
                    "limit_price": new.limit_price(), "location": new.location(),
                })
                .to_string();
                assert_eq!(creation_details(&new), before, "{price} {qty}");
            }
        }
        // Every scaled price of a range, each with a few quantities.
        for cents in -2_000i64..2_000 {
            let new = NewOrder::new(
                ::orders::Side::Buy,
                ::orders::Quantity::from_scaled(cents.abs() * 37 + 1),
                ::orders::Price::from_scaled(cents * 7),
                ::orders::Location::parse("PJM-RTO").expect("location"),
                LocationType::Zone,
                due,
            )
            .expect("valid order");
            let before = json!({
                "side": new.side(), "qty_mwh": new.qty_mwh(),
                "limit_price": new.limit_price(), "location": new.location(),
            })
            .to_string();
            assert_eq!(creation_details(&new), before);
        }
    }

    crate::backend_tests!(
        batch_rows_are_stored_as_diesel_writes_them,
        a_batch_larger_than_the_parameter_limit_is_stored,
        a_batch_wakes_the_watchers_with_its_earliest_due_time,
    );
}
