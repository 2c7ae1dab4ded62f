//! The claim: due orders taken, decided and written exactly once, or not at all.

use crate::{approve_all, order_due};
use chrono::{Duration, Utc};
use diesel::connection::SimpleConnection;
use orders::{parse_due_time, truncate_ms, Decision, NewOrder, OrderStatus, Price};
use std::collections::HashMap;
use storage::testing::TestDb;
use storage::{ClaimScope, Decided, DecidedBatch, ManualChange, StorageError, Store};

/// Inserts `n` BUY orders due at `due`; their ids, in order.
fn insert_due(store: &Store, n: usize, due: chrono::DateTime<Utc>) -> Vec<String> {
    let news: Vec<NewOrder> = (0..n).map(|_| order_due(due, "BUY", "L")).collect();
    store.insert_orders(&news, "api").expect("insert")
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

/// Orders read ahead are written only if, at the write, they are still claimable, due, and
/// (Postgres) not held by another claimer: whatever happened to them since they were read.
fn orders_read_ahead_are_written_only_if_still_claimable(db: &TestDb) {
    let store = db.store();
    let due = truncate_ms(Utc::now() - Duration::seconds(1));
    let ids = insert_due(&store, 7, due);
    let later = store
        .insert_order(
            &order_due(due + Duration::seconds(1), "BUY", "L"),
            None,
            "api",
        )
        .expect("insert")
        .order;
    let ahead = store.read_due_at(due, 100).expect("read ahead");
    assert_eq!(ahead.len(), 7, "only the orders of that instant");
    // Since they were read: one cancelled, one parked, one approved by hand.
    let cancel = ManualChange {
        to: Some(OrderStatus::Cancelled),
        ..ManualChange::default()
    };
    store
        .transition(&ids[0], &cancel, "trader")
        .expect("cancel");
    assert!(store.park_order(&ids[1], "set aside").expect("park"));
    let approve = ManualChange {
        to: Some(OrderStatus::Approved),
        rt_lmp: Some(Price::from_scaled(3900)),
        ..ManualChange::default()
    };
    store
        .transition(&ids[2], &approve, "trader")
        .expect("approve");
    // On Postgres, another claimer holds one row.
    let mut holder = store.conn().expect("connection");
    if store.is_postgres() {
        holder
            .batch_execute(&format!(
                "BEGIN; SELECT id FROM orders WHERE id = '{}' FOR UPDATE",
                ids[3]
            ))
            .expect("lock a row");
    }
    let result = store
        .apply_prepared(ahead, "scheduler:test", approve_all(4000))
        .expect("apply");
    let mut written: Vec<&str> = result.moderated.iter().map(|o| o.id.as_str()).collect();
    written.sort_unstable();
    let mut expected: Vec<&str> = ids[if store.is_postgres() { 4 } else { 3 }..]
        .iter()
        .map(String::as_str)
        .collect();
    expected.sort_unstable();
    assert_eq!(written, expected);
    if store.is_postgres() {
        holder.batch_execute("ROLLBACK").expect("release");
    }
    drop(holder);
    assert_eq!(
        store.get_order(&ids[0]).expect("get").status,
        OrderStatus::Cancelled
    );
    let parked = store.get_order(&ids[1]).expect("get");
    assert_eq!(parked.status, OrderStatus::Pending);
    assert_eq!(store.order_events(&ids[1]).expect("events").len(), 1);
    assert_eq!(
        store.get_order(&ids[2]).expect("get").approval_rt_lmp,
        Some(Price::from_scaled(3900)),
        "the manual approval stands"
    );
    for o in &result.moderated {
        assert_eq!(&store.get_order(&o.id).expect("get"), o);
    }
    // The held row is left for a later claim, which takes it once.
    let rest = store
        .claim_and_apply(ClaimScope::Due, 100, "scheduler:test", approve_all(4000))
        .expect("claim");
    let mut left: Vec<&str> = rest.moderated.iter().map(|o| o.id.as_str()).collect();
    left.sort_unstable();
    let mut expected = vec![later.id.as_str()];
    if store.is_postgres() {
        expected.push(ids[3].as_str());
    }
    expected.sort_unstable();
    assert_eq!(left, expected, "the held row and the next instant's order");
    // An order read ahead of an instant still to come is not written.
    let future = truncate_ms(Utc::now() + Duration::hours(1));
    let soon = store
        .insert_order(&order_due(future, "SELL", "L"), None, "api")
        .expect("insert")
        .order;
    let ahead = store.read_due_at(future, 100).expect("read ahead");
    assert_eq!(ahead.len(), 1);
    let none = store
        .apply_prepared(ahead, "scheduler:test", approve_all(4000))
        .expect("apply");
    assert_eq!(none.claimed(), 0);
    assert_eq!(
        store.get_order(&soon.id).expect("get").status,
        OrderStatus::Pending
    );
    assert_eq!(
        store.get_order(&later.id).expect("get").status,
        OrderStatus::Approved,
        "the later instant was claimed by the ordinary claim"
    );
    // Cancelled and the parked one have no moderation; the rest exactly one each.
    assert_eq!(
        store.moderation_event_multiplicity().expect("mult"),
        (3, 6, 0)
    );
}

/// A sweep takes due orders in id order after its cursor, passes over future ones, and
/// continues where its last batch ended; the backlog check counts due against claimable.
fn a_sweep_takes_due_orders_in_id_order(db: &TestDb) {
    let store = db.store();
    let now = Utc::now();
    let mut due_ids = Vec::new();
    let mut future_ids = Vec::new();
    // Due times run backwards against creation, and future orders sit among the due ones.
    for i in 0..9i64 {
        let (due, list) = match i % 3 {
            2 => (now + Duration::hours(1), &mut future_ids),
            _ => (now - Duration::seconds(10 + i), &mut due_ids),
        };
        let id = store
            .insert_order(&order_due(due, "SELL", "L"), None, "api")
            .expect("insert")
            .order
            .id;
        list.push(id);
    }
    due_ids.sort();
    assert!(store.backlog_worth_sweeping(6).expect("count"));
    assert!(
        !store.backlog_worth_sweeping(7).expect("count"),
        "fewer due than asked for"
    );
    let start = ClaimScope::DueAfterId(due_ids[0].clone());
    let first = store
        .claim_and_apply(start.clone(), 3, "t", approve_all(4000))
        .expect("claim");
    let taken: Vec<String> = first.moderated.iter().map(|o| o.id.clone()).collect();
    assert_eq!(
        taken,
        due_ids[1..4],
        "the smallest ids after the cursor, in order"
    );
    let next = start.after(&first);
    assert_eq!(next, ClaimScope::DueAfterId(due_ids[3].clone()));
    let second = store
        .claim_and_apply(next.clone(), 3, "t", approve_all(4000))
        .expect("claim");
    let taken: Vec<String> = second.moderated.iter().map(|o| o.id.clone()).collect();
    assert_eq!(taken, due_ids[4..], "the rest, future orders passed over");
    assert_eq!(
        next.clone().after(&second),
        ClaimScope::DueAfterId(due_ids[5].clone())
    );
    let end = store
        .claim_and_apply(
            ClaimScope::DueAfterId(due_ids[5].clone()),
            3,
            "t",
            approve_all(4000),
        )
        .expect("claim");
    assert_eq!(end.claimed(), 0);
    assert_eq!(
        ClaimScope::DueAfterId("x".into()).after(&end),
        ClaimScope::DueAfterId("x".into()),
        "an empty claim leaves the cursor"
    );
    // The first due order, at the cursor, is left to a due-order claim.
    let rest = store
        .claim_and_apply(ClaimScope::Due, 10, "t", approve_all(4000))
        .expect("claim");
    let taken: Vec<String> = rest.moderated.iter().map(|o| o.id.clone()).collect();
    assert_eq!(taken, due_ids[..1]);
    for id in &future_ids {
        assert_eq!(
            store.get_order(id).expect("get").status,
            OrderStatus::Pending
        );
    }
    assert_eq!(
        store.moderation_event_multiplicity().expect("mult"),
        (3, 6, 0)
    );
    // Nothing due now; a due backlog worth sweeping must also be dense.
    assert!(!store.backlog_worth_sweeping(1).expect("count"));
    let add = |due, n| {
        for _ in 0..n {
            store
                .insert_order(&order_due(due, "BUY", "L"), None, "api")
                .expect("insert");
        }
    };
    add(now - Duration::seconds(1), 1);
    assert!(
        store.backlog_worth_sweeping(1).expect("count"),
        "1 due of 4"
    );
    add(now + Duration::hours(2), 12);
    assert!(
        store.backlog_worth_sweeping(1).expect("count"),
        "1 due of 16"
    );
    add(now + Duration::hours(2), 1);
    assert!(
        !store.backlog_worth_sweeping(1).expect("count"),
        "1 due of 17: a sweep would walk the future book"
    );
}

/// Orders read ahead, decided apart from their write: only those due are decided, and the
/// write, later, leaves alone an order moderated by hand in between and writes the rest once.
fn orders_decided_apart_are_written_only_if_still_claimable(db: &TestDb) {
    let store = db.store();
    let due = truncate_ms(Utc::now() - Duration::seconds(1));
    let ids = insert_due(&store, 4, due);
    let mut ahead = store.read_due_at(due, 100).expect("read ahead");
    assert_eq!(ahead.len(), 4);
    // An order not yet due (as a read-ahead batch holds until its instant) is not decided.
    let mut early = ahead[0].clone();
    early.id = "not-yet-due".into();
    early.hour_start_utc = Utc::now() + Duration::hours(1);
    ahead.push(early);
    let batch = DecidedBatch::decide(ahead, approve_all(4000)).expect("decide");
    assert_eq!(batch.len(), 4, "only the due orders are decided");
    let reject = ManualChange {
        to: Some(OrderStatus::Rejected),
        reject_reason: Some("by hand".into()),
        ..ManualChange::default()
    };
    store
        .transition(&ids[1], &reject, "trader")
        .expect("reject");
    let written = store.write_decided(batch, "scheduler:test").expect("write");
    let mut got: Vec<&str> = written.moderated.iter().map(|o| o.id.as_str()).collect();
    got.sort_unstable();
    let mut expected: Vec<&str> = [0, 2, 3].iter().map(|&i| ids[i].as_str()).collect();
    expected.sort_unstable();
    assert_eq!(got, expected, "all but the one moderated meanwhile");
    assert_eq!(
        store.get_order(&ids[1]).expect("get").status,
        OrderStatus::Rejected
    );
    // Moderated once each: three by the write, one by hand.
    assert_eq!(
        store.moderation_event_multiplicity().expect("mult"),
        (0, 4, 0)
    );
}

storage::backend_tests!(
    orders_decided_apart_are_written_only_if_still_claimable,
    a_sweep_takes_due_orders_in_id_order,
    claim_moderates_only_due_orders_once,
    claim_at_a_due_time_takes_only_that_instant,
    claim_rolled_back_on_error_or_panic,
    claim_parks_rows_that_do_not_decode,
    concurrent_claimers_never_share_an_order,
    orders_read_ahead_are_written_only_if_still_claimable,
);
