//! Connections and the pool: one diesel [`DbConnection`] enum over PostgreSQL and SQLite, the
//! backend chosen from the URL scheme, and the write transaction. What each backend does
//! differently lives in `backend/`.

use crate::backend::{on_backend, pg::Pg, sqlite::Sqlite, Backend};
use crate::error::StorageError;
use diesel::connection::{SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::r2d2::R2D2Connection;
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::MigrationHarness;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::Duration;

// The derive generates undocumented helper items, hence the module-wide allow.
#[allow(missing_docs)]
mod multi {
    use diesel::pg::PgConnection;
    use diesel::sqlite::SqliteConnection;

    /// One connection to either backend; diesel's derive gives both a single query path.
    #[derive(diesel::MultiConnection)]
    pub enum DbConnection {
        /// PostgreSQL: production, shared by many instances.
        Pg(PgConnection),
        /// SQLite: the zero-setup default, a single file.
        Sqlite(SqliteConnection),
    }
}
pub use multi::{DbConnection, MultiBackend};

/// Which database a URL points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A `postgres://` or `postgresql://` URL, passed to libpq as is.
    Postgres(String),
    /// A file path (from `sqlite://path`, `sqlite:path` or a plain path).
    Sqlite(PathBuf),
}

impl DatabaseUrl {
    /// Picks the backend from the scheme, so that a Postgres URL with the server down reports
    /// the driver's real error instead of being retried as an SQLite file name.
    pub fn parse(url: &str) -> Result<Self, StorageError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(StorageError::InvalidUrl("empty database URL".into()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_string()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() || path.contains("://") {
            return Err(StorageError::InvalidUrl(format!(
                "'{url}': expected postgres://..., postgresql://..., sqlite://PATH or a file path"
            )));
        }
        if path == ":memory:" {
            return Err(StorageError::InvalidUrl(
                "':memory:' gives every pooled connection its own database; use a file".into(),
            ));
        }
        Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, DatabaseUrl::Postgres(_))
    }

    /// Opens one connection with the per-connection settings applied.
    pub fn connect(&self) -> Result<DbConnection, StorageError> {
        let unavailable = |e: diesel::ConnectionError| StorageError::Unavailable(e.to_string());
        match self {
            DatabaseUrl::Postgres(url) => {
                let mut conn = PgConnection::establish(url).map_err(unavailable)?;
                Pg::configure(&mut conn)?;
                Ok(DbConnection::Pg(conn))
            }
            DatabaseUrl::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StorageError::Unavailable(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                let mut conn =
                    SqliteConnection::establish(&path.to_string_lossy()).map_err(unavailable)?;
                Sqlite::configure(&mut conn)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

/// An r2d2 manager that connects through [`DatabaseUrl::connect`].
#[derive(Debug, Clone)]
pub struct Manager {
    url: DatabaseUrl,
    check: ConnectionCheck,
    sqlite_autocheckpoint: Option<u32>,
}

impl Manager {
    /// A manager for this database that tests connections as `check` says.
    pub fn new(url: DatabaseUrl, check: ConnectionCheck) -> Self {
        Self {
            url,
            check,
            sqlite_autocheckpoint: None,
        }
    }

    /// On SQLite, each connection checkpoints by itself only once the log holds `pages` (a
    /// background thread does it before then).
    pub(crate) fn sqlite_autocheckpoint(mut self, pages: Option<u32>) -> Self {
        self.sqlite_autocheckpoint = pages;
        self
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = StorageError;

    fn connect(&self) -> Result<DbConnection, StorageError> {
        let mut conn = self.url.connect()?;
        if let (Some(pages), DbConnection::Sqlite(c)) = (self.sqlite_autocheckpoint, &mut conn) {
            c.batch_execute(&format!("PRAGMA wal_autocheckpoint = {pages}"))?;
        }
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), StorageError> {
        conn.ping().map_err(StorageError::from)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        // A connection still inside a transaction (a panic unwound past it) is not reused.
        if conn.is_broken() {
            return true;
        }
        // Tested on the way back instead of on the way out: the round trip is paid after the
        // work, not before the next piece of it.
        self.check == ConnectionCheck::OnReturn && conn.ping().is_err()
    }
}

/// Runs the pending migrations (on Postgres serialised between instances).
pub fn run_migrations(conn: &mut DbConnection) -> Result<(), StorageError> {
    on_backend!(conn, c => B::migrate(c))
}

/// Runs `f` in a write transaction and commits it, or rolls it back on error or panic.
///
/// Each backend begins it its own way (SQLite: `BEGIN IMMEDIATE`, taking the write lock up
/// front; Postgres: `BEGIN`).
pub fn write_tx<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    on_backend!(&mut *conn, c => B::begin_write(c))?;
    finish_tx(conn, f)
}

/// Runs `f` inside the transaction the caller has just begun on `conn`, then commits it, or
/// rolls it back on error or panic. The derived transaction manager delegates to the inner
/// connection's, which knows a transaction is open, so commit and rollback issue the matching
/// statements.
pub(crate) fn finish_tx<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    match catch_unwind(AssertUnwindSafe(|| f(conn))) {
        Ok(Ok(value)) => {
            DbConnection::commit_transaction(conn)?;
            Ok(value)
        }
        Ok(Err(e)) => {
            let _ = DbConnection::rollback_transaction(conn);
            Err(e)
        }
        Err(panic) => {
            let _ = DbConnection::rollback_transaction(conn);
            resume_unwind(panic)
        }
    }
}

/// The embedded migrations of one backend, oldest first, each with whether it is applied.
/// Reading the applied list creates diesel's bookkeeping table on a database never migrated.
pub(crate) fn migration_states<DB: diesel::backend::Backend>(
    conn: &mut impl MigrationHarness<DB>,
    embedded: &diesel_migrations::EmbeddedMigrations,
) -> Result<Vec<MigrationState>, StorageError> {
    use diesel::migration::MigrationSource;
    let failed =
        |e: Box<dyn std::error::Error + Send + Sync>| StorageError::Migration(e.to_string());
    let applied: std::collections::HashSet<String> = conn
        .applied_migrations()
        .map_err(failed)?
        .into_iter()
        .map(|v| v.to_string())
        .collect();
    let all = MigrationSource::<DB>::migrations(embedded).map_err(failed)?;
    Ok(all
        .iter()
        .map(|m| MigrationState {
            name: m.name().to_string(),
            applied: applied.contains(&m.name().version().to_string()),
        })
        .collect())
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Most connections open at once.
    pub max_size: u32,
    /// How long a caller waits for a connection before the database counts as unavailable.
    pub connection_timeout: Duration,
    /// When a pooled connection is tested with a round trip.
    pub check: ConnectionCheck,
    /// Idle connections the pool keeps open, replacing any taken out on a background thread.
    /// A long-lived service wants 1, so that its next caller finds one ready; a short-lived
    /// tool wants 0 (the default): a background connect still in progress when the process
    /// exits crashes it (libpq with OpenSSL 3 is torn down under that thread, r2d2#137), and
    /// with 0 the only connects are those a caller is waiting for.
    pub min_idle: u32,
    /// SQLite: a thread of the store checkpoints the write-ahead log while writers go on, and
    /// the store's connections leave checkpoints to it (see `checkpoint.rs`). Right for a
    /// long-lived service whose writes are large (a scheduler draining a backlog); a
    /// short-lived tool keeps SQLite's default, a checkpoint inside the commit that takes the
    /// log past 1,000 pages. Inherited by [`crate::Store::dedicated`] pools. Ignored on Postgres.
    pub background_checkpoints: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_size: 8,
            connection_timeout: Duration::from_secs(5),
            check: ConnectionCheck::OnCheckout,
            min_idle: 0,
            background_checkpoints: false,
        }
    }
}

/// When the pool tests a connection (`SELECT 1`), so that a connection the server dropped
/// (a restart, an idle timeout) is replaced rather than handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectionCheck {
    /// Before handing it out: every checkout pays a round trip first. Right for callers that
    /// cannot retry, such as a request.
    #[default]
    OnCheckout,
    /// When it comes back: the round trip follows the work instead of preceding it. A
    /// connection that dies while idle in the pool fails its next use once (and is then
    /// replaced), so this suits a caller that retries, such as the scheduler, whose passes
    /// start at a due instant and should not spend a round trip before their first query.
    OnReturn,
}

/// One embedded migration and whether the database has it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrationState {
    /// The migration's directory name (version and description).
    pub name: String,
    /// Whether it is applied.
    pub applied: bool,
}

/// Every embedded migration of the connection's backend, oldest first, applied or pending.
pub fn migration_status(conn: &mut DbConnection) -> Result<Vec<MigrationState>, StorageError> {
    on_backend!(conn, c => B::migration_status(c))
}
