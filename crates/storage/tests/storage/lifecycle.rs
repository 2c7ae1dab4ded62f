//! Creating, reading, listing, changing and deleting orders, and their history.

use crate::{approve_all, order_due};
use chrono::{Duration, Utc};
use orders::{format_ms, parse_due_time, LocationType, OrderStatus, Price, Side};
use storage::testing::TestDb;
use storage::{ClaimScope, Idempotency, ManualChange, OrderFilter, StorageError};

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
    let storage::OpenClosed {
        open,
        closed,
        unreadable,
    } = store.fetch_orders(200, 200, None).expect("fetch");
    assert_eq!((open.len(), closed.len()), (4, 2));
    assert!(unreadable.is_empty());
    assert!(
        open.windows(2).all(|w| w[0].created_at >= w[1].created_at),
        "newest first"
    );
    assert!(open.iter().all(|o| o.status == OrderStatus::Pending));
    assert!(closed.iter().all(|o| o.status == OrderStatus::Approved));
    let limited = store.fetch_orders(1, 1, None).expect("fetch limited");
    assert_eq!((limited.open.len(), limited.closed.len()), (1, 1));
    assert_eq!(limited.open[0].id, ids[5], "the newest open order");
    let west = store
        .fetch_orders(200, 200, Some("WEST"))
        .expect("fetch by location");
    assert!(west
        .open
        .iter()
        .chain(&west.closed)
        .all(|o| o.location == "WEST"));
    assert_eq!(west.open.len() + west.closed.len(), 3);
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
    // The id-only reads see the same ids, and only committed ones.
    let all: Vec<i64> = first.iter().chain(&rest).map(|e| e.event.id).collect();
    assert_eq!(store.event_ids_after(0, 3).expect("ids"), all[..3]);
    assert_eq!(store.event_ids_after(all[2], 10).expect("ids"), all[3..]);
    let asked = [all[4] + 1, all[3], all[0]];
    assert_eq!(
        store.committed_event_ids(&asked).expect("ids"),
        vec![all[0], all[3]]
    );
}

/// Concurrent creates share commits: every caller gets its own order (or, with a shared key,
/// the one order of that key), every row has its event, and a bad request in a group fails
/// alone.
fn concurrent_creates_share_commits_and_keep_their_meaning(db: &TestDb) {
    let store = db.store();
    let due = Utc::now() + Duration::hours(2);
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for i in 0..25 {
                    let new = order_due(due, "BUY", "L");
                    let key = format!("shared-{}", i % 5);
                    let keyed = i % 2 == 0;
                    let result = store.insert_order(
                        &new,
                        keyed.then_some(Idempotency {
                            key: &key,
                            request_hash: "same",
                        }),
                        if t % 2 == 0 { "api" } else { "cli" },
                    );
                    ids.push((keyed.then_some(key), result.expect("insert").order.id));
                }
                // A key reused with another request fails only this request.
                let clash = store.insert_order(
                    &order_due(due, "SELL", "L"),
                    Some(Idempotency {
                        key: "shared-0",
                        request_hash: "different",
                    }),
                    "api",
                );
                assert!(matches!(
                    clash,
                    Err(StorageError::IdempotencyMismatch { .. })
                ));
                ids
            })
        })
        .collect();
    let all: Vec<(Option<String>, String)> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("thread"))
        .collect();
    let mut by_key = std::collections::HashMap::new();
    let mut keyless = std::collections::HashSet::new();
    for (key, id) in &all {
        match key {
            Some(k) => assert_eq!(by_key.entry(k.clone()).or_insert(id.clone()), id, "{k}"),
            None => assert!(keyless.insert(id.clone()), "{id} given twice"),
        }
    }
    let distinct = (by_key.len() + keyless.len()) as i64;
    assert_eq!(by_key.len(), 5);
    assert_eq!(store.row_counts().expect("counts"), (distinct, distinct));
}

/// A batch is stored in input order with one event per order; under a key, a repeat returns
/// the same orders, another batch under it is refused naming the batch's first order, and the
/// batch's keys do not meet a single create's key of the same text.
fn insert_batch_keeps_order_and_idempotency(db: &TestDb) {
    let store = db.store();
    let start = Utc::now() + Duration::days(1);
    let book: Vec<_> = (0..24)
        .map(|h| {
            order_due(
                start + Duration::hours(h),
                if h % 2 == 0 { "BUY" } else { "SELL" },
                "B",
            )
        })
        .collect();
    let plain = store.insert_batch(&book, None, "api").expect("plain batch");
    assert_eq!(plain.len(), 24);
    for (got, want) in plain.iter().zip(&book) {
        assert!(got.created);
        assert_eq!(got.order.hour_start_utc, want.hour_start_utc());
        assert_eq!(store.get_order(&got.order.id).expect("stored"), got.order);
        assert_eq!(store.order_events(&got.order.id).expect("events").len(), 1);
    }
    assert_eq!(store.row_counts().expect("counts"), (24, 24));

    let key = Idempotency {
        key: "day-1",
        request_hash: "book-a",
    };
    let first = store.insert_batch(&book, Some(key), "api").expect("keyed");
    let again = store.insert_batch(&book, Some(key), "api").expect("repeat");
    assert!(first.iter().all(|i| i.created) && again.iter().all(|i| !i.created));
    let ids = |v: &[storage::Inserted]| v.iter().map(|i| i.order.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&first), ids(&again));
    assert_eq!(
        again.iter().map(|i| i.order.clone()).collect::<Vec<_>>(),
        first.iter().map(|i| i.order.clone()).collect::<Vec<_>>()
    );
    let clash = store.insert_batch(
        &book[..3],
        Some(Idempotency {
            key: "day-1",
            request_hash: "book-b",
        }),
        "api",
    );
    assert!(
        matches!(clash, Err(StorageError::IdempotencyMismatch { ref order_id }) if *order_id == first[0].order.id)
    );
    // A single create under the same text is another key.
    let single = store
        .insert_order(&book[0], Some(key), "api")
        .expect("single");
    assert!(single.created);
    assert_eq!(store.row_counts().expect("counts"), (49, 49));
    assert!(store
        .insert_batch(&[], Some(key), "api")
        .expect("empty")
        .is_empty());
}

/// Racing repeats of one keyed batch: one writes it, the others get the same orders back.
fn concurrent_keyed_batches_write_once(db: &TestDb) {
    let store = db.store();
    let due = Utc::now() + Duration::hours(3);
    let book: Vec<_> = (0..200).map(|_| order_due(due, "BUY", "R")).collect();
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            let book = book.clone();
            std::thread::spawn(move || {
                let key = Idempotency {
                    key: "race",
                    request_hash: "h",
                };
                store
                    .insert_batch(&book, Some(key), "api")
                    .expect("batch")
                    .into_iter()
                    .map(|i| (i.order.id, i.created))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<Vec<(String, bool)>> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    let creators = results.iter().filter(|r| r.iter().all(|(_, c)| *c)).count();
    assert_eq!(creators, 1);
    for r in &results {
        assert_eq!(
            r.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            results[0].iter().map(|(id, _)| id).collect::<Vec<_>>()
        );
    }
    assert_eq!(store.row_counts().expect("counts"), (200, 200));
}

storage::backend_tests!(
    insert_batch_keeps_order_and_idempotency,
    concurrent_keyed_batches_write_once,
    concurrent_creates_share_commits_and_keep_their_meaning,
    insert_and_get_round_trip,
    insert_idempotency_key_returns_the_original,
    fetch_orders_splits_open_and_closed_newest_first,
    list_orders_filters_and_paginates,
    manual_transitions_follow_the_table,
    pnl_totals_are_exact,
    delete_orders_removes_orders_and_history,
    events_after_pages_through_history,
);
