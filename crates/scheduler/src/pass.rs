//! One pass: claim and moderate due orders batch by batch until none is due, record what was
//! done (counters, lateness, logs, observers), and handle its failure (panics caught, errors
//! recorded, an order whose decision keeps failing parked).
//!
//! A pass never writes outside a claim transaction: a failure rolls back the batch in
//! progress, so the orders stay pending and a later pass retries them.

use crate::decide::decider;
use crate::error::PassError;
use crate::event::SchedulerEvent;
use crate::report::{Grouper, DUE_LIST_CAP};
use crate::shared::one_line;
use crate::worker::Worker;
use chrono::{DateTime, Utc};
use orders::{format_ms, Order};
use std::collections::HashMap;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use storage::{panic_message, ClaimResult, ClaimScope, Decided, DecidedBatch, StorageError, Store};

/// A decision closure, as storage's claims take it.
type Decide<'a> = dyn FnMut(&Order, DateTime<Utc>) -> Result<Decided, String> + 'a;

/// Failures of one order's decision before it is parked.
const DECIDE_ATTEMPTS: u32 = 3;
/// How often the "scheduled in the next 5 min" line may be logged.
const UPCOMING_LOG_EVERY: Duration = Duration::from_secs(300);
/// Most distinct due times logged one by one for a batch; more are logged as one range.
const DUE_TIMES_LOGGED: usize = 3;
/// A backlog of at least this many batches (and dense enough) is swept in id order
/// ([`ClaimScope::DueAfterId`]); a smaller one is taken in due order, whose extra pages
/// written per order cost less than the sweep's counts and walk.
const SWEEP_MIN_BATCHES: usize = 20;

/// A mutex's value, even if a writer panicked while holding it (the panic itself is passed on
/// to the pass's guard).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Failed decisions per order id, so that an order whose decision keeps failing is parked
/// instead of blocking its batch forever.
#[derive(Debug, Default)]
pub(crate) struct DecideFailures {
    counts: HashMap<String, u32>,
}

impl DecideFailures {
    /// Counts one failure; true (and forgets the order) once it reaches [`DECIDE_ATTEMPTS`].
    fn reached_limit(&mut self, order_id: &str) -> bool {
        let n = self.counts.entry(order_id.to_string()).or_insert(0);
        *n += 1;
        if *n >= DECIDE_ATTEMPTS {
            self.counts.remove(order_id);
            return true;
        }
        false
    }
}

impl Worker {
    /// The name this scheduler writes in the history's `actor` column.
    fn history_actor(&self) -> String {
        format!("scheduler:{}", self.shared.instance_id)
    }

    /// A pass with panics caught, failures counted and recorded in the status.
    pub(crate) fn guarded_pass(&mut self, forced: bool) -> Result<Grouper, PassError> {
        let error = match catch_unwind(AssertUnwindSafe(|| self.pass(forced))) {
            Ok(Ok(grouper)) => return Ok(grouper),
            Ok(Err(e)) => {
                self.shared.lock().failed += 1;
                PassError::Storage(e)
            }
            Err(payload) => {
                self.shared.lock().panics += 1;
                PassError::Panicked {
                    message: panic_message(&*payload),
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
            let now = Utc::now();
            st.last_error_at = Some(now);
            if st.consecutive_failures == 0 {
                st.failing_since = Some(now);
            }
            st.consecutive_failures += 1;
        }
        self.emit(SchedulerEvent::Failed { error: &text });
        if let PassError::Storage(StorageError::Decide { order_id, reason }) = &error {
            self.note_decide_failure(order_id, reason);
        }
        Err(error)
    }

    /// Counts failures of one order's decision; parks the order once they reach the limit so
    /// that it stops blocking its batch.
    fn note_decide_failure(&mut self, order_id: &str, reason: &str) {
        if !self.decide_failures.reached_limit(order_id) {
            return;
        }
        let why = format!("decision failed {DECIDE_ATTEMPTS} times: {reason}");
        if let Ok(true) = self.shared.own.park_order(order_id, &why) {
            self.record_parked(order_id, &why);
        }
    }

    fn record_parked(&self, id: &str, reason: &str) {
        log::error!(
            "🅿️ Order {id} set aside (instance {}): {reason}",
            self.shared.instance_id
        );
        self.shared.lock().note_parked(id, reason);
        self.emit(SchedulerEvent::Parked { id, reason });
    }

    /// Claims and moderates due orders batch by batch until none is due; between batches it
    /// takes in commands, so `stop` takes effect after the batch in progress.
    fn pass(&mut self, forced: bool) -> Result<Grouper, StorageError> {
        let started = Instant::now();
        self.shared.lock().last_check = Some(Utc::now());
        let actor = self.history_actor();
        let batch_size = self.shared.batch_size;
        let mut decide = decider(self.shared.moderator.clone(), self.shared.seed);
        // Scheduled passes only count (a backlog may span millions of due times); forced
        // passes report by due time, up to a cap.
        let mut total = Grouper::with_due_times(if forced { DUE_LIST_CAP } else { 0 });
        if self.apply_read_ahead(&actor, &mut decide, &mut total, forced)? {
            return Ok(self.finish_pass(started, total));
        }
        // Each batch starts where the last one ended (its latest due time, or in a sweep its
        // greatest id); rows skipped before it (held by another instance, or inserted
        // meanwhile) are left to the due-order claims after a sweep, or to the next pass, which
        // starts right away because they are due.
        let mut scope = ClaimScope::Due;
        let mut sweep_considered = false;
        loop {
            let result =
                self.shared
                    .own
                    .claim_and_apply(scope.clone(), batch_size, &actor, &mut decide)?;
            let full = result.claimed() >= batch_size;
            self.record_result(&result, &mut total, forced, false);
            if self.interrupted() {
                break;
            }
            if !full {
                if scope.is_sweep() {
                    // The sweep reached the last id: the orders it passed over (smaller ids,
                    // held elsewhere, due since) are taken in due order.
                    scope = ClaimScope::Due;
                    continue;
                }
                break;
            }
            // A full batch: a backlog. If it is large and dense, the rest is swept in id
            // order, once per pass.
            let next = if sweep_considered {
                None
            } else {
                sweep_considered = true;
                let min_due = SWEEP_MIN_BATCHES.saturating_mul(batch_size);
                // Only a choice of order: if the counts fail, the pass goes on in due order,
                // and a failing database shows in the next claim.
                match self.shared.own.backlog_worth_sweeping(min_due) {
                    Ok(true) => ClaimScope::sweep_from(&result),
                    Ok(false) => None,
                    Err(e) => {
                        log::warn!(
                            "backlog size unknown, taking it in due order (instance {}): {}",
                            self.shared.instance_id,
                            one_line(&e.to_string())
                        );
                        None
                    }
                }
            };
            scope = match next {
                Some(sweep) => {
                    self.shared.lock().sweeps += 1;
                    sweep
                }
                None => scope.after(&result),
            };
            // On Postgres the rest is claimed by several transactions at once.
            if self.shared.writers > 1 {
                let sweeping = scope.is_sweep();
                if self.claim_in_parallel(scope, &actor, &mut total, forced)? || !sweeping {
                    break;
                }
                scope = ClaimScope::Due;
            }
        }
        Ok(self.finish_pass(started, total))
    }

    /// Claims on the configured writers' threads ([`crate::SchedulerBuilder::pg_writers`])
    /// until none finds a full batch (or a command interrupts the pass); true if interrupted.
    /// Their claims take disjoint rows (`FOR UPDATE SKIP LOCKED`). In due order each writer
    /// continues from its own last batch, as the sequential loop does; in a sweep they share
    /// one cursor, the greatest id any of them took, so that none walks again the rows another
    /// has just written.
    fn claim_in_parallel(
        &mut self,
        from: ClaimScope,
        actor: &str,
        total: &mut Grouper,
        forced: bool,
    ) -> Result<bool, StorageError> {
        let batch_size = self.shared.batch_size;
        let cursor = Mutex::new(from.clone());
        self.in_parallel(total, forced, false, |store, decide, emit| {
            let mut scope = from.clone();
            loop {
                if scope.is_sweep() {
                    scope = lock(&cursor).clone();
                }
                let result =
                    store.claim_and_apply(scope.clone(), batch_size, actor, &mut *decide)?;
                scope = scope.after(&result);
                if let (ClaimScope::DueAfterId(mine), ClaimScope::DueAfterId(furthest)) =
                    (&scope, &mut *lock(&cursor))
                {
                    if mine > furthest {
                        furthest.clone_from(mine);
                    }
                }
                let full = result.claimed() >= batch_size;
                if !emit(result) || !full {
                    return Ok(());
                }
            }
        })
    }

    /// Writes orders read ahead, a batch per transaction, with two threads: a deciding thread
    /// decides each batch ([`DecidedBatch::decide`], which fixes its moderation time) while
    /// this thread writes the batch before it ([`Store::write_decided`], which writes only
    /// rows still claimable and due) and records it. SQLite only: there one transaction
    /// writes at a time, and at a due instant of several batches the decisions of the next
    /// batch were otherwise made on the writer's core between two writes while the second
    /// core idled. The channel between them holds one batch, so the deciding thread is at
    /// most a batch ahead. Returns whether a command interrupted the pass; a failed write
    /// stops the deciding thread at its next send.
    fn write_read_ahead_pipelined(
        &mut self,
        batches: Vec<Vec<Order>>,
        actor: &str,
        total: &mut Grouper,
        forced: bool,
    ) -> Result<bool, StorageError> {
        let shared = Arc::clone(&self.shared);
        let stop = AtomicBool::new(false);
        let (tx, rx) = mpsc::sync_channel::<DecidedBatch>(1);
        std::thread::scope(|s| {
            let (shared, stop) = (&shared, &stop);
            let decider_thread = s.spawn(move || -> Result<(), StorageError> {
                let mut decide = decider(shared.moderator.clone(), shared.seed);
                for orders in batches {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let batch = DecidedBatch::decide(orders, &mut decide)?;
                    if !batch.is_empty() && tx.send(batch).is_err() {
                        break;
                    }
                }
                Ok(())
            });
            let mut outcome = Ok(false);
            // Ends when the deciding thread is done and has dropped its sender.
            for batch in rx.iter() {
                match self.shared.own.write_decided(batch, actor) {
                    Ok(result) => {
                        self.record_result(&result, total, forced, true);
                        if self.interrupted() {
                            outcome = Ok(true);
                            break;
                        }
                    }
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
            }
            // A deciding thread blocked on a full channel wakes to a closed one and stops.
            stop.store(true, Ordering::Relaxed);
            drop(rx);
            let decided = decider_thread
                .join()
                .unwrap_or_else(|panic| resume_unwind(panic));
            // A failed write is the pass's error; else the deciding thread's, if it failed.
            outcome.and_then(|interrupted| decided.map(|()| interrupted))
        })
    }

    /// Moderates the orders read ahead for an instant that is now due, a batch per
    /// transaction, before any claim; true if a command interrupted the pass. Orders read
    /// ahead for an instant still to come are kept for a later pass. On Postgres several
    /// batches are written at once ([`crate::SchedulerBuilder::pg_writers`]).
    fn apply_read_ahead(
        &mut self,
        actor: &str,
        decide: &mut impl FnMut(&Order, DateTime<Utc>) -> Result<Decided, String>,
        total: &mut Grouper,
        forced: bool,
    ) -> Result<bool, StorageError> {
        let Some(ahead) = self.read_ahead.take() else {
            return Ok(false);
        };
        if ahead.due > Utc::now() {
            self.read_ahead = Some(ahead);
            return Ok(false);
        }
        let batches = ahead.batches;
        if self.shared.writers > 1 && batches.len() > 1 {
            let queue = Mutex::new(batches.into_iter());
            let next = || lock(&queue).next();
            return self.in_parallel(total, forced, true, |store, decide, emit| {
                while let Some(batch) = next() {
                    if !emit(store.apply_prepared(batch, actor, &mut *decide)?) {
                        break;
                    }
                }
                Ok(())
            });
        }
        // On SQLite the next batch is decided while this one is written.
        if batches.len() > 1 && !self.shared.own.is_postgres() {
            return self.write_read_ahead_pipelined(batches, actor, total, forced);
        }
        for batch in batches {
            let result = self.shared.own.apply_prepared(batch, actor, &mut *decide)?;
            self.record_result(&result, total, forced, true);
            if self.interrupted() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Runs `work` on the configured writers' threads ([`crate::SchedulerBuilder::pg_writers`]),
    /// each with its own connection (from the scheduler's pool) and its own decider, and
    /// records each batch they commit as it arrives (`read_ahead`: they are orders read ahead). `work` hands every result to its
    /// `emit`, which says whether to go on: false once a command interrupted the pass or
    /// another writer failed. Returns whether the pass was interrupted, or the first failure
    /// once all writers stopped (a writer stops at its failure; what it did not write stays
    /// pending). A writer's panic is passed on to the pass's guard.
    fn in_parallel<W>(
        &mut self,
        total: &mut Grouper,
        forced: bool,
        read_ahead: bool,
        work: W,
    ) -> Result<bool, StorageError>
    where
        W: Fn(&Store, &mut Decide<'_>, &dyn Fn(ClaimResult) -> bool) -> Result<(), StorageError>
            + Sync,
    {
        let shared = Arc::clone(&self.shared);
        let stop = AtomicBool::new(false);
        let (tx, rx) = mpsc::channel::<ClaimResult>();
        let mut interrupted = false;
        let failure = std::thread::scope(|s| {
            let writers: Vec<_> = (0..shared.writers)
                .map(|_| {
                    let (tx, shared, stop, work) = (tx.clone(), &shared, &stop, &work);
                    s.spawn(move || {
                        let mut decide = decider(shared.moderator.clone(), shared.seed);
                        let emit =
                            |r: ClaimResult| tx.send(r).is_ok() && !stop.load(Ordering::Relaxed);
                        let outcome = work(&shared.own, &mut decide, &emit);
                        if outcome.is_err() {
                            stop.store(true, Ordering::Relaxed);
                        }
                        outcome
                    })
                })
                .collect();
            // The loop below ends when every writer has dropped its sender.
            drop(tx);
            for result in rx {
                self.record_result(&result, total, forced, read_ahead);
                if !interrupted && self.interrupted() {
                    interrupted = true;
                    stop.store(true, Ordering::Relaxed);
                }
            }
            writers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|panic| resume_unwind(panic)))
                .find_map(Result::err)
        });
        match failure {
            Some(e) => Err(e),
            None => Ok(interrupted),
        }
    }

    /// Counts and reports one committed batch (`read_ahead`: of orders read ahead).
    fn record_result(
        &self,
        result: &ClaimResult,
        total: &mut Grouper,
        forced: bool,
        read_ahead: bool,
    ) {
        for (id, reason) in &result.parked {
            self.record_parked(id, reason);
        }
        if result.moderated.is_empty() {
            return;
        }
        if read_ahead {
            self.shared.lock().read_ahead += result.moderated.len() as u64;
        }
        self.record_batch(&result.moderated, result.at.unwrap_or_else(Utc::now));
        total.add(&result.moderated, forced);
    }

    /// Counts a finished pass and reports it.
    fn finish_pass(&mut self, started: Instant, total: Grouper) -> Grouper {
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
        total
    }

    /// Counts, lateness, logs and observers for one committed batch.
    fn record_batch(&self, moderated: &[Order], at: DateTime<Utc>) {
        let mut batch = Grouper::with_due_times(moderated.len());
        batch.add(moderated, false);
        {
            let mut st = self.shared.lock();
            st.processed += batch.processed as u64;
            st.approved += batch.approved as u64;
            st.rejected += batch.rejected as u64;
            for o in moderated {
                st.lateness.push((at - o.hour_start_utc).num_milliseconds());
            }
        }
        log_batch(batch, &self.shared.instance_id, at);
        self.emit(SchedulerEvent::Moderated {
            orders: moderated,
            at,
        });
    }

    /// The original system's "⏰ N orders scheduled for moderation in next 5 min" line, at most
    /// every five minutes.
    pub(crate) fn log_upcoming(&mut self) {
        if self
            .last_upcoming_log
            .is_some_and(|t| t.elapsed() < UPCOMING_LOG_EVERY)
        {
            return;
        }
        // Set before looking, whatever is found: the look itself is what is rate-limited.
        self.last_upcoming_log = Some(Instant::now());
        let now = Utc::now();
        let Ok(counts) = self
            .shared
            .own
            .due_counts(now, chrono::Duration::minutes(5))
        else {
            return;
        };
        if counts.upcoming == 0 {
            return;
        }
        let times = self
            .shared
            .own
            .upcoming_due_times(now, now + chrono::Duration::minutes(5), 5)
            .unwrap_or_default();
        let shown: Vec<String> = times.iter().map(format_ms).collect();
        log::info!(
            "⏰ {} orders scheduled for moderation in next 5 min: {shown:?}",
            counts.upcoming
        );
    }
}

/// The size of the batches `orders` orders read ahead are written in: at most `batch_size`,
/// and as many batches as that needs, rounded up to a multiple of `writers`, all of one size
/// but the last. The last of the orders is written when the busiest writer is done: 5,000
/// orders in batches of 1,000 gave one of two writers three batches and the other two.
pub(crate) fn even_batch_size(orders: usize, batch_size: usize, writers: usize) -> usize {
    let (batch_size, writers) = (batch_size.max(1), writers.max(1));
    let batches = orders.div_ceil(batch_size).div_ceil(writers) * writers;
    orders.div_ceil(batches.max(1)).max(1)
}

/// `items` in batches of `size` (the last may be smaller), in order, each item moved once.
pub(crate) fn into_batches<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let size = size.max(1);
    let mut batches = Vec::with_capacity(items.len().div_ceil(size));
    let mut rest = items.into_iter();
    loop {
        let batch: Vec<T> = rest.by_ref().take(size).collect();
        if batch.is_empty() {
            return batches;
        }
        batches.push(batch);
    }
}

/// Logs a committed batch: the original system's two lines per due time when it spans a few,
/// else one line with the range, so a catch-up over many due times does not flood the log.
/// Each line ends with the lateness (moderation time minus due time; for a range of due times,
/// that of the earliest, the most late), which JSON logs carry as `lateness_ms`.
fn log_batch(batch: Grouper, instance: &str, at: DateTime<Utc>) {
    if batch.due_time_count() <= DUE_TIMES_LOGGED {
        for r in batch.into_reports() {
            let due = format_ms(&r.hour_start_utc);
            log::info!(
                "🤖 Auto-moderating {} orders for {due} (instance {instance})",
                r.total_orders
            );
            log::info!(
                "✅ Moderated {} orders for {due}: {} approved, {} rejected (lateness {} ms)",
                r.total_orders,
                r.approved,
                r.rejected,
                (at - r.hour_start_utc).num_milliseconds()
            );
        }
        return;
    }
    let (approved, rejected, due_times) = (batch.approved, batch.rejected, batch.due_time_count());
    let reports = batch.into_reports();
    let first = reports
        .first()
        .map(|r| format_ms(&r.hour_start_utc))
        .unwrap_or_default();
    let lateness_ms = reports
        .first()
        .map(|r| (at - r.hour_start_utc).num_milliseconds())
        .unwrap_or(0);
    let last = reports
        .last()
        .map(|r| format_ms(&r.hour_start_utc))
        .unwrap_or_default();
    log::info!(
        "✅ Moderated {} orders over {due_times} due times ({first} .. {last}): {approved} approved, {rejected} rejected (instance {instance}, lateness {lateness_ms} ms at most)",
        approved + rejected
    );
}

#[cfg(test)]
mod tests {
    use super::{even_batch_size, into_batches};

    #[test]
    fn batches_keep_every_item_in_order() {
        let cut = |n: usize, size: usize| into_batches((0..n).collect::<Vec<usize>>(), size);
        assert_eq!(cut(5, 2), vec![vec![0, 1], vec![2, 3], vec![4]]);
        assert_eq!(cut(4, 2), vec![vec![0, 1], vec![2, 3]]);
        assert_eq!(cut(2, 0), vec![vec![0], vec![1]]);
        assert!(cut(0, 3).is_empty());
        let big = cut(5_000, 834);
        assert_eq!(big.len(), 6);
        assert!(big[..5].iter().all(|b| b.len() == 834));
        assert_eq!(big.concat(), (0..5_000).collect::<Vec<usize>>());
    }

    #[test]
    fn read_ahead_batches_are_even_across_writers() {
        // (orders, batch size, writers) -> batch size used.
        let cases = [
            ((5_000, 1_000, 2), 834),
            ((5_000, 1_000, 1), 1_000),
            ((1_500, 1_000, 2), 750),
            ((28, 10, 3), 10),
            ((30, 10, 2), 8),
            ((1, 1_000, 2), 1),
            ((0, 1_000, 2), 1),
        ];
        for ((orders, batch_size, writers), want) in cases {
            let got = even_batch_size(orders, batch_size, writers);
            assert_eq!(
                got, want,
                "{orders} orders, batches of {batch_size}, {writers} writers"
            );
            assert!(got <= batch_size.max(1));
            let batches = orders.div_ceil(got);
            assert!(
                orders == 0 || batches % writers == 0 || batches < writers,
                "{batches} batches for {writers} writers"
            );
        }
    }
}
