//! Throw-away benchmark databases: a file in a temporary directory (SQLite) or a database
//! named `bench_<pid>_<n>` on the Postgres server (dropped when the handle is dropped).

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use storage::bench_support::{pg_create_database, pg_drop_database, pg_url_for, sqlite_copy};
use storage::{PoolConfig, Store};

/// Which database a benchmark runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// An SQLite file (WAL, synchronous = NORMAL, as the server configures it).
    Sqlite,
    /// A PostgreSQL database (server defaults).
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Where benchmark databases are created.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// Admin URL of the Postgres server (any existing database on it).
    pub pg_admin_url: String,
    /// Parent directory of SQLite files.
    pub work_dir: PathBuf,
}

/// A fresh database that lives as long as this handle.
pub struct BenchDb {
    /// URL to give the server and [`Store::open`].
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl BenchDb {
    /// Creates an empty database of `backend` (migrated when first opened).
    pub fn create(backend: Backend, cfg: &DbConfig) -> Result<BenchDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::Builder::new()
                    .prefix("bench_")
                    .tempdir_in(&cfg.work_dir)
                    .with_context(|| {
                        format!("temporary directory in {}", cfg.work_dir.display())
                    })?;
                let url = dir.path().join("orders.db").to_string_lossy().into_owned();
                Ok(BenchDb {
                    url,
                    cleanup: Cleanup::Sqlite(dir),
                })
            }
            Backend::Postgres => Self::create_pg(&cfg.pg_admin_url, None),
        }
    }

    fn create_pg(admin_url: &str, template: Option<&str>) -> Result<BenchDb> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("bench_{}_{n}", std::process::id());
        // A template must have no other session; a just-closed pool may linger a moment.
        let mut attempt = 0;
        loop {
            match pg_create_database(admin_url, &name, template) {
                Ok(()) => break,
                Err(e) if template.is_some() && attempt < 50 => {
                    attempt += 1;
                    log_retry(&e.to_string());
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => return Err(e).with_context(|| format!("cannot create database {name}")),
            }
        }
        Ok(BenchDb {
            url: pg_url_for(admin_url, &name),
            cleanup: Cleanup::Postgres {
                admin_url: admin_url.to_string(),
                name,
            },
        })
    }

    /// Opens a store on this database (applying migrations).
    pub fn open(&self) -> Result<Store> {
        Store::open(&self.url, &PoolConfig::default())
            .with_context(|| format!("cannot open {}", self.url))
    }

    /// A second database holding the same rows. On Postgres no session may be open on this
    /// one while it is copied, so `store` (the caller's only pool on it) is consumed.
    pub fn copy(&self, store: Store, cfg: &DbConfig) -> Result<BenchDb> {
        match &self.cleanup {
            Cleanup::Sqlite(_) => {
                let copy = BenchDb::create(Backend::Sqlite, cfg)?;
                sqlite_copy(&store, std::path::Path::new(&copy.url))?;
                Ok(copy)
            }
            Cleanup::Postgres { admin_url, name } => {
                drop(store);
                Self::create_pg(admin_url, Some(name))
            }
        }
    }
}

fn log_retry(message: &str) {
    if std::env::var_os("BENCH_VERBOSE").is_some() {
        eprintln!("  (retrying: {message})");
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            if let Err(e) = pg_drop_database(admin_url, name) {
                eprintln!("warning: could not drop database {name}: {e}");
            }
        }
    }
}
