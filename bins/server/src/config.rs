//! Command line and environment: every setting is a flag with an environment fallback, and
//! `--help` explains each.

use clap::{Args, Parser, Subcommand};
use std::time::Duration;

/// The default database: an SQLite file, so the server runs with nothing installed.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/orders.db";

/// order-scheduler: moderates simulated energy orders at their exact due time.
#[derive(Debug, Parser)]
#[command(name = "order-scheduler", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings of `serve`, accepted without the subcommand too.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server and the scheduler (the default).
    Serve(ServeArgs),
    /// Apply database migrations and exit (or, with --status, list them).
    Migrate(MigrateArgs),
    /// Create N orders spread over a time window (demos and load).
    Seed(SeedArgs),
    /// List orders, or show one with its history.
    Orders(OrdersArgs),
    /// Moderate every pending order of one due time now.
    Moderate(ModerateArgs),
    /// Delete orders and their history.
    Clean(CleanArgs),
    /// Show the scheduler status of a running server.
    Status(StatusArgs),
    /// Control the scheduler of a running server: status, start, stop, force-run.
    Scheduler(SchedulerArgs),
}

/// `migrate`: apply, or list with `--status`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// Database settings.
    #[command(flatten)]
    pub db: DbArgs,
    /// List applied and pending migrations instead of applying them.
    #[arg(long)]
    pub status: bool,
}

/// What `scheduler` asks the server to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchedulerAction {
    /// Show the status.
    Status,
    /// Start the loop.
    Start,
    /// Stop (pause) the loop.
    Stop,
    /// Run a pass now.
    ForceRun,
}

/// `scheduler`: control a running server's scheduler.
#[derive(Debug, Clone, Args)]
pub struct SchedulerArgs {
    /// What to do.
    #[arg(value_enum)]
    pub action: SchedulerAction,
    /// Base URL of the server.
    #[arg(
        long,
        env = "ORDER_SCHEDULER_URL",
        default_value = "http://127.0.0.1:8000"
    )]
    pub server_url: String,
    /// The server's admin token (needed for start, stop and force-run when it has one).
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the raw JSON answer.
    #[arg(long)]
    pub json: bool,
}

/// `seed`: create orders.
#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// Database settings.
    #[command(flatten)]
    pub db: DbArgs,
    /// How many orders.
    #[arg(long, short = 'n', default_value_t = 100,
        value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    pub count: u32,
    /// Seconds from now until the first due time (negative: already due).
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true,
        value_parser = parse_offset_secs)]
    pub start_in_secs: f64,
    /// Due times are spread uniformly over this many seconds.
    #[arg(long, default_value_t = 300.0, value_parser = parse_window_secs)]
    pub window_secs: f64,
    /// Put every order at exactly this due time instead (RFC 3339 with an offset).
    #[arg(long, conflicts_with_all = ["start_in_secs", "window_secs"])]
    pub at: Option<String>,
    /// Location of the orders.
    #[arg(long, default_value = "PJM-RTO")]
    pub location: String,
}

/// `orders`: list or show.
#[derive(Debug, Clone, Args)]
pub struct OrdersArgs {
    /// Database settings.
    #[command(flatten)]
    pub db: DbArgs,
    /// Show this order with its history instead of a list.
    #[arg(long)]
    pub id: Option<String>,
    /// Only this status (PENDING, APPROVED, ...).
    #[arg(long)]
    pub status: Option<String>,
    /// Only this side.
    #[arg(long)]
    pub side: Option<String>,
    /// Only this location.
    #[arg(long)]
    pub location: Option<String>,
    /// Most orders listed (newest first).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub limit: i64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// List parked orders (set aside by the scheduler) with their reasons instead.
    #[arg(long, conflicts_with_all = ["id", "status", "side", "location"])]
    pub parked: bool,
}

/// `moderate`: one due time, now.
#[derive(Debug, Clone, Args)]
pub struct ModerateArgs {
    /// Database settings.
    #[command(flatten)]
    pub db: DbArgs,
    /// The due time to moderate (RFC 3339 with an offset).
    #[arg(long)]
    pub hour: String,
    /// Moderation policy.
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Policy kind and price source, as the server takes them.
    #[command(flatten)]
    pub market: crate::market_config::MarketArgs,
    /// Print JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// `clean`: delete orders.
#[derive(Debug, Clone, Args)]
pub struct CleanArgs {
    /// Database settings.
    #[command(flatten)]
    pub db: DbArgs,
    /// Only orders with this status.
    #[arg(long)]
    pub status: Option<String>,
    /// Really delete (without it, only says what would be deleted).
    #[arg(long)]
    pub yes: bool,
}

/// `status`: ask a running server.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Base URL of the server.
    #[arg(
        long,
        env = "ORDER_SCHEDULER_URL",
        default_value = "http://127.0.0.1:8000"
    )]
    pub server_url: String,
    /// Print the raw JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Database URL: postgres://user@host/db, sqlite://path, or a file path.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Most database connections held open.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 16,
        value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub pool_size: u32,
}

/// Moderation policy.
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// Probability that an order is approved, 0 to 1.
    #[arg(long, env = "APPROVAL_PROBABILITY", default_value_t = 0.7,
        value_parser = parse_probability)]
    pub approval_probability: f64,
    /// Centre of the simulated real-time LMP, $/MWh.
    #[arg(long, env = "RT_LMP_BASE", default_value_t = 40.0, allow_negative_numbers = true,
        value_parser = parse_finite)]
    pub rt_lmp_base: f64,
    /// Half-width of the simulated real-time LMP range, $/MWh.
    #[arg(long, env = "RT_LMP_VARIANCE", default_value_t = 10.0, value_parser = parse_finite)]
    pub rt_lmp_variance: f64,
    /// Makes every outcome a pure function of (seed, order id, policy): same on every run.
    #[arg(long, env = "MODERATION_SEED")]
    pub moderation_seed: Option<u64>,
}

/// Settings of the server.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Database settings.
    #[command(flatten)]
    pub db: DbArgs,
    /// Moderation policy.
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Policy kind and price source (`--policy`, `--price-source`, ...).
    #[command(flatten)]
    pub market: crate::market_config::MarketArgs,
    /// Address to listen on. Anything but loopback requires --admin-token.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8000")]
    pub bind: String,
    /// Longest sleep between checks for due orders, seconds (orders are still moderated at
    /// their exact due time; this bounds how late an order inserted by another process is seen).
    #[arg(long, env = "SCHEDULER_CHECK_INTERVAL_SECS", default_value_t = 30.0,
        value_parser = parse_check_interval)]
    pub check_interval_secs: f64,
    /// Readiness (GET /api/v1/health) answers 503 once the scheduler's passes have failed,
    /// without a success in between, for this many seconds; a dead scheduler thread makes it
    /// answer 503 at once (and the server exits non-zero).
    #[arg(long, env = "SCHEDULER_UNREADY_AFTER_SECS", default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub unready_after_secs: u64,
    /// Orders claimed and moderated per database transaction.
    #[arg(long, env = "SCHEDULER_BATCH_SIZE", default_value_t = 1000,
        value_parser = parse_batch_size)]
    pub batch_size: usize,
    /// On Postgres, transactions writing at once when a pass has more than one batch to write
    /// (a due instant's orders read ahead, or a backlog): about the database server's cores.
    /// Each holds a connection of the scheduler's own pool while it writes.
    #[arg(long, env = "SCHEDULER_PG_WRITERS", default_value_t = scheduler::DEFAULT_PG_WRITERS,
        value_parser = parse_pg_writers)]
    pub pg_writers: usize,
    /// Do not start the scheduler loop (start it later with POST /api/v1/scheduler/start).
    #[arg(long, env = "SCHEDULER_NO_AUTOSTART")]
    pub no_autostart: bool,
    /// Name of this instance in the order history (default: a random id).
    #[arg(long, env = "INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// Bearer token required by admin routes (scheduler control, manual moderation, PATCH).
    /// Never logged.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Delete closed orders (and their history) decided more than this many days ago, in
    /// small batches, one instance at a time. Off when unset.
    #[arg(long, env = "RETAIN_CLOSED_DAYS",
        value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub retain_closed_days: Option<u32>,
    /// Seconds between retention sweeps (the first runs soon after start).
    #[arg(long, env = "RETENTION_INTERVAL_SECS", default_value_t = 3600,
        value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub retention_interval_secs: u64,
    /// Log lines as human-readable text (default) or one JSON object per line.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = crate::logging::LogFormat::Text)]
    pub log_format: crate::logging::LogFormat,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "HTTP_WORKERS", value_parser = parse_workers)]
    pub workers: Option<usize>,
    /// How many nice levels below the scheduler the HTTP worker threads run (Linux), so that
    /// under CPU contention a due pass is not queued behind request handling; 0 turns it off.
    #[arg(long, env = "HTTP_NICE", default_value_t = 10,
        value_parser = clap::value_parser!(u8).range(0..=19))]
    pub http_nice: u8,
    /// A web origin (`scheme://host[:port]`) allowed to send state-changing requests besides
    /// loopback ones (`http://localhost:3000` and the like are always allowed); repeatable,
    /// or comma-separated in the environment variable.
    #[arg(
        long = "allowed-origin",
        env = "ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
    /// A host name (as in the `Host` header, port ignored) that state-changing requests may
    /// address besides loopback names and IP addresses; repeatable, or comma-separated in the
    /// environment variable. Protects against DNS rebinding.
    #[arg(long = "allowed-host", env = "ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
}

impl ServeArgs {
    /// The check interval as a duration (at least 10 ms).
    pub fn check_interval(&self) -> Duration {
        Duration::from_secs_f64(self.check_interval_secs.clamp(0.01, 86_400.0))
    }
}

// Value parsers: every numeric flag is checked when it is parsed, so a bad value is one line
// from clap and a non-zero exit, never a panic or a silently clamped setting later.

/// A finite number (no `nan`, no `inf`).
fn parse_finite(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("'{text}' is not a finite number"))
    }
}

/// A finite number within `[lo, hi]`.
fn parse_bounded(text: &str, lo: f64, hi: f64) -> Result<f64, String> {
    let v = parse_finite(text)?;
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(format!("'{text}' is outside {lo} to {hi}"))
    }
}

/// Seconds from now, either way, within 100 years (due times must fall in 2000-2099 anyway).
pub fn parse_offset_secs(text: &str) -> Result<f64, String> {
    parse_bounded(text, -MAX_OFFSET_SECS, MAX_OFFSET_SECS)
}

/// A window length in seconds: 0 to 100 years.
pub fn parse_window_secs(text: &str) -> Result<f64, String> {
    parse_bounded(text, 0.0, MAX_OFFSET_SECS)
}

/// About 100 years in seconds: more than the accepted due-time range spans.
const MAX_OFFSET_SECS: f64 = 100.0 * 366.0 * 86_400.0;

fn parse_probability(text: &str) -> Result<f64, String> {
    parse_bounded(text, 0.0, 1.0)
}

/// The scheduler's longest sleep: 10 ms to one day.
fn parse_check_interval(text: &str) -> Result<f64, String> {
    parse_bounded(text, 0.01, 86_400.0)
}

fn parse_batch_size(text: &str) -> Result<usize, String> {
    parse_count(text, 1, 100_000)
}

fn parse_pg_writers(text: &str) -> Result<usize, String> {
    parse_count(text, 1, 32)
}

fn parse_workers(text: &str) -> Result<usize, String> {
    parse_count(text, 1, 1_024)
}

fn parse_count(text: &str, lo: usize, hi: usize) -> Result<usize, String> {
    let v: usize = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a whole number"))?;
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(format!("'{text}' is outside {lo} to {hi}"))
    }
}
