//! The retention sweeper: a maintenance service that deletes closed orders older than
//! `--retain-closed-days` with their history, so the tables stop growing forever.
//!
//! Shaped like River's maintenance services: a config ([`RetentionConfig`]), a loop started
//! once ([`start`], a thread of its own), one sweep ([`run_once`]) that tests call directly,
//! and a test signal (the optional channel given to [`start_with_signal`], told after every
//! sweep). A sweep takes the retention lock without waiting (on Postgres an advisory lock held
//! by a session of its own, so one instance of many sweeps; on SQLite one process), then
//! deletes batches of [`RetentionConfig::batch`] orders, each in its own short transaction
//! that never touches a pending row, pausing between batches so the scheduler's writes
//! interleave. Totals are process-wide ([`stats`]) for status and metrics.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;
use storage::{Pruned, StorageError, Store};

/// How the sweeper runs.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// Closed orders decided longer ago than this are deleted.
    pub retain: chrono::Duration,
    /// Time between sweeps.
    pub interval: Duration,
    /// Delay before the first sweep after start.
    pub first_delay: Duration,
    /// Orders per transaction.
    pub batch: i64,
    /// Pause between batches.
    pub pause: Duration,
}

impl RetentionConfig {
    /// Retention of `days` days, with the default cadence: a sweep a few seconds after start,
    /// then every `interval`; batches of 1,000 with 20 ms between them.
    pub fn days(days: u32, interval: Duration) -> Self {
        Self {
            retain: chrono::Duration::days(i64::from(days)),
            interval,
            first_delay: Duration::from_secs(2),
            batch: 1_000,
            pause: Duration::from_millis(20),
        }
    }
}

/// What the sweeper has done in this process.
#[derive(Debug, Default)]
pub struct Stats {
    /// Orders deleted.
    pub deleted_orders: AtomicU64,
    /// History rows deleted.
    pub deleted_events: AtomicU64,
    /// Sweeps completed (by this process, holding the lock).
    pub sweeps: AtomicU64,
    /// End of the last completed sweep, Unix ms (0: none yet).
    pub last_sweep_ms: AtomicI64,
    /// The last sweep's error, cleared by a successful sweep.
    pub last_error: Mutex<Option<String>>,
    /// The retention in days, when enabled (0: off).
    pub retain_days: AtomicU64,
}

/// The process's retention totals.
pub fn stats() -> &'static Stats {
    static STATS: OnceLock<Stats> = OnceLock::new();
    STATS.get_or_init(Stats::default)
}

/// One sweep: `Ok(None)` when another sweeper holds the lock, else what it deleted. Stops
/// between batches when `stop` turns true.
pub fn run_once(
    store: &Store,
    cfg: &RetentionConfig,
    stop: &dyn Fn() -> bool,
) -> Result<Option<Pruned>, StorageError> {
    let Some(lock) = store.try_retention_lock()? else {
        return Ok(None);
    };
    let cutoff = chrono::Utc::now() - cfg.retain;
    let mut total = Pruned::default();
    loop {
        let p = store.prune_closed_batch(&lock, cutoff, cfg.batch)?;
        total += p;
        let s = stats();
        s.deleted_orders
            .fetch_add(p.orders as u64, Ordering::Relaxed);
        s.deleted_events
            .fetch_add(p.events as u64, Ordering::Relaxed);
        if (p.orders as i64) < cfg.batch || stop() {
            break;
        }
        std::thread::sleep(cfg.pause);
    }
    Ok(Some(total))
}

/// The running sweeper; dropping it stops the loop (within one batch) and joins its thread.
pub struct Sweeper {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the sweeper loop on a thread of its own.
pub fn start(store: Store, cfg: RetentionConfig) -> std::io::Result<Sweeper> {
    start_with_signal(store, cfg, None)
}

/// [`start`], telling `signal` what each sweep deleted (tests wait on it).
pub fn start_with_signal(
    store: Store,
    cfg: RetentionConfig,
    signal: Option<Sender<Pruned>>,
) -> std::io::Result<Sweeper> {
    let (tx, rx) = mpsc::channel::<()>();
    stats()
        .retain_days
        .store(cfg.retain.num_days().max(0) as u64, Ordering::Relaxed);
    let thread = std::thread::Builder::new()
        .name("retention".into())
        .spawn(move || {
            let mut wait = cfg.first_delay;
            // Disconnected (the Sweeper dropped) ends the loop; a timeout is the next sweep.
            while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(wait) {
                wait = cfg.interval;
                let stopping = || {
                    matches!(rx.try_recv(), Err(mpsc::TryRecvError::Disconnected))
                };
                match run_once(&store, &cfg, &stopping) {
                    Ok(Some(p)) => {
                        let s = stats();
                        s.sweeps.fetch_add(1, Ordering::Relaxed);
                        s.last_sweep_ms
                            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
                        *s.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
                        if p.orders > 0 {
                            log::info!(
                                "🧹 Retention: deleted {} closed orders and {} history rows older than {} days",
                                p.orders,
                                p.events,
                                cfg.retain.num_days()
                            );
                        }
                        if let Some(s) = &signal {
                            let _ = s.send(p);
                        }
                    }
                    Ok(None) => log::debug!("retention: another instance is sweeping"),
                    Err(e) => {
                        log::warn!("retention sweep failed: {e}; retrying at the next sweep");
                        *stats().last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(e.to_string());
                    }
                }
            }
        })?;
    Ok(Sweeper {
        stop: Some(tx),
        thread: Some(thread),
    })
}
