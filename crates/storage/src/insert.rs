//! Creating orders: one at a time with an optional idempotency key, or many at once; each with
//! its creation event, in one transaction.

use crate::backend::{on_backend, Backend};
use crate::connection::DbConnection;
use crate::error::StorageError;
use crate::models::{NewEventRow, NewOrderRow};
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

/// Inserts orders and their creation events (multi-row inserts run on the inner connection:
/// they do not compile on the enum).
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
    on_backend!(conn, c => B::insert_rows(c, &rows, &events))
}
