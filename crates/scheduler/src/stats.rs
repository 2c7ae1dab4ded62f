//! The scheduler's figures: the percentile definition the whole workspace uses (status,
//! benchmark, tests), and the window of recent lateness samples the status summarises.
//!
//! One definition, so that a p99 in the status, in `docs/BENCHMARKS.md` and in a test
//! assertion mean the same thing.

use crate::report::LatenessSummary;
use std::collections::VecDeque;

/// The nearest-rank percentile of `sorted` (ascending): the smallest sample such that at least
/// `p` percent of the samples are less than or equal to it, i.e. the sample of rank
/// `⌈p/100 · n⌉` (1-based, at least 1). `p` is in percent, `0..=100` (values outside are
/// clamped to the first or last sample). `None` when there are no samples.
///
/// Nearest rank always returns an observed value (no interpolation), so a p99 lateness is a
/// lateness some order really had. With 100 samples `1..=100`, p50 is 50 and p99 is 99.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    // `as usize` saturates (negative and NaN give 0), and the clamp keeps the rank in 1..=n.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Most lateness samples kept: enough for a stable p99, small enough to sort per status call.
pub(crate) const LATENESS_WINDOW: usize = 4_096;

/// Lateness (moderation time minus due time, ms) of the most recent moderations, oldest
/// first; the oldest sample is dropped once [`LATENESS_WINDOW`] are held.
#[derive(Debug, Default)]
pub(crate) struct LatenessWindow {
    samples: VecDeque<i64>,
    /// The summary of `samples`, until the next push. Status is read far more often than
    /// orders are moderated (forty pollers, say), and sorting the window under the state
    /// lock once per read kept the scheduler waiting for that lock.
    summary: Option<LatenessSummary>,
}

impl LatenessWindow {
    /// Records one moderated order's lateness.
    pub(crate) fn push(&mut self, lateness_ms: i64) {
        if self.samples.len() == LATENESS_WINDOW {
            self.samples.pop_front();
        }
        self.samples.push_back(lateness_ms);
        self.summary = None;
    }

    /// The status's `lateness_ms`: last sample, p50, p99 and max of the window.
    pub(crate) fn summary(&mut self) -> LatenessSummary {
        if let Some(s) = &self.summary {
            return s.clone();
        }
        let s = self.compute();
        self.summary = Some(s.clone());
        s
    }

    fn compute(&self) -> LatenessSummary {
        let mut sorted: Vec<i64> = self.samples.iter().copied().collect();
        sorted.sort_unstable();
        LatenessSummary {
            last: self.samples.back().copied(),
            p50: percentile(&sorted, 50.0),
            p99: percentile(&sorted, 99.0),
            max: sorted.last().copied(),
            samples: sorted.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1), "rank is at least 1");
        assert_eq!(percentile(&[7u32], 99.0), Some(7));
        assert_eq!(percentile(&[1, 2, 3], 50.0), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), Some(2), "no interpolation");
        assert_eq!(percentile::<i64>(&[], 50.0), None);
    }

    #[test]
    fn lateness_window_keeps_the_most_recent_samples() {
        let mut w = LatenessWindow::default();
        assert_eq!(w.summary(), LatenessSummary::default());
        for ms in 0..(LATENESS_WINDOW as i64 + 10) {
            w.push(ms);
        }
        let s = w.summary();
        assert_eq!(w.summary(), s, "read twice, unchanged");
        w.push(1_000_000);
        assert_eq!(w.summary().max, Some(1_000_000), "a push is seen at once");
        w.push(0);
        assert_eq!(w.summary().last, Some(0));
        let mut w2 = LatenessWindow::default();
        for ms in 0..(LATENESS_WINDOW as i64 + 10) {
            w2.push(ms);
        }
        let s = w2.summary();
        assert_eq!(s.samples, LATENESS_WINDOW);
        assert_eq!(s.last, Some(LATENESS_WINDOW as i64 + 9));
        assert_eq!(s.max, s.last);
        // The ten oldest were dropped, so the window holds 10..=4105.
        assert_eq!(s.p50, Some(10 + LATENESS_WINDOW as i64 / 2 - 1));
    }
}
