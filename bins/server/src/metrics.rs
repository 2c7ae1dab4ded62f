//! Prometheus metrics, served at `GET /metrics` in the text format.
//!
//! Every metric of the application is named `order_scheduler_*` (the process collector's
//! standard `process_*` metrics beside them). Counters and histograms are fed by the
//! scheduler's observer (moderations, lateness, pass durations, failures, parked orders) and
//! by a middleware (HTTP requests by route pattern, method and status, each label from a
//! bounded set). Gauges that describe the whole database carry `scope="database"`: every
//! instance exports the same value, so dashboards take `max`, never `sum`, over instances.
//! They are read from the scheduler's shared status (at most a second old, never a query per
//! scrape), except the pending total, which is cached for [`BOOK_CACHE`] and refreshed off
//! the request path.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
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
    /// Pending orders in the database (cached, see [`BOOK_CACHE`]).
    pub pending: IntGauge,
    /// Pending orders already due, from the scheduler's shared status.
    pub due_now: IntGauge,
    /// Pending orders due within ten minutes, from the scheduler's shared status.
    pub due_10_min: IntGauge,
    /// Parked orders in the database, from the scheduler's shared status.
    pub parked_now: IntGauge,
    /// Age of the database gauges' counts, seconds.
    pub counts_age: Gauge,
    /// Always 1, labelled with the version.
    pub build_info: IntGaugeVec,
    /// The pending total and when it was read, shared by every scrape.
    pub book: std::sync::Mutex<Option<(std::time::Instant, i64)>>,
    /// True while one refresh of [`Metrics::book`] runs (single flight).
    pub book_refreshing: std::sync::atomic::AtomicBool,
    /// Database pool connections by state, read at scrape time.
    pub pool: IntGaugeVec,
    /// HTTP requests by route pattern, method and status.
    pub http_requests: IntCounterVec,
    /// HTTP request durations by route pattern, seconds.
    pub http_duration: HistogramVec,
    /// Parked orders retried through this process (mirrors `routes::parked`'s count).
    pub parked_retried: IntCounter,
    /// Parked orders discarded through this process (mirrors `routes::parked`'s count).
    pub parked_discarded: IntCounter,
    /// Closed orders deleted by retention sweeps of this process.
    pub retention_orders: IntCounter,
    /// History rows deleted by retention sweeps of this process.
    pub retention_events: IntCounter,
    /// Retention sweeps completed by this process.
    pub retention_sweeps: IntCounter,
    /// End of this process's last completed retention sweep, Unix seconds (0: none).
    pub retention_last_sweep: Gauge,
    /// Commits of single creates by this process's group commit (mirrors the store's count).
    pub create_groups: IntCounter,
    /// Creates answered by this process's group commit (mirrors the store's count).
    pub create_grouped: IntCounter,
}

/// Raises a counter to `total`, a count kept elsewhere that only grows.
pub fn mirror(counter: &IntCounter, total: u64) {
    let delta = total.saturating_sub(counter.get());
    if delta > 0 {
        counter.inc_by(delta);
    }
}

/// How long the pending total may be reused before a scrape refreshes it (in the
/// background: the scrape that finds it stale still answers with the cached value).
pub const BOOK_CACHE: std::time::Duration = std::time::Duration::from_secs(5);

/// A gauge describing the whole database, labelled so that nobody sums it over instances.
fn database_gauge(name: &str, help: &str) -> IntGauge {
    must(IntGauge::with_opts(
        Opts::new(name, help).const_label("scope", "database"),
    ))
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
                    "order_scheduler_orders_moderated_total",
                    "Orders moderated by this process, by outcome",
                ),
                &["outcome"],
            )),
            lateness: must(Histogram::with_opts(
                HistogramOpts::new(
                    "order_scheduler_moderation_lateness_seconds",
                    "Moderation time minus due time",
                )
                .buckets(lateness_buckets),
            )),
            pass_duration: must(Histogram::with_opts(
                HistogramOpts::new(
                    "order_scheduler_pass_duration_seconds",
                    "Duration of passes that moderated orders",
                )
                .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16).unwrap_or_default()),
            )),
            failures: must(IntCounter::new(
                "order_scheduler_pass_failures_total",
                "Scheduler passes that failed and were retried",
            )),
            parked: must(IntCounter::new(
                "order_scheduler_orders_parked_total",
                "Orders set aside because they could not be moderated",
            )),
            running: must(IntGauge::new(
                "order_scheduler_running",
                "1 while the scheduler moderates by itself",
            )),
            pending: database_gauge(
                "order_scheduler_orders_pending",
                "Pending orders in the database (all instances; up to 5 s old)",
            ),
            due_now: database_gauge(
                "order_scheduler_orders_due_now",
                "Pending orders whose due time has passed (all instances)",
            ),
            due_10_min: database_gauge(
                "order_scheduler_orders_due_10_min",
                "Pending orders due within ten minutes (all instances)",
            ),
            parked_now: database_gauge(
                "order_scheduler_orders_parked",
                "Parked orders in the database (all instances)",
            ),
            counts_age: must(Gauge::new(
                "order_scheduler_database_counts_age_seconds",
                "Age of the scope=\"database\" gauges' counts",
            )),
            build_info: must(IntGaugeVec::new(
                Opts::new(
                    "order_scheduler_build_info",
                    "Always 1; the labels say which build",
                ),
                &["version"],
            )),
            book: std::sync::Mutex::new(None),
            book_refreshing: std::sync::atomic::AtomicBool::new(false),
            pool: must(IntGaugeVec::new(
                Opts::new(
                    "order_scheduler_db_pool_connections",
                    "Database pool connections by state",
                ),
                &["state"],
            )),
            http_requests: must(IntCounterVec::new(
                Opts::new(
                    "order_scheduler_http_requests_total",
                    "HTTP requests by route, method and status",
                ),
                &["route", "method", "status"],
            )),
            http_duration: must(HistogramVec::new(
                HistogramOpts::new(
                    "order_scheduler_http_request_duration_seconds",
                    "HTTP request durations by route",
                ),
                &["route"],
            )),
            parked_retried: must(IntCounter::new(
                "order_scheduler_parked_retried_total",
                "Parked orders an operator retried through this process",
            )),
            parked_discarded: must(IntCounter::new(
                "order_scheduler_parked_discarded_total",
                "Parked orders an operator discarded through this process",
            )),
            retention_orders: must(IntCounter::new(
                "order_scheduler_retention_deleted_orders_total",
                "Closed orders deleted by this process's retention sweeps",
            )),
            retention_events: must(IntCounter::new(
                "order_scheduler_retention_deleted_events_total",
                "History rows deleted by this process's retention sweeps",
            )),
            retention_sweeps: must(IntCounter::new(
                "order_scheduler_retention_sweeps_total",
                "Retention sweeps this process completed",
            )),
            retention_last_sweep: must(Gauge::new(
                "order_scheduler_retention_last_sweep_timestamp_seconds",
                "End of this process's last completed retention sweep (0: none yet)",
            )),
            create_groups: must(IntCounter::new(
                "order_scheduler_create_commits_total",
                "Commits of single-order creates by this process (concurrent creates share one; \
                 creates / commits is the mean group)",
            )),
            create_grouped: must(IntCounter::new(
                "order_scheduler_creates_total",
                "Single-order creates this process answered through its group commit",
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
            Box::new(m.due_10_min.clone()),
            Box::new(m.parked_now.clone()),
            Box::new(m.counts_age.clone()),
            Box::new(m.build_info.clone()),
            Box::new(m.pool.clone()),
            Box::new(m.http_requests.clone()),
            Box::new(m.http_duration.clone()),
            Box::new(m.parked_retried.clone()),
            Box::new(m.parked_discarded.clone()),
            Box::new(m.retention_orders.clone()),
            Box::new(m.retention_events.clone()),
            Box::new(m.retention_sweeps.clone()),
            Box::new(m.retention_last_sweep.clone()),
            Box::new(m.create_groups.clone()),
            Box::new(m.create_grouped.clone()),
        ] {
            must(m.registry.register(c));
        }
        // CPU, memory and open descriptors of this process, under the standard names.
        #[cfg(target_os = "linux")]
        must(m.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )));
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
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
