//! `GET /metrics`: every Prometheus metric in the text format. The database gauges come from
//! the scheduler's shared status (counts at most a second old, shared by every caller), never
//! from a query per scrape; the pending total, which counts the whole book, is cached for
//! [`BOOK_CACHE`] and refreshed by at most one background task at a time.

use super::{blocking, resource};
use crate::error::ApiError;
use crate::metrics::BOOK_CACHE;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use std::sync::atomic::Ordering;
use std::time::Instant;
use utoipa::OpenApi;

/// Registers the route, at the root (not under the API prefix), where scrapers look.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/metrics").route(web::get().to(metrics)));
}

/// The route's part of the OpenAPI document (path from the root).
#[derive(OpenApi)]
#[openapi(paths(metrics))]
pub struct MetricsApi;

/// Sets the database gauges from the scheduler's status, then renders every metric.
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let sched = state.scheduler.clone();
    // `status()` may have to refresh its shared counts (bounded queries, at most once a second
    // for every caller together), so it runs off the async workers.
    let status = blocking(move || Ok(sched.status())).await?;
    let m = &state.metrics;
    let cached_later = refresh_book_in_background(&state);
    if let Some(n) = status.pending_due_now {
        m.due_now.set(n);
        if let Some(later) = cached_later {
            m.pending.set(n + later);
        }
    }
    if let Some(n) = status.upcoming_10_min {
        m.due_10_min.set(n);
    }
    if let Some(n) = status.parked {
        m.parked_now.set(n);
    }
    if let Some(at) = status.counts_computed_at {
        let age = (chrono::Utc::now() - at).num_milliseconds().max(0);
        m.counts_age.set(age as f64 / 1000.0);
    }
    let (connections, idle) = state.store.pool_state();
    m.pool
        .with_label_values(&["in_use"])
        .set(i64::from(connections.saturating_sub(idle)));
    m.pool.with_label_values(&["idle"]).set(i64::from(idle));
    m.running.set(i64::from(status.running));
    let (retried, discarded) = super::parked::operator_counts();
    crate::metrics::mirror(&m.parked_retried, retried);
    crate::metrics::mirror(&m.parked_discarded, discarded);
    let retention = crate::retention::stats();
    crate::metrics::mirror(
        &m.retention_orders,
        retention.deleted_orders.load(Ordering::Relaxed),
    );
    crate::metrics::mirror(
        &m.retention_events,
        retention.deleted_events.load(Ordering::Relaxed),
    );
    crate::metrics::mirror(
        &m.retention_sweeps,
        retention.sweeps.load(Ordering::Relaxed),
    );
    m.retention_last_sweep
        .set(retention.last_sweep_ms.load(Ordering::Relaxed) as f64 / 1000.0);
    let grouped = state.store.group_commit_stats();
    crate::metrics::mirror(&m.create_groups, grouped.groups);
    crate::metrics::mirror(&m.create_grouped, grouped.creates);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(m.render()))
}

/// The cached count of pending orders due later than now, if one was ever read; starts one
/// background refresh when it is older than [`BOOK_CACHE`] and none is running.
fn refresh_book_in_background(state: &web::Data<AppState>) -> Option<i64> {
    let m = &state.metrics;
    let cached = *m.book.lock().unwrap_or_else(|p| p.into_inner());
    let stale = cached.is_none_or(|(at, _)| at.elapsed() >= BOOK_CACHE);
    if stale
        && m.book_refreshing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    {
        let state = state.clone();
        actix_web::rt::spawn(async move {
            let store = state.store.clone();
            let counted = web::block(move || store.book_counts(chrono::Utc::now())).await;
            match counted {
                Ok(Ok(counts)) => {
                    *state.metrics.book.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((Instant::now(), counts.pending_later));
                }
                Ok(Err(e)) => log::warn!("cannot count pending orders for metrics: {e}"),
                Err(e) => log::warn!("cannot count pending orders for metrics: {e}"),
            }
            state
                .metrics
                .book_refreshing
                .store(false, Ordering::Release);
        });
    }
    cached.map(|(_, n)| n)
}
