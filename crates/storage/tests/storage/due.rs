//! What is due and what is next, and waking on orders inserted by anyone.

use crate::order_due;
use chrono::{DateTime, Duration, Utc};
use std::sync::mpsc;
use std::time::Duration as StdDuration;
use storage::testing::TestDb;
use storage::{DueWatch, PoolConfig, Store};

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

/// A watcher on `store` whose due times arrive on the returned channel.
fn watcher(store: &Store) -> (DueWatch, mpsc::Receiver<DateTime<Utc>>) {
    let (tx, rx) = mpsc::channel();
    let watch = store
        .watch_due(StdDuration::from_millis(10), move |t| {
            let _ = tx.send(t);
        })
        .expect("watcher thread");
    (watch, rx)
}

/// Waits for the watcher to report `due`, ignoring other times it may report first.
fn wait_for(rx: &mpsc::Receiver<DateTime<Utc>>, due: DateTime<Utc>) -> bool {
    let deadline = std::time::Instant::now() + StdDuration::from_secs(5);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(t) if t == due => return true,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
    false
}

fn watcher_hears_orders_inserted_through_another_pool(db: &TestDb) {
    let watched = db.store();
    let (_watch, rx) = watcher(&watched);
    // Another pool on the same database: to the watcher, as good as another process.
    let other = Store::open(&db.url, &PoolConfig::default()).expect("second store");
    let due = orders::truncate_ms(Utc::now() + Duration::seconds(1));
    other
        .insert_order(&order_due(due, "BUY", "L"), None, "cli")
        .expect("insert");
    assert!(wait_for(&rx, due), "the watcher reported {due}");
}

fn watcher_reads_what_was_inserted_before_it_started(db: &TestDb) {
    let store = db.store();
    let due = orders::truncate_ms(Utc::now() + Duration::minutes(3));
    store
        .insert_order(&order_due(due, "SELL", "L"), None, "api")
        .expect("insert");
    let (_watch, rx) = watcher(&store);
    assert!(
        wait_for(&rx, due),
        "the watcher read the next due time on connect"
    );
}

fn parked_orders_are_not_next_due(db: &TestDb) {
    let store = db.store();
    let soon = orders::truncate_ms(Utc::now() + Duration::minutes(1));
    let later = orders::truncate_ms(Utc::now() + Duration::minutes(2));
    let first = store
        .insert_order(&order_due(soon, "BUY", "L"), None, "api")
        .expect("insert");
    store
        .insert_order(&order_due(later, "BUY", "L"), None, "api")
        .expect("insert");
    assert_eq!(store.next_due().expect("next"), Some(soon));
    assert!(store.park_order(&first.order.id, "test").expect("park"));
    assert_eq!(store.next_due().expect("next"), Some(later));
    let book = store.book_counts(Utc::now()).expect("book");
    assert_eq!((book.pending_later, book.parked), (1, 1));
}

storage::backend_tests!(
    watcher_hears_orders_inserted_through_another_pool,
    watcher_reads_what_was_inserted_before_it_started,
    parked_orders_are_not_next_due,
    due_summary_counts_due_upcoming_and_next,
);
