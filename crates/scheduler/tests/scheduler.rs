//! The scheduler daemon on real databases: timing, control, faults, many instances.
//!
//! Tests wait on the scheduler's own signals (its [`SchedulerEvent`]s, forwarded by an
//! observer) rather than polling the database against the clock; the time limits they pass
//! only bound how long a broken scheduler is waited for. Sleeps remain where a test shows
//! that nothing happens (a stopped scheduler leaves due orders alone).

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use diesel::connection::SimpleConnection;
use orders::{format_ms, NewOrder, NewOrderFields, OrderStatus};
use scheduler::{Observer, Scheduler, SchedulerEvent};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::testing::TestDb;
use storage::Store;

fn new_order(due: DateTime<Utc>) -> NewOrder {
    NewOrder::from_fields(&NewOrderFields {
        side: Some("BUY"),
        qty_mwh: Some("1"),
        limit_price: Some("40"),
        hour_start_utc: Some(&format_ms(&due)),
        ..Default::default()
    })
    .expect("valid order")
}

/// A [`SchedulerEvent`] copied off the scheduler thread.
#[derive(Debug)]
enum Signal {
    /// Ids of a committed batch.
    Moderated(Vec<String>),
    /// A pass ended.
    PassFinished,
    /// This order was parked.
    Parked(String),
    /// A pass failed with this error text.
    Failed(String),
    /// Started or stopped.
    Other,
}

impl From<&SchedulerEvent<'_>> for Signal {
    fn from(e: &SchedulerEvent<'_>) -> Self {
        match e {
            SchedulerEvent::Moderated { orders, .. } => {
                Signal::Moderated(orders.iter().map(|o| o.id.clone()).collect())
            }
            SchedulerEvent::PassFinished { .. } => Signal::PassFinished,
            SchedulerEvent::Parked { id, .. } => Signal::Parked(id.to_string()),
            SchedulerEvent::Failed { error } => Signal::Failed(error.to_string()),
            SchedulerEvent::Started | SchedulerEvent::Stopped => Signal::Other,
        }
    }
}

/// The receiving end of one or more schedulers' signals.
struct Signals(Receiver<Signal>);

/// An observer forwarding every event to the returned [`Signals`].
fn signals() -> (Observer, Signals) {
    let (tx, rx) = mpsc::channel();
    let observer: Observer = Arc::new(move |e: &SchedulerEvent<'_>| {
        let _ = tx.send(Signal::from(e));
    });
    (observer, Signals(rx))
}

impl Signals {
    /// Receives signals until `want` accepts one; false if none did within `limit` (a stuck
    /// or dead scheduler).
    fn wait_for(&self, limit: Duration, mut want: impl FnMut(&Signal) -> bool) -> bool {
        let give_up = Instant::now() + limit;
        loop {
            match self
                .0
                .recv_timeout(give_up.saturating_duration_since(Instant::now()))
            {
                Ok(s) if want(&s) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }

    /// Waits until every id in `ids` was reported moderated.
    fn wait_moderated(&self, limit: Duration, ids: &[&str]) -> bool {
        let mut left: HashSet<&str> = ids.iter().copied().collect();
        left.is_empty()
            || self.wait_for(limit, |s| {
                if let Signal::Moderated(done) = s {
                    for id in done {
                        left.remove(id.as_str());
                    }
                }
                left.is_empty()
            })
    }

    /// Waits until `n` orders in all were reported moderated.
    fn wait_moderated_count(&self, limit: Duration, n: usize) -> bool {
        let mut seen = 0;
        n == 0
            || self.wait_for(limit, |s| {
                if let Signal::Moderated(done) = s {
                    seen += done.len();
                }
                seen >= n
            })
    }

    /// Waits for the end of the next pass.
    fn wait_pass(&self, limit: Duration) -> bool {
        self.wait_for(limit, |s| matches!(s, Signal::PassFinished))
    }
}

fn moderation_lateness_ms(store: &Store, id: &str) -> i64 {
    let order = store.get_order(id).expect("order");
    let event = store
        .order_events(id)
        .expect("events")
        .into_iter()
        .find(|e| e.from_status == Some(OrderStatus::Pending))
        .expect("a moderation event");
    (event.at - order.hour_start_utc).num_milliseconds()
}

/// Stores an order due at `due`; its id.
fn insert_due(store: &Store, due: DateTime<Utc>) -> String {
    store
        .insert_order(&new_order(due), None, "test")
        .expect("insert")
        .order
        .id
}

/// A scheduler with a 30 s check interval, after its first pass: it sleeps towards its next
/// deadline, so only a due time it is told of (or reads) moderates an order sooner.
fn sleeping_scheduler(store: &Store) -> (Scheduler, Signals) {
    let (observer, signals) = signals();
    let sched = Scheduler::builder(store.clone())
        .check_interval(Duration::from_secs(30))
        .observer(observer)
        .spawn()
        .expect("spawn");
    assert!(signals.wait_pass(Duration::from_secs(5)));
    (sched, signals)
}

/// Every order of `ids` was moderated less than a second after its due time.
fn assert_on_time(store: &Store, ids: &[&str]) {
    for id in ids {
        let lateness = moderation_lateness_ms(store, id);
        assert!(
            (0..1000).contains(&lateness),
            "lateness {lateness} ms with a 30 s interval"
        );
    }
}

fn order_due_in_a_second_is_moderated_on_time(db: &TestDb) {
    let store = db.store();
    let due = Utc::now() + ChronoDuration::milliseconds(1000);
    let id = store
        .insert_order(&new_order(due), None, "test")
        .expect("insert")
        .order
        .id;
    let (sched, signals) = sleeping_scheduler(&store);
    assert!(
        signals.wait_moderated(Duration::from_secs(5), &[&id]),
        "moderated without any force-run"
    );
    assert_ne!(
        store.get_order(&id).expect("get").status,
        OrderStatus::Pending
    );
    let lateness = moderation_lateness_ms(&store, &id);
    assert!((0..1000).contains(&lateness), "lateness {lateness} ms");
    let status = sched.status();
    assert_eq!(status.processed, 1);
    assert_eq!(status.lateness_ms.last, Some(lateness));
    assert!(status.last_check.is_some());
}

fn stopped_scheduler_leaves_orders_until_forced_or_started(db: &TestDb) {
    let store = db.store();
    let (observer, signals) = signals();
    let sched = Scheduler::builder(store.clone())
        .check_interval(Duration::from_millis(50))
        .observer(observer)
        .spawn()
        .expect("spawn");
    sched.stop().expect("stop");
    let st = sched.status();
    assert!(!st.running && st.thread_alive);
    let h1 = orders::truncate_ms(Utc::now() - ChronoDuration::minutes(2));
    let h2 = h1 + ChronoDuration::seconds(30);
    for due in [h1, h1, h2] {
        store
            .insert_order(&new_order(due), None, "test")
            .expect("insert");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        store
            .due_summary(Utc::now(), ChronoDuration::minutes(10))
            .expect("summary")
            .pending_due_now,
        3
    );
    let report = sched.force_run().expect("force run");
    assert_eq!(report.processed, 3);
    let groups: Vec<(DateTime<Utc>, usize)> = report
        .results
        .iter()
        .map(|r| (r.hour_start_utc, r.orders_count))
        .collect();
    assert_eq!(groups, vec![(h1, 2), (h2, 1)]);
    assert_eq!(report.results[0].moderation_result.orders.len(), 2);
    let r = &report.results[0].moderation_result;
    assert_eq!(r.approved + r.rejected, r.total_orders);
    // Fall due while stopped, then start: drained at once.
    let later = store
        .insert_order(
            &new_order(Utc::now() + ChronoDuration::milliseconds(200)),
            None,
            "test",
        )
        .expect("insert");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        store.get_order(&later.order.id).expect("get").status,
        OrderStatus::Pending
    );
    sched.start().expect("start");
    assert!(sched.status().running);
    assert!(signals.wait_moderated(Duration::from_secs(3), &[&later.order.id]));
    assert_ne!(
        store.get_order(&later.order.id).expect("get").status,
        OrderStatus::Pending
    );
}

fn earlier_insert_rearms_the_timer(db: &TestDb) {
    let store = db.store();
    // A far deadline: the only due order is an hour away and the interval is 30 s.
    insert_due(&store, Utc::now() + ChronoDuration::hours(1));
    let (sched, signals) = sleeping_scheduler(&store);
    let due = Utc::now() + ChronoDuration::milliseconds(700);
    let id = insert_due(&store, due);
    sched.notify_due(due);
    // And one through the query-based wake.
    let id2 = insert_due(&store, Utc::now() + ChronoDuration::milliseconds(900));
    sched.wake();
    assert!(signals.wait_moderated(Duration::from_secs(3), &[&id, &id2]));
    assert_on_time(&store, &[&id, &id2]);
}

/// An order due after the deadline the scheduler sleeps towards does not wake it
/// (`notify_due` returns at once), and is still moderated on time: the pass at the deadline
/// reads the next due time from the database, which by then holds it.
fn an_order_due_after_the_deadline_is_moderated_on_time(db: &TestDb) {
    let store = db.store();
    let (sched, signals) = sleeping_scheduler(&store);
    let first_due = Utc::now() + ChronoDuration::milliseconds(500);
    let first = insert_due(&store, first_due);
    sched.notify_due(first_due);
    // The scheduler now sleeps towards the first order's instant.
    std::thread::sleep(Duration::from_millis(100));
    let later: Vec<String> = [500, 900]
        .into_iter()
        .map(|ms| {
            let due = first_due + ChronoDuration::milliseconds(ms);
            let id = insert_due(&store, due);
            sched.notify_due(due);
            id
        })
        .collect();
    let all = [first.as_str(), later[0].as_str(), later[1].as_str()];
    assert!(signals.wait_moderated(Duration::from_secs(5), &all));
    assert_on_time(&store, &all);
}

fn three_schedulers_moderate_each_order_once(db: &TestDb) {
    let store = db.store();
    let due = Utc::now() + ChronoDuration::milliseconds(500);
    let batch: Vec<NewOrder> = (0..5_000).map(|_| new_order(due)).collect();
    store.insert_orders(&batch, "test").expect("bulk insert");
    let (observer, signals) = signals();
    let schedulers: Vec<Scheduler> = (0..3)
        .map(|i| {
            Scheduler::builder(db.store())
                .instance_id(format!("s{i}"))
                .batch_size(200)
                .check_interval(Duration::from_millis(200))
                .observer(Arc::clone(&observer))
                .spawn()
                .expect("spawn")
        })
        .collect();
    assert!(signals.wait_moderated_count(Duration::from_secs(30), 5_000));
    let left = store
        .due_summary(Utc::now(), ChronoDuration::minutes(1))
        .expect("summary");
    assert_eq!((left.pending_due_now, left.next_due), (0, None));
    let processed: u64 = schedulers.iter().map(|s| s.status().processed).sum();
    assert_eq!(processed, 5_000);
    assert_eq!(
        store.moderation_event_multiplicity().expect("mult"),
        (0, 5_000, 0)
    );
}

fn undecodable_row_is_parked_and_reported(db: &TestDb) {
    let store = db.store();
    let due = Utc::now() - ChronoDuration::seconds(1);
    let ids = store
        .insert_orders(&(0..10).map(|_| new_order(due)).collect::<Vec<_>>(), "test")
        .expect("insert");
    store
        .conn()
        .expect("conn")
        .batch_execute(&format!(
            "UPDATE orders SET status = 'PENDING', location_type = 'MOON' WHERE id = '{}'",
            ids[3]
        ))
        .expect("corrupt");
    let (observer, signals) = signals();
    let sched = Scheduler::builder(store.clone())
        .batch_size(4)
        .observer(observer)
        .spawn()
        .expect("spawn");
    let mut parked = false;
    let mut moderated = 0;
    assert!(signals.wait_for(Duration::from_secs(5), |s| {
        match s {
            Signal::Parked(id) => parked |= *id == ids[3],
            Signal::Moderated(done) => moderated += done.len(),
            _ => {}
        }
        parked && moderated == 9
    }));
    assert_eq!(sched.status().processed, 9);
    let st = sched.status();
    assert_eq!(st.parked, Some(1));
    assert_eq!(st.parked_recent.len(), 1);
    assert_eq!(st.parked_recent[0].id, ids[3]);
    assert!(st.parked_recent[0].reason.contains("MOON"));
    assert_eq!(
        st.pending_due_now,
        Some(0),
        "the parked order is not counted as due"
    );
}

fn same_seed_gives_identical_outcomes(db: &TestDb) {
    let other = TestDb::sqlite();
    let due = orders::truncate_ms(Utc::now() - ChronoDuration::seconds(1));
    let news: Vec<NewOrder> = (0..300).map(|_| new_order(due)).collect();
    let ids: Vec<String> = (0..300).map(|i| format!("fixed-{i:04}")).collect();
    let pairs: Vec<(&str, &NewOrder)> = ids.iter().map(String::as_str).zip(&news).collect();
    let mut outcomes = Vec::new();
    for (db, batch) in [(db, 7), (&other, 100)] {
        let store = db.store();
        store
            .insert_orders_with_ids(&pairs, "test")
            .expect("insert");
        let sched = Scheduler::builder(store.clone())
            .batch_size(batch)
            .moderation_seed(Some(2024))
            .autostart(false)
            .spawn()
            .expect("spawn");
        assert_eq!(sched.force_run().expect("force").processed, 300);
        let mut rows: Vec<_> = ids
            .iter()
            .map(|id| {
                let o = store.get_order(id).expect("get");
                (o.id, o.status, o.approval_rt_lmp, o.reject_reason)
            })
            .collect();
        rows.sort();
        outcomes.push(rows);
    }
    assert_eq!(
        outcomes[0], outcomes[1],
        "same seed, same orders, different batch sizes and backends"
    );
    let approved = outcomes[0]
        .iter()
        .filter(|r| r.1 == OrderStatus::Approved)
        .count();
    assert!((150..270).contains(&approved), "{approved} of 300 approved");
}

fn dropping_the_handle_joins_quickly(db: &TestDb) {
    let store = db.store();
    let (observer, signals) = signals();
    let sched = Scheduler::builder(store)
        .check_interval(Duration::from_secs(3600))
        .observer(observer)
        .spawn()
        .expect("spawn");
    // Drop it while it sleeps, not during its first pass.
    assert!(signals.wait_pass(Duration::from_secs(5)));
    let start = Instant::now();
    drop(sched);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "joined in {:?}",
        start.elapsed()
    );
}

fn panics_inside_a_pass_are_caught(db: &TestDb) {
    let store = db.store();
    let exploded = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&exploded);
    let (forward, signals) = signals();
    let sched = Scheduler::builder(store.clone())
        .check_interval(Duration::from_millis(50))
        .observer(Arc::new(move |e: &SchedulerEvent<'_>| {
            forward(e);
            if matches!(e, SchedulerEvent::Moderated { .. }) && !flag.swap(true, Ordering::SeqCst) {
                panic!("observer bug");
            }
        }))
        .spawn()
        .expect("spawn");
    // The first batch commits, then its observer panics and the pass fails.
    let first = store
        .insert_order(&new_order(Utc::now()), None, "test")
        .expect("insert");
    sched.wake();
    assert!(signals.wait_for(
        Duration::from_secs(5),
        |s| matches!(s, Signal::Failed(e) if e.contains("observer bug"))
    ));
    // The thread survived: it moderates the next order.
    let second = store
        .insert_order(&new_order(Utc::now()), None, "test")
        .expect("insert");
    sched.wake();
    assert!(signals.wait_moderated(Duration::from_secs(5), &[&second.order.id]));
    assert_ne!(
        store.get_order(&first.order.id).expect("get").status,
        OrderStatus::Pending
    );
    let st = sched.status();
    assert_eq!(st.pending_due_now, Some(0));
    assert_eq!(st.panics, 1);
    assert!(st.thread_alive && st.running);
    assert!(st
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("observer bug"));
    assert_eq!(
        store.moderation_event_multiplicity().expect("mult"),
        (0, 2, 0)
    );
}

/// Another process's insert (here: another pool on the same database, which is all the
/// scheduler can tell apart) re-arms the timer, with the check interval at 30 s: the watcher,
/// not the interval, brings the order in on time.
fn order_inserted_by_another_process_is_moderated_on_time(db: &TestDb) {
    let store = db.store();
    // After its first pass (nothing pending) it sleeps for the whole interval.
    let (_sched, signals) = sleeping_scheduler(&store);
    let other = Store::open(&db.url, &storage::PoolConfig::default()).expect("other store");
    let due = Utc::now() + ChronoDuration::milliseconds(1000);
    let id = other
        .insert_order(&new_order(due), None, "cli")
        .expect("insert")
        .order
        .id;
    assert!(signals.wait_moderated(Duration::from_secs(5), &[&id]));
    let lateness = moderation_lateness_ms(&store, &id);
    assert!(
        (0..200).contains(&lateness),
        "moderated {lateness} ms after due with a 30 s check interval"
    );
}

/// Status calls are served from the embedder's pool and a shared, at most one second old
/// read of the counts: a storm of them neither fails nor delays the worker.
fn status_storm_does_not_delay_moderation(db: &TestDb) {
    let store = Store::open(
        &db.url,
        &storage::PoolConfig {
            max_size: 2,
            connection_timeout: Duration::from_secs(5),
            ..Default::default()
        },
    )
    .expect("small pool");
    let (observer, signals) = signals();
    let sched = Arc::new(
        Scheduler::builder(store.clone())
            .check_interval(Duration::from_secs(30))
            .observer(observer)
            .spawn()
            .expect("spawn"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let pollers: Vec<_> = (0..8)
        .map(|_| {
            let (sched, stop) = (Arc::clone(&sched), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut calls = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let status = sched.status();
                    assert!(status.pending_due_now.is_some(), "{:?}", status.last_error);
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    let due = Utc::now() + ChronoDuration::milliseconds(800);
    let id = store
        .insert_order(&new_order(due), None, "test")
        .expect("insert")
        .order
        .id;
    assert!(signals.wait_moderated(Duration::from_secs(5), &[&id]));
    stop.store(true, Ordering::Relaxed);
    let calls: u32 = pollers.into_iter().map(|p| p.join().expect("poller")).sum();
    assert!(calls > 8, "the pollers ran ({calls} status calls)");
    let lateness = moderation_lateness_ms(&store, &id);
    assert!((0..200).contains(&lateness), "lateness {lateness} ms");
    let status = sched.status();
    let age = Utc::now() - status.counts_computed_at.expect("counts read");
    assert!(
        age <= ChronoDuration::milliseconds(1500),
        "counts {age} old"
    );
}

/// Orders of an instant are read a second before it and written at it, exactly once: those
/// changed since the read are left alone, and one created after the read is claimed in the
/// same pass.
fn orders_read_ahead_are_moderated_once_at_their_instant(db: &TestDb) {
    let store = db.store();
    let due = orders::truncate_ms(Utc::now() + ChronoDuration::milliseconds(3000));
    let ids = store
        .insert_orders(&(0..30).map(|_| new_order(due)).collect::<Vec<_>>(), "test")
        .expect("insert");
    let (observer, signals) = signals();
    // Batches of 10: on Postgres the three batches read ahead are written in parallel.
    let sched = Scheduler::builder(store.clone())
        .check_interval(Duration::from_secs(30))
        .batch_size(10)
        .observer(observer)
        .spawn()
        .expect("spawn");
    // The read happens a second before the instant; change two orders and add one after it.
    let settle = (due - ChronoDuration::milliseconds(400) - Utc::now())
        .to_std()
        .unwrap_or_default();
    std::thread::sleep(settle);
    let cancel = storage::ManualChange {
        to: Some(OrderStatus::Cancelled),
        ..Default::default()
    };
    store
        .transition(&ids[0], &cancel, "trader")
        .expect("cancel");
    assert!(store.park_order(&ids[1], "set aside").expect("park"));
    let late = store
        .insert_order(&new_order(due), None, "test")
        .expect("insert")
        .order
        .id;
    let mut want: Vec<&str> = ids[2..].iter().map(String::as_str).collect();
    want.push(&late);
    assert!(
        signals.wait_moderated(Duration::from_secs(10), &want),
        "every order still claimable was moderated"
    );
    let status = sched.status();
    assert_eq!(status.processed, 29, "28 read ahead and the late one");
    assert!(
        (28..=29).contains(&status.read_ahead),
        "{} of them taken from the read-ahead",
        status.read_ahead
    );
    assert_eq!(
        store.get_order(&ids[0]).expect("get").status,
        OrderStatus::Cancelled
    );
    assert_eq!(
        store.get_order(&ids[1]).expect("get").status,
        OrderStatus::Pending
    );
    for id in &want {
        let lateness = moderation_lateness_ms(&store, id);
        assert!((0..1000).contains(&lateness), "lateness {lateness} ms");
    }
    assert_eq!(
        store.moderation_event_multiplicity().expect("mult"),
        (2, 29, 0)
    );
}

/// A backlog (orders already due when the scheduler starts) is drained exactly once; on
/// Postgres by as many transactions at once as configured, after the first full batch. It is
/// large (30 batches) and dense, so the pass sweeps it in id order, passing over the future
/// orders created among it; due times do not follow creation order, as in a day-ahead book.
fn a_backlog_is_drained_once(db: &TestDb) {
    let store = db.store();
    for (round, writers) in [1, 3].into_iter().enumerate() {
        let due = Utc::now() - ChronoDuration::seconds(10);
        let future = Utc::now() + ChronoDuration::hours(1);
        let batch: Vec<NewOrder> = (0..3_300)
            .map(|i| match i % 11 {
                10 => new_order(future + ChronoDuration::milliseconds(i)),
                _ => new_order(due + ChronoDuration::milliseconds((i * 7_919) % 9_000)),
            })
            .collect();
        store.insert_orders(&batch, "test").expect("bulk insert");
        let (observer, signals) = signals();
        let sched = Scheduler::builder(store.clone())
            .batch_size(100)
            .pg_writers(writers)
            .check_interval(Duration::from_secs(30))
            .observer(observer)
            .spawn()
            .expect("spawn");
        assert!(signals.wait_moderated_count(Duration::from_secs(30), 3_000));
        let status = sched.status();
        assert_eq!((status.processed, status.read_ahead), (3_000, 0));
        assert_eq!(
            status.backlog_sweeps, 1,
            "the backlog was swept in id order"
        );
        let expected = if store.is_postgres() { writers } else { 1 };
        assert_eq!(status.writers, expected);
        let rounds = round as i64 + 1;
        assert_eq!(
            store.moderation_event_multiplicity().expect("mult"),
            (300 * rounds, 3_000 * rounds, 0),
            "every due order once, no future one"
        );
    }
}

/// A backlog that is small beside the future book is taken in due order: a sweep would walk
/// the whole book for it.
fn a_sparse_backlog_is_taken_in_due_order(db: &TestDb) {
    let store = db.store();
    let due = Utc::now() - ChronoDuration::seconds(10);
    let future = Utc::now() + ChronoDuration::hours(1);
    // 1,100 due (22 batches of 50) among 20,000 future: fewer than one in sixteen.
    let book: Vec<NewOrder> = (0..21_100)
        .map(|i| match i % 19 {
            0 if i / 19 < 1_100 => new_order(due + ChronoDuration::milliseconds(i % 900)),
            _ => new_order(future + ChronoDuration::milliseconds(i)),
        })
        .collect();
    store.insert_orders(&book, "test").expect("bulk insert");
    let (observer, signals) = signals();
    let sched = Scheduler::builder(store.clone())
        .batch_size(50)
        .check_interval(Duration::from_secs(30))
        .observer(observer)
        .spawn()
        .expect("spawn");
    assert!(signals.wait_moderated_count(Duration::from_secs(30), 1_100));
    let status = sched.status();
    assert_eq!((status.processed, status.backlog_sweeps), (1_100, 0));
    assert_eq!(
        store.moderation_event_multiplicity().expect("mult"),
        (20_000, 1_100, 0)
    );
}

storage::backend_tests!(
    order_inserted_by_another_process_is_moderated_on_time,
    status_storm_does_not_delay_moderation,
    order_due_in_a_second_is_moderated_on_time,
    stopped_scheduler_leaves_orders_until_forced_or_started,
    earlier_insert_rearms_the_timer,
    an_order_due_after_the_deadline_is_moderated_on_time,
    three_schedulers_moderate_each_order_once,
    undecodable_row_is_parked_and_reported,
    same_seed_gives_identical_outcomes,
    dropping_the_handle_joins_quickly,
    panics_inside_a_pass_are_caught,
    orders_read_ahead_are_moderated_once_at_their_instant,
    a_backlog_is_drained_once,
    a_sparse_backlog_is_taken_in_due_order,
);
