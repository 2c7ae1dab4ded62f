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

use crate::error::StorageError;
use crate::insert::{insert_alone, insert_in, Idempotency, Inserted};
use crate::store::Store;
use ::orders::NewOrder;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};

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
    /// The most groups one create committed, as leader, before returning to its caller: one
    /// while the lead is handed on after every group. (A leader that kept the lead until the
    /// queue ran dry committed every group of a sustained load and answered its own caller
    /// last.)
    pub most_groups_led: u64,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Request>,
    /// Whether a caller is committing groups; new requests then just wait.
    leading: bool,
}

/// One queued create and where its answer goes.
pub(crate) struct Request {
    pub(crate) new: NewOrder,
    pub(crate) idempotency: Option<(String, String)>,
    pub(crate) actor: String,
    reply: mpsc::Sender<Reply>,
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
        let lead = {
            let mut queue = self.group_commit().lock();
            queue.waiting.push(Request {
                new: new.clone(),
                idempotency: idempotency.map(|i| (i.key.to_string(), i.request_hash.to_string())),
                actor: actor.to_string(),
                reply,
            });
            !std::mem::replace(&mut queue.leading, true)
        };
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
        let _ = r.reply.send(Reply::Done(result));
    }

    /// Commits one group, then hands the lead to the oldest waiting request, or gives it up
    /// when none waits. A panic while committing drops that group's answer channels (their
    /// callers get an error) but never leaves the queue without a leader. Returns the groups
    /// committed: one, or none when the queue was empty.
    fn lead_group(&self) -> u64 {
        let group: Vec<Request> = {
            let mut queue = self.group_commit().lock();
            let n = queue.waiting.len().min(MAX_GROUP);
            queue.waiting.drain(..n).collect()
        };
        let led = u64::from(!group.is_empty());
        if !group.is_empty() {
            if catch_unwind(AssertUnwindSafe(|| self.commit_group(group))).is_err() {
                log::error!("a group commit of creates panicked; its callers got an error");
            }
            self.group_commit().groups.fetch_add(1, Ordering::Relaxed);
        }
        let mut queue = self.group_commit().lock();
        // A waiter whose caller has gone cannot take the lead; its request still commits with
        // the group of whoever takes it.
        let handed = queue
            .waiting
            .iter()
            .any(|r| r.reply.send(Reply::Lead).is_ok());
        if !handed {
            queue.leading = false;
        }
        led
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
