//! Lateness while retention prunes (issue 16 item 3): a database holding `old` closed orders
//! (REJECTED 40 days ago, bulk-loaded, not timed), a server started with
//! `--retain-closed-days 30` (its first sweep begins 2 s after start and deletes them in
//! batches), and meanwhile orders created over HTTP falling due at random instants over a
//! window. Lateness = moderation event `at` − `hour_start_utc` of those orders; the deletions
//! are read from the server's `/metrics` at the end, to show how much of the pruning overlapped.

use crate::db::{Backend, BenchDb, DbConfig};
use crate::http::create_json_orders;
use crate::server::{Server, ServerConfig};
use crate::stats::percentile;
use anyhow::{bail, Context, Result};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rand::RngExt;
use serde::Serialize;
use std::time::{Duration, Instant};
use storage::bench_support::{any_pending, load_orders_due_at, moderation_lateness_ms, settle};

/// One pruning run.
#[derive(Debug, Clone, Serialize)]
pub struct PruneRun {
    /// Database.
    pub backend: Backend,
    /// Old closed orders loaded for retention to delete.
    pub old_orders: usize,
    /// Old orders deleted by the time the last new order was moderated.
    pub pruned_orders: u64,
    /// Orders created during the sweep (all moderated).
    pub orders: usize,
    /// Of those, created after their due time.
    pub created_after_due: usize,
    /// Lateness of the new orders, ms.
    pub p50_ms: i64,
    /// 99th percentile, ms.
    pub p99_ms: i64,
    /// Largest, ms.
    pub max_ms: i64,
    /// Seconds spent loading the old book.
    pub load_s: f64,
    /// 1-minute load average of the machine when the run ended.
    pub loadavg_1m: f64,
}

/// Runs one pruning case.
pub fn run(
    backend: Backend,
    cfg: &DbConfig,
    server_cfg: &ServerConfig,
    old: usize,
    orders: usize,
    window: Duration,
    lead: Duration,
) -> Result<PruneRun> {
    let db = BenchDb::create(backend, cfg)?;
    let store = db.open()?;
    let t = Instant::now();
    let now = Utc::now();
    let mut rng = rand::rng();
    let old_dues: Vec<DateTime<Utc>> = (0..old)
        .map(|_| {
            now - ChronoDuration::days(41) + ChronoDuration::seconds(rng.random_range(0..86_400))
        })
        .collect();
    load_orders_due_at(
        &store,
        &old_dues,
        "api",
        Some(now - ChronoDuration::days(40)),
    )?;
    settle(&store)?;
    let load_s = t.elapsed().as_secs_f64();
    let server = Server::start_with(
        server_cfg,
        &db.url,
        true,
        "prune",
        &["--retain-closed-days", "30"],
    )?;
    let start = Utc::now() + ChronoDuration::milliseconds(lead.as_millis() as i64);
    let window_ms = window.as_millis().max(1) as i64;
    let mut dues: Vec<DateTime<Utc>> = (0..orders)
        .map(|_| start + ChronoDuration::milliseconds(rng.random_range(0..window_ms)))
        .collect();
    dues.sort_unstable();
    let last_due = dues.last().copied().unwrap_or(start);
    let created = create_json_orders(&server.base, dues, 8)?;
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
    let pruned_orders = deleted_orders(&server.base)?;
    drop(server);
    let mut late = moderation_lateness_ms(&store)?;
    if late.len() != orders {
        bail!("expected {orders} moderations, found {}", late.len());
    }
    late.sort_unstable();
    let pick = |p| percentile(&late, p).unwrap_or(0);
    Ok(PruneRun {
        backend,
        old_orders: old,
        pruned_orders,
        orders,
        created_after_due: created.after_due,
        p50_ms: pick(50.0),
        p99_ms: pick(99.0),
        max_ms: pick(100.0),
        load_s,
        loadavg_1m: crate::stats::loadavg_1m(),
    })
}

/// `order_scheduler_retention_deleted_orders_total` from the server's `/metrics`.
fn deleted_orders(base: &str) -> Result<u64> {
    let text = reqwest::blocking::get(format!("{base}/metrics"))?
        .error_for_status()?
        .text()?;
    let line = text
        .lines()
        .find(|l| l.starts_with("order_scheduler_retention_deleted_orders_total"))
        .context("no retention counter in /metrics")?;
    let value = line.split_whitespace().last().unwrap_or_default();
    Ok(value
        .parse::<f64>()
        .with_context(|| format!("bad counter line {line:?}"))? as u64)
}
