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
use std::time::{Duration, Instant};
use storage::{PruneCursor, Pruned, StorageError, Store};

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
    /// Shortest pause between batches.
    pub pause: Duration,
    /// The pause after a batch is at least this many times what the batch took.
    pub duty: u32,
    /// Longest wait for a quiet moment before a batch ([`yield_to_due`]).
    pub max_yield: Duration,
}

impl RetentionConfig {
    /// Retention of `days` days, with the default cadence: a sweep a few seconds after start,
    /// then every `interval`; batches of 500 with at least 20 ms, and at least four times the
    /// batch's own time, between them (pruning holds the database at most a fifth of the
    /// time); at most 2 s spent waiting for a quiet moment before each batch.
    pub fn days(days: u32, interval: Duration) -> Self {
        Self {
            retain: chrono::Duration::days(i64::from(days)),
            interval,
            first_delay: Duration::from_secs(2),
            batch: 500,
            pause: Duration::from_millis(20),
            duty: 4,
            max_yield: Duration::from_secs(2),
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
///
/// Gentle by construction, because the promise is that orders are moderated at their due
/// time, not that old rows vanish quickly: each batch continues where the last ended (a
/// cursor, so batches stay short to the end of a million-order sweep), the pause after a
/// batch is at least [`RetentionConfig::duty`] times what the batch took (so pruning holds the
/// database a bounded share of the time, whatever the machine), and no batch starts when an
/// order falls due before it would likely end ([`yield_to_due`]).
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
    let mut cursor = PruneCursor::default();
    // What a batch is expected to take: the longest of the last few, decaying slowly.
    let mut expect = Duration::from_millis(10);
    while !cursor.is_done() && !stop() {
        yield_to_due(store, expect, cfg.max_yield, stop)?;
        let t = Instant::now();
        let p = store.prune_closed_batch(&lock, cutoff, cfg.batch, &mut cursor)?;
        store.checkpoint_after_prune()?;
        let took = t.elapsed();
        expect = took.max(expect * 7 / 8);
        log::debug!(
            "retention: deleted {} orders and {} history rows in {took:?}",
            p.orders,
            p.events
        );
        total += p;
        let s = stats();
        s.deleted_orders
            .fetch_add(p.orders as u64, Ordering::Relaxed);
        s.deleted_events
            .fetch_add(p.events as u64, Ordering::Relaxed);
        if !cursor.is_done() {
            std::thread::sleep(cfg.pause.max(took * cfg.duty));
        }
    }
    Ok(Some(total))
}

/// Waits while an order falls due within the time a batch is expected to take (twice that,
/// plus a margin for the scheduler's own pass), so a delete never competes with a due pass;
/// gives up waiting after `max_wait` in all, so that a book with something due every few
/// milliseconds delays pruning but cannot starve it.
fn yield_to_due(
    store: &Store,
    expect: Duration,
    max_wait: Duration,
    stop: &dyn Fn() -> bool,
) -> Result<(), StorageError> {
    let margin = expect * 2 + Duration::from_millis(50);
    let started = Instant::now();
    while started.elapsed() < max_wait && !stop() {
        let Some(due) = store.next_due()? else {
            return Ok(());
        };
        let until = (due - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        if until > margin {
            return Ok(());
        }
        // Until just after the due instant (its pass takes a few ms), in short steps so a
        // stop is seen; an overdue order (a catch-up) is waited on in the same steps.
        std::thread::sleep((until + Duration::from_millis(20)).min(Duration::from_millis(100)));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use storage::testing::{order_due, TestDb};

    /// A batch does not start while an order falls due within its expected time: the wait
    /// lasts until the order is taken (here cancelled, as a stand-in for the scheduler's pass,
    /// just after its due time), not until the wait's bound.
    #[test]
    fn a_batch_waits_for_an_order_falling_due_now() {
        let db = TestDb::sqlite();
        let store = db.store();
        let due = chrono::Utc::now() + chrono::Duration::milliseconds(40);
        let id = store
            .insert_order(&order_due(due, "BUY", "L"), None, "api")
            .expect("insert")
            .order
            .id;
        let taker = {
            let store = store.clone();
            std::thread::spawn(move || {
                let wait = (due - chrono::Utc::now()).to_std().unwrap_or_default();
                std::thread::sleep(wait + Duration::from_millis(30));
                let cancel = storage::ManualChange {
                    to: Some(orders::OrderStatus::Cancelled),
                    ..storage::ManualChange::default()
                };
                store.transition(&id, &cancel, "test").expect("cancel");
                chrono::Utc::now()
            })
        };
        let t = Instant::now();
        yield_to_due(
            &store,
            Duration::from_millis(10),
            Duration::from_secs(5),
            &|| false,
        )
        .expect("yield");
        let taken = taker.join().expect("taker");
        assert!(
            chrono::Utc::now() >= taken,
            "a batch would have started while the order was still due"
        );
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    /// Nothing due soon: no wait at all; and an order due every moment cannot starve pruning
    /// past `max_wait`.
    #[test]
    fn the_wait_is_bounded() {
        let db = TestDb::sqlite();
        let store = db.store();
        let far = chrono::Utc::now() + chrono::Duration::hours(1);
        store
            .insert_order(&order_due(far, "BUY", "L"), None, "api")
            .expect("insert");
        let t = Instant::now();
        yield_to_due(
            &store,
            Duration::from_millis(10),
            Duration::from_secs(2),
            &|| false,
        )
        .expect("yield");
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        // Overdue and never claimed (no scheduler here): the wait gives up after max_wait.
        let past = chrono::Utc::now() - chrono::Duration::seconds(1);
        store
            .insert_order(&order_due(past, "BUY", "L"), None, "api")
            .expect("insert");
        let t = Instant::now();
        yield_to_due(
            &store,
            Duration::from_millis(10),
            Duration::from_millis(300),
            &|| false,
        )
        .expect("yield");
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
    }
}
