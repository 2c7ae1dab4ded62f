//! Idle cost: a server holding a big future book (nothing due, no requests) for a while; the
//! CPU it uses (`utime + stime` from `/proc/<pid>/stat`) per wall second. What a deployment pays
//! for a scheduler that waits: its wakes, its insert watcher, the event-stream poller.

use crate::book::FutureBook;
use crate::server::{Server, ServerConfig};
use anyhow::Result;
use serde::Serialize;
use std::time::{Duration, Instant};

/// One idle run.
#[derive(Debug, Clone, Serialize)]
pub struct IdleRun {
    /// Orders in the book.
    pub book: usize,
    /// Measured wall seconds.
    pub wall_s: f64,
    /// CPU seconds the server used in that time.
    pub cpu_s: f64,
    /// `cpu_s / wall_s` in percent of one core.
    pub cpu_pct: f64,
    /// CPU seconds used from spawn until the window opened (start-up, migrations, first wake).
    pub startup_cpu_s: f64,
    /// 1-minute load average of the machine when the run ended.
    pub loadavg_1m: f64,
}

/// How long after the server answers the window opens: start-up work is not idle cost.
const SETTLE: Duration = Duration::from_secs(2);

/// Starts a server (default settings) on `book`, lets it settle, and measures `duration`.
pub fn run(book: &FutureBook, server_cfg: &ServerConfig, duration: Duration) -> Result<IdleRun> {
    let server = Server::start(server_cfg, &book.db.url, true, "idle")?;
    std::thread::sleep(SETTLE);
    let cpu0 = server.cpu_s()?;
    let t = Instant::now();
    std::thread::sleep(duration);
    let cpu1 = server.cpu_s()?;
    let wall_s = t.elapsed().as_secs_f64();
    let cpu_s = cpu1 - cpu0;
    Ok(IdleRun {
        book: book.orders,
        wall_s,
        cpu_s,
        cpu_pct: cpu_s / wall_s * 100.0,
        startup_cpu_s: cpu0,
        loadavg_1m: crate::stats::loadavg_1m(),
    })
}
