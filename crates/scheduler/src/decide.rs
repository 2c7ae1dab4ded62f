//! The bridge between the moderator's pure policy and storage's claim: a closure that decides
//! one claimed order and records the inputs worth auditing.

use chrono::{DateTime, Utc};
use moderator::{decide, order_rng, Policy};
use orders::{Decision, Order};
use serde_json::json;
use storage::{ClaimScope, Decided, StorageError, Store};

use crate::report::{DueReport, Grouper};

/// Builds the decision closure for claims: seeded per order when `seed` is set (so an outcome
/// depends on nothing but seed, id and policy), else drawn from the thread's fast generator.
pub(crate) fn decider(
    policy: Policy,
    seed: Option<u64>,
) -> impl FnMut(&Order, DateTime<Utc>) -> Result<Decided, String> {
    let mut thread_rng = rand::rng();
    move |order, at| {
        let decision = match seed {
            Some(s) => decide(&policy, order, &mut order_rng(s, &order.id)),
            None => decide(&policy, order, &mut thread_rng),
        };
        let lateness_ms = (at - order.hour_start_utc).num_milliseconds();
        let mut details = json!({
            "approval_probability": policy.approval_probability(),
            "rt_lmp_base": policy.rt_lmp_base(),
            "rt_lmp_variance": policy.rt_lmp_variance(),
            "seed": seed,
            "lateness_ms": lateness_ms,
        });
        // The outcome too, so the history (and the event stream) is readable on its own.
        match &decision {
            Decision::Approved { rt_lmp } => details["rt_lmp"] = json!(rt_lmp),
            Decision::Rejected { reason } => details["reason"] = json!(reason),
        }
        Ok(Decided { decision, details })
    }
}

/// Moderates every pending order due at exactly `due`, now, whatever the scheduler is doing
/// (the original system's `POST /orders/moderate/{hour}` and the `moderate --hour` command).
/// Safe beside running schedulers: claims never overlap, and each order is moderated once.
pub fn moderate_due_time(
    store: &Store,
    policy: &Policy,
    seed: Option<u64>,
    due: DateTime<Utc>,
    actor: &str,
    batch_size: usize,
) -> Result<DueReport, StorageError> {
    let mut grouper = Grouper::with_due_times(1);
    let mut decide = decider(*policy, seed);
    loop {
        let r = store.claim_and_apply(ClaimScope::DueAt(due), batch_size, actor, &mut decide)?;
        grouper.add(&r.moderated, true);
        if r.claimed() < batch_size.max(1) {
            break;
        }
    }
    let approved = grouper.approved;
    let rejected = grouper.rejected;
    log::info!(
        "✅ Moderated {} orders for {} by {actor}: {approved} approved, {rejected} rejected",
        grouper.processed,
        orders::format_ms(&due)
    );
    Ok(grouper
        .into_reports()
        .into_iter()
        .next()
        .unwrap_or(DueReport {
            hour_start_utc: due,
            total_orders: 0,
            approved: 0,
            rejected: 0,
            approval_rate: 0.0,
            orders: Vec::new(),
        }))
}
