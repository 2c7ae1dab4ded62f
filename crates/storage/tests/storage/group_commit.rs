//! Group commit of creates: a caller is answered after the commit that holds its row, never
//! held back to commit other callers' groups.

use crate::order_due;
use chrono::{Duration, Utc};
use storage::testing::TestDb;
use storage::Store;

/// Under continuous load from many threads, no create commits more than one group before it
/// returns: a leader hands the lead on after its group. (A leader that kept committing until
/// the queue ran dry committed every group of the load and answered its own caller only when
/// the load paused: the tail of the create latency.) Counted by the store, so the machine's
/// thread scheduling does not enter the figure.
fn no_create_commits_more_than_its_own_group(db: &TestDb) {
    let store = db.store();
    let due = Utc::now() + Duration::hours(2);
    let creates = from_16_threads(&store, move |store| {
        store
            .insert_order(&order_due(due, "BUY", "L"), None, "api")
            .expect("insert")
            .order
            .id
    })
    .len() as u64;
    let stats = store.group_commit_stats();
    assert_eq!(stats.creates, creates);
    assert!(
        stats.groups < creates,
        "{stats:?}: some creates must have shared a commit"
    );
    assert_eq!(stats.most_groups_led, 1, "{stats:?}");
    assert_eq!(store.row_counts().expect("counts").0, creates as i64);
}

/// Runs `create` in a loop on 16 threads for 1.5 s; the ids it returned.
fn from_16_threads(
    store: &Store,
    create: impl Fn(&Store) -> String + Clone + Send + 'static,
) -> Vec<String> {
    let until = std::time::Instant::now() + std::time::Duration::from_millis(1_500);
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (store, create) = (store.clone(), create.clone());
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                while std::time::Instant::now() < until {
                    ids.push(create(&store));
                }
                ids
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().expect("thread"))
        .collect()
}

/// Awaits a queued create on a runtime of this thread; a create never answered fails the test
/// instead of hanging it.
fn await_answer(answer: storage::QueuedInsert) -> Result<storage::Inserted, storage::StorageError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
        .block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(30), answer.answer()).await
        })
        .expect("answered within 30 s")
}

/// Creates queued without blocking (as the HTTP routes queue them) are all answered and all
/// stored, each exactly once, and share commits; the caller that found nobody committing is
/// handed the leader and runs it on a thread of its own, as the server runs it on its
/// blocking pool.
fn queued_creates_are_answered_and_share_commits(db: &TestDb) {
    let store = db.store();
    let due = Utc::now() + Duration::hours(2);
    let mut ids = from_16_threads(&store, move |store| {
        let (answer, leader) = store.queue_insert(&order_due(due, "BUY", "L"), None, "api");
        if let Some(leader) = leader {
            std::thread::spawn(move || leader.run());
        }
        let inserted = await_answer(answer).expect("insert");
        assert!(inserted.created);
        inserted.order.id
    });
    let creates = ids.len() as u64;
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len() as u64, creates, "every create has its own order");
    let stats = store.group_commit_stats();
    assert_eq!(stats.creates, creates);
    assert!(
        stats.groups < creates,
        "{stats:?}: some creates must have shared a commit"
    );
    assert_eq!(store.row_counts().expect("counts").0, creates as i64);
}

/// A leader dropped without being run commits the queue where it is dropped, so no create is
/// left waiting; a blocking create that queued behind it is answered by it too.
fn a_dropped_leader_still_commits_and_answers_blocking_creates(db: &TestDb) {
    let store = db.store();
    let due = Utc::now() + Duration::hours(2);
    let (answer, leader) = store.queue_insert(&order_due(due, "BUY", "L"), None, "api");
    let leader = leader.expect("nobody was committing");
    // The second queued create finds a leader and is not handed another.
    let (second, none) = store.queue_insert(&order_due(due, "SELL", "L"), None, "api");
    assert!(none.is_none());
    let blocking = {
        let store = store.clone();
        std::thread::spawn(move || store.insert_order(&order_due(due, "BUY", "M"), None, "api"))
    };
    // Until the leader runs, nothing is committed.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(store.row_counts().expect("counts").0, 0);
    drop(leader);
    let first = await_answer(answer).expect("first");
    let second = await_answer(second).expect("second");
    let third = blocking.join().expect("thread").expect("third");
    assert_eq!(first.order.side.as_str(), "BUY");
    assert_eq!(second.order.side.as_str(), "SELL");
    assert_eq!(third.order.location, "M");
    assert_eq!(store.row_counts().expect("counts").0, 3);
    // The queue has no leader left: the next create is handed one.
    let (_, leader) = store.queue_insert(&order_due(due, "BUY", "L"), None, "api");
    leader.expect("the lead was given up").run();
}

storage::backend_tests!(
    no_create_commits_more_than_its_own_group,
    queued_creates_are_answered_and_share_commits,
    a_dropped_leader_still_commits_and_answers_blocking_creates
);
