//! Scenario 7: soak. 1,000 orders/s created over HTTP by concurrent clients, each due about
//! 1.5 s after creation, moderated by the same server, for `SOAK_SECS` seconds (60 by default,
//! as in CI; `SOAK_SECS=600` for the 10-minute run). Zero errors, no order PENDING past its due
//! time + 1 s (checked every 250 ms), and RSS at the end within 10 % of RSS after warm-up.
//! `SOAK_RATE` changes the rate. It runs on Postgres when one is reachable, else on SQLite;
//! `SOAK_BACKEND=sqlite` forces SQLite (whose per-connection page caches, 2 MiB each by
//! default, grow with the database for several minutes: see `docs/RELIABILITY.md`).

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
use system_tests::ServerProcess;

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
    let warmup = Duration::from_secs(secs.min(600) / 4).max(Duration::from_secs(10));
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
    let server = ServerProcess::start(&db.url, &["--check-interval-secs", "1"]);
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

    // Watch: overdue orders every 250 ms, RSS after warm-up and at the end.
    let mut worst_overdue = 0;
    let mut rss_warm = None;
    let mut rss_samples = Vec::new();
    let mut last_sample = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(250));
        worst_overdue = worst_overdue.max(overdue(&store, ChronoDuration::seconds(1)));
        if rss_warm.is_none() && start.elapsed() >= warmup {
            rss_warm = Some(server.memory_kib().1);
        }
        if last_sample.elapsed() >= Duration::from_secs(5) {
            rss_samples.push(server.memory_kib().1);
            last_sample = Instant::now();
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
    let rss_end = server.memory_kib().1;
    let rss_warm = rss_warm.unwrap_or(rss_end);
    let audit = Audit::of(&store);
    let (late, _) = lateness_ms(&store);
    let errors = errors.load(Ordering::Relaxed);
    let growth = (rss_end as f64 - rss_warm as f64) / rss_warm.max(1) as f64 * 100.0;
    eprintln!(
        "[soak] FIGURES backend={backend} secs={secs} rate={rate}/s orders={} sent_in={:.1}s achieved={:.0}/s \
         max_client_behind={}ms errors={errors} duplicates={} lost={} half_written={} \
         worst_pending_past_due+1s={worst_overdue} lateness_ms p50={} p99={} max={} \
         rss_after_warmup({}s)={rss_warm}KiB rss_end={rss_end}KiB growth={growth:+.1}% \
         rss_every_5s={rss_samples:?}",
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
        warmup.as_secs(),
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
    assert!(
        growth.abs() <= 10.0,
        "RSS moved {growth:+.1}% after warm-up ({rss_warm} → {rss_end} KiB)"
    );
}
