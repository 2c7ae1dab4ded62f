//! `GET /metrics`: every Prometheus metric in the text format, with the database gauges
//! refreshed first.

use super::{blocking, resource};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use utoipa::OpenApi;

/// Registers the route, at the root (not under the API prefix), where scrapers look.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/metrics").route(web::get().to(metrics)));
}

/// The route's part of the OpenAPI document (path from the root).
#[derive(OpenApi)]
#[openapi(paths(metrics))]
pub struct MetricsApi;

/// Refreshes the database gauges, then renders every metric.
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let summary =
        blocking(move || Ok(store.due_summary(chrono::Utc::now(), chrono::Duration::minutes(10))))
            .await?;
    let m = &state.metrics;
    if let Ok(s) = summary {
        m.due_now.set(s.pending_due_now);
        m.pending.set(s.pending_due_now + s.pending_later);
    }
    let (connections, idle) = state.store.pool_state();
    m.pool
        .with_label_values(&["in_use"])
        .set(i64::from(connections.saturating_sub(idle)));
    m.pool.with_label_values(&["idle"]).set(i64::from(idle));
    m.running.set(i64::from(state.scheduler.liveness().running));
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(m.render()))
}
