//! Fresh databases for tests: a temporary SQLite file, or a uniquely named PostgreSQL database
//! created on the server at `TEST_DATABASE_URL` and dropped when the handle is dropped.
//!
//! Without a reachable Postgres, [`TestDb::postgres`] prints a loud SKIPPED line and returns
//! `None`; with `REQUIRE_POSTGRES=1` it panics instead, so CI cannot pass by skipping.
//! Databases left behind by crashed runs (their process is gone) are dropped at first use.

use crate::{PoolConfig, StorageError, Store};
use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::sql_types::Text;
use orders::{NewOrder, NewOrderFields};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const PREFIX: &str = "os_test_";

/// A database that lives as long as this handle.
pub struct TestDb {
    /// The URL to open it with.
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

/// Which backends a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A temporary SQLite file.
    Sqlite,
    /// A fresh PostgreSQL database.
    Postgres,
}

impl TestDb {
    /// A fresh database of `backend`, or `None` when Postgres is unavailable and not required.
    pub fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => Some(Self::sqlite()),
            Backend::Postgres => Self::postgres(),
        }
    }

    /// A temporary SQLite file (removed on drop).
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = dir.path().join("orders.db").to_string_lossy().into_owned();
        TestDb {
            url,
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    /// A fresh PostgreSQL database, or `None` (after a loud message) when the server cannot be
    /// reached and `REQUIRE_POSTGRES` is not `1`.
    pub fn postgres() -> Option<TestDb> {
        let admin_url = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG.into());
        let required = std::env::var("REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let mut admin = match PgConnection::establish(&admin_url) {
            Ok(c) => c,
            Err(e) if required => {
                panic!("REQUIRE_POSTGRES=1 but Postgres at {admin_url} is unreachable: {e}")
            }
            Err(e) => {
                eprintln!(
                    "\n*** SKIPPED: Postgres test (no server at {admin_url}: {e}). \
                     Set TEST_DATABASE_URL, or REQUIRE_POSTGRES=1 to fail instead. ***\n"
                );
                return None;
            }
        };
        static SWEEP: Once = Once::new();
        SWEEP.call_once(|| sweep_leftovers(&mut admin));
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{PREFIX}{}_{}_{}",
            std::process::id(),
            chrono::Utc::now().timestamp_micros(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        Some(TestDb {
            url: with_database(&admin_url, &name),
            cleanup: Cleanup::Postgres { admin_url, name },
        })
    }

    /// Opens the store with migrations applied.
    pub fn store(&self) -> Store {
        self.store_with(&PoolConfig::default())
    }

    /// Opens the store with a given pool configuration.
    pub fn store_with(&self, config: &PoolConfig) -> Store {
        Store::open(&self.url, config)
            .unwrap_or_else(|e| panic!("cannot open test store {}: {e}", self.url))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            if let Ok(mut admin) = PgConnection::establish(admin_url) {
                let _ =
                    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// Replaces the database name in a Postgres URL.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}

/// Drops test databases whose creating process no longer runs on this machine.
fn sweep_leftovers(admin: &mut PgConnection) {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        datname: String,
    }
    let Ok(names) = diesel::sql_query(format!(
        "SELECT datname FROM pg_database WHERE datname LIKE '{PREFIX}%'"
    ))
    .load::<Name>(admin) else {
        return;
    };
    for Name { datname } in names {
        let pid = datname
            .trim_start_matches(PREFIX)
            .split('_')
            .next()
            .and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {datname} WITH (FORCE)"));
        }
    }
}

/// Defines one `#[test]` per backend from a function taking a [`TestDb`]:
/// `backend_tests!(my_check);` gives `sqlite::my_check` and `postgres::my_check`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                let db = $crate::testing::TestDb::sqlite();
                super::$name(&db);
            })+
        }
        mod postgres {
            $(#[test]
            fn $name() {
                if let Some(db) = $crate::testing::TestDb::postgres() {
                    super::$name(&db);
                }
            })+
        }
    };
}

/// A valid order of 2.5 MWh at a 40.10 limit on `side` at `location` (a hub), due at `due`:
/// the one order shape tests across the workspace need when only its due time matters.
pub fn order_due(due: chrono::DateTime<chrono::Utc>, side: &str, location: &str) -> NewOrder {
    NewOrder::from_fields(&NewOrderFields {
        side: Some(side),
        qty_mwh: Some("2.5"),
        limit_price: Some("40.10"),
        hour_start_utc: Some(&orders::format_ms(&due)),
        location: Some(location),
        location_type: Some("HUB"),
    })
    .expect("a valid order")
}

/// Test-only reads that the service never needs.
impl Store {
    /// Per order, the number of moderation events (PENDING → APPROVED/REJECTED) it has,
    /// summarised as (orders with none, orders with exactly one, orders with more).
    pub fn moderation_event_multiplicity(&self) -> Result<(i64, i64, i64), StorageError> {
        let per_order = sql::<BigInt>(
            "(SELECT COUNT(*) FROM order_events e WHERE e.order_id = orders.id \
             AND e.from_status = 'PENDING' AND e.to_status IN ('APPROVED', 'REJECTED'))",
        );
        let counts: Vec<i64> = crate::schema::orders::table
            .select(per_order)
            .load(&mut *self.checkout()?)?;
        let none = counts.iter().filter(|&&n| n == 0).count() as i64;
        let one = counts.iter().filter(|&&n| n == 1).count() as i64;
        Ok((none, one, counts.len() as i64 - none - one))
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h:5432", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgresql://h/db?sslmode=disable", "x"),
            "postgresql://h/x?sslmode=disable"
        );
    }
}
