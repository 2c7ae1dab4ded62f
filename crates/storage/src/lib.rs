//! Storage of orders and their history on PostgreSQL or SQLite, through one diesel code path.
//!
//! [`Store::open`] picks the backend from the URL (`postgres://`, `postgresql://`,
//! `sqlite://path` or a plain path), builds an r2d2 pool and applies the embedded migrations.
//! Every SQL statement of the project lives in this crate: `store.rs` for the plain ones,
//! `claim.rs` for the claim-and-apply transaction that the scheduler runs.
//!
//! # Layout
//! - `connection`: the [`DbConnection`] enum, URL parsing, pool manager, migrations, and
//!   [`write_tx`](connection::write_tx) (immediate transactions on SQLite).
//! - `schema`, `models`: diesel tables and row types, with checked decoding.
//! - `store`: [`Store`] and its queries.
//! - `claim`: [`Store::claim_and_apply`].
//! - [`testing`] (feature `testing`): fresh databases for tests.
//!
//! # Representation
//! Times are `TIMESTAMP` columns holding UTC, truncated to milliseconds before writing (SQLite
//! would keep nanoseconds and Postgres microseconds otherwise). Prices are BIGINT cents,
//! quantities BIGINT thousandths of a MWh. Ids are UUIDv7 text, so they sort by creation.

#[cfg(feature = "bench")]
pub mod bench_support;
mod claim;
pub mod connection;
mod error;
mod models;
pub mod schema;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use claim::{panic_message, ClaimResult, ClaimScope, Decided};
pub use connection::{DatabaseUrl, DbConnection, PoolConfig};
pub use error::StorageError;
pub use store::{
    DueSummary, EventWithDue, Idempotency, Inserted, ManualChange, OrderFilter, OrderPage,
    PnlTotals, PooledConnection, Store,
};
