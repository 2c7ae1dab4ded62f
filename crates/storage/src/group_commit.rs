//! Group commit for creates: concurrent [`Store::insert_order`] calls share one transaction and
//! one commit.
//!
//! Every create used to be its own commit, and on Postgres with `synchronous_commit = on` each
//! commit waits for its own WAL flush. Here callers queue their request; the first caller who
//! finds no leader becomes the leader and commits groups — whatever has queued, up to
//! [`MAX_GROUP`] — until the queue is empty, while the others wait for their answer. No thread
//! of its own, no timer: an uncontended create commits at once, alone, and under load the group
//! grows by itself to what arrived during the previous commit.
//!
//! Each caller is answered after the commit that holds its row. Idempotency keys keep their
//! meaning within a group (a repeat finds the row its twin wrote earlier in the same
//! transaction) and across groups. If a group's transaction fails (a key raced with another
//! process, say), each of its requests is retried alone, so one bad row fails only its own
//! request, with its own error.
//!
//! Async callers ([`Store::queue_insert`], the HTTP server's create routes) do not block a
//! thread while they wait: each awaits a one-shot answer. The first of them to find no leader
//! gets a [`GroupLeader`] to run on a blocking thread, which commits groups until the queue is
//! empty. Its own caller is answered with its group, like everyone else, so nobody waits for
//! groups after their own. Under load one thread commits while the requests wait as futures:
//! a create costs no thread hand-off of its own, where a blocking wait cost two context
//! switches per create, the larger part of a create's CPU on a 2-core machine.

use crate::error::StorageError;
use crate::insert::{insert_alone, insert_in, Idempotency, Inserted};
use crate::store::Store;
use ::orders::NewOrder;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use tokio::sync::oneshot;

/// Most creates committed together: bounds one transaction's work and its callers' wait.
const MAX_GROUP: usize = 256;

/// The queue of creates waiting for a commit, shared by every clone of a [`Store`].
#[derive(Default)]
pub(crate) struct GroupCommit {
    queue: Mutex<Queue>,
    /// Groups committed (or failed) so far.
    groups: AtomicU64,
    /// Creates answered so far.
    creates: AtomicU64,
    /// The most groups one create committed (as leader) before returning.
    most_led: AtomicU64,
}

/// How the creates of a [`Store`] (and its clones) have been grouped into commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupCommitStats {
    /// Group commits so far, failed ones included.
    pub groups: u64,
    /// Creates answered so far (`creates / groups` is the mean group size).
    pub creates: u64,
    /// The most groups one blocking create committed, as leader, before returning to its
    /// caller: one while the lead is handed on after every group (it keeps the lead only while
    /// no blocked caller waits to take it, and awaited creates do). [`GroupLeader`]s, which
    /// have no caller of their own, are not counted. (A leader that kept the lead until the
    /// queue ran dry committed every group of a sustained load and answered its own caller
    /// last.)
    pub most_groups_led: u64,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Request>,
    /// Whether a blocking caller or a [`GroupLeader`] is committing groups; new requests then
    /// just wait.
    leading: bool,
}

/// One queued create and where its answer goes.
pub(crate) struct Request {
    pub(crate) new: NewOrder,
    pub(crate) idempotency: Option<(String, String)>,
    pub(crate) actor: String,
    reply: Answer,
}

/// Where a queued create's answer goes.
enum Answer {
    /// A thread blocked in [`Store::insert_order`]: it may also be told to lead.
    Blocking(mpsc::Sender<Reply>),
    /// A future awaiting [`Store::queue_insert`]'s receiver: it never leads.
    Awaited(oneshot::Sender<Result<Inserted, StorageError>>),
}

impl Answer {
    /// Offers the lead; true if a blocked caller took it.
    fn offer_lead(&self) -> bool {
        match self {
            Answer::Blocking(tx) => tx.send(Reply::Lead).is_ok(),
            Answer::Awaited(_) => false,
        }
    }

    fn send(self, result: Result<Inserted, StorageError>) {
        match self {
            Answer::Blocking(tx) => {
                let _ = tx.send(Reply::Done(result));
            }
            Answer::Awaited(tx) => {
                let _ = tx.send(result);
            }
        }
    }
}

/// What a waiting create is told: its answer, or that it leads the next group.
enum Reply {
    Done(Result<Inserted, StorageError>),
    Lead,
}

impl Request {
    pub(crate) fn idempotency(&self) -> Option<Idempotency<'_>> {
        self.idempotency.as_ref().map(|(key, hash)| Idempotency {
            key,
            request_hash: hash,
        })
    }
}

impl GroupCommit {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // The queue is a Vec and a flag; a panic elsewhere cannot leave them inconsistent.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store {
    /// Stores a new PENDING order and its creation event; with an idempotency key, a repeat of
    /// the same request returns the original order instead. Concurrent calls share a commit
    /// (see the module docs); each returns once the commit holding its row is durable.
    pub fn insert_order(
        &self,
        new: &NewOrder,
        idempotency: Option<Idempotency<'_>>,
        actor: &str,
    ) -> Result<Inserted, StorageError> {
        let (reply, answer) = mpsc::channel();
        let lead = self.enqueue(new, idempotency, actor, Answer::Blocking(reply));
        let mut led = 0;
        if lead {
            led += self.lead_group();
        }
        loop {
            match answer.recv() {
                Ok(Reply::Done(result)) => {
                    self.group_commit()
                        .most_led
                        .fetch_max(led, Ordering::Relaxed);
                    return result;
                }
                // The previous leader handed over: this request is now first in the queue, so
                // the group committed next holds it, and its answer is the next message.
                Ok(Reply::Lead) => led += self.lead_group(),
                Err(_) => {
                    return Err(StorageError::Unavailable(
                        "the create was dropped by a failed group commit".into(),
                    ))
                }
            }
        }
    }

    /// How creates have been grouped into commits so far.
    pub fn group_commit_stats(&self) -> GroupCommitStats {
        let g = self.group_commit();
        GroupCommitStats {
            groups: g.groups.load(Ordering::Relaxed),
            creates: g.creates.load(Ordering::Relaxed),
            most_groups_led: g.most_led.load(Ordering::Relaxed),
        }
    }

    /// Sends a create its answer.
    fn answer(&self, r: Request, result: Result<Inserted, StorageError>) {
        self.group_commit().creates.fetch_add(1, Ordering::Relaxed);
        r.reply.send(result);
    }

    /// Commits one group, then hands the lead to the oldest blocked caller still waiting; if
    /// only awaited creates wait, it goes on committing until the queue is empty, and gives up
    /// the lead then. Returns the groups committed.
    fn lead_group(&self) -> u64 {
        let mut led = 0;
        loop {
            led += self.commit_next_group();
            let mut queue = self.group_commit().lock();
            if queue.waiting.is_empty() {
                queue.leading = false;
                return led;
            }
            // A waiter whose caller has gone cannot take the lead; its request still commits
            // with the group of whoever takes it.
            if queue.waiting.iter().any(|r| r.reply.offer_lead()) {
                return led;
            }
        }
    }

    /// Commits the oldest waiting creates, up to [`MAX_GROUP`], as one group. A panic while
    /// committing drops that group's answers (their callers get an error) but is not passed
    /// on, so the queue never loses its leader. Returns the groups committed: one, or none
    /// when the queue was empty.
    fn commit_next_group(&self) -> u64 {
        let group: Vec<Request> = {
            let mut queue = self.group_commit().lock();
            let n = queue.waiting.len().min(MAX_GROUP);
            queue.waiting.drain(..n).collect()
        };
        if group.is_empty() {
            return 0;
        }
        if catch_unwind(AssertUnwindSafe(|| self.commit_group(group))).is_err() {
            log::error!("a group commit of creates panicked; its callers got an error");
        }
        self.group_commit().groups.fetch_add(1, Ordering::Relaxed);
        1
    }

    /// Queues a create for the next group commit without blocking: the receiver gets its
    /// answer once the commit holding its row is durable (an error if the create was dropped
    /// by a failed group). When no one is committing, the caller also gets the
    /// [`GroupLeader`] that must run, on a thread that may block, for the queue to move.
    pub fn queue_insert(
        &self,
        new: &NewOrder,
        idempotency: Option<Idempotency<'_>>,
        actor: &str,
    ) -> (QueuedInsert, Option<GroupLeader>) {
        let (reply, answer) = oneshot::channel();
        let lead = self.enqueue(new, idempotency, actor, Answer::Awaited(reply));
        let leader = lead.then(|| GroupLeader {
            store: Some(self.clone()),
        });
        (QueuedInsert(answer), leader)
    }

    /// Queues a create; true if nobody was committing, so that the caller must lead.
    fn enqueue(
        &self,
        new: &NewOrder,
        idempotency: Option<Idempotency<'_>>,
        actor: &str,
        reply: Answer,
    ) -> bool {
        let mut queue = self.group_commit().lock();
        queue.waiting.push(Request {
            new: new.clone(),
            idempotency: idempotency.map(|i| (i.key.to_string(), i.request_hash.to_string())),
            actor: actor.to_string(),
            reply,
        });
        !std::mem::replace(&mut queue.leading, true)
    }

    /// One transaction for the whole group; if it fails, each request alone.
    fn commit_group(&self, group: Vec<Request>) {
        if group.len() == 1 {
            for r in group {
                let result = insert_alone(self, &r.new, r.idempotency(), &r.actor);
                self.answer(r, result);
            }
            return;
        }
        match self.write(|c| insert_in(c, &group)) {
            Ok(results) => {
                for (r, result) in group.into_iter().zip(results) {
                    self.answer(r, Ok(result));
                }
            }
            Err(e) => {
                log::debug!(
                    "group commit of {} creates failed ({e}); retrying each alone",
                    group.len()
                );
                for r in group {
                    let result = insert_alone(self, &r.new, r.idempotency(), &r.actor);
                    self.answer(r, result);
                }
            }
        }
    }
}

/// The answer to a create queued by [`Store::queue_insert`].
pub struct QueuedInsert(oneshot::Receiver<Result<Inserted, StorageError>>);

impl QueuedInsert {
    /// Waits for the commit holding the create (or its failure).
    pub async fn answer(self) -> Result<Inserted, StorageError> {
        self.0.await.unwrap_or_else(|_| {
            Err(StorageError::Unavailable(
                "the create was dropped by a failed group commit".into(),
            ))
        })
    }
}

/// The lead of a store's group commit, handed to the async caller that found no one
/// committing: [`GroupLeader::run`] commits groups until the queue is empty. It blocks on the
/// database, so it belongs on a blocking thread. Dropped without running, it runs where it
/// is dropped, so that the queue can never be left without a leader.
#[must_use = "the queued creates are committed only when the leader runs"]
pub struct GroupLeader {
    store: Option<Store>,
}

impl GroupLeader {
    /// Commits groups until no create waits, then gives up the lead.
    pub fn run(mut self) {
        if let Some(store) = self.store.take() {
            Self::lead(&store);
        }
    }

    fn lead(store: &Store) {
        loop {
            store.commit_next_group();
            let mut queue = store.group_commit().lock();
            if queue.waiting.is_empty() {
                queue.leading = false;
                return;
            }
        }
    }
}

impl Drop for GroupLeader {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            log::warn!("a group commit leader was dropped without running; running it here");
            Self::lead(&store);
        }
    }
}
