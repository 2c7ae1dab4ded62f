//! Scenario 7: soak. 1,000 orders/s created over HTTP by concurrent clients, each due about
//! 1.5 s after creation, moderated by the same server, for `SOAK_SECS` seconds (60 by default,
//! as in CI; `SOAK_SECS=600` for the 10-minute run). Zero errors, no order PENDING past its due
//! time + 1 s (checked every 250 ms), and no memory growth beyond what configuration bounds.
//! `SOAK_RATE` changes the rate. It runs on Postgres when one is reachable, else on SQLite;
//! `SOAK_BACKEND=sqlite` forces SQLite.
//!
//! Memory: RSS is sampled every second and judged by [`system_tests::memory::judge`]. The
//! server's caches may fill up to their configured size (on SQLite, `PRAGMA cache_size` for
//! each of the pool's connections, which takes minutes to fill: see `docs/RELIABILITY.md`);
//! growth beyond that, or a second half still climbing fast enough to get there, is a leak.

use crate::support::{heavy, lateness_ms, moderation_events, pct, wait_for, Audit};
use chrono::{Duration as ChronoDuration, Utc};
use diesel::dsl::count_star;
use diesel::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::schema::orders as orders_t;
use storage::testing::TestDb;
use storage::Store;
use system_tests::memory::{judge, Budget, Sample};
use system_tests::ServerProcess;

/// The server's default pool size, passed explicitly so that the memory budget follows it.
const POOL_SIZE: u64 = 16;

/// The scheduler's own pool (`Store::dedicated` in `Scheduler::spawn`): its passes and the
/// insert watcher.
const SCHEDULER_CONNECTIONS: u64 = 2;

/// What each pooled connection may hold besides SQLite's page cache: prepared statements,
/// SQLite's lookaside and schema, libpq's buffers (KiB).
const PER_CONNECTION_KIB: u64 = 256;

/// Allocator arenas and buffers that reach their working size after the warm-up (KiB).
const SLACK_KIB: u64 = 4 * 1024;

/// The most a pooled connection's page cache holds, as the server's SQLite library is
/// configured (`PRAGMA cache_size`: negative in KiB, positive in pages), in KiB.
fn sqlite_cache_kib(url: &str) -> u64 {
    #[derive(QueryableByName)]
    struct Pragma {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        value: i64,
    }
    let mut conn = diesel::sqlite::SqliteConnection::establish(url).expect("open the SQLite file");
    let mut pragma = |name: &str| {
        diesel::sql_query(format!("SELECT {name} AS value FROM pragma_{name}"))
            .get_result::<Pragma>(&mut conn)
            .map(|p| p.value)
            .unwrap_or_else(|e| panic!("PRAGMA {name}: {e}"))
    };
    let cache = pragma("cache_size");
    if cache < 0 {
        cache.unsigned_abs()
    } else {
        cache as u64 * pragma("page_size") as u64 / 1024
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Pending, not parked, and due more than `grace` ago.
fn overdue(store: &Store, grace: ChronoDuration) -> i64 {
    let limit = (Utc::now() - grace).naive_utc();
    let Ok(mut conn) = store.conn() else { return 0 };
    orders_t::table
        .filter(orders_t::status.eq("PENDING"))
        .filter(orders_t::hour_start_utc.lt(limit))
        .select(count_star())
        .first::<i64>(&mut *conn)
        .expect("overdue count")
}

#[test]
fn soak_1000_orders_per_second() {
    let secs = env_or("SOAK_SECS", 60);
    let rate = env_or("SOAK_RATE", 1_000);
    // The baseline is taken once threads and buffers are up, before caches have filled much.
    let warmup_secs = 10.0_f64.min(secs as f64 / 4.0);
    // Postgres when it is reachable (the multi-instance deployment), else SQLite;
    // `SOAK_BACKEND=sqlite` forces SQLite.
    let (backend, db) = match std::env::var("SOAK_BACKEND").as_deref() {
        Ok("sqlite") => ("sqlite", TestDb::sqlite()),
        _ => match TestDb::postgres() {
            Some(db) => ("postgres", db),
            None => ("sqlite", TestDb::sqlite()),
        },
    };
    let _guard = heavy();
    let store = db.store();
    let pool = POOL_SIZE.to_string();
    let server = ServerProcess::start(
        &db.url,
        &["--check-interval-secs", "1", "--pool-size", &pool],
    );
    let page_cache_kib = if backend == "sqlite" {
        sqlite_cache_kib(&db.url)
    } else {
        0
    };
    let budget = Budget {
        cache_bound_kib: (POOL_SIZE + SCHEDULER_CONNECTIONS)
            * (page_cache_kib + PER_CONNECTION_KIB),
        slack_kib: SLACK_KIB,
        warmup_secs,
    };
    let url = format!("{}/api/v1/orders", server.base_url);
    let total = secs * rate;
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let behind_ms = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let start = Instant::now() + Duration::from_millis(200);
    let clients = 24;
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (next, errors, behind_ms, first_error, url) = (
                Arc::clone(&next),
                Arc::clone(&errors),
                Arc::clone(&behind_ms),
                Arc::clone(&first_error),
                url.clone(),
            );
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("client");
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    // Request i is sent at start + i/rate: an open-loop, constant arrival rate.
                    let at = start + Duration::from_micros(i * 1_000_000 / rate);
                    match at.checked_duration_since(Instant::now()) {
                        Some(wait) => std::thread::sleep(wait),
                        None => {
                            let late = Instant::now().duration_since(at).as_millis() as u64;
                            behind_ms.fetch_max(late, Ordering::Relaxed);
                        }
                    }
                    // Due 1.5 s from now, on a 100 ms grid (so several orders share a pass).
                    let due_ms = (Utc::now().timestamp_millis() + 1_500 + 99) / 100 * 100;
                    let due = chrono::DateTime::from_timestamp_millis(due_ms).expect("due");
                    let location = ["PJM-RTO", "ERCOT-NORTH", "NYISO-ZONEJ"][(i % 3) as usize];
                    let body = serde_json::json!({
                        "side": if i % 2 == 0 { "BUY" } else { "SELL" },
                        "qty_mwh": format!("{}.{:03}", 1 + i % 20, i % 1000),
                        "limit_price": format!("{}.{:02}", 30 + i % 20, i % 100),
                        "hour_start_utc": orders::format_ms(&due),
                        "location": location,
                    });
                    let outcome = http.post(&url).json(&body).send();
                    let failure = match outcome {
                        Ok(r) if r.status().as_u16() == 201 => None,
                        Ok(r) => Some(format!("#{i}: {} {:?}", r.status(), r.text())),
                        Err(e) => Some(format!("#{i}: {e}")),
                    };
                    if let Some(f) = failure {
                        errors.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut first) = first_error.lock() {
                            first.get_or_insert(f);
                        }
                    }
                }
            })
        })
        .collect();

    // Watch: overdue orders every 250 ms, RSS every second.
    let mut worst_overdue = 0;
    let mut rss = Vec::new();
    let mut next_sample = 0.0;
    while start.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(250));
        worst_overdue = worst_overdue.max(overdue(&store, ChronoDuration::seconds(1)));
        let at = start.elapsed().as_secs_f64();
        if at >= next_sample {
            rss.push(Sample {
                secs: at,
                rss_kib: server.memory_kib().1,
            });
            next_sample += 1.0;
        }
    }
    for w in workers {
        w.join().expect("a client thread");
    }
    let sent_in = start.elapsed();
    // The last orders fall due 1.6 s after they were sent.
    let finish = Instant::now();
    while finish.elapsed() < Duration::from_secs(3) {
        worst_overdue = worst_overdue.max(overdue(&store, ChronoDuration::seconds(1)));
        std::thread::sleep(Duration::from_millis(250));
    }
    wait_for(
        "the last orders to be moderated",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || (moderation_events(&store).ok()? >= total as i64).then_some(()),
    );
    let memory = judge(&rss, &budget);
    let every_5s: Vec<u64> = rss.iter().step_by(5).map(|s| s.rss_kib).collect();
    let audit = Audit::of(&store);
    let (late, _) = lateness_ms(&store);
    let errors = errors.load(Ordering::Relaxed);
    eprintln!(
        "[soak] FIGURES backend={backend} secs={secs} rate={rate}/s orders={} sent_in={:.1}s achieved={:.0}/s \
         max_client_behind={}ms errors={errors} duplicates={} lost={} half_written={} \
         worst_pending_past_due+1s={worst_overdue} lateness_ms p50={} p99={} max={} \
         rss_after_warmup({warmup_secs:.0}s)={}KiB rss_peak={}KiB rss_end={}KiB \
         rss_limit={}KiB (cache_bound={}KiB = ({POOL_SIZE}+{SCHEDULER_CONNECTIONS}) connections x \
         ({page_cache_kib}+{PER_CONNECTION_KIB}), \
         slack={SLACK_KIB}KiB) second_half_slope={:+.1}KiB/s ({:+.1} bytes/order) \
         projected={:.0}KiB rss_every_5s={every_5s:?}",
        audit.orders,
        sent_in.as_secs_f64(),
        audit.orders as f64 / sent_in.as_secs_f64(),
        behind_ms.load(Ordering::Relaxed),
        audit.duplicated,
        audit.without_event,
        audit.approved_half_written + audit.rejected_half_written,
        pct(&late, 0.5),
        pct(&late, 0.99),
        pct(&late, 1.0),
        memory.baseline_kib,
        memory.peak_kib,
        memory.end_kib,
        memory.limit_kib,
        budget.cache_bound_kib,
        memory.slope_kib_per_s,
        memory.slope_kib_per_s * 1024.0 / rate as f64,
        memory.projected_kib,
    );
    assert_eq!(
        errors,
        0,
        "request errors; first: {:?}",
        first_error.lock().map(|f| f.clone())
    );
    audit.assert_complete("soak", total as i64);
    assert!(
        audit.orders as f64 / sent_in.as_secs_f64() >= rate as f64 * 0.95,
        "the clients could not keep {rate} orders/s"
    );
    assert_eq!(
        worst_overdue, 0,
        "orders stayed PENDING more than 1 s past their due time"
    );
    if let Some(breach) = &memory.breach {
        panic!("{breach} (RSS every 5 s: {every_5s:?})");
    }
}
