//! The claim: due orders taken, decided and written exactly once, or not at all.

use crate::{approve_all, order_due};
use chrono::{Duration, Utc};
use diesel::connection::SimpleConnection;
use orders::{parse_due_time, Decision, NewOrder, OrderStatus, Price};
use std::collections::HashMap;
use storage::testing::TestDb;
use storage::{ClaimScope, Decided, StorageError, Store};

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
                rt_source: None,
                rt_interval_start_utc: None,
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

fn claim_at_a_due_time_takes_only_that_instant(db: &TestDb) {
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
        .claim_and_apply(ClaimScope::DueAt(hour), 100, "admin", approve_all(3900))
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
                rt_source: None,
                rt_interval_start_utc: None,
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
            rt_source: None,
            rt_interval_start_utc: None,
        })
    });
    assert!(
        matches!(panicked, Err(StorageError::Decide { ref reason, .. }) if reason.contains("exploded")),
        "{panicked:?}"
    );
    let listed = store.fetch_orders(100, 100, None).expect("fetch");
    assert_eq!(
        (listed.open.len(), listed.closed.len()),
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

storage::backend_tests!(
    claim_moderates_only_due_orders_once,
    claim_at_a_due_time_takes_only_that_instant,
    claim_rolled_back_on_error_or_panic,
    claim_parks_rows_that_do_not_decode,
    concurrent_claimers_never_share_an_order,
);
