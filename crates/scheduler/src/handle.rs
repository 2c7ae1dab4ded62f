//! The public face of the scheduler: [`SchedulerBuilder`] configures and spawns the worker
//! thread, and [`Scheduler`] is the handle that controls it, reads its status and joins it.
//!
//! The handle owns the sending half of the command channel and the named thread
//! (rust-analyzer's thread-actor shape): every control call is a [`Command`] answered over a
//! one-shot channel, and dropping the handle sends `Shutdown` and joins, so the thread never
//! outlives it.

use crate::decide::original_moderator;
use crate::error::SchedulerError;
use crate::event::Observer;
use crate::report::{PassReport, Status};
use crate::shared::Shared;
use crate::worker::{Command, Worker};
use chrono::{DateTime, Utc};
use moderator::{Moderator, Policy};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use storage::{ConnectionCheck, DueWatch, PoolConfig, Store};

/// Connections in the worker's own pool: one for passes, one for the insert watcher's reads;
/// on Postgres one more for each further writer ([`SchedulerBuilder::pg_writers`]).
const OWN_CONNECTIONS: u32 = 2;
/// Transactions writing at once on Postgres when a pass has more than one batch to write: the
/// cores of the machine this was measured on (docs/BENCHMARKS.md, round five).
pub const DEFAULT_PG_WRITERS: usize = 2;
/// Most writers a scheduler takes (each holds a connection while it writes).
const MAX_PG_WRITERS: usize = 32;
/// How often the insert watcher looks for orders inserted by other processes.
const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_millis(10);

/// Configures and spawns a [`Scheduler`]; start with [`Scheduler::builder`].
pub struct SchedulerBuilder {
    store: Store,
    policy: Policy,
    /// Overrides `policy` when set.
    moderator: Option<Moderator>,
    check_interval: Duration,
    batch_size: usize,
    pg_writers: usize,
    seed: Option<u64>,
    instance_id: String,
    autostart: bool,
    observer: Option<Observer>,
    watch_interval: Option<Duration>,
}

impl SchedulerBuilder {
    /// How soon an order inserted by anyone else (another instance, the command line, a
    /// script) re-arms the timer (default 10 ms); `None` turns the watcher off, leaving such
    /// orders to the next check.
    pub fn watch_inserts(mut self, interval: Option<Duration>) -> Self {
        self.watch_interval = interval.map(|i| i.max(Duration::from_millis(1)));
        self
    }

    /// On Postgres, how many transactions write at once when a pass has more than one batch
    /// to write (a due instant's orders read ahead, or a backlog): each on its own connection
    /// and its own rows. A batch's cost there is the database server's work, one core per
    /// connection, so about the server's cores (default [`DEFAULT_PG_WRITERS`]; 1 to 32).
    /// SQLite has one writer whatever this says.
    pub fn pg_writers(mut self, n: usize) -> Self {
        self.pg_writers = n.clamp(1, MAX_PG_WRITERS);
        self
    }

    /// The original's moderation: its random policy over its simulated prices, with these
    /// parameters (default: 70 % at 40 ± 10 $/MWh). Replaces a [`moderator`](Self::moderator).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self.moderator = None;
        self
    }

    /// Any policy over any price source (built with [`moderator::ModerationConfig::build`],
    /// say): decisions carry the source and interval that priced them into
    /// `approval_rt_source` and `approval_rt_interval_start_utc`. Replaces a
    /// [`policy`](Self::policy).
    pub fn moderator(mut self, moderator: Moderator) -> Self {
        self.moderator = Some(moderator);
        self
    }

    /// Longest sleep when nothing is due sooner (default 30 s, as the original system). It
    /// bounds how long an order inserted by another process can wait unnoticed.
    pub fn check_interval(mut self, interval: Duration) -> Self {
        self.check_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Orders claimed per transaction (default 1,000); memory is bounded by it.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// Makes every outcome a pure function of (seed, order id, policy).
    pub fn moderation_seed(mut self, seed: Option<u64>) -> Self {
        self.seed = seed;
        self
    }

    /// Name written to the history as `scheduler:<id>` (default: host-less random id).
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = id.into();
        self
    }

    /// Whether the loop starts moderating at once (default true); when false it waits for
    /// [`Scheduler::start`] but still serves force-runs.
    pub fn autostart(mut self, yes: bool) -> Self {
        self.autostart = yes;
        self
    }

    /// Receives [`SchedulerEvent`](crate::SchedulerEvent)s on the scheduler thread.
    pub fn observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Spawns the thread `order-scheduler` and returns its handle.
    ///
    /// The worker gets a connection pool of its own, so it never waits behind the embedder's
    /// other users of `store` (HTTP requests, say); and, unless turned off, a watcher thread
    /// re-arms its timer when anyone inserts an order.
    pub fn spawn(self) -> Result<Scheduler, SchedulerError> {
        let (tx, rx) = mpsc::channel();
        let own = self
            .store
            .dedicated(&PoolConfig {
                max_size: if self.store.is_postgres() {
                    OWN_CONNECTIONS + self.pg_writers as u32 - 1
                } else {
                    OWN_CONNECTIONS
                },
                connection_timeout: Duration::from_secs(5),
                // A pass retries after a failure; its first query should not wait behind a
                // test round trip at the due instant.
                check: ConnectionCheck::OnReturn,
                // The next pass finds a connection ready; on Postgres every writer does. The
                // pool closes connections beyond these after ten idle minutes, less than the
                // hour between two day-ahead instants, whose second writer would otherwise
                // connect at the instant.
                min_idle: if self.store.is_postgres() {
                    self.pg_writers as u32
                } else {
                    1
                },
                // Inherited from `store` in any case.
                background_checkpoints: false,
            })
            .unwrap_or_else(|e| {
                log::warn!("scheduler: no pool of its own ({e}); sharing the caller's");
                self.store.clone()
            });
        let watch = match self.watch_interval {
            Some(interval) => {
                let wake = tx.clone();
                Some(own.watch_due(interval, move |due| {
                    let _ = wake.send(Command::DueAt(due));
                })?)
            }
            None => None,
        };
        let moderator = self
            .moderator
            .unwrap_or_else(|| original_moderator(&self.policy, self.seed));
        let writers = if self.store.is_postgres() {
            self.pg_writers
        } else {
            1
        };
        let shared = Arc::new(Shared::new(
            moderator,
            own,
            self.store,
            self.instance_id,
            self.batch_size,
            writers,
            self.check_interval,
            self.seed,
            self.autostart,
        ));
        let worker = Worker::new(Arc::clone(&shared), rx, self.observer);
        let thread = std::thread::Builder::new()
            .name("order-scheduler".into())
            .spawn(move || worker.run())?;
        Ok(Scheduler {
            commands: tx,
            shared,
            thread: Some(thread),
            _watch: watch,
        })
    }
}

/// Whether the scheduler works, read without touching the database (for health probes and
/// metrics, which must answer while the database is down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// The loop moderates due orders by itself (false after [`Scheduler::stop`]).
    pub running: bool,
    /// The thread is alive; it stays alive while stopped, to serve force-runs.
    pub thread_alive: bool,
    /// When the current run of failed passes began (`None` while passes succeed): a
    /// readiness probe can fail once this is older than it tolerates.
    pub failing_since: Option<DateTime<Utc>>,
}

/// The handle: controls the scheduler thread, reads its status, and joins it on drop.
pub struct Scheduler {
    commands: Sender<Command>,
    shared: Arc<Shared>,
    // Joined in `Drop` after `Shutdown` is sent, so the thread never outlives the handle.
    thread: Option<JoinHandle<()>>,
    /// Stopped and joined when the handle is dropped (after the worker).
    _watch: Option<DueWatch>,
}

/// How long a control call waits for the thread to acknowledge: a batch in progress is
/// finished first, and a hanging database may hold it.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

impl Scheduler {
    /// Starts configuring a scheduler over `store`.
    pub fn builder(store: Store) -> SchedulerBuilder {
        SchedulerBuilder {
            store,
            policy: Policy::default(),
            moderator: None,
            check_interval: Duration::from_secs(30),
            batch_size: 1_000,
            pg_writers: DEFAULT_PG_WRITERS,
            seed: None,
            instance_id: format!("{:08x}", rand::random::<u32>()),
            autostart: true,
            observer: None,
            watch_interval: Some(DEFAULT_WATCH_INTERVAL),
        }
    }

    fn request<T>(&self, make: impl FnOnce(Sender<T>) -> Command) -> Result<T, SchedulerError> {
        let (tx, rx) = mpsc::channel();
        self.commands
            .send(make(tx))
            .map_err(|_| SchedulerError::ThreadGone)?;
        rx.recv_timeout(REPLY_TIMEOUT).map_err(|e| match e {
            RecvTimeoutError::Timeout => SchedulerError::Timeout(REPLY_TIMEOUT),
            RecvTimeoutError::Disconnected => SchedulerError::ThreadGone,
        })
    }

    /// Resumes moderating by itself; due orders are processed at once.
    pub fn start(&self) -> Result<(), SchedulerError> {
        self.request(Command::Start)
    }

    /// Stops moderating by itself, after the batch in progress (the thread stays up).
    pub fn stop(&self) -> Result<(), SchedulerError> {
        self.request(Command::Stop)
    }

    /// Processes everything due now, even while stopped, and reports it by due time.
    pub fn force_run(&self) -> Result<PassReport, SchedulerError> {
        Ok(self.request(Command::ForceRun)??)
    }

    /// Makes the thread look at the database again now (e.g. after inserts by others).
    pub fn wake(&self) {
        let _ = self.commands.send(Command::Wake);
    }

    /// Tells the thread an order is due at `due`, re-arming its timer if that is sooner than
    /// its current deadline. Cheaper than [`wake`](Self::wake): no query. Call it after the
    /// order is committed. While the thread sleeps until a deadline no later than `due`, or
    /// sleeps stopped, it is not woken at all (most creates under load): its pass at that
    /// deadline, or at `start`, reads the next due time from the database, which then holds
    /// the order.
    pub fn notify_due(&self, due: DateTime<Utc>) {
        // SeqCst pairs with the worker's store of NOT_ARMED before it reads the database: if
        // this load still sees its deadline, the worker's read comes after this commit.
        if due.timestamp_millis() >= self.shared.armed_until_ms.load(Ordering::SeqCst) {
            return;
        }
        let _ = self.commands.send(Command::DueAt(due));
    }

    /// The current status, from memory but for the counts of due and parked orders, which
    /// are read through the claimable index at most once a second (counts slow to read are
    /// kept longer, up to 15 s) and shared between callers (see `counts_computed_at`); they
    /// are `None` when the database cannot be reached.
    pub fn status(&self) -> Status {
        self.shared.status(self.thread_alive())
    }

    /// Whether the loop runs and the thread lives, without touching the database.
    pub fn liveness(&self) -> Liveness {
        let st = self.shared.lock();
        Liveness {
            running: st.running,
            thread_alive: self.thread_alive(),
            failing_since: st.failing_since,
        }
    }

    fn thread_alive(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// The policy and price source orders are moderated with (the market routes read its
    /// prices, so they show what the moderator uses).
    pub fn moderator(&self) -> &Moderator {
        &self.shared.moderator
    }

    /// The moderator for a manual moderation of one due time ([`crate::moderate_due_time_with`]):
    /// the configured one, or, when `random` is given (the original route's query parameters,
    /// which override the random policy), the original's random policy with those parameters
    /// over the configured prices; when those are the simulated model, over the model with
    /// the given base and variance.
    pub fn manual_moderator(&self, random: Option<&Policy>) -> Moderator {
        let configured = &self.shared.moderator;
        match random {
            None => configured.clone(),
            Some(policy) if configured.prices().name() == orders::RT_SOURCE => {
                original_moderator(policy, self.shared.seed)
            }
            Some(policy) => Moderator::from_shared(
                Arc::new(policy.random_policy()),
                Arc::clone(configured.prices()),
            ),
        }
    }

    /// The store the scheduler was built with (the worker itself uses a pool of its own on
    /// the same database).
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Stops the thread and waits for it (same as dropping the handle).
    pub fn shutdown(mut self) {
        self.join();
    }

    fn join(&mut self) {
        let _ = self.commands.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("the scheduler thread panicked while shutting down");
            }
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.join();
    }
}
