//! The worker: the loop on the `order-scheduler` thread, its commands, its deadline and its
//! backoff.
//!
//! The loop waits in one place ([`Worker::next_wakeup`]: one `recv_timeout` on the command
//! channel), so a command or the deadline wakes it at once. The deadline changes in one place
//! ([`Worker::set_deadline`]) and is computed after a pass in one place
//! ([`Worker::deadline_after`]): the earliest pending due time or the check interval, whichever
//! is sooner, or a backoff after a failure. What a pass does is in `pass.rs`.
//!
//! When the deadline is a due instant, the loop wakes [`READ_AHEAD`] before it and reads that
//! instant's orders ([`Worker::read_ahead`]), so that the pass at the instant starts with the
//! decisions and the write: the claim's `SELECT` (and on Postgres its round trips and row
//! locks) is done while nothing is due yet. The write re-checks every row, so what changed
//! meanwhile is left to the pass's ordinary claims.

use crate::error::PassError;
use crate::event::{Observer, SchedulerEvent};
use crate::pass::{even_batch_size, into_batches, DecideFailures};
use crate::report::{Grouper, PassReport};
use crate::shared::{Shared, NOT_ARMED, STOPPED};
use chrono::{DateTime, Utc};
use orders::Order;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the handle asks of the worker; requests carry the sender of their one-shot reply.
pub(crate) enum Command {
    Start(Sender<()>),
    Stop(Sender<()>),
    /// Look at the database for the earliest due time (orders inserted by others).
    Wake,
    /// An order is due at this time: re-arm the deadline if that is sooner.
    DueAt(DateTime<Utc>),
    ForceRun(Sender<Result<PassReport, PassError>>),
    Shutdown,
}

/// Why the loop woke up.
enum Wakeup {
    Command(Command),
    Deadline,
    /// The handle is gone without sending `Shutdown` (it always sends it; kept for safety).
    Disconnected,
}

/// Longest wait between retries while the database is down.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// First wait after the database is found down; doubled on each further failure.
const MIN_UNAVAILABLE_BACKOFF: Duration = Duration::from_millis(100);
/// Wait after any other failure (a failed decision, a panic): short, since the cause is one
/// batch rather than the database, and a thrice-failing order gets parked.
const FAILURE_BACKOFF: Duration = Duration::from_millis(50);
/// Pause before looking again when orders are due but none could be claimed (held by another
/// instance): short, so the work is picked up if that instance dies.
const CONTENDED_RETRY: Duration = Duration::from_millis(5);
/// Pause before looking again when the next due time could not be read.
const NEXT_DUE_UNKNOWN_RETRY: Duration = Duration::from_millis(100);
/// How long the loop sleeps while stopped: only a command can give it work then.
const STOPPED_SLEEP: Duration = Duration::from_secs(3600);
/// How long before a due instant its orders are read: enough for reading a few thousand rows
/// on a busy machine, short enough that few orders are created after it for that instant
/// (those are claimed in the same pass, after the ones read ahead).
pub(crate) const READ_AHEAD: Duration = Duration::from_secs(1);
/// Most orders read ahead, in batches: bounds the memory a large instant takes (about 0.5 KB
/// an order); the rest are claimed as usual.
const READ_AHEAD_BATCHES: usize = 10;

/// The orders of one due instant, read before it and already cut into the batches they will
/// be written in: cutting 5,000 orders at the instant (each tail copied into a fresh
/// allocation) took 6–18 ms before the first decision of a burst (docs/BENCHMARKS.md, round
/// thirteen).
pub(crate) struct ReadAhead {
    pub(crate) due: DateTime<Utc>,
    pub(crate) batches: Vec<Vec<Order>>,
}

/// The loop's own state; it lives on the scheduler thread and is never shared.
pub(crate) struct Worker {
    pub(crate) shared: Arc<Shared>,
    rx: Receiver<Command>,
    /// Commands received during a pass, handled when it ends.
    pending: VecDeque<Command>,
    observer: Option<Observer>,
    /// When the next scheduled pass runs (while running).
    deadline: Instant,
    /// The due instant `deadline` was set for, when it was set for one (not for the check
    /// interval, a retry or a command).
    deadline_due: Option<DateTime<Utc>>,
    /// Orders read ahead for `deadline_due`; the next pass after their instant takes them.
    pub(crate) read_ahead: Option<ReadAhead>,
    /// The last failure's retry delay, doubled while the database stays down.
    backoff: Duration,
    pub(crate) decide_failures: DecideFailures,
    /// When the "scheduled in the next 5 min" line was last logged, to rate-limit it.
    pub(crate) last_upcoming_log: Option<Instant>,
}

/// Converts a wall-clock instant into a monotonic deadline (now, if already past).
fn instant_at(t: DateTime<Utc>) -> Instant {
    let now = Instant::now();
    match (t - Utc::now()).to_std() {
        Ok(ahead) => now + ahead,
        Err(_) => now,
    }
}

impl Worker {
    pub(crate) fn new(
        shared: Arc<Shared>,
        rx: Receiver<Command>,
        observer: Option<Observer>,
    ) -> Self {
        Worker {
            shared,
            rx,
            pending: VecDeque::new(),
            observer,
            deadline: Instant::now(),
            deadline_due: None,
            read_ahead: None,
            backoff: Duration::ZERO,
            decide_failures: DecideFailures::default(),
            last_upcoming_log: None,
        }
    }

    pub(crate) fn emit(&self, event: SchedulerEvent<'_>) {
        if let Some(o) = &self.observer {
            o(&event);
        }
    }

    /// The loop: wait for a command or the deadline, then run a pass if one is due.
    pub(crate) fn run(mut self) {
        let running = self.shared.lock().running;
        log::info!(
            "🚀 Order scheduler started (instance {}, {}, {}, check interval {:?}, batch {})",
            self.shared.instance_id,
            self.shared.own.backend_name(),
            self.shared.moderator.describe(),
            self.shared.check_interval,
            self.shared.batch_size
        );
        if running {
            self.emit(SchedulerEvent::Started);
        }
        loop {
            match self.next_wakeup() {
                Wakeup::Command(Command::Shutdown) | Wakeup::Disconnected => break,
                Wakeup::Command(c) => self.handle(c),
                Wakeup::Deadline => {}
            }
            if !self.shared.lock().running {
                continue;
            }
            let now = Instant::now();
            if now >= self.deadline {
                self.tick();
            } else if self.read_ahead_at().is_some_and(|t| now >= t) {
                self.read_ahead();
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

    /// The one place the loop waits: a command queued during a pass, else the channel until
    /// the deadline (while running) or for [`STOPPED_SLEEP`] (while stopped).
    fn next_wakeup(&mut self) -> Wakeup {
        if let Some(c) = self.pending.pop_front() {
            return Wakeup::Command(c);
        }
        let timeout = if self.shared.lock().running {
            // Published before sleeping: creates due at or after the deadline need not wake
            // this thread, since the pass at the deadline reads the next due time anyway.
            let until = self.deadline.saturating_duration_since(Instant::now());
            let armed = chrono::Duration::from_std(until)
                .ok()
                .and_then(|d| Utc::now().checked_add_signed(d))
                .map_or(NOT_ARMED, |t| t.timestamp_millis());
            self.shared.armed_until_ms.store(armed, Ordering::SeqCst);
            let wake = self
                .read_ahead_at()
                .map_or(self.deadline, |t| t.min(self.deadline));
            wake.saturating_duration_since(Instant::now())
        } else {
            self.shared.armed_until_ms.store(STOPPED, Ordering::SeqCst);
            STOPPED_SLEEP
        };
        let woke = self.rx.recv_timeout(timeout);
        // Awake: from here until it sleeps again the thread may read the database, so every
        // due time must reach it.
        self.shared
            .armed_until_ms
            .store(NOT_ARMED, Ordering::SeqCst);
        match woke {
            Ok(c) => Wakeup::Command(c),
            Err(RecvTimeoutError::Timeout) => Wakeup::Deadline,
            Err(RecvTimeoutError::Disconnected) => Wakeup::Disconnected,
        }
    }

    /// Takes in commands that arrived during a pass; true if the pass should end now.
    pub(crate) fn interrupted(&mut self) -> bool {
        while let Ok(c) = self.rx.try_recv() {
            self.pending.push_back(c);
        }
        self.pending
            .iter()
            .any(|c| matches!(c, Command::Stop(_) | Command::Shutdown))
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
                self.set_deadline(Instant::now(), None);
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
                self.read_ahead = None;
                let _ = reply.send(());
            }
            Command::Wake => match self.shared.own.next_due() {
                Ok(Some(t)) => self.arm(instant_at(t), Some(t)),
                Ok(None) => {}
                Err(_) => self.arm(Instant::now(), None),
            },
            Command::DueAt(t) => self.arm(instant_at(t), Some(t)),
            Command::ForceRun(reply) => {
                let report = self.guarded_pass(true).map(Grouper::into_pass_report);
                let _ = reply.send(report);
                // Look again at once, since the forced pass may have changed what is due next.
                self.set_deadline(Instant::now(), None);
            }
            Command::Shutdown => {}
        }
    }

    /// Moves the deadline earlier, never later; `due` is the due instant it is for, if any.
    fn arm(&mut self, at: Instant, due: Option<DateTime<Utc>>) {
        if at < self.deadline {
            self.set_deadline(at, due);
        }
    }

    /// The one place the deadline changes. It is published as the status's `next_wake` while
    /// running (a stopped loop does not wake for it).
    fn set_deadline(&mut self, at: Instant, due: Option<DateTime<Utc>>) {
        self.deadline = at;
        self.deadline_due = due;
        let mut st = self.shared.lock();
        st.next_wake = st
            .running
            .then(|| Utc::now() + at.saturating_duration_since(Instant::now()));
    }

    /// When to read ahead the orders of the due instant the deadline is for: [`READ_AHEAD`]
    /// before it, unless they have been read already.
    fn read_ahead_at(&self) -> Option<Instant> {
        let due = self.deadline_due?;
        if self.read_ahead.as_ref().is_some_and(|r| r.due == due) {
            return None;
        }
        Some(
            self.deadline
                .checked_sub(READ_AHEAD)
                .unwrap_or(self.deadline),
        )
    }

    /// Reads the orders due at the deadline's instant. A failure only costs the head start:
    /// the pass claims them as usual.
    fn read_ahead(&mut self) {
        let Some(due) = self.deadline_due else {
            return;
        };
        let limit = self.shared.batch_size.saturating_mul(READ_AHEAD_BATCHES);
        let orders = self.shared.own.read_due_at(due, limit).unwrap_or_else(|e| {
            log::debug!("reading ahead the orders due at {due} failed: {e}");
            Vec::new()
        });
        let size = even_batch_size(orders.len(), self.shared.batch_size, self.shared.writers);
        self.read_ahead = Some(ReadAhead {
            due,
            batches: into_batches(orders, size),
        });
    }

    /// One scheduled check: a pass, then the next deadline.
    fn tick(&mut self) {
        let outcome = self.guarded_pass(false);
        let (next, due) = self.deadline_after(outcome.as_ref().err());
        self.set_deadline(next, due);
        if outcome.is_ok() {
            self.log_upcoming();
        }
    }

    /// When to look next after a scheduled pass: after a success, the earliest pending due
    /// time or the check interval, whichever is sooner; after a failure, a backoff (database
    /// unavailable: 100 ms doubling up to 5 s; anything else: 50 ms). With the deadline, the due
    /// instant it is for, if it is one.
    fn deadline_after(&mut self, failure: Option<&PassError>) -> (Instant, Option<DateTime<Utc>>) {
        let Some(error) = failure else {
            self.backoff = Duration::ZERO;
            {
                let mut st = self.shared.lock();
                st.consecutive_failures = 0;
                st.failing_since = None;
            }
            let interval = Instant::now() + self.shared.check_interval;
            return match self.shared.own.next_due() {
                Ok(Some(t)) if t <= Utc::now() => (Instant::now() + CONTENDED_RETRY, None),
                Ok(Some(t)) if instant_at(t) <= interval => (instant_at(t), Some(t)),
                Ok(Some(_) | None) => (interval, None),
                Err(_) => (Instant::now() + NEXT_DUE_UNKNOWN_RETRY, None),
            };
        };
        self.backoff = if error.is_unavailable() {
            (self.backoff * 2).clamp(MIN_UNAVAILABLE_BACKOFF, MAX_BACKOFF)
        } else {
            FAILURE_BACKOFF
        };
        (Instant::now() + self.backoff, None)
    }
}
