//! The scheduler thread and its handle.
//!
//! A [`Scheduler`] owns the sending half of a command channel and the named thread that runs
//! the loop. The loop sleeps on the channel with a timeout set to the next deadline (the
//! earliest pending due time, or the check interval, whichever is sooner), so a command or a
//! due order wakes it at once. Dropping the handle sends `Shutdown` and joins the thread.

use crate::decide::decider;
use crate::report::{Grouper, LatenessSummary, ParkedOrder, PassReport, Status, HOUR_LIST_CAP};
use chrono::{DateTime, Utc};
use moderator::Policy;
use orders::{format_ms, Order};
use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use storage::{ClaimScope, StorageError, Store};

/// Failures of the scheduler handle itself.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The thread could not be spawned.
    #[error("cannot spawn the scheduler thread: {0}")]
    Spawn(#[from] std::io::Error),
    /// The thread is gone (it panicked outside a pass, or was shut down).
    #[error("the scheduler thread is not running")]
    ThreadGone,
    /// The thread did not answer in time (a long batch, or a database that hangs).
    #[error("the scheduler did not answer within {0:?}")]
    Timeout(Duration),
    /// The pass failed in the database.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Something that happened in the scheduler, for observers (metrics, event streams).
#[derive(Debug)]
pub enum SchedulerEvent<'a> {
    /// The loop (re)started moderating by itself.
    Started,
    /// The loop stopped moderating by itself.
    Stopped,
    /// A batch was moderated and committed at `at`.
    Moderated {
        /// The orders as written.
        orders: &'a [Order],
        /// Moderation time of the batch.
        at: DateTime<Utc>,
    },
    /// A pass ended.
    PassFinished {
        /// Orders moderated in it.
        processed: usize,
        /// How long it took.
        duration: Duration,
    },
    /// An order was set aside.
    Parked {
        /// The order.
        id: &'a str,
        /// Why.
        reason: &'a str,
    },
    /// A pass or batch failed; it will be retried.
    Failed {
        /// What went wrong.
        error: &'a str,
    },
}

/// A callback receiving [`SchedulerEvent`]s on the scheduler thread; keep it quick.
pub type Observer = Arc<dyn Fn(&SchedulerEvent<'_>) + Send + Sync>;

/// Configures and spawns a [`Scheduler`].
pub struct SchedulerBuilder {
    store: Store,
    policy: Policy,
    check_interval: Duration,
    batch_size: usize,
    seed: Option<u64>,
    instance_id: String,
    autostart: bool,
    observer: Option<Observer>,
}

impl SchedulerBuilder {
    /// Moderation policy (default: 70 % at 40 ± 10 $/MWh).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Longest sleep when nothing is due sooner (default 30 s, as the seed). It bounds how long
    /// an order inserted by another process can wait unnoticed.
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

    /// Receives events on the scheduler thread.
    pub fn observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Spawns the thread `order-scheduler` and returns its handle.
    pub fn spawn(self) -> Result<Scheduler, SchedulerError> {
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            store: self.store,
            instance_id: self.instance_id,
            batch_size: self.batch_size,
            check_interval: self.check_interval,
            seed: self.seed,
            state: Mutex::new(State {
                running: self.autostart,
                ..State::default()
            }),
        });
        let worker = Worker {
            shared: Arc::clone(&shared),
            policy: self.policy,
            rx,
            pending: VecDeque::new(),
            observer: self.observer,
            deadline: Instant::now(),
            backoff: Duration::ZERO,
            decide_failures: HashMap::new(),
            last_upcoming_log: None,
        };
        let thread = std::thread::Builder::new()
            .name("order-scheduler".into())
            .spawn(move || worker.run())?;
        Ok(Scheduler {
            commands: tx,
            shared,
            thread: Some(thread),
        })
    }
}

enum Command {
    Start(Sender<()>),
    Stop(Sender<()>),
    Wake,
    DueAt(DateTime<Utc>),
    ForceRun(Sender<Result<PassReport, StorageError>>),
    Shutdown,
}

/// The handle: controls the scheduler thread, reads its status, and joins it on drop.
pub struct Scheduler {
    commands: Sender<Command>,
    shared: Arc<Shared>,
    // Joined in `Drop` after `Shutdown` is sent, so the thread never outlives the handle.
    thread: Option<JoinHandle<()>>,
}

/// How long a control call waits for the thread to acknowledge.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

impl Scheduler {
    /// Starts configuring a scheduler over `store`.
    pub fn builder(store: Store) -> SchedulerBuilder {
        SchedulerBuilder {
            store,
            policy: Policy::default(),
            check_interval: Duration::from_secs(30),
            batch_size: 1_000,
            seed: None,
            instance_id: format!("{:08x}", rand::random::<u32>()),
            autostart: true,
            observer: None,
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
    /// its current deadline. Cheaper than [`wake`](Self::wake): no query.
    pub fn notify_due(&self, due: DateTime<Utc>) {
        let _ = self.commands.send(Command::DueAt(due));
    }

    /// The current status. Counts of due orders are read from the database through its index;
    /// they are `None` when the database cannot be reached.
    pub fn status(&self) -> Status {
        let summary = self
            .shared
            .store
            .due_summary(Utc::now(), chrono::Duration::minutes(10));
        let st = self.shared.lock();
        let (pending_due_now, upcoming_10_min, next_due_order, parked) = match &summary {
            Ok(s) => (
                Some(s.pending_due_now),
                Some(s.upcoming),
                s.next_due,
                Some(s.parked),
            ),
            Err(_) => (None, None, None, None),
        };
        let mut lateness: Vec<i64> = st.lateness.iter().copied().collect();
        lateness.sort_unstable();
        let pct = |p: f64| -> Option<i64> {
            (!lateness.is_empty()).then(|| {
                let idx = ((lateness.len() as f64 - 1.0) * p).round() as usize;
                lateness[idx.min(lateness.len() - 1)]
            })
        };
        Status {
            running: st.running,
            thread_alive: self.thread.as_ref().is_some_and(|t| !t.is_finished()),
            pending_due_now,
            upcoming_10_min,
            next_due_order,
            last_check: st.last_check,
            check_interval_seconds: self.shared.check_interval.as_secs_f64(),
            instance_id: self.shared.instance_id.clone(),
            batch_size: self.shared.batch_size,
            processed: st.processed,
            approved: st.approved,
            rejected: st.rejected,
            failed: st.failed,
            panics: st.panics,
            parked,
            parked_recent: st.parked_recent.iter().cloned().collect(),
            passes: st.passes,
            last_pass_ms: st.last_pass_ms,
            lateness_ms: LatenessSummary {
                last: st.lateness.back().copied(),
                p50: pct(0.5),
                p99: pct(0.99),
                max: lateness.last().copied(),
                samples: lateness.len(),
            },
            next_wake: st.next_wake,
            last_error: match (&summary, &st.last_error) {
                (Err(e), _) => Some(one_line(&e.to_string())),
                (_, last) => last.clone(),
            },
            last_error_at: st.last_error_at,
            consecutive_failures: st.consecutive_failures,
            moderation_seed: self.shared.seed,
        }
    }

    /// `(running, thread_alive)` without touching the database (for health probes).
    pub fn status_light(&self) -> (bool, bool) {
        let running = self.shared.lock().running;
        (
            running,
            self.thread.as_ref().is_some_and(|t| !t.is_finished()),
        )
    }

    /// The store the scheduler works on.
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

/// State shared by the handle (reads) and the thread (writes).
struct Shared {
    store: Store,
    instance_id: String,
    batch_size: usize,
    check_interval: Duration,
    seed: Option<u64>,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave counters inconsistent in a harmful way.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Most lateness samples kept for the status percentiles.
const LATENESS_WINDOW: usize = 4_096;
/// Most recently parked orders listed in the status.
const PARKED_RECENT: usize = 20;
/// Failures of one order's decision before it is parked.
const DECIDE_ATTEMPTS: u32 = 3;
/// Longest wait between retries while the database is down.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Pause before looking again when orders are due but none could be claimed (held by another
/// instance): short, so the work is picked up if that instance dies.
const CONTENDED_RETRY: Duration = Duration::from_millis(5);
/// How often the "scheduled in the next 5 min" line may be logged.
const UPCOMING_LOG_EVERY: Duration = Duration::from_secs(300);

#[derive(Default)]
struct State {
    running: bool,
    last_check: Option<DateTime<Utc>>,
    processed: u64,
    approved: u64,
    rejected: u64,
    failed: u64,
    panics: u64,
    passes: u64,
    last_pass_ms: Option<f64>,
    lateness: VecDeque<i64>,
    parked_recent: VecDeque<ParkedOrder>,
    next_wake: Option<DateTime<Utc>>,
    last_error: Option<String>,
    last_error_at: Option<DateTime<Utc>>,
    consecutive_failures: u32,
}

struct Worker {
    shared: Arc<Shared>,
    policy: Policy,
    rx: Receiver<Command>,
    /// Commands received during a pass, handled when it ends.
    pending: VecDeque<Command>,
    observer: Option<Observer>,
    deadline: Instant,
    backoff: Duration,
    decide_failures: HashMap<String, u32>,
    last_upcoming_log: Option<Instant>,
}

/// Folds a message onto one line: drivers' messages (libpq's) span several.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Converts a wall-clock instant into a monotonic deadline.
fn instant_at(t: DateTime<Utc>) -> Instant {
    let now = Instant::now();
    match (t - Utc::now()).to_std() {
        Ok(ahead) => now + ahead,
        Err(_) => now, // already past
    }
}

impl Worker {
    fn emit(&self, event: SchedulerEvent<'_>) {
        if let Some(o) = &self.observer {
            o(&event);
        }
    }

    fn actor(&self) -> String {
        format!("scheduler:{}", self.shared.instance_id)
    }

    fn run(mut self) {
        let running = self.shared.lock().running;
        log::info!(
            "🚀 Order scheduler started (instance {}, {}, check interval {:?}, batch {})",
            self.shared.instance_id,
            self.shared.store.backend_name(),
            self.shared.check_interval,
            self.shared.batch_size
        );
        if running {
            self.emit(SchedulerEvent::Started);
        }
        loop {
            let command = match self.pending.pop_front() {
                Some(c) => Some(c),
                None => {
                    let running = self.shared.lock().running;
                    let timeout = if running {
                        self.deadline.saturating_duration_since(Instant::now())
                    } else {
                        Duration::from_secs(3600)
                    };
                    match self.rx.recv_timeout(timeout) {
                        Ok(c) => Some(c),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            match command {
                Some(Command::Shutdown) => break,
                Some(c) => self.handle(c),
                None => {}
            }
            if self.shared.lock().running && Instant::now() >= self.deadline {
                self.tick();
            }
        }
        // A stop command already said so; otherwise (shutdown while running) say it now.
        if self.shared.lock().running {
            log::info!(
                "⏹️ Order scheduler stopped (instance {})",
                self.shared.instance_id
            );
        }
        log::debug!(
            "scheduler thread exiting (instance {})",
            self.shared.instance_id
        );
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Start(reply) => {
                let was = std::mem::replace(&mut self.shared.lock().running, true);
                if !was {
                    log::info!(
                        "🚀 Order scheduler started (instance {})",
                        self.shared.instance_id
                    );
                    self.emit(SchedulerEvent::Started);
                }
                self.deadline = Instant::now();
                let _ = reply.send(());
            }
            Command::Stop(reply) => {
                let was = std::mem::replace(&mut self.shared.lock().running, false);
                if was {
                    log::info!(
                        "⏹️ Order scheduler stopped (instance {})",
                        self.shared.instance_id
                    );
                    self.emit(SchedulerEvent::Stopped);
                }
                self.shared.lock().next_wake = None;
                let _ = reply.send(());
            }
            Command::Wake => match self.shared.store.next_due() {
                Ok(Some(t)) => self.arm(instant_at(t)),
                Ok(None) => {}
                Err(_) => self.arm(Instant::now()),
            },
            Command::DueAt(t) => self.arm(instant_at(t)),
            Command::ForceRun(reply) => {
                let result = self.guarded_pass(true);
                let report = result.map(Grouper::into_pass_report);
                let _ = reply.send(report);
                self.deadline = Instant::now();
            }
            Command::Shutdown => {}
        }
    }

    /// Moves the deadline earlier, never later.
    fn arm(&mut self, at: Instant) {
        if at < self.deadline {
            self.deadline = at;
            self.shared.lock().next_wake = Some(Utc::now() + (at - Instant::now()));
        }
    }

    /// One scheduled check: a pass, then the next deadline (or a backoff after a failure).
    fn tick(&mut self) {
        match self.guarded_pass(false) {
            Ok(_) => {
                self.backoff = Duration::ZERO;
                self.shared.lock().consecutive_failures = 0;
                self.deadline = self.next_deadline();
                self.log_upcoming();
            }
            Err(e) => {
                self.backoff = if e.is_unavailable() {
                    (self.backoff * 2).clamp(Duration::from_millis(100), MAX_BACKOFF)
                } else {
                    Duration::from_millis(50)
                };
                self.deadline = Instant::now() + self.backoff;
            }
        }
        let wake = Utc::now() + (self.deadline.saturating_duration_since(Instant::now()));
        self.shared.lock().next_wake = Some(wake);
    }

    /// The earliest pending due time or the check interval, whichever is sooner.
    fn next_deadline(&self) -> Instant {
        let interval = Instant::now() + self.shared.check_interval;
        match self.shared.store.next_due() {
            Ok(Some(t)) if t <= Utc::now() => Instant::now() + CONTENDED_RETRY,
            Ok(Some(t)) => instant_at(t).min(interval),
            Ok(None) => interval,
            Err(_) => Instant::now() + Duration::from_millis(100),
        }
    }

    /// A pass with panics caught, failures counted and recorded in the status.
    fn guarded_pass(&mut self, forced: bool) -> Result<Grouper, StorageError> {
        let outcome = catch_unwind(AssertUnwindSafe(|| self.pass(forced)));
        let error = match outcome {
            Ok(Ok(grouper)) => return Ok(grouper),
            Ok(Err(e)) => {
                self.shared.lock().failed += 1;
                e
            }
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                self.shared.lock().panics += 1;
                StorageError::Decide {
                    order_id: String::new(),
                    reason: format!("panic in pass: {msg}"),
                }
            }
        };
        let text = one_line(&error.to_string());
        log::error!(
            "❌ Scheduler pass failed (instance {}): {text}; will retry",
            self.shared.instance_id
        );
        {
            let mut st = self.shared.lock();
            st.last_error = Some(text.clone());
            st.last_error_at = Some(Utc::now());
            st.consecutive_failures += 1;
        }
        self.emit(SchedulerEvent::Failed { error: &text });
        if let StorageError::Decide { order_id, reason } = &error {
            self.note_decide_failure(order_id, reason);
        }
        Err(error)
    }

    /// Counts failures of one order's decision; parks the order once they reach the limit so
    /// that it stops blocking its batch.
    fn note_decide_failure(&mut self, order_id: &str, reason: &str) {
        if order_id.is_empty() {
            return;
        }
        let n = self
            .decide_failures
            .entry(order_id.to_string())
            .or_insert(0);
        *n += 1;
        if *n >= DECIDE_ATTEMPTS {
            self.decide_failures.remove(order_id);
            let why = format!("decision failed {DECIDE_ATTEMPTS} times: {reason}");
            if let Ok(true) = self.shared.store.park_order(order_id, &why) {
                self.record_parked(order_id, &why);
            }
        }
    }

    fn record_parked(&self, id: &str, reason: &str) {
        log::error!(
            "🅿️ Order {id} set aside (instance {}): {reason}",
            self.shared.instance_id
        );
        {
            let mut st = self.shared.lock();
            if st.parked_recent.len() == PARKED_RECENT {
                st.parked_recent.pop_front();
            }
            st.parked_recent.push_back(ParkedOrder {
                id: id.to_string(),
                reason: reason.to_string(),
            });
        }
        self.emit(SchedulerEvent::Parked { id, reason });
    }

    /// Claims and moderates due orders batch by batch until none is due; between batches it
    /// takes in commands, so `stop` takes effect after the batch in progress.
    fn pass(&mut self, forced: bool) -> Result<Grouper, StorageError> {
        let started = Instant::now();
        self.shared.lock().last_check = Some(Utc::now());
        let actor = self.actor();
        let batch_size = self.shared.batch_size;
        let mut decide = decider(self.policy, self.shared.seed);
        // Scheduled passes only count (a backlog may span millions of due times); forced
        // passes report by due time, up to a cap.
        let mut total = Grouper::with_hours(if forced { HOUR_LIST_CAP } else { 0 });
        // Each batch starts at the last one's latest due time; rows skipped before it (held by
        // another instance, or inserted meanwhile) are left to the next pass, which starts
        // right away because they are due.
        let mut scope = ClaimScope::Due;
        loop {
            let result =
                self.shared
                    .store
                    .claim_and_apply(scope, batch_size, &actor, &mut decide)?;
            if let Some(latest) = result.moderated.iter().map(|o| o.hour_start_utc).max() {
                scope = ClaimScope::DueFrom(latest);
            }
            for (id, reason) in &result.parked {
                self.record_parked(id, reason);
            }
            if !result.moderated.is_empty() {
                self.record_batch(&result.moderated, result.at.unwrap_or_else(Utc::now));
                total.add(&result.moderated, forced);
            }
            if result.claimed() < batch_size || self.interrupted() {
                break;
            }
        }
        let elapsed = started.elapsed();
        {
            let mut st = self.shared.lock();
            st.passes += 1;
            if total.processed > 0 {
                st.last_pass_ms = Some(elapsed.as_secs_f64() * 1000.0);
            }
        }
        if total.processed > 0 {
            log::info!(
                "📊 Processed {} orders in this cycle ({} approved, {} rejected, {:.1} ms, instance {})",
                total.processed,
                total.approved,
                total.rejected,
                elapsed.as_secs_f64() * 1000.0,
                self.shared.instance_id
            );
        }
        self.emit(SchedulerEvent::PassFinished {
            processed: total.processed,
            duration: elapsed,
        });
        Ok(total)
    }

    /// Takes in commands that arrived during a pass; true if the pass should end now.
    fn interrupted(&mut self) -> bool {
        while let Ok(c) = self.rx.try_recv() {
            self.pending.push_back(c);
        }
        self.pending
            .iter()
            .any(|c| matches!(c, Command::Stop(_) | Command::Shutdown))
    }

    /// Counts, lateness, logs and observers for one committed batch.
    fn record_batch(&self, moderated: &[Order], at: DateTime<Utc>) {
        let mut batch = Grouper::with_hours(moderated.len());
        batch.add(moderated, false);
        {
            let mut st = self.shared.lock();
            st.processed += batch.processed as u64;
            st.approved += batch.approved as u64;
            st.rejected += batch.rejected as u64;
            for o in moderated {
                if st.lateness.len() == LATENESS_WINDOW {
                    st.lateness.pop_front();
                }
                st.lateness
                    .push_back((at - o.hour_start_utc).num_milliseconds());
            }
        }
        let instance = &self.shared.instance_id;
        if batch.hour_count() <= 3 {
            for h in batch.into_hours() {
                let hour = format_ms(&h.hour_start_utc);
                log::info!(
                    "🤖 Auto-moderating {} orders for {hour} (instance {instance})",
                    h.total_orders
                );
                log::info!(
                    "✅ Moderated {} orders for {hour}: {} approved, {} rejected",
                    h.total_orders,
                    h.approved,
                    h.rejected
                );
            }
        } else {
            let (approved, rejected, hours) = (batch.approved, batch.rejected, batch.hour_count());
            let reports = batch.into_hours();
            let first = reports
                .first()
                .map(|h| format_ms(&h.hour_start_utc))
                .unwrap_or_default();
            let last = reports
                .last()
                .map(|h| format_ms(&h.hour_start_utc))
                .unwrap_or_default();
            log::info!(
                "✅ Moderated {} orders over {hours} due times ({first} .. {last}): {approved} approved, {rejected} rejected (instance {instance})",
                approved + rejected
            );
        }
        self.emit(SchedulerEvent::Moderated {
            orders: moderated,
            at,
        });
    }

    /// The seed's "⏰ N orders scheduled for moderation in next 5 min" line, at most every five
    /// minutes.
    fn log_upcoming(&mut self) {
        if self
            .last_upcoming_log
            .is_some_and(|t| t.elapsed() < UPCOMING_LOG_EVERY)
        {
            return;
        }
        let now = Utc::now();
        let Ok(summary) = self
            .shared
            .store
            .due_summary(now, chrono::Duration::minutes(5))
        else {
            return;
        };
        if summary.upcoming == 0 {
            return;
        }
        let times = self
            .shared
            .store
            .upcoming_due_times(now, now + chrono::Duration::minutes(5), 5)
            .unwrap_or_default();
        let shown: Vec<String> = times.iter().map(format_ms).collect();
        log::info!(
            "⏰ {} orders scheduled for moderation in next 5 min: {shown:?}",
            summary.upcoming
        );
        self.last_upcoming_log = Some(Instant::now());
    }
}
