//! Every storage function on both backends, each test on its own fresh database: one file per
//! area, each running its cases through `storage::backend_tests!`, the conformance suite every
//! backend passes.

mod checkpoint;
mod claim;
mod due;
mod group_commit;
mod lifecycle;
mod parked;
mod retention;
mod unreadable;

use chrono::Utc;
use orders::{Decision, Price};
use storage::testing::TestDb;
use storage::{Decided, StorageError, Store};

pub(crate) use storage::testing::order_due;

pub(crate) fn approve_all(
    price_cents: i64,
) -> impl FnMut(&orders::Order, chrono::DateTime<Utc>) -> Result<Decided, String> {
    move |_, _| {
        Ok(Decided {
            decision: Decision::Approved {
                rt_lmp: Price::from_scaled(price_cents),
            },
            details: serde_json::json!({"test": true}),
            rt_source: None,
            rt_interval_start_utc: None,
        })
    }
}

fn migrations_are_idempotent(db: &TestDb) {
    let first = db.store();
    first
        .insert_order(&order_due(Utc::now(), "BUY", "L"), None, "api")
        .expect("insert");
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let url = db.url.clone();
            std::thread::spawn(move || {
                Store::open(&url, &storage::PoolConfig::default()).map(|_| ())
            })
        })
        .collect();
    for h in handles {
        h.join()
            .expect("thread")
            .expect("concurrent open and migrate");
    }
    assert_eq!(first.row_counts().expect("counts"), (1, 1));
    first.ping().expect("ping");
}

storage::backend_tests!(migrations_are_idempotent);
#[test]
fn urls_choose_the_backend_by_scheme() {
    use storage::DatabaseUrl;
    assert!(DatabaseUrl::parse("postgres://x@h/db")
        .expect("pg")
        .is_postgres());
    assert!(DatabaseUrl::parse("postgresql://h/db")
        .expect("pg")
        .is_postgres());
    assert_eq!(
        DatabaseUrl::parse("sqlite://./data/o.db").expect("sqlite"),
        DatabaseUrl::Sqlite("./data/o.db".into())
    );
    assert_eq!(
        DatabaseUrl::parse("orders.db").expect("path"),
        DatabaseUrl::Sqlite("orders.db".into())
    );
    for bad in ["", "mysql://h/db", "sqlite://", ":memory:"] {
        assert!(
            matches!(DatabaseUrl::parse(bad), Err(StorageError::InvalidUrl(_))),
            "{bad}"
        );
    }
}

#[test]
fn unreachable_postgres_reports_the_driver_error() {
    let err = Store::open(
        "postgres://postgres@127.0.0.1:1/nothing",
        &storage::PoolConfig::default(),
    )
    .expect_err("nothing listens on port 1");
    assert!(err.is_unavailable(), "{err}");
    assert!(
        err.to_string().contains("127.0.0.1"),
        "the real cause is kept: {err}"
    );
}
