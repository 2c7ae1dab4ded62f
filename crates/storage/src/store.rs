//! [`Store`]: the handle every query hangs off. It owns a connection pool and, on SQLite, the
//! queue this process's writers wait in. The queries themselves live by concern in
//! `insert.rs`, `read.rs`, `due.rs`, `manual.rs` and `claim.rs`; statements are written once
//! in diesel's DSL and run on both backends through [`DbConnection`].

use crate::connection::{
    run_migrations, write_tx, ConnectionCheck, DatabaseUrl, DbConnection, Manager, PoolConfig,
};
use crate::error::StorageError;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use std::sync::{Arc, Mutex};

type Pool = r2d2::Pool<Manager>;
/// A connection checked out of the store's pool.
pub type PooledConnection = r2d2::PooledConnection<Manager>;

/// The order store: a connection pool over PostgreSQL or SQLite with migrations applied.
///
/// Clones share the pool. [`Store::dedicated`] opens a second pool on the same database for a
/// caller that must never wait behind the others (the scheduler).
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    url: DatabaseUrl,
    /// SQLite has one writer at a time; writers of this process queue here, in order, instead
    /// of in SQLite's busy handler, which sleeps in growing steps and would put milliseconds
    /// on the tail latency of every contended write. `None` on Postgres (row locks suffice).
    /// Shared with dedicated pools, since they write to the same file.
    sqlite_writer: Option<Arc<Mutex<()>>>,
    /// Creates waiting to share a commit (see `group_commit.rs`).
    group_commit: Arc<crate::group_commit::GroupCommit>,
    /// SQLite's background checkpoints, when the pool config asked for them; shared with
    /// dedicated pools, whose connections then leave checkpoints to it too. The thread stops
    /// with the last clone.
    checkpointer: Option<Arc<crate::checkpoint::Checkpointer>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend_name())
            .finish()
    }
}

pub(crate) fn naive(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

impl Store {
    /// Opens a pool on `url` and applies pending migrations. Fails with one clear error when
    /// the URL is malformed or the database cannot be reached.
    pub fn open(url: &str, config: &PoolConfig) -> Result<Self, StorageError> {
        let store = Self::open_without_migrating(url, config)?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens a pool without touching the schema.
    pub fn open_without_migrating(url: &str, config: &PoolConfig) -> Result<Self, StorageError> {
        let url = DatabaseUrl::parse(url)?;
        // Try one connection first so the caller sees the driver's own message, not a timeout.
        drop(url.connect()?);
        let sqlite_writer = (!url.is_postgres()).then(|| Arc::new(Mutex::new(())));
        let checkpointer = match &url {
            DatabaseUrl::Sqlite(path) if config.background_checkpoints => {
                let thread = crate::checkpoint::Checkpointer::start(path.clone())
                    .map_err(|e| StorageError::Unavailable(format!("no checkpoint thread: {e}")))?;
                Some(Arc::new(thread))
            }
            _ => None,
        };
        Ok(Self {
            pool: build_pool(&url, config, checkpointer.is_some())?,
            url,
            sqlite_writer,
            group_commit: Arc::default(),
            checkpointer,
        })
    }

    /// A store on the same database with its own pool of `config.max_size` connections, so
    /// that its user never waits for a connection behind this store's other users. SQLite
    /// writers of both still queue in one line, since the file has one writer at a time.
    pub fn dedicated(&self, config: &PoolConfig) -> Result<Self, StorageError> {
        Ok(Self {
            pool: build_pool(&self.url, config, self.checkpointer.is_some())?,
            url: self.url.clone(),
            sqlite_writer: self.sqlite_writer.clone(),
            group_commit: Arc::default(),
            checkpointer: self.checkpointer.clone(),
        })
    }

    /// The database this store opened.
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Applies pending migrations (serialised between instances on Postgres).
    pub fn migrate(&self) -> Result<(), StorageError> {
        run_migrations(&mut *self.checkout()?)
    }

    /// Every embedded migration, oldest first, with whether it is applied.
    pub fn migration_status(&self) -> Result<Vec<crate::connection::MigrationState>, StorageError> {
        crate::connection::migration_status(&mut *self.checkout()?)
    }

    /// `"postgres"` or `"sqlite"`.
    pub fn backend_name(&self) -> &'static str {
        if self.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// Whether the store is on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.url.is_postgres()
    }

    /// Log pages the background checkpoint thread has copied into the database file so far,
    /// added up from the pragma's successive answers (a log restarted and regrown past its
    /// former length between two of them is under-counted); `None` when the store runs no
    /// such thread (Postgres, or not asked for).
    pub fn pages_checkpointed(&self) -> Option<u64> {
        self.checkpointer.as_ref().map(|c| c.pages_copied())
    }

    /// Connections open and connections idle in the pool.
    pub fn pool_state(&self) -> (u32, u32) {
        let s = self.pool.state();
        (s.connections, s.idle_connections)
    }

    /// Checks out a connection (for tests and tools that need raw access).
    #[cfg(any(feature = "testing", feature = "bench"))]
    pub fn conn(&self) -> Result<PooledConnection, StorageError> {
        self.checkout()
    }

    pub(crate) fn group_commit(&self) -> &crate::group_commit::GroupCommit {
        &self.group_commit
    }

    /// Checks out a connection of this store's pool.
    pub(crate) fn checkout(&self) -> Result<PooledConnection, StorageError> {
        Ok(self.pool.get()?)
    }

    /// Runs `f` in a write transaction (see [`write_tx`]), queued behind this process's other
    /// SQLite writers. The connection is checked out before joining the queue: a writer that
    /// held the queue while waiting for a connection would stall every other writer, including
    /// the scheduler on its own pool.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut conn = self.checkout()?;
        let _turn = self
            .sqlite_writer
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()));
        write_tx(&mut conn, f)
    }

    /// Round-trips a trivial query.
    pub fn ping(&self) -> Result<(), StorageError> {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("1"))
            .get_result::<i32>(&mut *self.checkout()?)?;
        Ok(())
    }
}

/// `background_checkpoints`: a thread of the store copies SQLite's log, so that the pool's
/// connections checkpoint by themselves only past the backstop.
fn build_pool(
    url: &DatabaseUrl,
    config: &PoolConfig,
    background_checkpoints: bool,
) -> Result<Pool, StorageError> {
    let autocheckpoint = background_checkpoints.then_some(crate::checkpoint::BACKSTOP_PAGES);
    Ok(r2d2::Pool::builder()
        .max_size(config.max_size.max(1))
        .min_idle(Some(config.min_idle.min(config.max_size.max(1))))
        .connection_timeout(config.connection_timeout)
        .test_on_check_out(config.check == ConnectionCheck::OnCheckout)
        .build(Manager::new(url.clone(), config.check).sqlite_autocheckpoint(autocheckpoint))?)
}
