//! HTTP load: a closed-loop generator (tokio + reqwest, one thread) keeping a fixed number of
//! connections busy on the create routes, with per-request latencies; and the helper that
//! creates given orders over the JSON API for the lateness runs.

use crate::db::{Backend, BenchDb, DbConfig};
use crate::server::{Server, ServerConfig};
use crate::stats::percentile;
use anyhow::{bail, Result};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use orders::format_ms;
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which create route is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Route {
    /// `POST /api/v1/orders/fake?side=..&qty_mwh=..&limit_price=..&hour_start_utc=..`
    Fake,
    /// `POST /api/v1/orders` with a JSON body.
    Json,
}

impl Route {
    /// How the route is shown in the table.
    pub fn label(self) -> &'static str {
        match self {
            Route::Fake => "POST /api/v1/orders/fake?...",
            Route::Json => "POST /api/v1/orders (JSON)",
        }
    }
}

/// One load run on one route.
#[derive(Debug, Clone, Serialize)]
pub struct HttpRun {
    /// The route.
    pub route: Route,
    /// Concurrent connections.
    pub connections: usize,
    /// Measured seconds (after the warm-up).
    pub duration_s: f64,
    /// Successful (2xx) responses in the measured window.
    pub requests: usize,
    /// Failed requests or non-2xx responses in the measured window.
    pub errors: usize,
    /// `requests / duration_s`.
    pub req_per_s: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Largest latency, ms.
    pub max_ms: f64,
    /// 1-minute load average of the machine when the run ended.
    pub loadavg_1m: f64,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn client(connections: usize) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Keeps `connections` requests in flight on `route` for `warmup + duration`, measuring the
/// last `duration`. Created orders are due tomorrow, so the scheduler stays idle.
pub fn load(
    base: &str,
    route: Route,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<HttpRun> {
    let due = format_ms(&(Utc::now() + ChronoDuration::days(1)));
    let (url, body) = match route {
        Route::Fake => (
            format!(
                "{base}/api/v1/orders/fake?side=BUY&qty_mwh=2.5&limit_price=40&hour_start_utc={due}"
            ),
            None,
        ),
        Route::Json => (
            format!("{base}/api/v1/orders"),
            Some(
                serde_json::json!({
                    "side": "SELL", "qty_mwh": 2.5, "limit_price": 40.25, "hour_start_utc": due,
                })
                .to_string(),
            ),
        ),
    };
    let rt = runtime()?;
    let client = client(connections)?;
    let started = Instant::now();
    let measure_from = started + warmup;
    let end = measure_from + duration;
    let results = rt.block_on(async {
        let mut tasks = Vec::with_capacity(connections);
        for _ in 0..connections {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                let mut latencies_us: Vec<u32> = Vec::new();
                let mut errors = 0usize;
                loop {
                    let t = Instant::now();
                    if t >= end {
                        break;
                    }
                    let mut req = client.post(&url);
                    if let Some(b) = &body {
                        req = req
                            .header("content-type", "application/json")
                            .body(b.clone());
                    }
                    let ok = match req.send().await {
                        Ok(r) => {
                            let success = r.status().is_success();
                            r.bytes().await.is_ok() && success
                        }
                        Err(_) => false,
                    };
                    if t >= measure_from {
                        let done = Instant::now();
                        if done <= end {
                            if ok {
                                let us = (done - t).as_micros().min(u32::MAX as u128) as u32;
                                latencies_us.push(us);
                            } else {
                                errors += 1;
                            }
                        }
                    }
                }
                (latencies_us, errors)
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await?;
            all.extend(l);
            errors += e;
        }
        Ok::<_, anyhow::Error>((all, errors))
    })?;
    let (mut lat, errors) = results;
    lat.sort_unstable();
    let ms = |p: f64| percentile(&lat, p).map_or(0.0, |us| f64::from(us) / 1000.0);
    let secs = duration.as_secs_f64();
    Ok(HttpRun {
        route,
        connections,
        duration_s: secs,
        requests: lat.len(),
        errors,
        req_per_s: lat.len() as f64 / secs,
        p50_ms: ms(50.0),
        p99_ms: ms(99.0),
        max_ms: ms(100.0),
        loadavg_1m: crate::stats::loadavg_1m(),
    })
}

/// Both create routes against one fresh server and database.
pub fn run(
    backend: Backend,
    cfg: &DbConfig,
    server_cfg: &ServerConfig,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<Vec<HttpRun>> {
    let db = BenchDb::create(backend, cfg)?;
    drop(db.open()?);
    let server = Server::start(server_cfg, &db.url, true, "http")?;
    let mut runs = Vec::new();
    for route in [Route::Fake, Route::Json] {
        let r = load(&server.base, route, connections, warmup, duration)?;
        if r.requests == 0 {
            bail!(
                "no successful request on {}; see {}",
                route.label(),
                server.log.display()
            );
        }
        runs.push(r);
    }
    Ok(runs)
}

/// What [`create_json_orders`] observed.
#[derive(Debug, Clone)]
pub struct Created {
    /// Orders whose creation answered after their due time.
    pub after_due: usize,
    /// Creations answered with anything but 2xx (or not answered); only with `tolerate`.
    pub failed: usize,
    /// The first failure's status and body, if any.
    pub first_failure: Option<String>,
    /// Every created order: its id (when the answer carried one), due time, and when the
    /// creation was answered.
    pub orders: Vec<CreatedOrder>,
}

/// One order created by [`create_json_orders`].
#[derive(Debug, Clone)]
pub struct CreatedOrder {
    /// Its id, from the answer.
    pub id: Option<String>,
    /// Its due time.
    pub due: DateTime<Utc>,
    /// When its creation was answered.
    pub answered_at: DateTime<Utc>,
}

impl Created {
    fn empty() -> Created {
        Created {
            after_due: 0,
            failed: 0,
            first_failure: None,
            orders: Vec::new(),
        }
    }
}

/// Creates one order per due time over `POST /api/v1/orders`, in the given order, with
/// `connections` requests in flight. Fails on any non-2xx answer.
pub fn create_json_orders(
    base: &str,
    dues: Vec<DateTime<Utc>>,
    connections: usize,
) -> Result<Created> {
    create_orders(base, dues, connections, false)
}

/// Same as [`create_json_orders`], but a non-2xx answer (or none) is counted in
/// [`Created::failed`] instead of ending the run: under load, how many fail is a figure.
pub fn create_json_orders_counting_failures(
    base: &str,
    dues: Vec<DateTime<Utc>>,
    connections: usize,
) -> Result<Created> {
    create_orders(base, dues, connections, true)
}

fn create_orders(
    base: &str,
    dues: Vec<DateTime<Utc>>,
    connections: usize,
    tolerate: bool,
) -> Result<Created> {
    let rt = runtime()?;
    let client = client(connections)?;
    let url = format!("{base}/api/v1/orders");
    let dues = Arc::new(dues);
    let next = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let (client, url, dues, next) =
                (client.clone(), url.clone(), dues.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let mut created = Created::empty();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(due) = dues.get(i) else { break };
                    let body = serde_json::json!({
                        "side": if i % 2 == 0 { "BUY" } else { "SELL" },
                        "qty_mwh": 1.5, "limit_price": 41.5, "hour_start_utc": format_ms(due),
                    });
                    let failure = match client.post(&url).json(&body).send().await {
                        Ok(r) if r.status().is_success() => {
                            let answer = r.json::<serde_json::Value>().await.unwrap_or_default();
                            let order = if answer["id"].is_string() {
                                &answer
                            } else {
                                &answer["order"]
                            };
                            created.orders.push(CreatedOrder {
                                id: order["id"].as_str().map(str::to_string),
                                due: *due,
                                answered_at: Utc::now(),
                            });
                            None
                        }
                        Ok(r) => {
                            let status = r.status();
                            let text = r.text().await.unwrap_or_default();
                            Some(format!("{status} {text}"))
                        }
                        Err(e) => Some(format!("no answer: {e}")),
                    };
                    if let Some(f) = failure {
                        if !tolerate {
                            bail!("create order: {f}");
                        }
                        created.failed += 1;
                        created.first_failure.get_or_insert(f);
                        continue;
                    }
                    if Utc::now() > *due {
                        created.after_due += 1;
                    }
                }
                Ok::<_, anyhow::Error>(created)
            }));
        }
        let mut all = Created::empty();
        for t in tasks {
            let c = t.await??;
            all.after_due += c.after_due;
            all.failed += c.failed;
            all.orders.extend(c.orders);
            if all.first_failure.is_none() {
                all.first_failure = c.first_failure;
            }
        }
        Ok(all)
    })
}
