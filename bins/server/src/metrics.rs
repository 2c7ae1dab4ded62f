//! Prometheus metrics, served at `GET /metrics` in the text format.
//!
//! Counters and histograms are fed by the scheduler's observer (moderations, lateness, pass
//! durations, failures, parked orders) and by a middleware (HTTP requests by route pattern,
//! method and status). Gauges that describe the database (pending, due now, pool use) are
//! read when scraped, so they are never stale.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    /// Orders moderated by this process, by outcome.
    pub moderated: IntCounterVec,
    /// Moderation time minus due time, seconds.
    pub lateness: Histogram,
    /// Duration of scheduler passes that moderated something, seconds.
    pub pass_duration: Histogram,
    /// Failed passes (retried).
    pub failures: IntCounter,
    /// Orders set aside.
    pub parked: IntCounter,
    /// 1 while the scheduler loop runs by itself.
    pub running: IntGauge,
    /// Pending orders (all instances), read at scrape time.
    pub pending: IntGauge,
    /// Pending orders already due, read at scrape time.
    pub due_now: IntGauge,
    /// Database pool connections by state, read at scrape time.
    pub pool: IntGaugeVec,
    /// HTTP requests by route pattern, method and status.
    pub http_requests: IntCounterVec,
    /// HTTP request durations by route pattern, seconds.
    pub http_duration: HistogramVec,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Metric names and labels are static and valid; a failure here is a programming error
    // caught by the first test that builds the application.
    r.unwrap_or_else(|e| panic!("invalid metric definition: {e}"))
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let lateness_buckets = vec![
            0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
        ];
        let m = Self {
            moderated: must(IntCounterVec::new(
                Opts::new(
                    "orders_moderated_total",
                    "Orders moderated by this process, by outcome",
                ),
                &["outcome"],
            )),
            lateness: must(Histogram::with_opts(
                HistogramOpts::new(
                    "order_moderation_lateness_seconds",
                    "Moderation time minus due time",
                )
                .buckets(lateness_buckets),
            )),
            pass_duration: must(Histogram::with_opts(
                HistogramOpts::new(
                    "scheduler_pass_duration_seconds",
                    "Duration of passes that moderated orders",
                )
                .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16).unwrap_or_default()),
            )),
            failures: must(IntCounter::new(
                "scheduler_failures_total",
                "Scheduler passes that failed and were retried",
            )),
            parked: must(IntCounter::new(
                "orders_parked_total",
                "Orders set aside because they could not be moderated",
            )),
            running: must(IntGauge::new(
                "scheduler_running",
                "1 while the scheduler moderates by itself",
            )),
            pending: must(IntGauge::new(
                "orders_pending",
                "Pending orders in the database",
            )),
            due_now: must(IntGauge::new(
                "orders_due_now",
                "Pending orders whose due time has passed",
            )),
            pool: must(IntGaugeVec::new(
                Opts::new("db_pool_connections", "Database pool connections by state"),
                &["state"],
            )),
            http_requests: must(IntCounterVec::new(
                Opts::new(
                    "http_requests_total",
                    "HTTP requests by route, method and status",
                ),
                &["route", "method", "status"],
            )),
            http_duration: must(HistogramVec::new(
                HistogramOpts::new(
                    "http_request_duration_seconds",
                    "HTTP request durations by route",
                ),
                &["route"],
            )),
            registry,
        };
        for c in [
            Box::new(m.moderated.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.lateness.clone()),
            Box::new(m.pass_duration.clone()),
            Box::new(m.failures.clone()),
            Box::new(m.parked.clone()),
            Box::new(m.running.clone()),
            Box::new(m.pending.clone()),
            Box::new(m.due_now.clone()),
            Box::new(m.pool.clone()),
            Box::new(m.http_requests.clone()),
            Box::new(m.http_duration.clone()),
        ] {
            must(m.registry.register(c));
        }
        m
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            log::error!("cannot encode metrics: {e}");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
