//! Small statistics: median (min–max) summaries of repeated runs, the load average, and the
//! percentile of samples (re-exported from the scheduler, whose status uses the same one).

use serde::Serialize;

/// The median of several runs with their spread.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary {
    /// Median of the runs (mean of the middle two for an even count).
    pub median: f64,
    /// Smallest run.
    pub min: f64,
    /// Largest run.
    pub max: f64,
}

impl Summary {
    /// Summarises run values; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        };
        Some(Summary {
            median,
            min: v[0],
            max: v[v.len() - 1],
        })
    }

    /// `median (min–max)` with `decimals` decimals.
    pub fn show(&self, decimals: usize) -> String {
        format!(
            "{:.d$} ({:.d$}–{:.d$})",
            self.median,
            self.min,
            self.max,
            d = decimals
        )
    }
}

/// The workspace's one percentile definition (nearest rank, `p` in percent), shared with the
/// scheduler's status so that a p99 means the same in both.
pub use scheduler::stats::percentile;

/// The 1-minute load average (`/proc/loadavg`), to show how busy the shared machine was.
pub fn loadavg_1m() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Summarises one field of every run.
pub fn summarise<R>(runs: &[R], field: impl Fn(&R) -> f64) -> Option<Summary> {
    Summary::of(&runs.iter().map(field).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).map(|s| (s.median, s.min, s.max));
        assert_eq!(s, Some((2.0, 1.0, 3.0)));
        assert_eq!(Summary::of(&[1.0, 2.0]).map(|s| s.median), Some(1.5));
    }
}
