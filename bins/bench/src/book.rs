//! A big future book: `n` PENDING orders due tomorrow (spread over one hour), bulk-loaded into a
//! fresh database and settled, so that a server holding it has much pending and nothing due.
//! The busy-API lateness case and the idle-cost case run on it.

use crate::db::{Backend, BenchDb, DbConfig};
use anyhow::Result;
use chrono::{Duration as ChronoDuration, Utc};
use std::time::Instant;
use storage::bench_support::{load_orders, settle};

/// A fresh database holding the book, and how long loading took (not part of any figure).
pub struct FutureBook {
    /// The database (dropped with the book).
    pub db: BenchDb,
    /// Orders in the book.
    pub orders: usize,
    /// Seconds spent loading and settling.
    pub load_s: f64,
}

impl FutureBook {
    /// Loads `n` orders due between 24 h and 25 h from now into a fresh `backend` database.
    pub fn load(backend: Backend, cfg: &DbConfig, n: usize) -> Result<FutureBook> {
        let db = BenchDb::create(backend, cfg)?;
        let store = db.open()?;
        let t = Instant::now();
        let first_due = Utc::now() + ChronoDuration::days(1);
        load_orders(&store, n, first_due, ChronoDuration::hours(1), "bench:book")?;
        settle(&store)?;
        Ok(FutureBook {
            db,
            orders: n,
            load_s: t.elapsed().as_secs_f64(),
        })
    }
}
