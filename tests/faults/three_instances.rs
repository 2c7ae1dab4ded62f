//! Scenario 3: three server processes on one Postgres database, 30,000 orders falling due
//! within a few seconds; one is SIGKILLed mid-way, the other two finish, and every order has
//! exactly one moderation event.

use crate::support::{
    heavy, insert_all, lateness_ms, moderation_events, orders_due, pct, wait_for, Audit,
};
use chrono::{Duration as ChronoDuration, Utc};
use std::time::{Duration, Instant};
use storage::testing::TestDb;
use system_tests::ServerProcess;

const ORDERS: usize = 30_000;

#[test]
fn three_instances_one_killed_postgres() {
    let Some(db) = TestDb::postgres() else { return };
    let _guard = heavy();
    let store = db.store();
    let args = |id: &'static str| {
        [
            "--batch-size",
            "200",
            "--check-interval-secs",
            "0.5",
            "--instance-id",
            id,
        ]
    };
    let a = ServerProcess::start(&db.url, &args("a"));
    let b = ServerProcess::start(&db.url, &args("b"));
    let c = ServerProcess::start(&db.url, &args("c"));
    // Due from 3 s to 7 s from now; inserted by this process, so the instances find them on
    // their next check (every 0.5 s).
    let t0 = Instant::now();
    let due_from = Utc::now() + ChronoDuration::seconds(3);
    insert_all(
        &store,
        &orders_due(ORDERS, due_from, Duration::from_secs(4)),
    );
    eprintln!(
        "[three-instances] inserted {ORDERS} orders in {:?}",
        t0.elapsed()
    );
    let at_kill = wait_for(
        "about a third of the orders to be moderated",
        Duration::from_secs(60),
        Duration::from_millis(10),
        || {
            let n = moderation_events(&store).ok()?;
            (n >= (ORDERS / 3) as i64).then_some(n)
        },
    );
    a.kill9();
    let after_kill = moderation_events(&store).expect("count");
    eprintln!(
        "[three-instances] SIGKILL of instance a with {at_kill} moderated ({after_kill} once dead)"
    );
    assert!(
        after_kill < ORDERS as i64,
        "everything was moderated before the kill; the scenario proves nothing"
    );
    wait_for(
        "the two survivors to finish",
        Duration::from_secs(120),
        Duration::from_millis(50),
        || (moderation_events(&store).ok()? >= ORDERS as i64).then_some(()),
    );
    std::thread::sleep(Duration::from_millis(1_000));
    let audit = Audit::of(&store);
    let (late, actors) = lateness_ms(&store);
    let (rss_b, rss_c) = (b.memory_kib().1, c.memory_kib().1);
    eprintln!(
        "[three-instances] FIGURES orders={} moderated_once={} duplicates={} lost={} \
         half_written={} by_instance={actors:?} lateness_ms p50={} p99={} max={} min={} \
         rss_b={rss_b}KiB rss_c={rss_c}KiB",
        audit.orders,
        audit.with_one_event,
        audit.duplicated,
        audit.without_event,
        audit.approved_half_written + audit.rejected_half_written,
        pct(&late, 0.5),
        pct(&late, 0.99),
        pct(&late, 1.0),
        pct(&late, 0.0),
    );
    audit.assert_complete("three-instances", ORDERS as i64);
    for survivor in ["scheduler:b", "scheduler:c"] {
        assert!(
            actors.get(survivor).is_some_and(|&n| n > 0),
            "{survivor} moderated nothing: {actors:?}"
        );
    }
    assert_eq!(actors.values().sum::<u64>(), ORDERS as u64, "{actors:?}");
    assert!(
        late.first().is_some_and(|&l| l >= 0),
        "an order was moderated before its due time: min lateness {:?} ms",
        late.first()
    );
    for (name, s) in [("b", &b), ("c", &c)] {
        let errors: Vec<String> = s
            .log_lines()
            .into_iter()
            .filter(|l| l.contains("ERROR"))
            .collect();
        assert!(
            errors.is_empty(),
            "instance {name} logged errors: {errors:?}"
        );
    }
}
