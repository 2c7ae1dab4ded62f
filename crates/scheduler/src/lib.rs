//! The order scheduler: moderates pending orders at their exact due time, exactly once, with
//! no coordinator between instances.
//!
//! One named thread runs a loop (the worker) that sleeps until the earliest pending due time
//! (or the check interval, whichever is sooner), then claims due orders in bounded batches
//! through [`storage::Store::claim_and_apply`], decides each with the [`moderator`], and writes
//! the statuses and their history in the same transaction. Commands (start, stop, wake,
//! force-run) reach it over a channel and wake it at once. It needs no async runtime and no
//! web framework, so any service can embed it:
//!
//! ```no_run
//! use scheduler::Scheduler;
//! use std::time::Duration;
//!
//! let store = storage::Store::open("./data/orders.db", &storage::PoolConfig::default())?;
//! let scheduler = Scheduler::builder(store.clone())
//!     .check_interval(Duration::from_secs(30))
//!     .moderation_seed(Some(42))
//!     .spawn()?;
//! // ... insert orders with `store.insert_order(...)`, then:
//! // scheduler.notify_due(order.hour_start_utc);
//! println!("{:?}", scheduler.status());
//! drop(scheduler); // stops the thread and joins it
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//! - `handle`: [`Scheduler`] (the handle), its builder, [`Liveness`].
//! - `worker`: the loop on the thread, its commands, deadline and backoff.
//! - `pass`: one pass, its logging, failure handling and parking.
//! - `shared`: the state the handle reads and the worker writes; the [`Status`] snapshot.
//! - [`stats`]: the workspace's one [`percentile`](stats::percentile), the lateness window.
//! - `event`: [`SchedulerEvent`] and [`Observer`]; `error`: [`SchedulerError`], [`PassError`].
//! - `decide`: the decision closure (the configured [`moderator::Moderator`], recording the
//!   price source and interval of each approval) and [`moderate_due_time`].
//! - `report`: [`Status`] and the original system's report shapes.
//!
//! **Invariant:** the worker never moderates anything outside a claim transaction, so the
//! exactly-once guarantee is storage's, and holds across threads, processes and crashes.

mod decide;
mod error;
mod event;
mod handle;
mod pass;
mod report;
mod shared;
pub mod stats;
mod worker;

pub use decide::{moderate_due_time, moderate_due_time_with};
pub use error::{PassError, SchedulerError};
pub use event::{Observer, SchedulerEvent};
pub use handle::{Liveness, Scheduler, SchedulerBuilder, DEFAULT_PG_WRITERS};
pub use report::{
    DueReport, DueResult, LatenessSummary, ParkedOrder, PassReport, Status, DUE_LIST_CAP,
    ORDER_LIST_CAP,
};
