//! `GET /metrics`: Prometheus text format.

use super::blocking;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{web, HttpResponse};

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
    m.running.set(i64::from(state.scheduler.status_light().0));
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(m.render()))
}
