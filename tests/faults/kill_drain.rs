//! Scenario 1: SIGKILL the real binary while it drains 50,000 due orders, restart it, and
//! check that every order ends APPROVED or REJECTED with exactly one moderation event.

use crate::support::{heavy, insert_all, moderation_events, orders_due, wait_for, Audit};
use chrono::{Duration as ChronoDuration, Utc};
use std::time::{Duration, Instant};
use storage::testing::TestDb;
use system_tests::ServerProcess;

const ORDERS: usize = 50_000;

fn kill_mid_drain(backend: &str, db: &TestDb) {
    let _guard = heavy();
    let store = db.store();
    let t0 = Instant::now();
    // Due over the last minute: all due at once when the server starts.
    let due_from = Utc::now() - ChronoDuration::seconds(60);
    insert_all(
        &store,
        &orders_due(ORDERS, due_from, Duration::from_secs(50)),
    );
    eprintln!(
        "[kill-9/{backend}] inserted {ORDERS} due orders in {:?}",
        t0.elapsed()
    );

    // Small batches so that draining takes long enough to be interrupted.
    let server = ServerProcess::start(&db.url, &["--batch-size", "200", "--instance-id", "first"]);
    let at_kill = wait_for(
        "the first instance to moderate some but not all orders",
        Duration::from_secs(120),
        Duration::from_millis(5),
        || {
            let n = moderation_events(&store).ok()?;
            (n >= (ORDERS / 10) as i64).then_some(n)
        },
    );
    server.kill9();
    let after_kill = moderation_events(&store).expect("count after kill");
    eprintln!(
        "[kill-9/{backend}] SIGKILL with {at_kill} moderated (at the last poll), {after_kill} \
         committed once dead"
    );
    assert!(
        after_kill < ORDERS as i64,
        "the drain finished before the kill ({after_kill}); the scenario proves nothing: \
         lower --batch-size"
    );
    // What the kill left: whole batches or nothing.
    let dead = Audit::of(&store);
    assert_eq!(dead.duplicated, 0, "duplicates after the kill: {dead:?}");
    assert_eq!(
        dead.with_one_event,
        dead.approved + dead.rejected,
        "{dead:?}"
    );
    assert_eq!(dead.without_event, dead.not_final, "{dead:?}");
    assert_eq!(
        dead.approved_half_written + dead.rejected_half_written,
        0,
        "{dead:?}"
    );

    let restarted = Instant::now();
    let server = ServerProcess::start(&db.url, &["--batch-size", "200", "--instance-id", "second"]);
    wait_for(
        "the restarted instance to finish the drain",
        Duration::from_secs(180),
        Duration::from_millis(50),
        || (moderation_events(&store).ok()? >= ORDERS as i64).then_some(()),
    );
    let drain = restarted.elapsed();
    // Let a (wrong) extra pass show up, if there were one.
    std::thread::sleep(Duration::from_millis(500));
    let (_hwm, rss) = server.memory_kib();
    let audit = Audit::of(&store);
    eprintln!(
        "[kill-9/{backend}] FIGURES orders={} moderated_once={} duplicates={} lost={} \
         half_written={} approved={} rejected={} killed_after={} rest_drained_in={:.1}s \
         rss_after_restart={}KiB",
        audit.orders,
        audit.with_one_event,
        audit.duplicated,
        audit.without_event,
        audit.approved_half_written + audit.rejected_half_written,
        audit.approved,
        audit.rejected,
        after_kill,
        drain.as_secs_f64(),
        rss
    );
    audit.assert_complete(&format!("kill-9/{backend}"), ORDERS as i64);
    let errors: Vec<String> = server
        .log_lines()
        .into_iter()
        .filter(|l| l.contains("ERROR"))
        .collect();
    assert!(
        errors.is_empty(),
        "errors logged after the restart: {errors:?}"
    );
}

#[test]
fn kill_9_mid_drain_sqlite() {
    kill_mid_drain("sqlite", &TestDb::sqlite());
}

#[test]
fn kill_9_mid_drain_postgres() {
    if let Some(db) = TestDb::postgres() {
        kill_mid_drain("postgres", &db);
    }
}
