//! Lateness (c), a busy API over a big book: a server holds a future book (due tomorrow) while
//! client threads poll the read routes as fast as they are answered, round-robin over
//! `GET /api/v1/scheduler/status`, `/metrics`, `/api/v1/fetch_orders` and
//! `/api/v1/positions`; orders created over HTTP meanwhile, due over a window, must still be
//! moderated on time, and every API answer must be 2xx (a 503 under read load means the
//! scheduler or the request pool was starved).

use crate::book::FutureBook;
use crate::http::{create_json_orders_counting_failures, CreatedOrder};
use crate::server::{Server, ServerConfig};
use crate::stats::percentile;
use anyhow::{bail, Result};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use orders::OrderStatus;
use rand::RngExt;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use storage::bench_support::{moderation_counts, moderation_lateness_ms};
use storage::Store;

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
    /// Orders created during the load (answered 2xx) and moderated.
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
    /// Orders whose creation was answered before their due time.
    pub in_time_orders: usize,
    /// Lateness of those orders only: what the scheduler alone is responsible for. Median, ms
    /// (none when no order was created in time).
    pub in_time_p50_ms: Option<i64>,
    /// Their 99th percentile, ms.
    pub in_time_p99_ms: Option<i64>,
    /// Their largest, ms.
    pub in_time_max_ms: Option<i64>,
    /// Creations answered with anything but 2xx, or not answered (those orders do not exist,
    /// so their lateness is not in the figures above).
    pub create_non_2xx: usize,
    /// The first failed creation's status and body.
    pub create_first_failure: Option<String>,
    /// API answers received while polling.
    pub api_answers: usize,
    /// Of them, not 2xx; plus requests that got no answer at all.
    pub api_non_2xx: usize,
    /// 99th percentile of the polled routes' response time, ms.
    pub api_p99_ms: f64,
    /// The same per route.
    pub per_route: Vec<RouteFigures>,
    /// Seconds loading the book (not timed in the figures above).
    pub load_s: f64,
    /// 1-minute load average of the machine when the run ended.
    pub loadavg_1m: f64,
}

/// What the polling threads saw on one route.
#[derive(Debug, Clone, Serialize)]
pub struct RouteFigures {
    /// The route.
    pub route: &'static str,
    /// Answers received.
    pub answers: usize,
    /// Not 2xx, or no answer.
    pub non_2xx: usize,
    /// The first such answer's status and the start of its body.
    pub first_failure: Option<String>,
    /// Median response time of its 2xx answers, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
}

/// What the polling threads saw, per route (in [`ROUTES`] order).
#[derive(Default)]
struct ApiFigures {
    answers: [usize; ROUTES.len()],
    non_2xx: [usize; ROUTES.len()],
    first_failure: [Option<String>; ROUTES.len()],
    latencies_us: [Vec<u32>; ROUTES.len()],
}

fn ms(sorted_us: &[u32], p: f64) -> f64 {
    percentile(sorted_us, p).map_or(0.0, |us| f64::from(us) / 1000.0)
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
                let mut f = ApiFigures::default();
                // Threads start on different routes so that every route is always loaded.
                let mut i = k;
                while !stop.load(Ordering::Relaxed) {
                    let r = i % urls.len();
                    let t = Instant::now();
                    let failure = match client.get(&urls[r]).send() {
                        Ok(resp) => {
                            f.answers[r] += 1;
                            let status = resp.status();
                            match resp.bytes() {
                                Ok(_) if status.is_success() => None,
                                Ok(body) => Some(format!(
                                    "{status} {}",
                                    String::from_utf8_lossy(&body[..body.len().min(200)])
                                )),
                                Err(e) => Some(format!("{status}, body unread: {e}")),
                            }
                        }
                        Err(e) => Some(format!("no answer: {e}")),
                    };
                    match failure {
                        None => {
                            let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
                            f.latencies_us[r].push(us);
                        }
                        Some(msg) => {
                            f.non_2xx[r] += 1;
                            f.first_failure[r].get_or_insert(msg);
                        }
                    }
                    i += 1;
                }
                f
            }));
        }
        Ok(ApiLoad { stop, threads })
    }

    /// Stops the pollers; per route, then all routes together (answers, non-2xx, p99 ms).
    fn finish(self) -> (Vec<RouteFigures>, usize, usize, f64) {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = ApiFigures::default();
        for t in self.threads {
            match t.join() {
                Ok(f) => {
                    for r in 0..ROUTES.len() {
                        all.answers[r] += f.answers[r];
                        all.non_2xx[r] += f.non_2xx[r];
                        all.latencies_us[r].extend_from_slice(&f.latencies_us[r]);
                        if all.first_failure[r].is_none() {
                            all.first_failure[r] = f.first_failure[r].clone();
                        }
                    }
                }
                // A panicked poller lost its counts: make the run fail rather than look clean.
                Err(_) => all.non_2xx[0] += 1,
            }
        }
        let mut merged: Vec<u32> = all.latencies_us.iter().flatten().copied().collect();
        merged.sort_unstable();
        let per_route = ROUTES
            .iter()
            .enumerate()
            .map(|(r, route)| {
                let lat = &mut all.latencies_us[r];
                lat.sort_unstable();
                RouteFigures {
                    route,
                    answers: all.answers[r],
                    non_2xx: all.non_2xx[r],
                    first_failure: all.first_failure[r].take(),
                    p50_ms: ms(lat, 50.0),
                    p99_ms: ms(lat, 99.0),
                    max_ms: ms(lat, 100.0),
                }
            })
            .collect();
        (
            per_route,
            all.answers.iter().sum(),
            all.non_2xx.iter().sum(),
            ms(&merged, 99.0),
        )
    }
}

/// Lateness (moderation event time minus due time, ms) of each created order whose creation
/// was answered before its due time, read from its history.
fn in_time_lateness_ms(store: &Store, created: &[CreatedOrder]) -> Result<Vec<i64>> {
    let mut late = Vec::new();
    for c in created.iter().filter(|c| c.answered_at < c.due) {
        let Some(id) = &c.id else {
            bail!("a create answer carried no order id");
        };
        let moderation = store.order_events(id)?.into_iter().find(|e| {
            e.from_status == Some(OrderStatus::Pending)
                && matches!(e.to_status, OrderStatus::Approved | OrderStatus::Rejected)
        });
        match moderation {
            Some(e) => late.push((e.at - c.due).num_milliseconds()),
            None => bail!("order {id} has no moderation event"),
        }
    }
    Ok(late)
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
    let created = create_json_orders_counting_failures(&server.base, dues, 8)?;
    let wait = (last_due - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    std::thread::sleep(wait + Duration::from_millis(500));
    let (per_route, api_answers, api_non_2xx, api_p99_ms) = load.finish();
    let orders_created = orders - created.failed;
    // The book is never due, so every moderation event is one of the created orders'.
    let started = Instant::now();
    loop {
        let (events, _) = moderation_counts(&store)?;
        if events >= orders_created as i64 {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!(
                "{events} of {orders_created} orders moderated 60 s after the last due time; see {}",
                server.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(server);
    let mut in_time = in_time_lateness_ms(&store, &created.orders)?;
    in_time.sort_unstable();
    let mut late = moderation_lateness_ms(&store)?;
    if late.len() != orders_created {
        bail!(
            "expected {orders_created} moderations, found {}",
            late.len()
        );
    }
    late.sort_unstable();
    let pick = |p| percentile(&late, p).unwrap_or(0);
    Ok(BusyRun {
        book: book.orders,
        orders: orders_created,
        clients,
        p50_ms: pick(50.0),
        p99_ms: pick(99.0),
        max_ms: pick(100.0),
        created_after_due: created.after_due,
        in_time_orders: in_time.len(),
        in_time_p50_ms: percentile(&in_time, 50.0),
        in_time_p99_ms: percentile(&in_time, 99.0),
        in_time_max_ms: percentile(&in_time, 100.0),
        create_non_2xx: created.failed,
        create_first_failure: created.first_failure,
        api_answers,
        api_non_2xx,
        api_p99_ms,
        per_route,
        load_s: book.load_s,
        loadavg_1m: crate::stats::loadavg_1m(),
    })
}
