//! Background checkpoints (`PoolConfig::background_checkpoints`): on SQLite a thread of the
//! store copies the write-ahead log into the file, and the store's connections, dedicated pools
//! included, leave checkpoints to it; on Postgres the option does nothing.

use crate::order_due;
use chrono::{Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::Integer;
use storage::testing::TestDb;
use storage::{DbConnection, PoolConfig, Store};

/// SQLite's `wal_autocheckpoint` on a connection of `store`'s pool.
fn autocheckpoint(store: &Store) -> i32 {
    #[derive(QueryableByName)]
    struct Pages {
        #[diesel(sql_type = Integer)]
        wal_autocheckpoint: i32,
    }
    let mut conn = store.conn().expect("a connection");
    let DbConnection::Sqlite(c) = &mut *conn else {
        panic!("an SQLite store");
    };
    diesel::sql_query("PRAGMA wal_autocheckpoint")
        .get_result::<Pages>(c)
        .expect("pragma")
        .wal_autocheckpoint
}

fn background() -> PoolConfig {
    PoolConfig {
        background_checkpoints: true,
        ..PoolConfig::default()
    }
}

#[test]
fn sqlite_writers_leave_checkpoints_to_the_store_thread() {
    let db = TestDb::sqlite();
    let store = db.store_with(&background());
    // Writers (the scheduler's own pool too) checkpoint by themselves only far past SQLite's
    // 1,000 pages, as a backstop.
    assert!(autocheckpoint(&store) > 1_000);
    let scheduler_pool = store.dedicated(&PoolConfig::default()).expect("pool");
    assert_eq!(autocheckpoint(&scheduler_pool), autocheckpoint(&store));
    // Enough writes for a log of a few hundred pages, which no writer checkpoints now.
    let due = Utc::now() + Duration::hours(3);
    let news: Vec<_> = (0..3_000).map(|_| order_due(due, "SELL", "HUB")).collect();
    for chunk in news.chunks(500) {
        store.insert_orders(chunk, "test").expect("insert");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.pages_checkpointed() == Some(0) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let copied = store.pages_checkpointed().expect("a checkpoint thread");
    assert!(copied > 0, "the thread copied nothing within 10 s");
    drop(scheduler_pool);
    // Dropping the last handle stops the thread, and the rows are all in the file.
    drop(store);
    assert_eq!(db.store().row_counts().expect("counts").0, 3_000);
}

#[test]
fn sqlite_stores_checkpoint_in_their_commits_unless_asked() {
    let db = TestDb::sqlite();
    let store = db.store();
    assert_eq!(store.pages_checkpointed(), None);
    assert_eq!(autocheckpoint(&store), 1_000, "SQLite's default");
}

#[test]
fn postgres_ignores_background_checkpoints() {
    let Some(db) = TestDb::postgres() else { return };
    let store = db.store_with(&background());
    assert_eq!(store.pages_checkpointed(), None);
    store
        .insert_orders(&[order_due(Utc::now(), "BUY", "HUB")], "test")
        .expect("insert");
}
