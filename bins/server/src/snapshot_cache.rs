//! Answers that cost in proportion to the whole book (positions' totals), shared between
//! callers for up to [`SnapshotCache::max_age`] — but only once they have become expensive.
//!
//! Each answer is still read from one snapshot. An answer that took less than `min_cost` to
//! read is never reused: on a small book every caller sees its own writes at once, as a
//! dashboard that has just cancelled an order expects. One that took longer is reused, whole,
//! by the callers that ask within the next second, and refreshed by one of them at a time (the
//! others meanwhile get the previous answer). Forty dashboards polling positions then cost the database one
//! aggregate a second per distinct query instead of forty, which is what kept the request pool
//! busy for seconds at a million orders. Keys come from clients, so the map is bounded.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Most distinct queries remembered; the oldest is forgotten beyond it.
const MAX_ENTRIES: usize = 64;

/// Shared answers by query key.
pub struct SnapshotCache<T> {
    max_age: Duration,
    min_cost: Duration,
    inner: Mutex<Inner<T>>,
}

struct Inner<T> {
    /// Answer, when it was read, and how long reading it took.
    entries: HashMap<String, (Instant, Duration, Arc<T>)>,
    refreshing: HashSet<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain maps; a panic elsewhere cannot leave them inconsistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<T> SnapshotCache<T> {
    /// A cache whose answers are reused for up to `max_age`, once reading one took at least
    /// `min_cost`.
    pub fn new(max_age: Duration, min_cost: Duration) -> Self {
        Self {
            max_age,
            min_cost,
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                refreshing: HashSet::new(),
            }),
        }
    }

    /// How long an answer is reused.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// The answer for `key`: the cached one while fresh, or while another caller is
    /// refreshing it; else `compute`d now (an error is returned, not cached).
    pub fn get_or_compute<E>(
        &self,
        key: &str,
        compute: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        {
            let mut inner = lock(&self.inner);
            let cached = inner.entries.get(key).cloned();
            if let Some((at, cost, value)) = &cached {
                let worth_sharing = *cost >= self.min_cost;
                if worth_sharing && (at.elapsed() < self.max_age || inner.refreshing.contains(key))
                {
                    return Ok(Arc::clone(value));
                }
            }
            inner.refreshing.insert(key.to_string());
        }
        let started = Instant::now();
        let result = compute().map(Arc::new);
        let cost = started.elapsed();
        let mut inner = lock(&self.inner);
        inner.refreshing.remove(key);
        if let Ok(value) = &result {
            if inner.entries.len() >= MAX_ENTRIES && !inner.entries.contains_key(key) {
                let oldest = inner
                    .entries
                    .iter()
                    .min_by_key(|(_, (at, _, _))| *at)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    inner.entries.remove(&k);
                }
            }
            inner
                .entries
                .insert(key.to_string(), (Instant::now(), cost, Arc::clone(value)));
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cheap_answers_are_never_shared() {
        let cache = SnapshotCache::new(Duration::from_secs(60), Duration::from_millis(50));
        let mut calls = 0;
        for _ in 0..3 {
            let _ = cache.get_or_compute("k", || {
                calls += 1;
                Ok::<_, ()>(calls)
            });
        }
        assert_eq!(calls, 3, "each caller read its own answer");
        let slow = cache
            .get_or_compute("slow", || {
                std::thread::sleep(Duration::from_millis(60));
                Ok::<_, ()>(1)
            })
            .expect("computed");
        let again = cache
            .get_or_compute("slow", || Ok::<_, ()>(2))
            .expect("cached");
        assert_eq!((*slow, *again), (1, 1), "an expensive answer is shared");
    }

    #[test]
    fn fresh_answers_are_shared_and_stale_ones_recomputed() {
        let cache = SnapshotCache::new(Duration::from_millis(200), Duration::ZERO);
        let mut calls = 0;
        let mut get = |cache: &SnapshotCache<u32>| {
            *cache
                .get_or_compute("k", || {
                    calls += 1;
                    Ok::<_, ()>(calls)
                })
                .expect("computed")
        };
        assert_eq!(get(&cache), 1);
        assert_eq!(get(&cache), 1, "fresh: shared");
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(get(&cache), 2, "stale: recomputed");
    }

    #[test]
    fn errors_are_not_cached_and_keys_are_bounded() {
        let cache = SnapshotCache::new(Duration::from_secs(60), Duration::ZERO);
        assert!(cache.get_or_compute("e", || Err::<u32, _>("down")).is_err());
        assert_eq!(
            *cache.get_or_compute("e", || Ok::<_, ()>(7)).expect("ok"),
            7
        );
        for i in 0..(MAX_ENTRIES + 10) {
            let _ = cache.get_or_compute(&i.to_string(), || Ok::<_, ()>(0));
        }
        assert!(lock(&cache.inner).entries.len() <= MAX_ENTRIES);
    }
}
