//! The `order-scheduler` server: the seed's HTTP API and the JSON order API over the storage
//! and scheduler crates. It holds no SQL and no moderation policy of its own.
//!
//! # Layout
//! - `config`: command line and environment (clap).
//! - `cli`: the `seed`, `orders`, `moderate`, `clean` and `status` tools.
//! - `app`: [`app::Application`]: builds store, scheduler and HTTP server; the routes table.
//! - `routes`: handlers (`seed`, `orders`, `scheduler`, `health`).
//! - `error`: [`error::ApiError`], the JSON `{"detail", "code"}` error.
//! - `events`: the hub behind the server-sent event stream.
//! - `metrics`: Prometheus metrics.
//! - `openapi`: the OpenAPI document, generated from the handlers' annotations.
//! - `query`: strict query-string parsing.
//! - `state`: shared state and the admin-token check.

pub mod app;
pub mod cli;
pub mod config;
pub mod error;
pub mod events;
pub mod metrics;
pub mod openapi;
pub mod query;
pub mod routes;
pub mod state;
