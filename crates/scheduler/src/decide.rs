//! The bridge between the moderator and storage's claim: a closure that decides one claimed
//! order with the configured [`Moderator`] (policy and price source) and records what was used
//! (source, priced interval) and the inputs worth auditing.

use chrono::{DateTime, Utc};
use moderator::{order_rng, Moderator, Outcome, Policy};
use orders::{Decision, Order, RT_SOURCE};
use serde_json::json;
use storage::{ClaimScope, Decided, StorageError, Store};

use crate::report::{DueReport, Grouper};

/// The original's moderator for a [`Policy`]: its random policy over its simulated prices,
/// bit for bit the decisions [`moderator::decide`] makes. The simulated range queries (the
/// market routes) are seeded with `seed`.
pub(crate) fn original_moderator(policy: &Policy, seed: Option<u64>) -> Moderator {
    Moderator::new(
        policy.random_policy(),
        policy.simulated_prices().with_seed(seed.unwrap_or(0)),
    )
}

/// What storage records for an outcome. An approval priced by a recorded source writes that
/// source's name and the interval priced; one priced by the original's simulated model keeps
/// the original's record (`SIMULATED_RT`, the 5-minute interval of the moderation time).
pub(crate) fn decided(outcome: Outcome, details: serde_json::Value) -> Decided {
    let recorded = outcome
        .rt_source()
        .zip(outcome.rt_interval_start_utc())
        .filter(|(source, _)| *source != RT_SOURCE)
        .map(|(source, interval)| (source.to_string(), interval));
    Decided {
        decision: outcome.decision,
        details,
        rt_source: recorded.as_ref().map(|(s, _)| s.clone()),
        rt_interval_start_utc: recorded.map(|(_, t)| t),
    }
}

/// Builds the decision closure for claims: seeded per order when `seed` is set (so an outcome
/// depends on nothing but seed, id, policy and prices), else drawn from the thread's fast
/// generator.
pub(crate) fn decider(
    moderator: Moderator,
    seed: Option<u64>,
) -> impl FnMut(&Order, DateTime<Utc>) -> Result<Decided, String> {
    let mut thread_rng = rand::rng();
    let policy = moderator.policy().describe();
    move |order, at| {
        let outcome = match seed {
            Some(s) => moderator.decide(order, &mut order_rng(s, &order.id)),
            None => moderator.decide(order, &mut thread_rng),
        };
        let lateness_ms = (at - order.hour_start_utc).num_milliseconds();
        let mut details = json!({
            "policy": policy,
            "price_source": moderator.prices().name(),
            "seed": seed,
            "lateness_ms": lateness_ms,
        });
        // The outcome too, so the history (and the event stream) is readable on its own.
        match &outcome.decision {
            Decision::Approved { rt_lmp } => details["rt_lmp"] = json!(rt_lmp),
            Decision::Rejected { reason } => details["reason"] = json!(reason),
        }
        if let Some(q) = &outcome.quote {
            // The price consulted, also for a rejection (a clearing policy's "did not cross").
            details["quote"] = json!({
                "source": &*q.source,
                "interval_start_utc": orders::format_ms(&q.price.interval_start_utc),
                "lmp": q.price.lmp,
            });
        }
        Ok(decided(outcome, details))
    }
}

/// Moderates every pending order due at exactly `due`, now, whatever the scheduler is doing
/// (the original system's `POST /orders/moderate/{hour}` and the `moderate --hour` command),
/// with the original's random policy over simulated prices, both from `policy`. Safe beside
/// running schedulers: claims never overlap, and each order is moderated once.
pub fn moderate_due_time(
    store: &Store,
    policy: &Policy,
    seed: Option<u64>,
    due: DateTime<Utc>,
    actor: &str,
    batch_size: usize,
) -> Result<DueReport, StorageError> {
    moderate_due_time_with(
        store,
        &original_moderator(policy, seed),
        seed,
        due,
        actor,
        batch_size,
    )
}

/// [`moderate_due_time`] with any [`Moderator`]: a configured policy and price source, or the
/// original's random policy with per-request parameters over the configured source (see
/// [`moderator::Moderator::from_shared`]).
pub fn moderate_due_time_with(
    store: &Store,
    moderator: &Moderator,
    seed: Option<u64>,
    due: DateTime<Utc>,
    actor: &str,
    batch_size: usize,
) -> Result<DueReport, StorageError> {
    let mut grouper = Grouper::with_due_times(1);
    let mut decide = decider(moderator.clone(), seed);
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
        "✅ Moderated {} orders for {} by {actor} ({}): {approved} approved, {rejected} rejected",
        grouper.processed,
        orders::format_ms(&due),
        moderator.describe(),
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
