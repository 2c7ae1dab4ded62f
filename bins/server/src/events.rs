//! The event hub behind `GET /api/v1/events`: one poller thread per process reads new rows of
//! `order_events` (so changes made by *any* instance on a shared database are seen) and fans
//! them out to subscribers over a bounded broadcast channel.
//!
//! Event ids come from a sequence, but on Postgres concurrent transactions commit out of id
//! order: id 805 may commit seconds after 806 (a long transaction), or never (a rollback). The
//! poller never gives up on such a gap while it could still fill. It publishes every new event
//! at once, remembers the ids it saw missing, re-reads them at every poll and publishes them
//! (marked late) when they commit. A gap is dropped only when it provably cannot fill:
//! - on Postgres, once every transaction that was running when the gap was seen has ended
//!   (the current snapshot's `xmin` has passed the `xmax` recorded then) and one more read
//!   still misses it; our own transactions write their order row before their event row, so
//!   they hold a transaction id before they draw an event id, and the horizon covers them;
//! - on SQLite at once, after one more read: its single writer commits ids in order, so an id
//!   below a committed one is a rollback;
//! - in any case after [`MAX_GAP_AGE`], with a warning, so memory stays bounded.
//!
//! The hub's watermark is the highest id at or below which every id is resolved (published
//! or dropped). Each frame's SSE `id:` is at most that watermark, so a client reconnecting
//! with `Last-Event-ID` replays everything it could have missed, late events included; it may
//! see an event twice (the `id` inside the data tells them apart), never lose one.
//!
//! A slow subscriber cannot slow the scheduler or grow memory: the channel is bounded, and a
//! subscriber that falls behind is disconnected and replays what it missed from the database
//! when it reconnects.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::{EventWithDue, Store};
use tokio::sync::broadcast;

/// A gap still open after this long is dropped (with a warning), whatever the horizon says.
pub const MAX_GAP_AGE: Duration = Duration::from_secs(600);
/// Most missing ids tracked at once; beyond it the oldest are dropped (with a warning).
const MAX_GAPS: usize = 100_000;
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

/// A row of `order_events` as published.
#[derive(Debug, Clone)]
pub struct Published {
    /// The event and its order's due time.
    pub row: EventWithDue,
    /// The hub's watermark once this event was published: the SSE `id:` of its frame (every
    /// id at or below it was published or dropped before).
    pub cursor: i64,
    /// True when the event filled a gap (its transaction committed after later ids).
    pub late: bool,
}

/// One item of the stream.
#[derive(Debug, Clone)]
pub enum StreamItem {
    /// A row of `order_events` (from any instance).
    Order(Published),
    /// A scheduler state change (this instance).
    Scheduler(SchedulerState),
}

/// The hub: subscribe to get live items; the poller thread publishes.
pub struct EventHub {
    tx: broadcast::Sender<Arc<StreamItem>>,
    /// Every event with an id at or below this has been published or dropped.
    watermark: Arc<AtomicI64>,
    /// Highest event id published.
    high: Arc<AtomicI64>,
    poke: mpsc::Sender<()>,
}

impl EventHub {
    /// Starts the poller thread from the current end of the history.
    pub fn start(store: Store) -> std::io::Result<Self> {
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        let start = store.last_event_id().unwrap_or(0);
        let watermark = Arc::new(AtomicI64::new(start));
        let high = Arc::new(AtomicI64::new(start));
        let (poke, woken) = mpsc::channel();
        let poller = Poller {
            store,
            tx: tx.clone(),
            watermark: Arc::clone(&watermark),
            high: Arc::clone(&high),
            gaps: Gaps::default(),
            mark: start,
            top: start,
        };
        std::thread::Builder::new()
            .name("event-poller".into())
            .spawn(move || poller.run(woken))?;
        Ok(Self {
            tx,
            watermark,
            high,
            poke,
        })
    }

    /// A receiver of every item published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StreamItem>> {
        self.tx.subscribe()
    }

    /// Every event id at or below this has been published or dropped as rolled back.
    pub fn watermark(&self) -> i64 {
        self.watermark.load(Ordering::Acquire)
    }

    /// The highest event id published so far (ids between the watermark and it may be late).
    pub fn high(&self) -> i64 {
        self.high.load(Ordering::Acquire)
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

/// One missing id: when it was first seen, and the transaction horizon (`xmax`) then.
#[derive(Debug, Clone, Copy)]
struct Gap {
    seen: Instant,
    horizon: Option<i64>,
}

/// The ids between the watermark and the highest published id that are not published yet.
#[derive(Debug, Default)]
struct Gaps {
    open: BTreeMap<i64, Gap>,
}

impl Gaps {
    fn ids(&self) -> Vec<i64> {
        self.open.keys().copied().collect()
    }
}

/// Events committed since the last poll: their rows, or, while nobody listens, their ids.
enum Found {
    Rows(Vec<EventWithDue>),
    Ids(Vec<i64>),
}

impl Found {
    fn ids(&self) -> Vec<i64> {
        match self {
            Found::Rows(rows) => rows.iter().map(|r| r.event.id).collect(),
            Found::Ids(ids) => ids.clone(),
        }
    }

    /// The rows found, read by id when only ids were taken (no read for none).
    fn into_rows(self, store: &Store) -> Result<Vec<EventWithDue>, storage::StorageError> {
        match self {
            Found::Rows(rows) => Ok(rows),
            Found::Ids(ids) if ids.is_empty() => Ok(Vec::new()),
            Found::Ids(ids) => store.events_with_ids(&ids),
        }
    }

    fn len(&self) -> usize {
        match self {
            Found::Rows(rows) => rows.len(),
            Found::Ids(ids) => ids.len(),
        }
    }
}

struct Poller {
    store: Store,
    tx: broadcast::Sender<Arc<StreamItem>>,
    watermark: Arc<AtomicI64>,
    high: Arc<AtomicI64>,
    gaps: Gaps,
    /// Every id at or below this is resolved.
    mark: i64,
    /// Highest id published.
    top: i64,
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
            // Polls with or without subscribers (without, it reads ids only): jumping ahead
            // while nobody listens would lose the ids a late transaction fills, for the replay
            // of a later client.
            loop {
                match self.poll_once() {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        log::debug!("event poll failed (retried): {e}");
                        break;
                    }
                }
            }
        }
    }

    /// Reads what was committed since the last poll: late events (ids it saw missing) first,
    /// then new ones; resolves gaps and moves the watermark; publishes. True if a full page of
    /// new events was read (more may be waiting).
    ///
    /// While nobody is subscribed it reads ids only: its position and the gaps must still
    /// move (a client connecting later replays from the database up to them), the rows and
    /// their orders need not be read. During a long drain the full rows cost this thread a
    /// quarter of a core on two. A client subscribing during such a poll is caught by the
    /// second look at the subscriber count, after the position moved: the rows are then read
    /// and published to it. One that subscribes after that look reads the moved position and
    /// replays them instead.
    fn poll_once(&mut self) -> Result<bool, storage::StorageError> {
        let (late, new, full) = self.take(self.listening())?;
        self.deliver(late, new)?;
        Ok(full)
    }

    /// The reading half of a poll: reads late and new events (rows if `listening`, else ids),
    /// resolves gaps, and moves the position, `high` and the watermark past them. Also returns
    /// whether the page of new events was full.
    fn take(&mut self, listening: bool) -> Result<(Found, Found, bool), storage::StorageError> {
        // The horizon is read before the gaps are re-read, so a gap found missing afterwards
        // was missing after every transaction older than the horizon had ended.
        // (Only while a gap is open: an idle poll stays one indexed query.)
        let horizon = if self.gaps.open.is_empty() {
            None
        } else {
            self.store.transaction_horizon()?
        };
        let late = if self.gaps.open.is_empty() {
            Found::Ids(Vec::new())
        } else if listening {
            Found::Rows(self.store.events_with_ids(&self.gaps.ids())?)
        } else {
            Found::Ids(self.store.committed_event_ids(&self.gaps.ids())?)
        };
        for id in late.ids() {
            self.gaps.open.remove(&id);
        }
        self.resolve_gaps(horizon);
        let new = if listening {
            Found::Rows(self.store.events_after(self.top, PAGE)?)
        } else {
            Found::Ids(self.store.event_ids_after(self.top, PAGE)?)
        };
        let full = new.len() as i64 == PAGE;
        let now = Instant::now();
        for id in new.ids() {
            // Ids skipped between the last one seen and this one: not committed yet, or
            // never. Their horizon is read at the next poll, when any transaction that drew one
            // has long held its transaction id.
            for missing in self.top + 1..id {
                self.gaps.open.insert(
                    missing,
                    Gap {
                        seen: now,
                        horizon: None,
                    },
                );
            }
            self.top = id;
        }
        self.trim_gaps();
        self.high.store(self.top, Ordering::Release);
        self.advance();
        Ok((late, new, full))
    }

    /// The publishing half: sends late events, then new ones. Ids taken while nobody listened
    /// are dropped, unless someone subscribed since: their rows are read and sent then.
    fn deliver(&mut self, late: Found, new: Found) -> Result<(), storage::StorageError> {
        if !self.listening() {
            return Ok(());
        }
        let late = late.into_rows(&self.store)?;
        let new = new.into_rows(&self.store)?;
        for row in late {
            self.publish(row, true);
        }
        for row in new {
            self.publish(row, false);
        }
        Ok(())
    }

    fn listening(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Sends one event; its frame's cursor is the watermark, or its own id if lower.
    fn publish(&mut self, row: EventWithDue, late: bool) {
        let cursor = self.mark.min(row.event.id);
        let _ = self
            .tx
            .send(Arc::new(StreamItem::Order(Published { row, cursor, late })));
    }

    /// Drops the gaps that can no longer fill, and records the horizon of new ones.
    fn resolve_gaps(&mut self, horizon: Option<(i64, i64)>) {
        let sqlite = horizon.is_none() && !self.store.is_postgres();
        self.gaps.open.retain(|id, gap| {
            let rolled_back = match (horizon, gap.horizon) {
                _ if sqlite => true,
                (Some((xmin, _)), Some(seen_at)) => xmin >= seen_at,
                _ => false,
            };
            if let (Some((_, xmax)), None) = (horizon, gap.horizon) {
                gap.horizon = Some(xmax);
            }
            let expired = gap.seen.elapsed() >= MAX_GAP_AGE;
            if expired && !rolled_back {
                log::warn!(
                    "event id {id} still missing after {}s; no longer waiting for it",
                    MAX_GAP_AGE.as_secs()
                );
            } else if rolled_back {
                log::debug!("event id {id} was never committed; skipping it");
            }
            !(rolled_back || expired)
        });
    }

    fn trim_gaps(&mut self) {
        while self.gaps.open.len() > MAX_GAPS {
            if let Some((id, _)) = self.gaps.open.pop_first() {
                log::warn!("too many missing event ids; no longer waiting for {id}");
            }
        }
    }

    /// Moves the watermark up to just below the oldest open gap.
    fn advance(&mut self) {
        let mark = match self.gaps.open.keys().next() {
            Some(first) => (*first - 1).min(self.top),
            None => self.top,
        };
        if mark > self.mark {
            self.mark = mark;
            self.watermark.store(mark, Ordering::Release);
        }
    }
}

/// The ids published live that a replay up to `high` already covered: skipped on the live
/// stream unless they arrived late (committed after the replay read them missing).
pub fn covered_by_replay(item: &Published, replayed_until: i64) -> bool {
    !item.late && item.row.event.id <= replayed_until
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::testing::{order_due, TestDb};

    fn create(store: &Store, n: usize) {
        let order = order_due(Utc::now() + chrono::Duration::hours(1), "BUY", "L");
        for _ in 0..n {
            store.insert_order(&order, None, "api").expect("insert");
        }
    }

    fn poller(store: Store) -> (Poller, Arc<AtomicI64>) {
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        let high = Arc::new(AtomicI64::new(0));
        let poller = Poller {
            store,
            tx,
            watermark: Arc::new(AtomicI64::new(0)),
            high: Arc::clone(&high),
            gaps: Gaps::default(),
            mark: 0,
            top: 0,
        };
        (poller, high)
    }

    fn received(rx: &mut broadcast::Receiver<Arc<StreamItem>>) -> Vec<i64> {
        let mut ids = Vec::new();
        while let Ok(item) = rx.try_recv() {
            if let StreamItem::Order(p) = &*item {
                assert!(!p.late);
                ids.push(p.row.event.id);
            }
        }
        ids
    }

    /// While nobody listens the poller reads ids only, yet moves its position; a subscriber
    /// arriving between its first look and its second still gets the rows of that poll; and
    /// with a subscriber it publishes rows as they come.
    #[test]
    fn ids_only_while_nobody_listens_and_rows_for_who_subscribes_meanwhile() {
        let db = TestDb::sqlite();
        let store = db.store();
        let (mut poller, high) = poller(store.clone());

        create(&store, 3);
        let (late, new, full) = poller.take(false).expect("take");
        assert!(matches!(new, Found::Ids(ref ids) if ids.len() == 3));
        assert!(!full);
        let last = store.last_event_id().expect("last");
        assert_eq!(high.load(Ordering::Acquire), last);
        assert_eq!(poller.watermark.load(Ordering::Acquire), last);
        poller.deliver(late, new).expect("deliver");

        // Subscribed after the first look, before the second: the rows are read and sent.
        create(&store, 2);
        let (late, new, _) = poller.take(false).expect("take");
        let mut rx = poller.tx.subscribe();
        poller.deliver(late, new).expect("deliver");
        let ids = store.event_ids_after(last, 10).expect("ids");
        assert_eq!(ids.len(), 2);
        assert_eq!(received(&mut rx), ids);

        // Listening from the start: rows, in order.
        create(&store, 1);
        assert!(!poller.poll_once().expect("poll"));
        let newest = store.last_event_id().expect("last");
        assert_eq!(received(&mut rx), vec![newest]);
        assert_eq!(high.load(Ordering::Acquire), newest);
    }
}
