//! `GET /api/v1/retention`: what the retention sweeper has deleted in this process, and its
//! setting (`retain_closed_days`, absent when retention is off).

use crate::error::ApiError;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use std::sync::atomic::Ordering;
use utoipa::{OpenApi, ToSchema};

/// Registers the route under the API prefix.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/retention").route(web::get().to(status)));
}

/// The route's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(status), components(schemas(RetentionStatus)))]
pub struct RetentionApi;

/// The sweeper's totals in this process.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionStatus {
    /// Whether `--retain-closed-days` is set.
    pub enabled: bool,
    /// The setting, when enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retain_closed_days: Option<u64>,
    /// Closed orders deleted by this process since it started.
    pub deleted_orders: u64,
    /// History rows deleted with them.
    pub deleted_events: u64,
    /// Sweeps this process completed while holding the lock.
    pub sweeps: u64,
    /// End of the last completed sweep (RFC 3339), if any.
    pub last_sweep_at: Option<String>,
    /// The last sweep's error, if it failed.
    pub last_error: Option<String>,
}

/// Reads the process-wide totals.
pub fn snapshot() -> RetentionStatus {
    let s = crate::retention::stats();
    let days = s.retain_days.load(Ordering::Relaxed);
    let last = s.last_sweep_ms.load(Ordering::Relaxed);
    RetentionStatus {
        enabled: days > 0,
        retain_closed_days: (days > 0).then_some(days),
        deleted_orders: s.deleted_orders.load(Ordering::Relaxed),
        deleted_events: s.deleted_events.load(Ordering::Relaxed),
        sweeps: s.sweeps.load(Ordering::Relaxed),
        last_sweep_at: (last > 0)
            .then(|| chrono::DateTime::from_timestamp_millis(last))
            .flatten()
            .map(|t| orders::format_ms(&t)),
        last_error: s
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    }
}

/// `GET /api/v1/retention`: the retention sweeper's setting and totals.
#[utoipa::path(get, path = "/retention", tag = "maintenance",
    responses((status = 200, description = "Retention totals", body = RetentionStatus)))]
pub async fn status() -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(snapshot()))
}
