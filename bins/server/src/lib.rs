//! The `order-scheduler` server: the original system's HTTP API and the JSON order API over
//! the storage and scheduler crates. It holds no SQL and no moderation policy of its own.
//!
//! # Layout
//! - `config`: command line and environment (clap).
//! - `cli`: the `seed`, `orders`, `moderate`, `clean` and `status` tools.
//! - `app`: [`app::Application`]: builds store, scheduler and HTTP server, and wires them.
//! - `routes`: handlers; each module registers and documents its own routes.
//! - `openapi`: the OpenAPI document merged from the route modules, and the route list.
//! - `middleware`: body limit and deadline, request metrics, JSON error shapes.
//! - `error`: [`error::ApiError`], the JSON `{"detail", "code"}` error.
//! - `events`: the hub behind the server-sent event stream.
//! - `logging`: text or JSON log lines (`--log-format`).
//! - `metrics`: Prometheus metrics; `observer`: feeds them and the event hub from the
//!   scheduler.
//! - `query`: strict query-string parsing.
//! - `retention`: the sweeper deleting old closed orders (`--retain-closed-days`).
//! - `state`: shared state and the admin-token check.

pub mod app;
pub mod cli;
pub mod coalesce;
pub mod config;
pub mod error;
pub mod events;
pub mod logging;
pub mod market_config;
pub mod metrics;
pub mod middleware;
pub mod observer;
pub mod openapi;
pub mod priority;
pub mod query;
pub mod retention;
pub mod routes;
pub mod snapshot_cache;
pub mod state;
