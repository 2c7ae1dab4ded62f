//! What readiness probes read: `Scheduler::liveness` reports a dead thread and when the
//! current run of failing passes began, without touching the database.

use diesel::connection::SimpleConnection;
use scheduler::{Observer, Scheduler, SchedulerEvent};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::testing::TestDb;

/// Polls `f` every 10 ms until it holds; false after `limit`.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

#[test]
fn a_panic_outside_a_pass_shows_as_a_dead_thread() {
    let db = TestDb::sqlite();
    // The observer runs on the scheduler thread; `Started` is emitted outside any pass, where
    // nothing catches a panic: the thread dies, as it would from a bug in the loop itself.
    let observer: Observer = Arc::new(|e: &SchedulerEvent<'_>| {
        if matches!(e, SchedulerEvent::Started) {
            panic!("deliberate panic in the loop");
        }
    });
    let sched = Scheduler::builder(db.store())
        .observer(observer)
        .spawn()
        .expect("spawn");
    assert!(
        eventually(Duration::from_secs(5), || !sched.liveness().thread_alive),
        "the dead thread is reported"
    );
}

#[test]
fn failing_since_marks_the_start_of_a_run_of_failures_and_clears_on_success() {
    let db = TestDb::sqlite();
    let store = db.store();
    let (tx, rx) = mpsc::channel();
    let observer: Observer = Arc::new(move |e: &SchedulerEvent<'_>| {
        if matches!(e, SchedulerEvent::Failed { .. }) {
            let _ = tx.send(());
        }
    });
    let sched = Scheduler::builder(store.clone())
        .check_interval(Duration::from_millis(50))
        .observer(observer)
        .spawn()
        .expect("spawn");
    assert_eq!(sched.liveness().failing_since, None);
    // Passes fail while the table they claim from is gone.
    store
        .conn()
        .expect("conn")
        .batch_execute("ALTER TABLE orders RENAME TO orders_away")
        .expect("rename");
    rx.recv_timeout(Duration::from_secs(5))
        .expect("a failed pass");
    rx.recv_timeout(Duration::from_secs(5))
        .expect("another failed pass");
    let since = sched.liveness().failing_since.expect("failing since");
    assert!(chrono::Utc::now() - since < chrono::Duration::seconds(5));
    assert!(sched.status().consecutive_failures >= 2);
    store
        .conn()
        .expect("conn")
        .batch_execute("ALTER TABLE orders_away RENAME TO orders")
        .expect("rename back");
    assert!(
        eventually(Duration::from_secs(10), || sched
            .liveness()
            .failing_since
            .is_none()),
        "a successful pass clears it"
    );
}
