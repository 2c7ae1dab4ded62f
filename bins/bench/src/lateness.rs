//! Lateness: orders created over HTTP while the server runs, moderated by its scheduler;
//! lateness is each moderation event's `at` minus the order's `hour_start_utc`, read from
//! `order_events`. (a) spread: orders due at random instants over a window; (b) burst: all due
//! at one instant. Either may run with event-stream clients connected, as open dashboards are
//! ([`Watcher`]): each must then receive every moderation.

use crate::db::{Backend, BenchDb, DbConfig};
use crate::http::create_json_orders;
use crate::server::{Server, ServerConfig};
use crate::stats::percentile;
use anyhow::{bail, Result};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rand::RngExt;
use serde::Serialize;
use std::io::BufRead;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use storage::bench_support::{any_pending, moderation_lateness_ms};

/// One lateness run.
#[derive(Debug, Clone, Serialize)]
pub struct LatenessRun {
    /// Orders created (all moderated).
    pub orders: usize,
    /// Median lateness, ms.
    pub p50_ms: i64,
    /// 99th percentile, ms.
    pub p99_ms: i64,
    /// Largest, ms: in a burst, when the last order was moderated after the due instant.
    pub max_ms: i64,
    /// Orders whose creation answered after their due time (they count as late too).
    pub created_after_due: usize,
    /// Seconds spent creating the orders over HTTP.
    pub create_s: f64,
    /// 1-minute load average of the machine when the run ended.
    pub loadavg_1m: f64,
    /// Event-stream clients connected during the run (each received every moderation).
    pub watchers: usize,
}

/// An open `GET /api/v1/events`, as a dashboard holds one, read on its own thread: counts the
/// moderations (events from `PENDING` to `APPROVED` or `REJECTED`) it receives. It ends when
/// the server closes the stream.
struct Watcher {
    moderations: Arc<AtomicUsize>,
    thread: JoinHandle<()>,
}

impl Watcher {
    fn connect(base: &str) -> Result<Watcher> {
        let resp = reqwest::blocking::Client::builder()
            .timeout(None)
            .build()?
            .get(format!("{base}/api/v1/events"))
            .send()?
            .error_for_status()?;
        let moderations = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&moderations);
        let thread = std::thread::spawn(move || {
            for line in std::io::BufReader::new(resp).lines() {
                let Ok(line) = line else { break };
                let Some(data) = line.strip_prefix("data: ") else {
                    continue;
                };
                let Ok(event) = serde_json::from_str::<serde_json::Value>(data) else {
                    continue;
                };
                if event["from_status"] == "PENDING"
                    && (event["to_status"] == "APPROVED" || event["to_status"] == "REJECTED")
                {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Ok(Watcher {
            moderations,
            thread,
        })
    }

    fn received(&self) -> usize {
        self.moderations.load(Ordering::Relaxed)
    }
}

/// Creates `dues.len()` orders (soonest first) on a fresh database's server, waits until all
/// are moderated, and reads their lateness.
fn run_with(
    backend: Backend,
    cfg: &DbConfig,
    server_cfg: &ServerConfig,
    dues: Vec<DateTime<Utc>>,
    watchers: usize,
) -> Result<LatenessRun> {
    let db = BenchDb::create(backend, cfg)?;
    let store = db.open()?;
    let server = Server::start(server_cfg, &db.url, true, "lateness")?;
    let watching = (0..watchers)
        .map(|_| Watcher::connect(&server.base))
        .collect::<Result<Vec<_>>>()?;
    let n = dues.len();
    let last_due = dues.iter().max().copied().unwrap_or_else(Utc::now);
    let t = Instant::now();
    let created = create_json_orders(&server.base, dues, 8)?;
    let create_s = t.elapsed().as_secs_f64();
    let wait = (last_due - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    std::thread::sleep(wait + Duration::from_millis(200));
    let started = Instant::now();
    while any_pending(&store)? {
        if started.elapsed() > Duration::from_secs(60) {
            bail!(
                "orders still pending 60 s after the last due time; see {}",
                server.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The stream publishes what was committed within its poller's tick (100 ms).
    let deadline = Instant::now() + Duration::from_secs(5);
    while watching.iter().any(|w| w.received() < n) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(server);
    for (k, w) in watching.into_iter().enumerate() {
        let received = w.received();
        // The server is gone, so the stream has ended.
        let _ = w.thread.join();
        if received != n {
            bail!("event-stream client {k} received {received} of {n} moderations");
        }
    }
    let mut late = moderation_lateness_ms(&store)?;
    if late.len() != n {
        bail!("expected {n} moderations, found {}", late.len());
    }
    late.sort_unstable();
    let pick = |p| percentile(&late, p).unwrap_or(0);
    Ok(LatenessRun {
        orders: n,
        p50_ms: pick(50.0),
        p99_ms: pick(99.0),
        max_ms: pick(100.0),
        created_after_due: created.after_due,
        create_s,
        loadavg_1m: crate::stats::loadavg_1m(),
        watchers,
    })
}

/// (a) `n` orders due at random instants over `window`, starting `lead` after creation starts
/// (creation goes soonest first and outpaces the due times).
pub fn spread(
    backend: Backend,
    cfg: &DbConfig,
    server_cfg: &ServerConfig,
    n: usize,
    window: Duration,
    lead: Duration,
    watchers: usize,
) -> Result<LatenessRun> {
    let start = Utc::now() + ChronoDuration::milliseconds(lead.as_millis() as i64);
    let window_ms = window.as_millis().max(1) as i64;
    let mut rng = rand::rng();
    let mut dues: Vec<DateTime<Utc>> = (0..n)
        .map(|_| start + ChronoDuration::milliseconds(rng.random_range(0..window_ms)))
        .collect();
    dues.sort_unstable();
    run_with(backend, cfg, server_cfg, dues, watchers)
}

/// (b) `n` orders all due at one instant, `lead` plus 2 ms per order ahead, so that their
/// creation finishes first.
pub fn burst(
    backend: Backend,
    cfg: &DbConfig,
    server_cfg: &ServerConfig,
    n: usize,
    lead: Duration,
    watchers: usize,
) -> Result<LatenessRun> {
    let lead = ChronoDuration::milliseconds(lead.as_millis() as i64 + n as i64 * 2);
    let due = Utc::now() + lead;
    run_with(backend, cfg, server_cfg, vec![due; n], watchers)
}
