//! The scheduler's observer: turns what the scheduler thread reports into Prometheus metrics
//! ([`crate::metrics`]) and event-stream messages ([`crate::events`]). It runs on the
//! scheduler thread, so it only counts and hands over, never blocks.

use crate::events::{EventHub, SchedulerState};
use crate::metrics::Metrics;
use scheduler::SchedulerEvent;
use std::sync::Arc;

/// Builds the observer given to the scheduler; `instance_id` names this process in the
/// scheduler-state messages.
pub fn observer(
    metrics: Arc<Metrics>,
    events: Arc<EventHub>,
    instance_id: String,
) -> scheduler::Observer {
    Arc::new(move |event: &SchedulerEvent<'_>| {
        let state = |state: &'static str, error: Option<String>| SchedulerState {
            state,
            at: chrono::Utc::now(),
            instance_id: instance_id.clone(),
            error,
        };
        match event {
            SchedulerEvent::Moderated { orders, at } => {
                for o in orders.iter() {
                    let outcome = if o.status.is_approved() {
                        "approved"
                    } else {
                        "rejected"
                    };
                    metrics.moderated.with_label_values(&[outcome]).inc();
                    let late = (*at - o.hour_start_utc).num_microseconds().unwrap_or(0);
                    metrics.lateness.observe(late as f64 / 1e6);
                }
                // No poke here: the poller would read this batch's history while the pass
                // writes its next one, and on two cores that slowed the next batch by a
                // third (a burst's second batch: 7 ms instead of 3.5 for its UPDATE). The
                // poller's own tick (100 ms) publishes during a long pass; the end of the pass
                // pokes it.
            }
            SchedulerEvent::PassFinished {
                processed,
                duration,
            } if *processed > 0 => {
                metrics.pass_duration.observe(duration.as_secs_f64());
                events.poke();
            }
            SchedulerEvent::PassFinished { .. } => {}
            SchedulerEvent::Parked { .. } => metrics.parked.inc(),
            SchedulerEvent::Failed { error } => {
                metrics.failures.inc();
                // Batches committed before the failure are published now, not at the tick.
                events.poke();
                events.publish_scheduler(state("error", Some(error.to_string())));
            }
            SchedulerEvent::Started => events.publish_scheduler(state("started", None)),
            SchedulerEvent::Stopped => events.publish_scheduler(state("stopped", None)),
        }
    })
}
