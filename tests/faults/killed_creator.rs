//! Scenario: two server processes on one Postgres database, both with the default 30 s check
//! interval; an order is created through A, due in 2 s, and A is SIGKILLed at once. Only B can
//! moderate it, and only the insert notification can wake B in time: it must be moderated
//! within 200 ms of its due time (before the watcher, B found it at its next 30 s check).

use crate::support::{client, create_order_due, heavy, moderation_of, wait_for};
use chrono::{Duration as ChronoDuration, Utc};
use std::time::Duration;
use storage::testing::TestDb;
use system_tests::ServerProcess;

/// How late the order may be moderated, ms.
const BOUND_MS: i64 = 200;

#[test]
fn sigkilled_creator_order_moderated_by_the_other_instance_postgres() {
    let Some(db) = TestDb::postgres() else { return };
    let _guard = heavy();
    let store = db.store();
    let args = |id: &'static str| ["--check-interval-secs", "30", "--instance-id", id];
    let a = ServerProcess::start(&db.url, &args("a"));
    let b = ServerProcess::start(&db.url, &args("b"));
    let due = orders::truncate_ms(Utc::now() + ChronoDuration::seconds(2));
    let id = create_order_due(&client(), &a.base_url, due);
    a.kill9();
    assert!(
        Utc::now() < due - ChronoDuration::milliseconds(500),
        "creating the order and killing A took until {}, too close to its due time {due}: the \
         scenario would prove nothing",
        Utc::now()
    );
    let (late_ms, actor) = wait_for(
        "instance b to moderate the order",
        Duration::from_secs(40),
        Duration::from_millis(20),
        || moderation_of(&store, &id),
    );
    eprintln!("[killed-creator] FIGURES lateness_ms={late_ms} actor={actor}");
    assert_eq!(
        actor, "scheduler:b",
        "moderated by {actor}, not by instance b"
    );
    assert!(
        (0..=BOUND_MS).contains(&late_ms),
        "moderated {late_ms} ms after its due time (bound {BOUND_MS} ms); b's log: {:?}",
        b.log_lines()
    );
    let errors: Vec<String> = b
        .log_lines()
        .into_iter()
        .filter(|l| l.contains("ERROR"))
        .collect();
    assert!(errors.is_empty(), "instance b logged errors: {errors:?}");
}
