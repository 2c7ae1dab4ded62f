//! Scheduler status and control: the seed's `/api/v1/scheduler/*` routes.

use super::blocking;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

/// `GET /api/v1/scheduler/status`
#[utoipa::path(get, path = "/api/v1/scheduler/status", tag = "scheduler",
    responses((status = 200, description = "Status", body = crate::openapi::StatusReply)))]
pub async fn status(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let sched = state.scheduler.clone();
    let status = blocking(move || Ok(sched.status())).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "success", "scheduler": status })))
}

/// `POST /api/v1/scheduler/start` (admin)
#[utoipa::path(post, path = "/api/v1/scheduler/start", tag = "scheduler", security(("admin_token" = [])),
    responses((status = 200, description = "Started", body = crate::openapi::StatusReply), (status = 401, description = "Admin token missing or wrong", body = crate::openapi::Error)))]
pub async fn start(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.require_admin(&req)?;
    let sched = state.scheduler.clone();
    let status = blocking(move || {
        sched.start()?;
        Ok(sched.status())
    })
    .await?;
    log::info!("scheduler started through the API");
    Ok(HttpResponse::Ok().json(json!({
        "status": "success", "message": "Scheduler started", "scheduler": status,
    })))
}

/// `POST /api/v1/scheduler/stop` (admin): takes effect after the batch in progress.
#[utoipa::path(post, path = "/api/v1/scheduler/stop", tag = "scheduler", security(("admin_token" = [])),
    responses((status = 200, description = "Stopped", body = crate::openapi::StatusReply), (status = 401, description = "Admin token missing or wrong", body = crate::openapi::Error)))]
pub async fn stop(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.require_admin(&req)?;
    let sched = state.scheduler.clone();
    let status = blocking(move || {
        sched.stop()?;
        Ok(sched.status())
    })
    .await?;
    log::info!("scheduler stopped through the API");
    Ok(HttpResponse::Ok().json(json!({
        "status": "success", "message": "Scheduler stopped", "scheduler": status,
    })))
}

/// `POST /api/v1/scheduler/force-run` (admin): moderates everything due now, even while
/// stopped, and reports it grouped by due time.
#[utoipa::path(post, path = "/api/v1/scheduler/force-run", tag = "scheduler", security(("admin_token" = [])),
    responses((status = 200, description = "What was moderated, by due time", body = crate::openapi::ForceRunReply), (status = 401, description = "Admin token missing or wrong", body = crate::openapi::Error),
        (status = 503, description = "Database unavailable", body = crate::openapi::Error)))]
pub async fn force_run(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state.require_admin(&req)?;
    let sched = state.scheduler.clone();
    let report = blocking(move || Ok(sched.force_run()?)).await?;
    Ok(HttpResponse::Ok().json(json!({
        "status": "success",
        "message": format!("Processed {} orders", report.processed),
        "result": report,
    })))
}
