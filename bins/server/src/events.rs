//! The event hub behind `GET /api/v1/events`: one poller thread per process reads new rows of
//! `order_events` (so changes made by *any* instance on a shared database are seen) and fans
//! them out to subscribers over a bounded broadcast channel.
//!
//! Event ids come from a sequence, but on Postgres concurrent transactions can commit out of id
//! order: a poller that simply remembered the highest id seen could skip an id that commits a
//! moment later. The poller therefore delivers strictly in id order: it holds back events above
//! a gap until the gap fills, or, after [`GAP_TIMEOUT`], treats it as a rolled-back id. So the
//! SSE `id:` is a true watermark, and a client reconnecting with `Last-Event-ID` misses nothing.
//!
//! A slow subscriber cannot slow the scheduler or grow memory: the channel is bounded, and a
//! subscriber that falls behind is disconnected and replays what it missed from the database
//! when it reconnects.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::{EventWithDue, Store};
use tokio::sync::broadcast;

/// How long a gap in event ids may hold back later events before it is skipped.
pub const GAP_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the poller looks for new events when nobody pokes it.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// Events buffered per subscriber before it counts as too slow.
const CHANNEL_CAPACITY: usize = 4096;
/// Rows read per poll.
const PAGE: i64 = 1000;

/// A scheduler state change of this process.
#[derive(Debug, Clone, Serialize)]
pub struct SchedulerState {
    /// `started`, `stopped` or `error`.
    pub state: &'static str,
    /// When it happened.
    #[serde(with = "orders::time::serde_ms")]
    pub at: DateTime<Utc>,
    /// The instance id of the scheduler that changed state (`scheduler:<id>` in histories).
    pub instance_id: String,
    /// The error, for `error`.
    pub error: Option<String>,
}

/// One item of the stream.
#[derive(Debug, Clone)]
pub enum StreamItem {
    /// A row of `order_events` (from any instance).
    Order(EventWithDue),
    /// A scheduler state change (this instance).
    Scheduler(SchedulerState),
}

/// The hub: subscribe to get live items; the poller thread publishes.
pub struct EventHub {
    tx: broadcast::Sender<Arc<StreamItem>>,
    /// Every event with an id at or below this has been published.
    watermark: Arc<AtomicI64>,
    poke: mpsc::Sender<()>,
}

impl EventHub {
    /// Starts the poller thread from the current end of the history.
    pub fn start(store: Store) -> std::io::Result<Self> {
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        let start = store.last_event_id().unwrap_or(0);
        let watermark = Arc::new(AtomicI64::new(start));
        let (poke, woken) = mpsc::channel();
        let poller = Poller {
            store,
            tx: tx.clone(),
            watermark: Arc::clone(&watermark),
            gap_since: None,
        };
        std::thread::Builder::new()
            .name("event-poller".into())
            .spawn(move || poller.run(woken))?;
        Ok(Self {
            tx,
            watermark,
            poke,
        })
    }

    /// A receiver of every item published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StreamItem>> {
        self.tx.subscribe()
    }

    /// Every event id at or below this has been published.
    pub fn watermark(&self) -> i64 {
        self.watermark.load(Ordering::Acquire)
    }

    /// Asks the poller to look now (after a local write), instead of at its next tick.
    pub fn poke(&self) {
        let _ = self.poke.send(());
    }

    /// Publishes a scheduler state change.
    pub fn publish_scheduler(&self, state: SchedulerState) {
        let _ = self.tx.send(Arc::new(StreamItem::Scheduler(state)));
    }

    /// Number of live subscribers.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

struct Poller {
    store: Store,
    tx: broadcast::Sender<Arc<StreamItem>>,
    watermark: Arc<AtomicI64>,
    gap_since: Option<Instant>,
}

impl Poller {
    fn run(mut self, woken: mpsc::Receiver<()>) {
        loop {
            match woken.recv_timeout(POLL_EVERY) {
                Ok(()) => while woken.try_recv().is_ok() {},
                Err(RecvTimeoutError::Timeout) => {}
                // The hub was dropped: the server is shutting down.
                Err(RecvTimeoutError::Disconnected) => return,
            }
            // Nobody listening: keep up with the history without reading it.
            if self.tx.receiver_count() == 0 {
                if let Ok(last) = self.store.last_event_id() {
                    self.watermark.store(last, Ordering::Release);
                    self.gap_since = None;
                }
                continue;
            }
            while let Ok(true) = self.poll_once() {}
        }
    }

    /// Publishes the next contiguous run of events; true if a full page was read.
    fn poll_once(&mut self) -> Result<bool, storage::StorageError> {
        let mut mark = self.watermark.load(Ordering::Acquire);
        let rows = self.store.events_after(mark, PAGE)?;
        let full = rows.len() as i64 == PAGE;
        for row in rows {
            if row.event.id != mark + 1 {
                let since = *self.gap_since.get_or_insert_with(Instant::now);
                if since.elapsed() < GAP_TIMEOUT {
                    break; // wait for the missing id's transaction to commit
                }
                log::debug!(
                    "event ids {}..{} never committed; skipping",
                    mark + 1,
                    row.event.id - 1
                );
            }
            self.gap_since = None;
            mark = row.event.id;
            let _ = self.tx.send(Arc::new(StreamItem::Order(row)));
            self.watermark.store(mark, Ordering::Release);
        }
        Ok(full && self.gap_since.is_none())
    }
}
