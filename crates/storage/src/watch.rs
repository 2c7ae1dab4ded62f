//! Watching for orders inserted by anyone — another instance, the command line, a script — so
//! that a scheduler sleeping until its next known due time re-arms its timer at once.
//!
//! Each backend watches its own way (`backend/`): Postgres `LISTEN`s to the insert trigger's
//! notifications, which carry the earliest inserted due time; SQLite notices other
//! connections' commits through `PRAGMA data_version` and re-reads the next due time. The
//! watcher runs on its own thread and connection; after every (re)connect it re-reads the next
//! due time, because notifications sent while it was disconnected are not replayed.

use crate::backend::{on_backend, Backend};
use crate::store::Store;
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Longest pause between reconnect attempts while the database is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A running watcher; dropping it stops the thread.
#[derive(Debug)]
pub struct DueWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for DueWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("the due-time watcher thread panicked");
            }
        }
    }
}

impl Store {
    /// Starts a thread that calls `on_due` with the earliest due time of newly inserted
    /// orders (or the current next due time after a change it cannot see into), within
    /// `poll` of the commit. `on_due` may be called with a time already known or past; it
    /// should be cheap. Reads of the next due time go through this store's pool.
    pub fn watch_due(
        &self,
        poll: Duration,
        on_due: impl Fn(DateTime<Utc>) + Send + 'static,
    ) -> std::io::Result<DueWatch> {
        let stop = Arc::new(AtomicBool::new(false));
        let store = self.clone();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("order-due-watch".into())
            .spawn(move || run(&store, poll, &flag, &on_due))?;
        Ok(DueWatch {
            stop,
            thread: Some(thread),
        })
    }
}

/// Connects, watches until the connection fails, and reconnects with a growing pause, until
/// `stop` is set.
fn run(store: &Store, poll: Duration, stop: &AtomicBool, on_due: &dyn Fn(DateTime<Utc>)) {
    let keep_going = || !stop.load(Ordering::Relaxed);
    let reread = || match store.next_due() {
        Ok(Some(t)) => on_due(t),
        Ok(None) => {}
        Err(e) => log::warn!("due-time watcher: reading the next due time failed: {e}"),
    };
    let mut backoff = Duration::from_millis(100);
    while keep_going() {
        let result = store.url().connect().and_then(|mut conn| {
            backoff = Duration::from_millis(100);
            // Anything inserted while no one was listening is only visible by reading: the
            // backend asks for that read (`None`) once it is watching, not before.
            let mut on_change = |due: Option<DateTime<Utc>>| match due {
                Some(t) => on_due(t),
                None => reread(),
            };
            on_backend!(&mut conn, c => B::watch(c, poll, &keep_going, &mut on_change))
        });
        if let Err(e) = result {
            log::warn!("due-time watcher: {e}; reconnecting in {backoff:?}");
            let until = std::time::Instant::now() + backoff;
            while keep_going() && std::time::Instant::now() < until {
                std::thread::sleep(poll.min(Duration::from_millis(100)));
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}
