//! Batch create (issue 14 item 2): whole day-ahead books posted to `POST /api/v1/orders/batch`
//! by a few concurrent clients against a fresh server, once without and once with an
//! `Idempotency-Key` per batch. The figure is orders created per second of wall time; every
//! batch must be answered 201 and the database must hold every order afterwards.
//!
//! Its report entry, target and table section live here too, so that the report itself only
//! holds a list of entries.

use crate::db::{Backend, BenchDb, DbConfig};
use crate::server::{Server, ServerConfig};
use crate::stats::{percentile, summarise, Summary};
use anyhow::{bail, Result};
use chrono::{Duration as ChronoDuration, DurationRound, Utc};
use orders::format_ms;
use serde::Serialize;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::bench_support::pending_count;

/// The target of issue 14 item 2, orders created per second.
pub const TARGET_ORDERS_PER_S: f64 = 50_000.0;

/// Sizes of one batch run.
#[derive(Debug, Clone, Copy)]
pub struct BatchPlan {
    /// Batches posted in the measured part.
    pub batches: usize,
    /// Orders per batch.
    pub orders: usize,
    /// Concurrent clients (each with one batch in flight).
    pub clients: usize,
}

/// One measured run of one kind of batch.
#[derive(Debug, Clone, Serialize)]
pub struct BatchRun {
    /// Whether every batch carried an `Idempotency-Key`.
    pub keyed: bool,
    /// Batches posted (measured).
    pub batches: usize,
    /// Orders per batch.
    pub batch_orders: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Seconds from the first request to the last answer.
    pub wall_s: f64,
    /// `batches * batch_orders / wall_s`.
    pub orders_per_s: f64,
    /// Median batch latency, ms.
    pub p50_ms: f64,
    /// 99th percentile batch latency, ms.
    pub p99_ms: f64,
    /// 1-minute load average of the machine when the run ended.
    pub loadavg_1m: f64,
}

/// The JSON bodies of `n` batches of `size` orders, each batch a day-ahead book: its orders
/// due on the 24 hours of tomorrow (UTC), alternating sides, prices varying by the cent.
fn bodies(n: usize, size: usize) -> Result<Vec<String>> {
    let tomorrow = Utc::now().duration_trunc(ChronoDuration::days(1))? + ChronoDuration::days(1);
    let hours: Vec<String> = (0..24)
        .map(|h| format_ms(&(tomorrow + ChronoDuration::hours(h))))
        .collect();
    Ok((0..n)
        .map(|b| {
            let orders: Vec<serde_json::Value> = (0..size)
                .map(|i| {
                    serde_json::json!({
                        "side": if i % 2 == 0 { "BUY" } else { "SELL" },
                        "qty_mwh": 1.5,
                        "limit_price": format!("{}.{:02}", 30 + (b + i) % 20, i % 100),
                        "hour_start_utc": hours[i % 24],
                        "location": "PJM-RTO",
                    })
                })
                .collect();
            serde_json::Value::Array(orders).to_string()
        })
        .collect())
}

/// Posts `bodies` with `clients` batches in flight; returns the wall time and each batch's
/// latency. Fails on any answer but 201. `key_prefix` gives each batch its own key.
fn post_all(
    base: &str,
    bodies: Vec<String>,
    clients: usize,
    key_prefix: Option<&str>,
) -> Result<(f64, Vec<u32>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .timeout(Duration::from_secs(60))
        .build()?;
    let url = format!("{base}/api/v1/orders/batch");
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let key_prefix = key_prefix.map(str::to_string);
    rt.block_on(async {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (client, url, bodies, next, key_prefix) = (
                client.clone(),
                url.clone(),
                bodies.clone(),
                next.clone(),
                key_prefix.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut latencies_us: Vec<u32> = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let mut req = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone());
                    if let Some(p) = &key_prefix {
                        req = req.header("idempotency-key", format!("{p}-{i}"));
                    }
                    let t = Instant::now();
                    let r = req.send().await?;
                    let status = r.status();
                    // Read whole (the answer is every created order), not parsed: the client
                    // shares the machine's two cores with the server.
                    let text = r.bytes().await?;
                    if status.as_u16() != 201 {
                        bail!(
                            "batch {i}: {status} {}",
                            String::from_utf8_lossy(&text[..text.len().min(300)])
                        );
                    }
                    let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
                    latencies_us.push(us);
                }
                Ok::<_, anyhow::Error>(latencies_us)
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await??);
        }
        Ok((started.elapsed().as_secs_f64(), all))
    })
}

/// On one fresh server and database: a warm-up (one batch per client, not measured), then
/// `plan.batches` keyless batches, then as many keyed ones. Checks the database holds every
/// order posted.
pub fn run(
    backend: Backend,
    cfg: &DbConfig,
    server_cfg: &ServerConfig,
    plan: BatchPlan,
) -> Result<Vec<BatchRun>> {
    let db = BenchDb::create(backend, cfg)?;
    drop(db.open()?);
    let server = Server::start(server_cfg, &db.url, true, "batch")?;
    let clients = plan.clients.max(1);
    // Built before the clock starts.
    let warmup = bodies(clients, plan.orders)?;
    let keyless = bodies(plan.batches, plan.orders)?;
    let keyed = bodies(plan.batches, plan.orders)?;
    post_all(&server.base, warmup, clients, None)?;
    let mut runs = Vec::new();
    for (keyed, bodies) in [(false, keyless), (true, keyed)] {
        let prefix = format!("bench-{}", std::process::id());
        let (wall_s, mut lat) = post_all(
            &server.base,
            bodies,
            clients,
            keyed.then_some(prefix.as_str()),
        )?;
        lat.sort_unstable();
        let ms = |p: f64| percentile(&lat, p).map_or(0.0, |us| f64::from(us) / 1000.0);
        runs.push(BatchRun {
            keyed,
            batches: plan.batches,
            batch_orders: plan.orders,
            clients,
            wall_s,
            orders_per_s: (plan.batches * plan.orders) as f64 / wall_s,
            p50_ms: ms(50.0),
            p99_ms: ms(99.0),
            loadavg_1m: crate::stats::loadavg_1m(),
        });
    }
    drop(server);
    let expected = (clients + 2 * plan.batches) * plan.orders;
    let stored = pending_count(&db.open()?)?;
    if stored != expected as i64 {
        bail!("{stored} pending orders stored, {expected} posted");
    }
    Ok(runs)
}

/// Batch create of one kind on one backend, over the runs.
#[derive(Debug, Serialize)]
pub struct BatchEntry {
    backend: Backend,
    keyed: bool,
    batch_orders: usize,
    clients: usize,
    orders_per_s: Option<Summary>,
    p50_ms: Option<Summary>,
    p99_ms: Option<Summary>,
    runs: Vec<BatchRun>,
}

/// The entries (keyless, keyed) of one backend's runs.
pub fn entries(backend: Backend, runs: &[Vec<BatchRun>]) -> Vec<BatchEntry> {
    [false, true]
        .into_iter()
        .map(|keyed| {
            let of: Vec<BatchRun> = runs
                .iter()
                .flatten()
                .filter(|r| r.keyed == keyed)
                .cloned()
                .collect();
            BatchEntry {
                backend,
                keyed,
                batch_orders: of.first().map_or(0, |r| r.batch_orders),
                clients: of.first().map_or(0, |r| r.clients),
                orders_per_s: summarise(&of, |r| r.orders_per_s),
                p50_ms: summarise(&of, |r| r.p50_ms),
                p99_ms: summarise(&of, |r| r.p99_ms),
                runs: of,
            }
        })
        .collect()
}

fn kind(e: &BatchEntry) -> &'static str {
    if e.keyed {
        "with Idempotency-Key"
    } else {
        "no key"
    }
}

/// The target of each entry: `(what, measured, required, met)`.
pub fn targets(entries: &[BatchEntry]) -> Vec<(String, String, String, bool)> {
    entries
        .iter()
        .filter_map(|e| {
            let r = e.orders_per_s?;
            Some((
                format!(
                    "batch create {} {}, {} clients x {} orders",
                    e.backend.name(),
                    kind(e),
                    e.clients,
                    e.batch_orders
                ),
                format!("{:.0} orders/s", r.median),
                format!(">= {TARGET_ORDERS_PER_S:.0} orders/s"),
                r.median >= TARGET_ORDERS_PER_S,
            ))
        })
        .collect()
}

/// The table section.
pub fn table(t: &mut String, entries: &[BatchEntry]) {
    if entries.is_empty() {
        return;
    }
    let _ = writeln!(t, "\n## Batch create (POST /api/v1/orders/batch, loopback)");
    let _ = writeln!(
        t,
        "{:<9} {:<22} {:>7} {:>7} | {:<26} | {:<22} | {:<22}",
        "db", "kind", "orders", "clients", "orders/s", "batch p50 ms", "batch p99 ms"
    );
    for e in entries {
        let show = |s: Option<Summary>, d: usize| s.map_or_else(|| "-".into(), |s| s.show(d));
        let _ = writeln!(
            t,
            "{:<9} {:<22} {:>7} {:>7} | {:<26} | {:<22} | {:<22}",
            e.backend.name(),
            kind(e),
            e.batch_orders,
            e.clients,
            show(e.orders_per_s, 0),
            show(e.p50_ms, 1),
            show(e.p99_ms, 1)
        );
    }
}
