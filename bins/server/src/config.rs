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
    /// Apply database migrations and exit.
    Migrate(DbArgs),
}

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Database URL: postgres://user@host/db, sqlite://path, or a file path.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Most database connections held open.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 16)]
    pub pool_size: u32,
}

/// Moderation policy.
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// Probability that an order is approved, 0 to 1.
    #[arg(long, env = "APPROVAL_PROBABILITY", default_value_t = 0.7)]
    pub approval_probability: f64,
    /// Centre of the simulated real-time LMP, $/MWh.
    #[arg(long, env = "RT_LMP_BASE", default_value_t = 40.0)]
    pub rt_lmp_base: f64,
    /// Half-width of the simulated real-time LMP range, $/MWh.
    #[arg(long, env = "RT_LMP_VARIANCE", default_value_t = 10.0)]
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
    /// Address to listen on. Anything but loopback requires --admin-token.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8000")]
    pub bind: String,
    /// Longest sleep between checks for due orders, seconds (orders are still moderated at
    /// their exact due time; this bounds how late an order inserted by another process is seen).
    #[arg(long, env = "SCHEDULER_CHECK_INTERVAL_SECS", default_value_t = 30.0)]
    pub check_interval_secs: f64,
    /// Orders claimed and moderated per database transaction.
    #[arg(long, env = "SCHEDULER_BATCH_SIZE", default_value_t = 1000)]
    pub batch_size: usize,
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
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "HTTP_WORKERS")]
    pub workers: Option<usize>,
}

impl ServeArgs {
    /// The check interval as a duration (at least 10 ms).
    pub fn check_interval(&self) -> Duration {
        Duration::from_secs_f64(self.check_interval_secs.clamp(0.01, 86_400.0))
    }
}
