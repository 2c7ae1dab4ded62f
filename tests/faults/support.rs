//! Helpers shared by the fault scenarios: a lock that runs the heavy scenarios one at a time,
//! order generation and creation over HTTP, polling, and the database checks every scenario
//! ends with (exactly one moderation event per order, no half-written row, lateness from the
//! history).

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use diesel::dsl::count_star;
use diesel::prelude::*;
use orders::{Location, LocationType, NewOrder, OrderStatus, Price, Quantity, Side};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use storage::schema::{order_events, orders as orders_t};
use storage::Store;

static HEAVY: Mutex<()> = Mutex::new(());

/// Serialises the scenarios that load the 2 cores or measure time, so they neither slow each
/// other down nor make each other late. A panicking holder does not poison it for the others.
pub fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// A blocking HTTP client with a 10 s timeout.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client")
}

/// `n` valid orders whose due times are spread evenly over `[from, from + spread)`.
pub fn orders_due(n: usize, from: DateTime<Utc>, spread: Duration) -> Vec<NewOrder> {
    let spread_ms = spread.as_millis().max(1) as i64;
    (0..n)
        .map(|i| {
            let offset = (i as i64 * spread_ms) / n.max(1) as i64;
            let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
            NewOrder::new(
                side,
                Quantity::parse(&format!("{}.{:03}", 1 + i % 50, i % 1000)).expect("qty"),
                Price::parse(&format!("{}.{:02}", 20 + i % 40, i % 100)).expect("price"),
                Location::parse(["PJM-RTO", "ERCOT-HOUSTON", "CAISO-SP15"][i % 3])
                    .expect("location"),
                LocationType::Zone,
                from + ChronoDuration::milliseconds(offset),
            )
            .expect("a valid order")
        })
        .collect()
}

/// Inserts orders in slices of 5,000 (one transaction each).
pub fn insert_all(store: &Store, news: &[NewOrder]) {
    for chunk in news.chunks(5_000) {
        store
            .insert_orders(chunk, "fault-suite")
            .expect("bulk insert");
    }
}

/// Polls `check` every `every` until it returns `Some`, or panics after `limit` naming `what`.
pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(every);
    }
}

/// Moderation events written so far (PENDING → APPROVED/REJECTED); cheap enough to poll.
pub fn moderation_events(store: &Store) -> Result<i64, storage::StorageError> {
    let mut conn = store.conn()?;
    order_events::table
        .filter(order_events::from_status.eq(OrderStatus::Pending.as_str()))
        .filter(order_events::to_status.eq_any(["APPROVED", "REJECTED"]))
        .select(count_star())
        .first::<i64>(&mut *conn)
        .map_err(storage::StorageError::from)
}

/// What the end-of-scenario check found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Audit {
    /// Orders in the table.
    pub orders: i64,
    /// Orders with no moderation event (lost, if the run is over).
    pub without_event: i64,
    /// Orders with exactly one moderation event.
    pub with_one_event: i64,
    /// Orders with more than one (duplicates).
    pub duplicated: i64,
    /// Orders neither APPROVED nor REJECTED.
    pub not_final: i64,
    /// APPROVED rows without an LMP or a moderation time.
    pub approved_half_written: i64,
    /// REJECTED rows without a reason or a moderation time.
    pub rejected_half_written: i64,
    /// APPROVED orders.
    pub approved: i64,
    /// REJECTED orders.
    pub rejected: i64,
}

impl Audit {
    /// Counts everything the scenarios assert on.
    pub fn of(store: &Store) -> Audit {
        let (without_event, with_one_event, duplicated) =
            store.moderation_event_multiplicity().expect("multiplicity");
        let mut conn = store.conn().expect("a connection");
        let count = |status: Option<&str>, conn: &mut storage::PooledConnection| {
            let mut q = orders_t::table.select(count_star()).into_boxed();
            if let Some(s) = status {
                q = q.filter(orders_t::status.eq(s.to_string()));
            }
            q.first::<i64>(&mut **conn).expect("count")
        };
        let orders = count(None, &mut conn);
        let approved = count(Some("APPROVED"), &mut conn);
        let rejected = count(Some("REJECTED"), &mut conn);
        let approved_half_written = orders_t::table
            .filter(orders_t::status.eq("APPROVED"))
            .filter(
                orders_t::approval_rt_lmp_cents
                    .is_null()
                    .or(orders_t::approved_at.is_null())
                    .or(orders_t::approval_rt_source.is_null()),
            )
            .select(count_star())
            .first::<i64>(&mut *conn)
            .expect("count approved");
        let rejected_half_written = orders_t::table
            .filter(orders_t::status.eq("REJECTED"))
            .filter(
                orders_t::reject_reason
                    .is_null()
                    .or(orders_t::approved_at.is_null()),
            )
            .select(count_star())
            .first::<i64>(&mut *conn)
            .expect("count rejected");
        Audit {
            orders,
            without_event,
            with_one_event,
            duplicated,
            not_final: orders - approved - rejected,
            approved_half_written,
            rejected_half_written,
            approved,
            rejected,
        }
    }

    /// Asserts the end state of a finished run: every one of `expected` orders moderated
    /// exactly once and fully written.
    pub fn assert_complete(&self, scenario: &str, expected: i64) {
        assert_eq!(
            self.orders, expected,
            "{scenario}: orders in the table: {self:?}"
        );
        assert_eq!(
            self.duplicated, 0,
            "{scenario}: orders moderated more than once: {self:?}"
        );
        assert_eq!(
            self.without_event, 0,
            "{scenario}: orders never moderated: {self:?}"
        );
        assert_eq!(self.with_one_event, expected, "{scenario}: {self:?}");
        assert_eq!(
            self.not_final, 0,
            "{scenario}: orders not APPROVED/REJECTED: {self:?}"
        );
        assert_eq!(
            self.approved_half_written, 0,
            "{scenario}: half-written approvals: {self:?}"
        );
        assert_eq!(
            self.rejected_half_written, 0,
            "{scenario}: half-written rejections: {self:?}"
        );
    }
}

/// Moderation lateness in ms (event time minus due time) of every moderated order, from the
/// history, and the number of moderation events per actor.
pub fn lateness_ms(store: &Store) -> (Vec<i64>, std::collections::BTreeMap<String, u64>) {
    let mut after = 0;
    let mut late = Vec::new();
    let mut actors = std::collections::BTreeMap::new();
    loop {
        let page = store.events_after(after, 5_000).expect("events");
        let Some(last) = page.last() else { break };
        after = last.event.id;
        for e in page {
            if e.event.from_status == Some(OrderStatus::Pending)
                && matches!(
                    e.event.to_status,
                    OrderStatus::Approved | OrderStatus::Rejected
                )
            {
                late.push((e.event.at - e.hour_start_utc).num_milliseconds());
                *actors.entry(e.event.actor.clone()).or_insert(0) += 1;
            }
        }
    }
    late.sort_unstable();
    (late, actors)
}

/// The value at fraction `p` (0..=1) of sorted `v`, or 0 when empty: the workspace's one
/// percentile ([`scheduler::stats::percentile`], nearest rank), so that the figures the
/// scenarios print mean what the status and the benchmark mean.
pub fn pct(v: &[i64], p: f64) -> i64 {
    scheduler::stats::percentile(v, p * 100.0).unwrap_or(0)
}

/// Creates one order due at `due` (whole milliseconds) through `POST /api/v1/orders` of the
/// server at `base`, and returns its id; panics on anything but a 2xx answer.
pub fn create_order_due(
    http: &reqwest::blocking::Client,
    base: &str,
    due: DateTime<Utc>,
) -> String {
    let r = http
        .post(format!("{base}/api/v1/orders"))
        .json(&serde_json::json!({
            "side": "BUY", "qty_mwh": "3.5", "limit_price": "42.5",
            "hour_start_utc": orders::format_ms(&due),
        }))
        .send()
        .expect("create an order");
    let status = r.status();
    let body: serde_json::Value = r.json().expect("a JSON answer");
    assert!(status.is_success(), "create: {status} {body}");
    let order = if body["id"].is_string() {
        &body
    } else {
        &body["order"]
    };
    order["id"].as_str().expect("an order id").to_string()
}

/// When order `id` has been moderated: how late (its moderation event's time minus its due
/// time, ms) and by whom (the event's actor); `None` while it is not, or on a read error.
pub fn moderation_of(store: &Store, id: &str) -> Option<(i64, String)> {
    let order = store.get_order(id).ok()?;
    store
        .order_events(id)
        .ok()?
        .into_iter()
        .find(|e| {
            e.from_status == Some(OrderStatus::Pending)
                && matches!(e.to_status, OrderStatus::Approved | OrderStatus::Rejected)
        })
        .map(|e| ((e.at - order.hour_start_utc).num_milliseconds(), e.actor))
}
