//! Retention: closed orders older than the cut-off go with their history, in batches; pending
//! orders stay whatever their age; one sweeper at a time.

use crate::order_due;
use ::orders::OrderStatus;
use chrono::{Duration, Utc};
use diesel::prelude::*;
use storage::schema::orders;
use storage::testing::TestDb;
use storage::{ManualChange, PruneCursor, Pruned};

fn closed_orders_are_pruned_in_batches_and_pending_ones_kept(db: &TestDb) {
    let store = db.store();
    let due = Utc::now() + Duration::hours(1);
    let ids: Vec<String> = (0..6)
        .map(|_| {
            store
                .insert_order(&order_due(due, "SELL", "L"), None, "api")
                .expect("insert")
                .order
                .id
        })
        .collect();
    let reject = ManualChange {
        to: Some(OrderStatus::Rejected),
        ..ManualChange::default()
    };
    let cancel = ManualChange {
        to: Some(OrderStatus::Cancelled),
        ..ManualChange::default()
    };
    for id in &ids[..3] {
        store.transition(id, &reject, "test").expect("reject");
    }
    store.transition(&ids[3], &cancel, "test").expect("cancel");
    // ids[4] stays pending; ids[5] is rejected but recent.
    store.transition(&ids[5], &reject, "test").expect("reject");
    let old = (Utc::now() - Duration::days(40)).naive_utc();
    diesel::update(orders::table.filter(orders::id.ne(&ids[5])))
        .set(orders::created_at.eq(old))
        .execute(&mut *store.conn().expect("conn"))
        .expect("age created_at");
    diesel::update(
        orders::table
            .filter(orders::id.ne(&ids[5]))
            .filter(orders::approved_at.is_not_null()),
    )
    .set(orders::approved_at.eq(Some(old)))
    .execute(&mut *store.conn().expect("conn"))
    .expect("age approved_at");

    let lock = store
        .try_retention_lock()
        .expect("lock")
        .expect("free at first");
    assert!(
        store.try_retention_lock().expect("lock").is_none(),
        "one sweeper at a time"
    );
    let cutoff = Utc::now() - Duration::days(30);
    let mut total = Pruned::default();
    let mut batches = 0;
    let mut cursor = PruneCursor::default();
    while !cursor.is_done() {
        let p = store
            .prune_closed_batch(&lock, cutoff, 2, &mut cursor)
            .expect("prune");
        assert!(p.orders <= 2, "bounded: {p:?}");
        total += p;
        batches += 1;
    }
    assert_eq!(total.orders, 4, "three rejected and one cancelled, all old");
    assert_eq!(total.events, 8, "each with its creation and its change");
    assert!(batches >= 2);
    drop(lock);
    assert!(
        store.try_retention_lock().expect("lock").is_some(),
        "released on drop"
    );
    for id in &ids[..4] {
        assert!(store.get_order(id).is_err(), "{id} deleted");
        assert!(store.order_events(id).expect("events").is_empty());
    }
    assert_eq!(
        store.get_order(&ids[4]).expect("pending kept").status,
        OrderStatus::Pending
    );
    assert_eq!(store.order_events(&ids[4]).expect("events").len(), 1);
    assert_eq!(
        store.get_order(&ids[5]).expect("recent kept").status,
        OrderStatus::Rejected
    );
}

storage::backend_tests!(closed_orders_are_pruned_in_batches_and_pending_ones_kept);
