//! Group commit of creates: a caller is answered after the commit that holds its row, never
//! held back to commit other callers' groups.

use crate::order_due;
use chrono::{Duration, Utc};
use storage::testing::TestDb;

/// Under continuous load from many threads, no create commits more than one group before it
/// returns: a leader hands the lead on after its group. (A leader that kept committing until
/// the queue ran dry committed every group of the load and answered its own caller only when
/// the load paused: the tail of the create latency.) Counted by the store, so the machine's
/// thread scheduling does not enter the figure.
fn no_create_commits_more_than_its_own_group(db: &TestDb) {
    let store = db.store();
    let due = Utc::now() + Duration::hours(2);
    let until = std::time::Instant::now() + std::time::Duration::from_millis(1_500);
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut creates = 0;
                while std::time::Instant::now() < until {
                    store
                        .insert_order(&order_due(due, "BUY", "L"), None, "api")
                        .expect("insert");
                    creates += 1;
                }
                creates
            })
        })
        .collect();
    let creates: u64 = threads.into_iter().map(|t| t.join().expect("thread")).sum();
    let stats = store.group_commit_stats();
    assert_eq!(stats.creates, creates);
    assert!(
        stats.groups < creates,
        "{stats:?}: some creates must have shared a commit"
    );
    assert_eq!(stats.most_groups_led, 1, "{stats:?}");
    assert_eq!(store.row_counts().expect("counts").0, creates as i64);
}

storage::backend_tests!(no_create_commits_more_than_its_own_group);
