//! Every storage function on both backends, each test on its own fresh database.

use chrono::{Duration, Utc};
use diesel::connection::SimpleConnection;
use orders::{
    format_ms, parse_due_time, Decision, LocationType, NewOrder, NewOrderFields, OrderStatus,
    Price, Side,
};
use std::collections::HashMap;
use storage::testing::TestDb;
use storage::{ClaimScope, Decided, Idempotency, ManualChange, OrderFilter, StorageError, Store};

fn order_due(due: chrono::DateTime<Utc>, side: &str, location: &str) -> NewOrder {
    NewOrder::from_fields(&NewOrderFields {
        side: Some(side),
        qty_mwh: Some("2.5"),
        limit_price: Some("40.10"),
        hour_start_utc: Some(&format_ms(&due)),
        location: Some(location),
        location_type: Some("HUB"),
    })
    .expect("valid order")
}

fn approve_all(
    price_cents: i64,
) -> impl FnMut(&orders::Order, chrono::DateTime<Utc>) -> Result<Decided, String> {
    move |_, _| {
        Ok(Decided {
            decision: Decision::Approved {
                rt_lmp: Price::from_scaled(price_cents),
            },
            details: serde_json::json!({"test": true}),
        })
    }
}

fn insert_and_get_round_trip(db: &TestDb) {
    let store = db.store();
    let due = parse_due_time("2030-01-02T03:04:05.678+02:00").expect("time");
    let inserted = store
        .insert_order(&order_due(due, "sell", "PJM-RTO"), None, "api")
        .expect("insert");
    assert!(inserted.created);
    let got = store.get_order(&inserted.order.id).expect("get");
    assert_eq!(got, inserted.order);
    assert_eq!(format_ms(&got.hour_start_utc), "2030-01-02T01:04:05.678Z");
    assert_eq!(got.side, Side::Sell);
    assert_eq!(got.location_type, LocationType::Hub);
    assert_eq!(got.qty_mwh.to_string(), "2.5");
    assert_eq!(got.limit_price.to_string(), "40.1");
    assert_eq!(got.status, OrderStatus::Pending);
    assert_eq!(got.approved_at, None);
    let events = store.order_events(&got.id).expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].from_status, events[0].to_status),
        (None, OrderStatus::Pending)
    );
    assert!(matches!(
        store.get_order("no-such-id"),
        Err(StorageError::NotFound(_))
    ));
}

fn insert_idempotency_key_returns_the_original(db: &TestDb) {
    let store = db.store();
    let o = order_due(Utc::now() + Duration::hours(1), "BUY", "A");
    let key = Idempotency {
        key: "k-1",
        request_hash: "h-1",
    };
    let first = store.insert_order(&o, Some(key), "api").expect("first");
    let again = store.insert_order(&o, Some(key), "api").expect("repeat");
    assert!(first.created && !again.created);
    assert_eq!(first.order.id, again.order.id);
    let other = store.insert_order(
        &o,
        Some(Idempotency {
            key: "k-1",
            request_hash: "h-2",
        }),
        "api",
    );
    assert!(
        matches!(other, Err(StorageError::IdempotencyMismatch { ref order_id }) if *order_id == first.order.id)
    );
    assert_eq!(store.row_counts().expect("counts"), (1, 1));
}

fn fetch_orders_splits_open_and_closed_newest_first(db: &TestDb) {
    let store = db.store();
    let past = Utc::now() - Duration::minutes(1);
    let mut ids = Vec::new();
    for i in 0..6 {
        let loc = if i % 2 == 0 { "EAST" } else { "WEST" };
        ids.push(
            store
                .insert_order(&order_due(past, "BUY", loc), None, "api")
                .expect("insert")
                .order
                .id,
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // Close the first two.
    store
        .claim_and_apply(ClaimScope::Due, 2, "test", approve_all(4000))
        .expect("claim");
    let (open, closed) = store.fetch_orders(200, 200, None).expect("fetch");
    assert_eq!((open.len(), closed.len()), (4, 2));
    assert!(
        open.windows(2).all(|w| w[0].created_at >= w[1].created_at),
        "newest first"
    );
    assert!(open.iter().all(|o| o.status == OrderStatus::Pending));
    assert!(closed.iter().all(|o| o.status == OrderStatus::Approved));
    let (open, closed) = store.fetch_orders(1, 1, None).expect("fetch limited");
    assert_eq!((open.len(), closed.len()), (1, 1));
    assert_eq!(open[0].id, ids[5], "the newest open order");
    let (open, closed) = store
        .fetch_orders(200, 200, Some("WEST"))
        .expect("fetch by location");
    assert!(open.iter().chain(&closed).all(|o| o.location == "WEST"));
    assert_eq!(open.len() + closed.len(), 3);
}

fn list_orders_filters_and_paginates(db: &TestDb) {
    let store = db.store();
    let base = Utc::now() + Duration::hours(2);
    for i in 0..25 {
        let side = if i % 5 == 0 { "SELL" } else { "BUY" };
        store
            .insert_order(
                &order_due(base + Duration::minutes(i), side, "L"),
                None,
                "api",
            )
            .expect("insert");
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list_orders(&OrderFilter::default(), cursor.as_deref(), 10)
            .expect("page");
        assert!(page.orders.len() <= 10);
        seen.extend(page.orders.iter().map(|o| o.id.clone()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "pages are newest first with no overlap");
    let sells = store
        .list_orders(
            &OrderFilter {
                side: Some(Side::Sell),
                ..Default::default()
            },
            None,
            100,
        )
        .expect("sells");
    assert_eq!(sells.orders.len(), 5);
    let window = OrderFilter {
        due_from: Some(base + Duration::minutes(10)),
        due_to: Some(base + Duration::minutes(15)),
        status: Some(OrderStatus::Pending),
        ..Default::default()
    };
    assert_eq!(
        store
            .list_orders(&window, None, 100)
            .expect("window")
            .orders
            .len(),
        5
    );
}

fn due_summary_counts_due_upcoming_and_next(db: &TestDb) {
    let store = db.store();
    let now = Utc::now();
    assert_eq!(store.next_due().expect("next"), None);
    for m in [-30, -1] {
        store
            .insert_order(
                &order_due(now + Duration::minutes(m), "BUY", "L"),
                None,
                "api",
            )
            .expect("insert");
    }
    for m in [2, 5, 9] {
        store
            .insert_order(
                &order_due(now + Duration::minutes(m), "BUY", "L"),
                None,
                "api",
            )
            .expect("insert");
    }
    store
        .insert_order(
            &order_due(now + Duration::minutes(60), "BUY", "L"),
            None,
            "api",
        )
        .expect("insert");
    let s = store
        .due_summary(now, Duration::minutes(10))
        .expect("summary");
    assert_eq!((s.pending_due_now, s.upcoming, s.parked), (2, 3, 0));
    let earliest = orders::truncate_ms(now - Duration::minutes(30));
    assert_eq!(s.next_due, Some(earliest));
    assert_eq!(store.next_due().expect("next"), Some(earliest));
    let soon = store
        .upcoming_due_times(now, now + Duration::minutes(5), 10)
        .expect("upcoming");
    assert_eq!(soon.len(), 2);
}

fn claim_moderates_only_due_orders_once(db: &TestDb) {
    let store = db.store();
    let now = Utc::now();
    for _ in 0..5 {
        store
            .insert_order(
                &order_due(now - Duration::seconds(5), "BUY", "L"),
                None,
                "api",
            )
            .expect("insert");
    }
    let future = store
        .insert_order(
            &order_due(now + Duration::hours(1), "BUY", "L"),
            None,
            "api",
        )
        .expect("insert");
    let mut calls = 0;
    let result = store
        .claim_and_apply(ClaimScope::Due, 3, "scheduler:test", |o, at| {
            calls += 1;
            assert!(o.hour_start_utc <= at);
            Ok(Decided {
                decision: if calls % 2 == 0 {
                    Decision::Rejected {
                        reason: "Grid constraints".into(),
                    }
                } else {
                    Decision::Approved {
                        rt_lmp: Price::from_scaled(4321),
                    }
                },
                details: serde_json::json!({"n": calls}),
            })
        })
        .expect("claim");
    assert_eq!(result.moderated.len(), 3, "bounded by the limit");
    let rest = store
        .claim_and_apply(ClaimScope::Due, 100, "scheduler:test", approve_all(4000))
        .expect("claim");
    assert_eq!(rest.moderated.len(), 2);
    let none = store
        .claim_and_apply(ClaimScope::Due, 100, "scheduler:test", approve_all(4000))
        .expect("claim");
    assert_eq!(none.claimed(), 0, "nothing left that is due");
    assert_eq!(
        store.get_order(&future.order.id).expect("get").status,
        OrderStatus::Pending
    );
    for o in &result.moderated {
        let stored = store.get_order(&o.id).expect("get");
        assert_eq!(&stored, o, "the returned order is what was written");
        assert!(
            stored.approved_at.is_some(),
            "moderation time is set on both outcomes"
        );
        match stored.status {
            OrderStatus::Approved => {
                assert_eq!(stored.approval_rt_lmp, Some(Price::from_scaled(4321)));
                assert_eq!(
                    stored.approval_rt_source.as_deref(),
                    Some(orders::RT_SOURCE)
                );
                assert!(stored.approval_rt_interval_start_utc.is_some());
            }
            OrderStatus::Rejected => {
                assert_eq!(stored.reject_reason.as_deref(), Some("Grid constraints"))
            }
            other => panic!("unexpected {other}"),
        }
        let events = store.order_events(&o.id).expect("events");
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].from_status, Some(OrderStatus::Pending));
        assert_eq!(events[1].to_status, stored.status);
        assert_eq!(events[1].actor, "scheduler:test");
        assert!(events[1].details.get("n").is_some());
    }
    assert_eq!(
        store.moderation_event_multiplicity().expect("mult"),
        (1, 5, 0)
    );
}

fn claim_by_hour_takes_only_that_hour(db: &TestDb) {
    let store = db.store();
    let hour = parse_due_time("2031-05-05T10:00:00Z").expect("time");
    for _ in 0..3 {
        store
            .insert_order(&order_due(hour, "BUY", "L"), None, "api")
            .expect("insert");
    }
    store
        .insert_order(
            &order_due(hour + Duration::hours(1), "BUY", "L"),
            None,
            "api",
        )
        .expect("insert");
    let r = store
        .claim_and_apply(ClaimScope::Hour(hour), 100, "admin", approve_all(3900))
        .expect("claim");
    assert_eq!(
        r.moderated.len(),
        3,
        "future orders of that hour are moderated on demand"
    );
    assert!(r.moderated.iter().all(|o| o.hour_start_utc == hour));
    let s = store
        .due_summary(Utc::now(), Duration::minutes(10))
        .expect("summary");
    assert_eq!(s.next_due, Some(hour + Duration::hours(1)));
}

fn claim_rolled_back_on_error_or_panic(db: &TestDb) {
    let store = db.store();
    for _ in 0..4 {
        store
            .insert_order(
                &order_due(Utc::now() - Duration::seconds(1), "BUY", "L"),
                None,
                "api",
            )
            .expect("insert");
    }
    let mut n = 0;
    let err = store.claim_and_apply(ClaimScope::Due, 10, "t", |_, _| {
        n += 1;
        if n == 3 {
            Err("boom".to_string())
        } else {
            Ok(Decided {
                decision: Decision::Approved {
                    rt_lmp: Price::from_scaled(1),
                },
                details: serde_json::json!({}),
            })
        }
    });
    assert!(
        matches!(err, Err(StorageError::Decide { ref reason, .. }) if reason.contains("boom")),
        "{err:?}"
    );
    let mut m = 0;
    let panicked = store.claim_and_apply(ClaimScope::Due, 10, "t", |_, _| {
        m += 1;
        if m == 2 {
            panic!("decider exploded");
        }
        Ok(Decided {
            decision: Decision::Approved {
                rt_lmp: Price::from_scaled(1),
            },
            details: serde_json::json!({}),
        })
    });
    assert!(
        matches!(panicked, Err(StorageError::Decide { ref reason, .. }) if reason.contains("exploded")),
        "{panicked:?}"
    );
    let (open, closed) = store.fetch_orders(100, 100, None).expect("fetch");
    assert_eq!(
        (open.len(), closed.len()),
        (4, 0),
        "everything is still PENDING"
    );
    assert_eq!(
        store.row_counts().expect("counts"),
        (4, 4),
        "only the creation events"
    );
    // The pool still works after the rollbacks.
    let ok = store
        .claim_and_apply(ClaimScope::Due, 10, "t", approve_all(100))
        .expect("claim");
    assert_eq!(ok.moderated.len(), 4);
}

fn claim_parks_rows_that_do_not_decode(db: &TestDb) {
    let store = db.store();
    let due = Utc::now() - Duration::seconds(1);
    let bad = store
        .insert_order(&order_due(due, "BUY", "L"), None, "api")
        .expect("insert")
        .order
        .id;
    for _ in 0..3 {
        store
            .insert_order(&order_due(due, "BUY", "L"), None, "api")
            .expect("insert");
    }
    store
        .conn()
        .expect("conn")
        .batch_execute(&format!(
            "UPDATE orders SET side = 'SIDEWAYS' WHERE id = '{bad}'"
        ))
        .expect("corrupt a row");
    let r = store
        .claim_and_apply(ClaimScope::Due, 10, "t", approve_all(4000))
        .expect("claim");
    assert_eq!(r.moderated.len(), 3);
    assert_eq!(r.parked.len(), 1);
    assert_eq!(r.parked[0].0, bad);
    assert!(r.parked[0].1.contains("SIDEWAYS"));
    let again = store
        .claim_and_apply(ClaimScope::Due, 10, "t", approve_all(4000))
        .expect("claim");
    assert_eq!(
        again.claimed(),
        0,
        "the parked row no longer blocks or repeats"
    );
    let s = store
        .due_summary(Utc::now(), Duration::minutes(10))
        .expect("summary");
    assert_eq!((s.pending_due_now, s.parked), (0, 1));
    assert_eq!(store.parked_orders(10).expect("parked")[0].0, bad);
}

fn manual_transitions_follow_the_table(db: &TestDb) {
    let store = db.store();
    let later = Utc::now() + Duration::hours(1);
    let a = store
        .insert_order(&order_due(later, "BUY", "L"), None, "api")
        .expect("insert")
        .order
        .id;
    let change = |to, lmp: Option<i64>| ManualChange {
        to: Some(to),
        rt_lmp: lmp.map(Price::from_scaled),
        ..Default::default()
    };
    assert!(matches!(
        store.transition(&a, &change(OrderStatus::Approved, None), "admin"),
        Err(StorageError::MissingField(_))
    ));
    assert!(matches!(
        store.transition(&a, &change(OrderStatus::Cleared, None), "admin"),
        Err(StorageError::IllegalTransition(_))
    ));
    let approved = store
        .transition(&a, &change(OrderStatus::Approved, Some(4555)), "admin")
        .expect("approve");
    assert_eq!(approved.status, OrderStatus::Approved);
    assert_eq!(approved.approval_rt_source.as_deref(), Some("MANUAL"));
    assert!(
        matches!(
            store.transition(&a, &change(OrderStatus::Rejected, None), "admin"),
            Err(StorageError::IllegalTransition(_))
        ),
        "a settled order cannot be overwritten"
    );
    let cleared = store
        .transition(&a, &change(OrderStatus::Cleared, None), "admin")
        .expect("clear");
    assert_eq!(cleared.status, OrderStatus::Cleared);
    assert_eq!(
        cleared.approval_rt_lmp,
        Some(Price::from_scaled(4555)),
        "settlement keeps the LMP"
    );
    let b = store
        .insert_order(&order_due(later, "BUY", "L"), None, "api")
        .expect("insert")
        .order
        .id;
    let cancelled = store
        .transition(&b, &change(OrderStatus::Cancelled, None), "api")
        .expect("cancel");
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert!(matches!(
        store.transition(&b, &change(OrderStatus::Cancelled, None), "api"),
        Err(StorageError::IllegalTransition(_))
    ));
    assert!(matches!(
        store.transition("missing", &change(OrderStatus::Cancelled, None), "api"),
        Err(StorageError::NotFound(_))
    ));
    let history: Vec<_> = store
        .order_events(&a)
        .expect("events")
        .iter()
        .map(|e| e.to_status)
        .collect();
    assert_eq!(
        history,
        vec![
            OrderStatus::Pending,
            OrderStatus::Approved,
            OrderStatus::Cleared
        ]
    );
}

fn pnl_totals_are_exact(db: &TestDb) {
    let store = db.store();
    let due = Utc::now() - Duration::seconds(1);
    // 2.5 MWh at limit 40.10: BUY approved at 43.21 → +7.775; SELL approved at 43.21 → -7.775.
    store
        .insert_order(&order_due(due, "BUY", "P"), None, "api")
        .expect("insert");
    store
        .insert_order(&order_due(due, "SELL", "P"), None, "api")
        .expect("insert");
    store
        .insert_order(&order_due(due, "BUY", "Q"), None, "api")
        .expect("insert");
    store
        .claim_and_apply(ClaimScope::Due, 10, "t", approve_all(4321))
        .expect("claim");
    store
        .insert_order(
            &order_due(due + Duration::hours(2), "BUY", "P"),
            None,
            "api",
        )
        .expect("insert");
    let all = store.pnl_totals(None).expect("totals");
    assert_eq!(all.total_pnl.to_string(), "7.775");
    assert_eq!(
        (all.open_count, all.closed_count, all.approved_count),
        (1, 3, 3)
    );
    let p = store.pnl_totals(Some("P")).expect("totals");
    assert_eq!(p.total_pnl.to_string(), "0");
    assert_eq!((p.open_count, p.closed_count), (1, 2));
}

fn delete_orders_removes_orders_and_history(db: &TestDb) {
    let store = db.store();
    for _ in 0..3 {
        store
            .insert_order(
                &order_due(Utc::now() + Duration::hours(1), "BUY", "L"),
                None,
                "api",
            )
            .expect("insert");
    }
    assert_eq!(
        store
            .delete_orders(Some(OrderStatus::Approved))
            .expect("delete"),
        0
    );
    assert_eq!(store.delete_orders(None).expect("delete"), 3);
    assert_eq!(store.row_counts().expect("counts"), (0, 0));
}

fn events_after_pages_through_history(db: &TestDb) {
    let store = db.store();
    let due = Utc::now() + Duration::hours(1);
    for _ in 0..5 {
        store
            .insert_order(&order_due(due, "BUY", "L"), None, "api")
            .expect("insert");
    }
    let first = store.events_after(0, 3).expect("events");
    assert_eq!(first.len(), 3);
    let rest = store.events_after(first[2].event.id, 10).expect("events");
    assert_eq!(rest.len(), 2);
    assert!(rest[0].event.id > first[2].event.id);
    assert_eq!(rest[0].hour_start_utc, orders::truncate_ms(due));
    assert_eq!(store.last_event_id().expect("last"), rest[1].event.id);
}

fn concurrent_claimers_never_share_an_order(db: &TestDb) {
    let store = db.store();
    let due = Utc::now() - Duration::seconds(1);
    let batch: Vec<NewOrder> = (0..10_000).map(|_| order_due(due, "BUY", "L")).collect();
    assert_eq!(
        store
            .insert_orders(&batch, "seed")
            .expect("bulk insert")
            .len(),
        10_000
    );
    let handles: Vec<_> = (0..2)
        .map(|t| {
            let store: Store = store.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                loop {
                    let r = store
                        .claim_and_apply(
                            ClaimScope::Due,
                            250,
                            &format!("worker-{t}"),
                            approve_all(4000),
                        )
                        .expect("claim");
                    if r.claimed() == 0 {
                        break mine;
                    }
                    mine.extend(r.moderated.into_iter().map(|o| o.id));
                }
            })
        })
        .collect();
    let mut owner: HashMap<String, usize> = HashMap::new();
    let mut per_thread = Vec::new();
    for (t, h) in handles.into_iter().enumerate() {
        let ids = h.join().expect("worker");
        per_thread.push(ids.len());
        for id in ids {
            assert!(owner.insert(id, t).is_none(), "an order was claimed twice");
        }
    }
    assert_eq!(owner.len(), 10_000, "per thread: {per_thread:?}");
    assert_eq!(
        store.moderation_event_multiplicity().expect("mult"),
        (0, 10_000, 0)
    );
}

fn migrations_are_idempotent(db: &TestDb) {
    let first = db.store();
    first
        .insert_order(&order_due(Utc::now(), "BUY", "L"), None, "api")
        .expect("insert");
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let url = db.url.clone();
            std::thread::spawn(move || {
                Store::open(&url, &storage::PoolConfig::default()).map(|_| ())
            })
        })
        .collect();
    for h in handles {
        h.join()
            .expect("thread")
            .expect("concurrent open and migrate");
    }
    assert_eq!(first.row_counts().expect("counts"), (1, 1));
    first.ping().expect("ping");
}

storage::backend_tests!(
    insert_and_get_round_trip,
    insert_idempotency_key_returns_the_original,
    fetch_orders_splits_open_and_closed_newest_first,
    list_orders_filters_and_paginates,
    due_summary_counts_due_upcoming_and_next,
    claim_moderates_only_due_orders_once,
    claim_by_hour_takes_only_that_hour,
    claim_rolled_back_on_error_or_panic,
    claim_parks_rows_that_do_not_decode,
    manual_transitions_follow_the_table,
    pnl_totals_are_exact,
    delete_orders_removes_orders_and_history,
    events_after_pages_through_history,
    concurrent_claimers_never_share_an_order,
    migrations_are_idempotent,
);

#[test]
fn urls_choose_the_backend_by_scheme() {
    use storage::DatabaseUrl;
    assert!(DatabaseUrl::parse("postgres://x@h/db")
        .expect("pg")
        .is_postgres());
    assert!(DatabaseUrl::parse("postgresql://h/db")
        .expect("pg")
        .is_postgres());
    assert_eq!(
        DatabaseUrl::parse("sqlite://./data/o.db").expect("sqlite"),
        DatabaseUrl::Sqlite("./data/o.db".into())
    );
    assert_eq!(
        DatabaseUrl::parse("orders.db").expect("path"),
        DatabaseUrl::Sqlite("orders.db".into())
    );
    for bad in ["", "mysql://h/db", "sqlite://", ":memory:"] {
        assert!(
            matches!(DatabaseUrl::parse(bad), Err(StorageError::InvalidUrl(_))),
            "{bad}"
        );
    }
}

#[test]
fn unreachable_postgres_reports_the_driver_error() {
    let err = Store::open(
        "postgres://postgres@127.0.0.1:1/nothing",
        &storage::PoolConfig::default(),
    )
    .expect_err("nothing listens on port 1");
    assert!(err.is_unavailable(), "{err}");
    assert!(
        err.to_string().contains("127.0.0.1"),
        "the real cause is kept: {err}"
    );
}
