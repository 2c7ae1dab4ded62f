//! Lateness (c), a busy API over a big book: a server holds a future book (due tomorrow) while
//! client threads poll the read routes as fast as they are answered, round-robin over
//! `GET /api/v1/scheduler/status`, `/metrics`, `/api/v1/fetch_orders` and
//! `/api/v1/positions`; orders created over HTTP meanwhile, due over a window, must still be
//! moderated on time, and every API answer must be 2xx (a 503 under read load means the
//! scheduler or the request pool was starved).

use crate::book::FutureBook;
use crate::http::create_json_orders;
use crate::server::{Server, ServerConfig};
use crate::stats::percentile;
use anyhow::{bail, Result};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rand::RngExt;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use storage::bench_support::{moderation_counts, moderation_lateness_ms};

/// The routes the clients poll, in turn.
const ROUTES: [&str; 4] = [
    "/api/v1/scheduler/status",
    "/metrics",
    "/api/v1/fetch_orders",
    "/api/v1/positions",
];

/// One busy-API run.
#[derive(Debug, Clone, Serialize)]
pub struct BusyRun {
    /// Orders in the book.
    pub book: usize,
    /// Orders created during the load and moderated.
    pub orders: usize,
    /// Client threads polling the API.
    pub clients: usize,
    /// Median lateness of the created orders, ms.
    pub p50_ms: i64,
    /// 99th percentile, ms.
    pub p99_ms: i64,
    /// Largest, ms.
    pub max_ms: i64,
    /// Created orders whose creation answered after their due time (counted as late too).
    pub created_after_due: usize,
    /// API answers received while polling.
    pub api_answers: usize,
    /// Of them, not 2xx; plus requests that got no answer at all.
    pub api_non_2xx: usize,
    /// 99th percentile of the polled routes' response time, ms.
    pub api_p99_ms: f64,
    /// Seconds loading the book (not timed in the figures above).
    pub load_s: f64,
    /// 1-minute load average of the machine when the run ended.
    pub loadavg_1m: f64,
}

/// What the polling threads saw.
struct ApiFigures {
    answers: usize,
    non_2xx: usize,
    latencies_us: Vec<u32>,
}

/// `clients` threads polling [`ROUTES`] in turn until stopped.
struct ApiLoad {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<ApiFigures>>,
}

impl ApiLoad {
    fn start(base: &str, clients: usize) -> Result<ApiLoad> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(clients);
        for k in 0..clients {
            // One client (and so one connection) per thread, like independent dashboards.
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?;
            let urls: Vec<String> = ROUTES.iter().map(|r| format!("{base}{r}")).collect();
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                let mut f = ApiFigures {
                    answers: 0,
                    non_2xx: 0,
                    latencies_us: Vec::new(),
                };
                // Threads start on different routes so that every route is always loaded.
                let mut i = k;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let ok = match client.get(&urls[i % urls.len()]).send() {
                        Ok(r) => {
                            f.answers += 1;
                            let success = r.status().is_success();
                            r.bytes().is_ok() && success
                        }
                        Err(_) => false,
                    };
                    if ok {
                        let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
                        f.latencies_us.push(us);
                    } else {
                        f.non_2xx += 1;
                    }
                    i += 1;
                }
                f
            }));
        }
        Ok(ApiLoad { stop, threads })
    }

    fn finish(self) -> ApiFigures {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = ApiFigures {
            answers: 0,
            non_2xx: 0,
            latencies_us: Vec::new(),
        };
        for t in self.threads {
            match t.join() {
                Ok(f) => {
                    all.answers += f.answers;
                    all.non_2xx += f.non_2xx;
                    all.latencies_us.extend(f.latencies_us);
                }
                // A panicked poller lost its counts: make the run fail rather than look clean.
                Err(_) => all.non_2xx += 1,
            }
        }
        all.latencies_us.sort_unstable();
        all
    }
}

/// Starts a server (default settings) on `book`, starts `clients` pollers, creates `orders`
/// orders due at random instants over `window` (the first `lead` ahead), polls until the last
/// is due, then reads the lateness of the created orders.
pub fn run(
    book: &FutureBook,
    server_cfg: &ServerConfig,
    orders: usize,
    window: Duration,
    clients: usize,
    lead: Duration,
) -> Result<BusyRun> {
    let store = book.db.open()?;
    let server = Server::start(server_cfg, &book.db.url, true, "busy")?;
    let load = ApiLoad::start(&server.base, clients)?;
    // The pollers get going before the first order is created.
    std::thread::sleep(Duration::from_millis(500));
    let start = Utc::now() + ChronoDuration::milliseconds(lead.as_millis() as i64);
    let window_ms = window.as_millis().max(1) as i64;
    let mut rng = rand::rng();
    let mut dues: Vec<DateTime<Utc>> = (0..orders)
        .map(|_| start + ChronoDuration::milliseconds(rng.random_range(0..window_ms)))
        .collect();
    dues.sort_unstable();
    let last_due = dues.last().copied().unwrap_or(start);
    let created = create_json_orders(&server.base, dues, 8)?;
    let wait = (last_due - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    std::thread::sleep(wait + Duration::from_millis(500));
    let api = load.finish();
    // The book is never due, so every moderation event is one of the created orders'.
    let started = Instant::now();
    loop {
        let (events, _) = moderation_counts(&store)?;
        if events >= orders as i64 {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!(
                "{events} of {orders} orders moderated 60 s after the last due time; see {}",
                server.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(server);
    let mut late = moderation_lateness_ms(&store)?;
    if late.len() != orders {
        bail!("expected {orders} moderations, found {}", late.len());
    }
    late.sort_unstable();
    let pick = |p| percentile(&late, p).unwrap_or(0);
    Ok(BusyRun {
        book: book.orders,
        orders,
        clients,
        p50_ms: pick(50.0),
        p99_ms: pick(99.0),
        max_ms: pick(100.0),
        created_after_due: created.after_due,
        api_answers: api.answers,
        api_non_2xx: api.non_2xx,
        api_p99_ms: percentile(&api.latencies_us, 99.0).map_or(0.0, |us| f64::from(us) / 1000.0),
        load_s: book.load_s,
        loadavg_1m: crate::stats::loadavg_1m(),
    })
}
