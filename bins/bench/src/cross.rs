//! Lateness (d), orders from other processes: (1) orders written by the CLI
//! (`order-scheduler seed`) into the database a running server serves; (2) on Postgres, two
//! servers on one database, orders created through A, A SIGKILLed at once, so that only B can
//! moderate them. Both servers keep the default 30 s check interval: only the insert watcher
//! can wake them in time.

use crate::db::{Backend, BenchDb, DbConfig};
use crate::http::create_json_orders;
use crate::server::{Server, ServerConfig};
use crate::stats::percentile;
use anyhow::{bail, Context, Result};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::Serialize;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use storage::bench_support::{any_pending, moderation_lateness_ms};
use storage::Store;

/// Which cross-process case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CrossCase {
    /// Orders written by `order-scheduler seed` while a server runs.
    Cli,
    /// Orders created through instance A, SIGKILLed at once; moderated by instance B.
    KilledCreator,
}

impl CrossCase {
    /// How the case is shown in the table.
    pub fn label(self) -> &'static str {
        match self {
            CrossCase::Cli => "(d1) CLI seed",
            CrossCase::KilledCreator => "(d2) creator killed",
        }
    }
}

/// One cross-process run.
#[derive(Debug, Clone, Serialize)]
pub struct CrossRun {
    /// The case.
    pub case: CrossCase,
    /// Orders moderated.
    pub orders: usize,
    /// Median lateness, ms.
    pub p50_ms: i64,
    /// 99th percentile, ms.
    pub p99_ms: i64,
    /// Largest, ms.
    pub max_ms: i64,
    /// 1-minute load average of the machine when the run ended.
    pub loadavg_1m: f64,
}

/// The server arguments of both cases: the default check interval, spelled out because the
/// cases mean nothing with a short one.
const SERVE_ARGS: [&str; 2] = ["--check-interval-secs", "30"];

/// Waits until nothing is pending (at most 60 s after `last_due`), then reads the lateness.
fn lateness_after(
    store: &Store,
    server: &Server,
    case: CrossCase,
    orders: usize,
    last_due: DateTime<Utc>,
) -> Result<CrossRun> {
    let wait = (last_due - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    std::thread::sleep(wait + Duration::from_millis(200));
    let started = Instant::now();
    while any_pending(store)? {
        if started.elapsed() > Duration::from_secs(60) {
            bail!(
                "orders still pending 60 s after the last due time; see {}",
                server.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut late = moderation_lateness_ms(store)?;
    if late.len() != orders {
        bail!("expected {orders} moderations, found {}", late.len());
    }
    late.sort_unstable();
    let pick = |p| percentile(&late, p).unwrap_or(0);
    Ok(CrossRun {
        case,
        orders,
        p50_ms: pick(50.0),
        p99_ms: pick(99.0),
        max_ms: pick(100.0),
        loadavg_1m: crate::stats::loadavg_1m(),
    })
}

/// (d1) A server runs on a fresh database; `order-scheduler seed -n <orders> --start-in-secs
/// <lead> --window-secs <window>` writes into it from another process.
pub fn cli(
    backend: Backend,
    cfg: &DbConfig,
    server_cfg: &ServerConfig,
    orders: usize,
    lead: Duration,
    window: Duration,
) -> Result<CrossRun> {
    let db = BenchDb::create(backend, cfg)?;
    let store = db.open()?;
    let server = Server::start_with(server_cfg, &db.url, true, "cross-cli", &SERVE_ARGS)?;
    let port = server.base.rsplit(':').next().unwrap_or("0");
    let log = server_cfg
        .log_dir
        .join(format!("seed-{}-{port}.log", backend.name()));
    let out = std::fs::File::create(&log)?;
    // The CLI picks the due times when it starts; its last can be up to `window` after that.
    let seeded_at = Utc::now();
    let status = Command::new(&server_cfg.bin)
        .arg("seed")
        .arg("--database-url")
        .arg(&db.url)
        .arg("-n")
        .arg(orders.to_string())
        .arg("--start-in-secs")
        .arg(format!("{:.3}", lead.as_secs_f64()))
        .arg("--window-secs")
        .arg(format!("{:.3}", window.as_secs_f64()))
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .context("cannot run order-scheduler seed")?;
    if !status.success() {
        bail!(
            "order-scheduler seed failed ({status}); see {}",
            log.display()
        );
    }
    let seed_s = (Utc::now() - seeded_at).num_milliseconds();
    if seed_s > lead.as_millis() as i64 {
        eprintln!("  warning: seed took {seed_s} ms, longer than the {lead:?} lead");
    }
    let last_due = Utc::now() + ChronoDuration::milliseconds((lead + window).as_millis() as i64);
    lateness_after(&store, &server, CrossCase::Cli, orders, last_due)
}

/// (d2) Postgres: servers A and B on one database; `orders` orders due evenly from `lead` to
/// `lead + window` ahead are created through A, then A is SIGKILLed; B must moderate them.
pub fn killed_creator(
    cfg: &DbConfig,
    server_cfg: &ServerConfig,
    orders: usize,
    lead: Duration,
    window: Duration,
) -> Result<CrossRun> {
    let db = BenchDb::create(Backend::Postgres, cfg)?;
    let store = db.open()?;
    let a = Server::start_with(server_cfg, &db.url, true, "cross-a", &SERVE_ARGS)?;
    let b = Server::start_with(server_cfg, &db.url, true, "cross-b", &SERVE_ARGS)?;
    let start = Utc::now() + ChronoDuration::milliseconds(lead.as_millis() as i64);
    let window_ms = window.as_millis() as i64;
    let dues: Vec<DateTime<Utc>> = (0..orders)
        .map(|i| start + ChronoDuration::milliseconds(window_ms * i as i64 / orders.max(1) as i64))
        .collect();
    let last_due = dues.last().copied().unwrap_or(start);
    let created = create_json_orders(&a.base, dues, 4)?;
    a.kill9()?;
    if created.after_due > 0 {
        bail!(
            "{} orders were created after their due time; raise the lead",
            created.after_due
        );
    }
    lateness_after(&store, &b, CrossCase::KilledCreator, orders, last_due)
}
