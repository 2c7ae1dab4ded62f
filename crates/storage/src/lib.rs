//! Storage of orders and their history on PostgreSQL or SQLite, through one diesel code path.
//!
//! [`Store::open`] picks the backend from the URL (`postgres://`, `postgresql://`,
//! `sqlite://path` or a plain path), builds an r2d2 pool and applies the embedded migrations.
//! Every SQL statement of the project lives in this crate.
//!
//! # Layout
//! - `backend/`: everything that differs per database, one file per backend (`pg.rs`,
//!   `sqlite.rs`) behind one private trait: connecting, migrating, the write transaction,
//!   the claim's row selection and batch write, multi-row inserts, watching for inserts.
//! - `connection`: the [`DbConnection`] enum, URL parsing, pool manager, migrations, and
//!   [`write_tx`](connection::write_tx).
//! - `schema`, `models`: diesel tables and row types, with checked decoding.
//! - `store`: [`Store`], its pool and its writer queue.
//! - `insert`, `read`, `due`, `manual`: the queries, by concern; `group_commit`: concurrent
//!   creates share one transaction and one commit, whether their callers block
//!   ([`Store::insert_order`]) or await ([`Store::queue_insert`]).
//! - `parked`: parked orders: list, retry, discard.
//! - `retention`: deleting old closed orders in batches, one sweeper at a time.
//! - `claim`: [`Store::claim_and_apply`], the scheduler's one transaction.
//! - `watch`: [`Store::watch_due`], waking schedulers on orders inserted by anyone.
//! - `checkpoint`: SQLite's write-ahead log copied into the file by a thread of the store, off
//!   the writers' commits (`PoolConfig::background_checkpoints`).
//! - `testing` (feature `testing`): fresh databases for tests and test-only reads.
//!
//! # Representation
//! Times are `TIMESTAMP` columns holding UTC, truncated to milliseconds before writing (SQLite
//! would keep nanoseconds and Postgres microseconds otherwise). Prices are BIGINT cents,
//! quantities BIGINT thousandths of a MWh. Ids are UUIDv7 text, so they sort by creation.

mod backend;
#[cfg(feature = "bench")]
pub mod bench_support;
mod checkpoint;
mod claim;
pub mod connection;
mod due;
mod error;
mod group_commit;
mod insert;
mod manual;
mod models;
mod parked;
mod read;
mod retention;
pub mod schema;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod watch;

pub use claim::{panic_message, ClaimResult, ClaimScope, Decided, DecidedBatch};
pub use connection::{ConnectionCheck, DatabaseUrl, DbConnection, MigrationState, PoolConfig};
pub use due::{BookCounts, DueCounts, DueSummary};
pub use error::StorageError;
pub use group_commit::{GroupCommitStats, GroupLeader, QueuedInsert};
pub use insert::{Idempotency, Inserted};
pub use manual::ManualChange;
pub use parked::{Discarded, ParkedOrder, DISCARD_PREFIX};
pub use read::{EventWithDue, OpenClosed, OrderFilter, OrderPage, PnlTotals, Unreadable};
pub use retention::{PruneCursor, Pruned, RetentionLock};
pub use store::{PooledConnection, Store};
pub use watch::DueWatch;
