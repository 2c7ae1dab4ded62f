//! Catch-up: N due orders (loaded untimed) drained by real server processes, timed from
//! `POST /api/v1/scheduler/start` until no order is pending; then, on a copy of the same rows,
//! the set-based UPDATE that is the database's limit. Also the scale-out runs (several servers
//! on one Postgres database).
//!
//! Two books (issue 14 item 3): *sequential*, whose ids (creation order) run in due order so
//! that each batch touches the primary key's pages in sequence, and *realistic*, a day-ahead
//! book created over time for tomorrow's hours: ids still in creation order, due times drawn
//! independently of it, and `GET /api/v1/scheduler/status` polled every 50 ms during the drain
//! as a dashboard would. A third, on demand (`--books hourly`): the realistic book with every
//! order due at one of 24 hour starts, as the day-ahead market's `hour_start_utc` usually is.

use crate::db::{Backend, BenchDb, DbConfig};
use crate::server::{Server, ServerConfig};
use anyhow::{bail, Result};
use chrono::{Duration as ChronoDuration, Utc};
use rand::RngExt;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::bench_support::{
    any_pending, baseline_events, baseline_update, load_orders, load_orders_due_at,
    moderation_counts, settle, wal_bytes,
};

/// How the loaded book's due times relate to its creation (id) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Book {
    /// Ids in due order (the original case).
    Sequential,
    /// Due times independent of id order; the status endpoint polled every 50 ms.
    Realistic,
    /// As realistic, but each order due at one of the last 24 hour starts (drawn
    /// independently of id order): a day-ahead book whose orders share few due instants, so
    /// that orders due together are still in id order among themselves.
    Hourly,
}

impl Book {
    /// The label in tables and targets.
    pub fn name(self) -> &'static str {
        match self {
            Book::Sequential => "sequential",
            Book::Realistic => "realistic",
            Book::Hourly => "hourly",
        }
    }
}

/// One catch-up run.
#[derive(Debug, Clone, Serialize)]
pub struct CatchupRun {
    /// Orders drained.
    pub orders: usize,
    /// Which book was loaded.
    pub book: Book,
    /// Answers of `GET /api/v1/scheduler/status` during the drain (all but the sequential book).
    pub status_polls: usize,
    /// Of those, answers that were not 2xx or failed.
    pub status_errors: usize,
    /// Server processes sharing the work.
    pub servers: usize,
    /// Seconds from the start command until nothing was pending.
    pub drain_s: f64,
    /// `orders / drain_s`.
    pub orders_per_s: f64,
    /// Largest peak RSS (VmHWM) among the server processes, MiB.
    pub peak_rss_mib: f64,
    /// Seconds of the set-based UPDATE on a copy of the rows (absent in scale-out runs).
    pub limit_update_s: Option<f64>,
    /// Seconds of the set-based INSERT of the matching history lines after it.
    pub limit_events_s: Option<f64>,
    /// `orders / limit_update_s`.
    pub limit_rows_per_s: Option<f64>,
    /// `drain_s / limit_update_s`: how many times the limit our drain takes.
    pub ratio_vs_limit: Option<f64>,
    /// `drain_s / (limit_update_s + limit_events_s)`: against a limit that also writes history.
    pub ratio_vs_limit_with_events: Option<f64>,
    /// KiB written per order during the drain: on Postgres the cluster's write-ahead log, on
    /// SQLite what the server processes wrote to storage (log frames and checkpoints).
    pub written_kib_per_order: f64,
    /// The same for the limit's UPDATE and INSERT (on SQLite, written by the bench itself).
    pub limit_written_kib_per_order: Option<f64>,
    /// Seconds spent loading (not timed in the figures above).
    pub load_s: f64,
    /// 1-minute load average of the machine when the run ended.
    pub loadavg_1m: f64,
}

/// Loads `n` orders due over the past hour (the hourly book: the past day) into a fresh
/// database and settles it.
fn prepared(
    backend: Backend,
    cfg: &DbConfig,
    n: usize,
    book: Book,
) -> Result<(BenchDb, storage::Store, f64)> {
    let db = BenchDb::create(backend, cfg)?;
    let store = db.open()?;
    let t = Instant::now();
    let first_due = Utc::now() - ChronoDuration::hours(1);
    let span = ChronoDuration::minutes(59);
    match book {
        Book::Sequential => {
            load_orders(&store, n, first_due, span, "api")?;
        }
        Book::Realistic => {
            let mut rng = rand::rng();
            let span_ms = span.num_milliseconds();
            let dues: Vec<_> = (0..n)
                .map(|_| first_due + ChronoDuration::milliseconds(rng.random_range(0..span_ms)))
                .collect();
            load_orders_due_at(&store, &dues, "api", None)?;
        }
        Book::Hourly => {
            let mut rng = rand::rng();
            let now = Utc::now();
            let last_hour = now - ChronoDuration::seconds(now.timestamp().rem_euclid(3_600));
            let dues: Vec<_> = (0..n)
                .map(|_| last_hour - ChronoDuration::hours(rng.random_range(0..24)))
                .collect();
            load_orders_due_at(&store, &dues, "api", None)?;
        }
    }
    settle(&store)?;
    Ok((db, store, t.elapsed().as_secs_f64()))
}

/// Runs one catch-up: `servers` processes drain `n` orders; with `limit`, the set-based UPDATE
/// runs on a copy of the same rows afterwards.
pub fn run(
    backend: Backend,
    cfg: &DbConfig,
    server_cfg: &ServerConfig,
    n: usize,
    servers: usize,
    limit: bool,
    book: Book,
) -> Result<CatchupRun> {
    let (db, store, load_s) = prepared(backend, cfg, n, book)?;
    let copy = if limit {
        Some(db.copy(store, cfg)?)
    } else {
        drop(store);
        None
    };
    let procs = (0..servers.max(1))
        .map(|k| Server::start(server_cfg, &db.url, false, &format!("bench{k}")))
        .collect::<Result<Vec<_>>>()?;
    let store = db.open()?;
    let timeout = Duration::from_secs(120 + n as u64 / 1_000);
    // Each poll is a query on the database being drained: rarely enough to cost it little
    // (one index probe per poll), often enough to be well under 1 % of the drain time.
    let poll = Duration::from_millis(if n >= 50_000 { 50 } else { 5 });
    let poller = (book != Book::Sequential).then(|| StatusPoller::start(&procs[0].base));
    let pids: Vec<u32> = procs.iter().map(Server::pid).collect();
    let written_before = written(&store, &pids)?;
    let started = Instant::now();
    for p in &procs {
        p.post("/api/v1/scheduler/start")?;
    }
    while any_pending(&store)? {
        if started.elapsed() > timeout {
            bail!(
                "{n} orders not drained within {timeout:?}; see {}",
                procs[0].log.display()
            );
        }
        std::thread::sleep(poll);
    }
    let drain_s = started.elapsed().as_secs_f64();
    let written_kib_per_order =
        kib_per_order(written(&store, &pids)?.saturating_sub(written_before), n);
    let (status_polls, status_errors) = poller.map_or((0, 0), StatusPoller::finish);
    let mut peak_rss_mib: f64 = 0.0;
    for p in &procs {
        peak_rss_mib = peak_rss_mib.max(p.peak_rss_mib()?);
    }
    drop(procs);
    let (events, distinct) = moderation_counts(&store)?;
    if events != n as i64 || distinct != n as i64 {
        bail!("expected {n} moderations of {n} orders, found {events} events on {distinct} orders");
    }
    drop(store);
    drop(db);
    let (mut limit_update_s, mut limit_events_s, mut limit_written) = (None, None, None);
    if let Some(copy) = copy {
        let store = copy.open()?;
        let me = [std::process::id()];
        let before = written(&store, &me)?;
        let t = Instant::now();
        let rows = baseline_update(&store)?;
        limit_update_s = Some(t.elapsed().as_secs_f64());
        let t = Instant::now();
        baseline_events(&store)?;
        limit_events_s = Some(t.elapsed().as_secs_f64());
        limit_written = Some(kib_per_order(
            written(&store, &me)?.saturating_sub(before),
            n,
        ));
        if rows != n {
            bail!("the baseline UPDATE changed {rows} rows, expected {n}");
        }
    }
    Ok(CatchupRun {
        orders: n,
        book,
        status_polls,
        status_errors,
        servers: servers.max(1),
        drain_s,
        orders_per_s: n as f64 / drain_s,
        peak_rss_mib,
        limit_update_s,
        limit_events_s,
        limit_rows_per_s: limit_update_s.map(|s| n as f64 / s),
        ratio_vs_limit: limit_update_s.map(|s| drain_s / s),
        ratio_vs_limit_with_events: limit_update_s
            .zip(limit_events_s)
            .map(|(u, e)| drain_s / (u + e)),
        written_kib_per_order,
        limit_written_kib_per_order: limit_written,
        load_s,
        loadavg_1m: crate::stats::loadavg_1m(),
    })
}

/// Bytes the database has written so far: the Postgres cluster's write-ahead log, or on SQLite
/// (one file, written by whichever process holds the write lock) what `pids` wrote to storage.
fn written(store: &storage::Store, pids: &[u32]) -> Result<u64> {
    match wal_bytes(store)? {
        Some(bytes) => Ok(u64::try_from(bytes)?),
        None => pids.iter().map(|&p| crate::server::write_bytes(p)).sum(),
    }
}

fn kib_per_order(bytes: u64, n: usize) -> f64 {
    bytes as f64 / 1024.0 / n.max(1) as f64
}

/// A dashboard's view of the drain: `GET /api/v1/scheduler/status` every 50 ms on its own
/// thread, counting answers and failures.
struct StatusPoller {
    stop: Arc<AtomicBool>,
    answers: Arc<AtomicUsize>,
    errors: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<()>,
}

impl StatusPoller {
    fn start(base: &str) -> StatusPoller {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(AtomicUsize::new(0));
        let url = format!("{base}/api/v1/scheduler/status");
        let thread = {
            let (stop, answers, errors) = (stop.clone(), answers.clone(), errors.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build();
                let Ok(client) = client else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                while !stop.load(Ordering::Relaxed) {
                    match client.get(&url).send() {
                        Ok(r) if r.status().is_success() => {
                            // Read the body, as a dashboard would.
                            let _ = r.bytes();
                            answers.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        StatusPoller {
            stop,
            answers,
            errors,
            thread,
        }
    }

    /// Stops polling; returns (answers, failures).
    fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        (
            self.answers.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }
}
