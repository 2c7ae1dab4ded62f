//! Scenario: a status-polling storm over a big future book. A server (30 s check interval)
//! holds 100,000 orders due tomorrow while 20 threads poll `GET /api/v1/scheduler/status` as
//! fast as it answers; an order created meanwhile, due in 3 s, must be moderated within 200 ms
//! of its due time, and no answer may be anything but 2xx (before, status counted the book per
//! call on the scheduler's pool: 503s, and moderation seconds late).

use crate::support::{client, create_order_due, heavy, moderation_of, wait_for};
use chrono::{Duration as ChronoDuration, Utc};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::bench_support::load_orders;
use storage::testing::TestDb;
use system_tests::ServerProcess;

const BOOK: usize = 100_000;
const POLLERS: usize = 20;
/// How late the order may be moderated, ms.
const BOUND_MS: i64 = 200;

/// What one poller saw: answers, and the non-2xx statuses (or transport errors) with bodies.
type Seen = (usize, Vec<String>);

fn status_storm(backend: &str, db: &TestDb) {
    let _guard = heavy();
    let store = db.store();
    let t0 = Instant::now();
    let loaded = load_orders(
        &store,
        BOOK,
        Utc::now() + ChronoDuration::days(1),
        ChronoDuration::hours(1),
        "fault-suite",
    )
    .expect("load the future book");
    assert_eq!(loaded, BOOK);
    eprintln!(
        "[status-storm/{backend}] loaded {BOOK} orders due tomorrow in {:?}",
        t0.elapsed()
    );
    let server = ServerProcess::start(
        &db.url,
        &["--check-interval-secs", "30", "--instance-id", "storm"],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let pollers: Vec<std::thread::JoinHandle<Seen>> = (0..POLLERS)
        .map(|_| {
            let (stop, url) = (
                stop.clone(),
                format!("{}/api/v1/scheduler/status", server.base_url),
            );
            std::thread::spawn(move || {
                let http = client();
                let mut answers = 0;
                let mut bad = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match http.get(&url).send() {
                        Ok(r) => {
                            answers += 1;
                            let status = r.status();
                            if !status.is_success() {
                                bad.push(format!("{status} {}", r.text().unwrap_or_default()));
                            }
                        }
                        Err(e) => bad.push(format!("no answer: {e}")),
                    }
                }
                (answers, bad)
            })
        })
        .collect();
    // The storm is on before the order exists.
    std::thread::sleep(Duration::from_millis(500));
    let due = orders::truncate_ms(Utc::now() + ChronoDuration::seconds(3));
    let id = create_order_due(&client(), &server.base_url, due);
    let created_at = Utc::now();
    let moderated = wait_for(
        "the order to be moderated",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || moderation_of(&store, &id),
    );
    stop.store(true, Ordering::Relaxed);
    let mut answers = 0;
    let mut bad = Vec::new();
    for p in pollers {
        let (n, b) = p.join().expect("a poller thread");
        answers += n;
        bad.extend(b);
    }
    let (late_ms, actor) = moderated;
    eprintln!(
        "[status-storm/{backend}] FIGURES book={BOOK} pollers={POLLERS} status_answers={answers} \
         non_2xx={} lateness_ms={late_ms} actor={actor} created_ms_before_due={}",
        bad.len(),
        (due - created_at).num_milliseconds()
    );
    assert!(
        created_at < due,
        "the order was created after its due time; the scenario would prove nothing"
    );
    assert!(answers > 0, "no status answer at all");
    assert!(
        bad.is_empty(),
        "{} of {answers} status requests were not answered 2xx, first: {:?}",
        bad.len(),
        bad.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        (0..=BOUND_MS).contains(&late_ms),
        "moderated {late_ms} ms after its due time under the storm (bound {BOUND_MS} ms)"
    );
}

#[test]
fn status_storm_over_a_big_book_sqlite() {
    status_storm("sqlite", &TestDb::sqlite());
}

#[test]
fn status_storm_over_a_big_book_postgres() {
    if let Some(db) = TestDb::postgres() {
        status_storm("postgres", &db);
    }
}
