//! Parked orders: listed from their own index, retried (one or all) and discarded, each
//! conditional on the order still being parked.

use crate::order_due;
use chrono::{Duration, Utc};
use orders::OrderStatus;
use storage::testing::TestDb;
use storage::StorageError;

fn parked_orders_are_listed_retried_and_discarded(db: &TestDb) {
    let store = db.store();
    let due = Utc::now() + Duration::minutes(5);
    let ids: Vec<String> = (0..3)
        .map(|_| {
            store
                .insert_order(&order_due(due, "BUY", "L"), None, "api")
                .expect("insert")
                .order
                .id
        })
        .collect();
    assert!(store.parked_list(10).expect("list").is_empty());
    for id in &ids {
        assert!(store.park_order(id, "undecodable side").expect("park"));
    }
    let listed = store.parked_list(10).expect("list");
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0].parked_reason, "undecodable side");
    assert_eq!(listed[0].side, "BUY");
    assert_eq!(store.parked_list(2).expect("list").len(), 2, "bounded");
    assert_eq!(store.parked_count().expect("count"), 3);

    // Retry one: it becomes claimable again.
    assert_eq!(store.retry_parked(Some(&ids[0])).expect("retry"), 1);
    assert_eq!(
        store.retry_parked(Some(&ids[0])).expect("retry"),
        0,
        "no longer parked"
    );
    assert_eq!(store.parked_count().expect("count"), 2);
    assert_eq!(
        store.next_due().expect("next"),
        Some(orders::truncate_ms(due))
    );

    // Discard one: rejected with the operator's reason, in the history.
    let d = store
        .discard_parked(&ids[1], "bad feed", "api:admin")
        .expect("discard");
    assert_eq!(d.reject_reason, "Discarded by operator: bad feed");
    let order = store.get_order(&ids[1]).expect("get");
    assert_eq!(order.status, OrderStatus::Rejected);
    assert_eq!(
        order.reject_reason.as_deref(),
        Some("Discarded by operator: bad feed")
    );
    let history = store.order_events(&ids[1]).expect("history");
    let last = history.last().expect("event");
    assert_eq!(last.from_status, Some(OrderStatus::Pending));
    assert_eq!(last.to_status, OrderStatus::Rejected);
    assert_eq!(last.actor, "api:admin");
    assert_eq!(last.details["parked_reason"], "undecodable side");

    // Discarding what is not parked: a conflict; an unknown id: not found.
    assert!(matches!(
        store.discard_parked(&ids[0], "x", "api"),
        Err(StorageError::Conflict(_))
    ));
    assert!(matches!(
        store.discard_parked(&ids[1], "x", "api"),
        Err(StorageError::Conflict(_))
    ));
    assert!(matches!(
        store.discard_parked("nope", "x", "api"),
        Err(StorageError::NotFound(_))
    ));
    assert_eq!(
        store.get_order(&ids[0]).expect("get").status,
        OrderStatus::Pending,
        "a refused discard changes nothing"
    );

    // Retry all.
    assert_eq!(store.retry_parked(None).expect("retry all"), 1);
    assert!(store.parked_list(10).expect("list").is_empty());
}

storage::backend_tests!(parked_orders_are_listed_retried_and_discarded);
