//! Request coalescing for listings: callers asking the same question at the same time share
//! one database read, without ever being answered from a read that began before they asked.
//!
//! A listing (the original system's `fetch_orders`, say: 400 rows read and serialised) costs
//! little alone, but forty dashboards polling it kept the database's cores busy enough to
//! delay the scheduler's passes on Postgres. A time-based cache would cut that, at the price
//! of answers older than the caller's own last write. Coalescing keeps that guarantee: each
//! read is numbered as it starts; a caller needs a read that starts after it arrived, so it
//! joins the read that has not started yet (or starts it), never the one in flight. Under a
//! storm, one read runs at a time per question and every caller that arrived while it ran
//! shares the next; at rest, every caller reads alone, as before.
//!
//! Answers are kept as the serialised body, so sharing one also shares its serialisation. A
//! failed read is not shared: the callers that waited for it each try again.

use actix_web::web::Bytes;
use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

/// Most distinct questions tracked; beyond it, idle ones are forgotten.
const MAX_KEYS: usize = 64;

/// Shared reads by question (a normalised query string).
#[derive(Default)]
pub struct Coalescer {
    inner: Mutex<HashMap<String, Slot>>,
    done: Condvar,
}

/// One question's reads.
#[derive(Default)]
struct Slot {
    /// Number of the last read started (reads are numbered from 1; 0: none yet).
    started: u64,
    /// Whether a read is running now.
    running: bool,
    /// The latest finished read: its number and its body (`None`: it failed).
    last: Option<(u64, Option<Bytes>)>,
    /// Callers waiting on this question.
    waiters: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain counters and a map; a panic elsewhere cannot leave them inconsistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Coalescer {
    /// The body for `key`, read by `read` now or shared from a read that started after this
    /// call began. Blocking: call it where blocking is allowed (a `web::block` thread).
    pub fn get<E>(&self, key: &str, read: impl Fn() -> Result<Bytes, E>) -> Result<Bytes, E> {
        let mut map = lock(&self.inner);
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            map.retain(|_, s| s.running || s.waiters > 0);
        }
        let slot = map.entry(key.to_string()).or_default();
        // Any read started so far (one may be running) began before this call: not good
        // enough. The next one to start will do.
        let need = slot.started + 1;
        slot.waiters += 1;
        loop {
            let slot = map.entry(key.to_string()).or_default();
            match &slot.last {
                Some((n, Some(body))) if *n >= need => {
                    let body = body.clone();
                    slot.waiters -= 1;
                    return Ok(body);
                }
                _ => {}
            }
            if !slot.running {
                // Start the read this caller needs: numbered after every read started so far,
                // so at least `need`.
                slot.started += 1;
                let number = slot.started;
                slot.running = true;
                slot.waiters -= 1;
                drop(map);
                let result = read();
                let mut map = lock(&self.inner);
                let slot = map.entry(key.to_string()).or_default();
                slot.running = false;
                slot.last = Some((number, result.as_ref().ok().cloned()));
                self.done.notify_all();
                return result;
            }
            map = self.done.wait(map).unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    /// At rest every call reads for itself: a caller always sees a read that began after it
    /// asked.
    #[test]
    fn sequential_calls_each_read() {
        let c = Coalescer::default();
        let reads = AtomicUsize::new(0);
        for i in 1..=3 {
            let body = c
                .get("k", || {
                    let n = reads.fetch_add(1, Ordering::SeqCst) + 1;
                    Ok::<_, ()>(Bytes::from(n.to_string()))
                })
                .expect("read");
            assert_eq!(body, Bytes::from(i.to_string()));
        }
    }

    /// Callers arriving while a read runs share the next read, not the running one, and
    /// that next read starts after all of them arrived.
    #[test]
    fn callers_during_a_read_share_the_next_one() {
        let c = Arc::new(Coalescer::default());
        let reads = Arc::new(AtomicUsize::new(0));
        let first_started = Arc::new(Barrier::new(2));
        let slow = {
            let (c, reads, first_started) = (c.clone(), reads.clone(), first_started.clone());
            std::thread::spawn(move || {
                c.get("k", || {
                    let n = reads.fetch_add(1, Ordering::SeqCst) + 1;
                    first_started.wait();
                    std::thread::sleep(Duration::from_millis(200));
                    Ok::<_, ()>(Bytes::from(n.to_string()))
                })
                .expect("read")
            })
        };
        first_started.wait();
        let late: Vec<_> = (0..8)
            .map(|_| {
                let (c, reads) = (c.clone(), reads.clone());
                std::thread::spawn(move || {
                    c.get("k", || {
                        let n = reads.fetch_add(1, Ordering::SeqCst) + 1;
                        std::thread::sleep(Duration::from_millis(50));
                        Ok::<_, ()>(Bytes::from(n.to_string()))
                    })
                    .expect("read")
                })
            })
            .collect();
        assert_eq!(slow.join().expect("slow"), Bytes::from("1"));
        let bodies: Vec<Bytes> = late.into_iter().map(|t| t.join().expect("late")).collect();
        assert!(
            bodies.iter().all(|b| b != &Bytes::from("1")),
            "a caller was answered from a read that began before it asked: {bodies:?}"
        );
        let total = reads.load(Ordering::SeqCst);
        assert!(
            total < 1 + 8,
            "{total} reads for 9 callers: the late ones should have shared"
        );
    }

    /// A failed read is not shared: a caller that waited for it reads again.
    #[test]
    fn failures_are_not_shared() {
        let c = Coalescer::default();
        assert!(c.get("k", || Err::<Bytes, _>("down")).is_err());
        let body = c
            .get("k", || Ok::<_, &str>(Bytes::from_static(b"ok")))
            .expect("read again");
        assert_eq!(body, Bytes::from_static(b"ok"));
    }
}
