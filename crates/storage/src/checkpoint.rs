//! SQLite checkpoints off the write path.
//!
//! In WAL mode every commit appends the pages it changed to the log, and by default the commit
//! that takes the log past 1,000 pages also copies the log back into the database file (a
//! checkpoint), inside that writer's call. On a book whose orders due together are spread over
//! the table, a claim of 1,000 orders changes thousands of pages, so nearly every batch paid
//! for a checkpoint of its own before the next could start: the write and the copy of every
//! page ran one after the other on one thread.
//!
//! With [`crate::PoolConfig::background_checkpoints`] a thread of the store copies the log
//! instead (`PRAGMA wal_checkpoint(PASSIVE)`, which never blocks writers or readers) on its own
//! connection, while the writers go on; the store's connections then checkpoint by themselves
//! only past [`BACKSTOP_PAGES`], should the thread fall behind. Durability is unchanged: a
//! commit is durable once its log frames are (`synchronous = NORMAL` in WAL mode), wherever the
//! checkpoint runs. Postgres checkpoints by itself; there the option does nothing.

use crate::connection::{DatabaseUrl, DbConnection};
use crate::error::StorageError;
use diesel::prelude::*;
use diesel::sql_types::Integer;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// Log pages past which a committing connection checkpoints by itself (SQLite's
/// `wal_autocheckpoint`; its default is 1,000): about 80 MB of 4 KiB pages, well above what
/// one claim writes, so that while the thread keeps up no writer ever checkpoints.
pub(crate) const BACKSTOP_PAGES: u32 = 20_000;

/// Pause between checkpoints while the log keeps growing.
const BUSY_EVERY: Duration = Duration::from_millis(10);
/// Longest pause when nothing was written since the last checkpoint: an idle server wakes a
/// few times a second, not a hundred, and then only looks at the log file's size and time.
const IDLE_EVERY: Duration = Duration::from_millis(250);

/// The running checkpoint thread; dropping it stops the thread.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    copied: Arc<AtomicU64>,
}

impl Checkpointer {
    /// Starts the thread on its own connection to the SQLite file at `path`.
    pub(crate) fn start(path: PathBuf) -> std::io::Result<Checkpointer> {
        let (stop, stopped) = mpsc::channel();
        let copied = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&copied);
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(path, &stopped, &counter))?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
            copied,
        })
    }

    /// Log pages copied into the database file by the thread so far.
    pub(crate) fn pages_copied(&self) -> u64 {
        self.copied.load(Ordering::Relaxed)
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Closing the channel wakes the thread at once.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("the SQLite checkpoint thread panicked");
            }
        }
    }
}

/// What `PRAGMA wal_checkpoint` answers: whether it was blocked, the log's length in pages,
/// and how many of them are now in the database file.
#[derive(QueryableByName, Debug, Clone, Copy, PartialEq, Eq)]
struct Progress {
    #[diesel(sql_type = Integer)]
    busy: i32,
    #[diesel(sql_type = Integer)]
    log: i32,
    #[diesel(sql_type = Integer)]
    checkpointed: i32,
}

fn checkpoint(
    conn: &mut Option<DbConnection>,
    url: &DatabaseUrl,
) -> Result<Progress, StorageError> {
    if conn.is_none() {
        *conn = Some(url.connect()?);
    }
    let Some(DbConnection::Sqlite(c)) = conn.as_mut() else {
        return Err(StorageError::InvalidUrl(
            "background checkpoints are for SQLite files".into(),
        ));
    };
    Ok(diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result(c)?)
}

/// The log file's length and modification time: unchanged since a checkpoint that copied the
/// whole log means nothing was committed since, which a `stat` tells far more cheaply than the
/// pragma (an idle server's cost is measured, and a pragma four times a second showed in it).
fn log_stamp(log: &Path) -> Option<(u64, SystemTime)> {
    let meta = std::fs::metadata(log).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

fn run(path: PathBuf, stopped: &mpsc::Receiver<()>, copied: &AtomicU64) {
    let mut log_file = path.clone().into_os_string();
    log_file.push("-wal");
    let log_file = PathBuf::from(log_file);
    let url = DatabaseUrl::Sqlite(path);
    let mut conn = None;
    let mut every = BUSY_EVERY;
    let mut last: Option<Progress> = None;
    // The log's stamp when the last checkpoint that left nothing to copy began.
    let mut copied_all_at = None;
    let mut failing = false;
    loop {
        match stopped.recv_timeout(every) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let stamp = log_stamp(&log_file);
        if stamp.is_some() && stamp == copied_all_at {
            every = (every * 2).min(IDLE_EVERY);
            continue;
        }
        match checkpoint(&mut conn, &url) {
            Ok(p) => {
                failing = false;
                // Pages copied this time: all of a log that was restarted since the last
                // call, else the difference.
                let before = match last {
                    Some(l) if p.checkpointed >= l.checkpointed && p.log >= l.log => l.checkpointed,
                    _ => 0,
                };
                let gained = u64::try_from(p.checkpointed - before).unwrap_or(0);
                copied.fetch_add(gained, Ordering::Relaxed);
                // Back off while nothing changes; come back to the short pause as soon as
                // the log grows (or could not be copied whole because of a reader).
                every = if last == Some(p) && p.busy == 0 {
                    (every * 2).min(IDLE_EVERY)
                } else {
                    BUSY_EVERY
                };
                last = Some(p);
                copied_all_at = (p.busy == 0 && p.checkpointed == p.log)
                    .then_some(stamp)
                    .flatten();
            }
            Err(e) => {
                // Writers still checkpoint by themselves past the backstop; say so once.
                if !failing {
                    log::warn!("background checkpoint failed ({e}); retrying");
                }
                failing = true;
                conn = None;
                copied_all_at = None;
                every = IDLE_EVERY;
            }
        }
    }
}
