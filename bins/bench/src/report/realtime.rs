//! The report's part for issue 11 (on time under real conditions): lateness (c) under a busy
//! API over a big book, lateness (d) of orders from other processes, and the idle cost of a
//! server holding a big book; their entries, targets and table sections.

use super::{show, Report};
use crate::busy::BusyRun;
use crate::cross::{CrossCase, CrossRun};
use crate::db::Backend;
use crate::idle::IdleRun;
use crate::stats::{summarise, Summary};
use serde::Serialize;
use std::fmt::Write as _;

/// Lateness (c) on one backend.
#[derive(Debug, Serialize)]
pub struct BusyEntry {
    backend: Backend,
    book: usize,
    orders: usize,
    clients: usize,
    p50_ms: Option<Summary>,
    p99_ms: Option<Summary>,
    max_ms: Option<Summary>,
    /// Created orders answered after their due time, over all runs.
    created_after_due: usize,
    in_time_p50_ms: Option<Summary>,
    in_time_p99_ms: Option<Summary>,
    in_time_max_ms: Option<Summary>,
    /// API answers over all runs.
    api_answers: usize,
    /// Non-2xx (or unanswered) API polls over all runs.
    api_non_2xx: usize,
    /// Order creations over all runs.
    creates: usize,
    /// Non-2xx (or unanswered) creations over all runs.
    create_non_2xx: usize,
    api_p99_ms: Option<Summary>,
    runs: Vec<BusyRun>,
}

/// Lateness (d), one case on one backend.
#[derive(Debug, Serialize)]
pub struct CrossEntry {
    backend: Backend,
    case: CrossCase,
    orders: usize,
    p50_ms: Option<Summary>,
    p99_ms: Option<Summary>,
    max_ms: Option<Summary>,
    runs: Vec<CrossRun>,
}

/// Idle cost on one backend.
#[derive(Debug, Serialize)]
pub struct IdleEntry {
    backend: Backend,
    book: usize,
    wall_s: Option<Summary>,
    cpu_s: Option<Summary>,
    cpu_pct: Option<Summary>,
    runs: Vec<IdleRun>,
}

/// Summarises a figure over the runs that have it.
fn summarise_some(runs: &[BusyRun], field: impl Fn(&BusyRun) -> Option<i64>) -> Option<Summary> {
    let v: Vec<f64> = runs
        .iter()
        .filter_map(|r| field(r).map(|x| x as f64))
        .collect();
    Summary::of(&v)
}

/// The target of lateness (c): p99 at most this many ms late.
const BUSY_P99_MS: f64 = 10.0;
/// The target of lateness (d).
const CROSS_P99_MS: f64 = 50.0;
/// The idle target, percent of one core.
const IDLE_CPU_PCT: f64 = 1.0;

impl Report {
    /// Adds the busy-API lateness runs of one backend.
    pub fn add_busy(&mut self, backend: Backend, runs: Vec<BusyRun>) {
        let first = runs.first();
        self.busy.push(BusyEntry {
            backend,
            book: first.map_or(0, |r| r.book),
            orders: first.map_or(0, |r| r.orders),
            clients: first.map_or(0, |r| r.clients),
            p50_ms: summarise(&runs, |r| r.p50_ms as f64),
            p99_ms: summarise(&runs, |r| r.p99_ms as f64),
            max_ms: summarise(&runs, |r| r.max_ms as f64),
            created_after_due: runs.iter().map(|r| r.created_after_due).sum(),
            in_time_p50_ms: summarise_some(&runs, |r| r.in_time_p50_ms),
            in_time_p99_ms: summarise_some(&runs, |r| r.in_time_p99_ms),
            in_time_max_ms: summarise_some(&runs, |r| r.in_time_max_ms),
            api_answers: runs.iter().map(|r| r.api_answers).sum(),
            api_non_2xx: runs.iter().map(|r| r.api_non_2xx).sum(),
            creates: runs.iter().map(|r| r.orders + r.create_non_2xx).sum(),
            create_non_2xx: runs.iter().map(|r| r.create_non_2xx).sum(),
            api_p99_ms: summarise(&runs, |r| r.api_p99_ms),
            runs,
        });
    }

    /// Adds the runs of one cross-process case on one backend.
    pub fn add_cross(&mut self, backend: Backend, case: CrossCase, runs: Vec<CrossRun>) {
        self.cross.push(CrossEntry {
            backend,
            case,
            orders: runs.first().map_or(0, |r| r.orders),
            p50_ms: summarise(&runs, |r| r.p50_ms as f64),
            p99_ms: summarise(&runs, |r| r.p99_ms as f64),
            max_ms: summarise(&runs, |r| r.max_ms as f64),
            runs,
        });
    }

    /// Adds the idle runs of one backend.
    pub fn add_idle(&mut self, backend: Backend, runs: Vec<IdleRun>) {
        self.idle.push(IdleEntry {
            backend,
            book: runs.first().map_or(0, |r| r.book),
            wall_s: summarise(&runs, |r| r.wall_s),
            cpu_s: summarise(&runs, |r| r.cpu_s),
            cpu_pct: summarise(&runs, |r| r.cpu_pct),
            runs,
        });
    }

    /// Whether any API answer under the busy load was not 2xx.
    pub(super) fn realtime_errors(&self) -> bool {
        self.busy
            .iter()
            .any(|b| b.api_non_2xx > 0 || b.create_non_2xx > 0)
    }

    /// The targets of issue 11, against the medians.
    pub(super) fn realtime_targets(&self, add: &mut impl FnMut(String, String, String, bool)) {
        for b in &self.busy {
            let name = b.backend.name();
            if let Some(p99) = b.p99_ms {
                add(
                    format!(
                        "lateness (c) {name} p99, {} orders, {} clients over a {} book",
                        b.orders, b.clients, b.book
                    ),
                    format!("{:.0} ms", p99.median),
                    format!("<= {BUSY_P99_MS:.0} ms"),
                    p99.median <= BUSY_P99_MS,
                );
            }
            add(
                format!("lateness (c) {name} API answers 2xx"),
                format!(
                    "{} non-2xx of {} polls, {} of {} creates",
                    b.api_non_2xx, b.api_answers, b.create_non_2xx, b.creates
                ),
                "every answer 2xx".into(),
                b.api_non_2xx == 0 && b.create_non_2xx == 0,
            );
        }
        for c in &self.cross {
            if let Some(p99) = c.p99_ms {
                add(
                    format!(
                        "lateness {} {} p99, {} orders",
                        c.case.label(),
                        c.backend.name(),
                        c.orders
                    ),
                    format!("{:.0} ms", p99.median),
                    format!("<= {CROSS_P99_MS:.0} ms"),
                    p99.median <= CROSS_P99_MS,
                );
            }
        }
        for i in &self.idle {
            if let Some(pct) = i.cpu_pct {
                add(
                    format!("idle cost {} holding a {} book", i.backend.name(), i.book),
                    format!("{:.2} % of one core", pct.median),
                    format!("<= {IDLE_CPU_PCT:.0} %"),
                    pct.median <= IDLE_CPU_PCT,
                );
            }
        }
    }

    /// The table sections of issue 11.
    pub(super) fn realtime_table(&self, t: &mut String) {
        if !self.busy.is_empty() || !self.cross.is_empty() {
            let _ = writeln!(t, "\n## Lateness under real conditions (issue 11), ms late");
            let _ = writeln!(
                t,
                "{:<9} {:<36} | {:<16} | {:<16} | {:<18} | API answers",
                "db", "case", "p50", "p99", "max"
            );
            for b in &self.busy {
                let _ = writeln!(
                    t,
                    "{:<9} {:<36} | {:<16} | {:<16} | {:<18} | polls {} non-2xx of {} (p99 {} ms), \
                     creates {} non-2xx of {}",
                    b.backend.name(),
                    format!(
                        "(c) {} due, {} clients, {} book",
                        b.orders, b.clients, b.book
                    ),
                    show(b.p50_ms, 0),
                    show(b.p99_ms, 0),
                    show(b.max_ms, 0),
                    b.api_non_2xx,
                    b.api_answers,
                    show(b.api_p99_ms, 1),
                    b.create_non_2xx,
                    b.creates,
                );
                let _ = writeln!(
                    t,
                    "{:<9} {:<36} | {:<16} | {:<16} | {:<18} | {} created after their due time",
                    b.backend.name(),
                    "(c) only those created before due",
                    show(b.in_time_p50_ms, 0),
                    show(b.in_time_p99_ms, 0),
                    show(b.in_time_max_ms, 0),
                    b.created_after_due,
                );
            }
            for c in &self.cross {
                let _ = writeln!(
                    t,
                    "{:<9} {:<36} | {:<16} | {:<16} | {:<18} | -",
                    c.backend.name(),
                    format!("{}, {} orders", c.case.label(), c.orders),
                    show(c.p50_ms, 0),
                    show(c.p99_ms, 0),
                    show(c.max_ms, 0),
                );
            }
        }
        if !self.idle.is_empty() {
            let _ = writeln!(t, "\n## Idle cost (server holding a future book)");
            let _ = writeln!(
                t,
                "{:<9} {:>9} | {:<22} | {:<22} | {:<22}",
                "db", "book", "wall s", "CPU s", "% of one core"
            );
            for i in &self.idle {
                let _ = writeln!(
                    t,
                    "{:<9} {:>9} | {:<22} | {:<22} | {:<22}",
                    i.backend.name(),
                    i.book,
                    show(i.wall_s, 1),
                    show(i.cpu_s, 2),
                    show(i.cpu_pct, 2),
                );
            }
        }
    }
}
