//! The scheduler's status and controls, at the original system's `/api/v1/scheduler/*` paths:
//! read the status, start and stop the loop, and force a pass now.

use super::{blocking, resource};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use scheduler::{PassReport, Status};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// Registers the routes under the API prefix.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/scheduler/status").route(web::get().to(status)))
        .service(resource("/scheduler/start").route(web::post().to(start)))
        .service(resource("/scheduler/stop").route(web::post().to(stop)))
        .service(resource("/scheduler/force-run").route(web::post().to(force_run)));
}

/// The routes' part of the OpenAPI document (paths relative to the API prefix).
#[derive(OpenApi)]
#[openapi(
    paths(status, start, stop, force_run),
    components(schemas(StatusReply, ForceRunReply))
)]
pub struct SchedulerApi;

/// `{"status": "success", "scheduler": {...}}`, with a `message` after start and stop.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusReply {
    /// `Scheduler started` or `Scheduler stopped`; absent on a status read.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub message: Option<&'static str>,
    /// The scheduler's state and counters.
    pub scheduler: Status,
    /// Always `success`.
    #[schema(value_type = String, example = "success")]
    pub status: &'static str,
}

/// What a forced pass did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ForceRunReply {
    /// `Processed N orders`.
    pub message: String,
    /// The pass, grouped by due time.
    pub result: PassReport,
    /// Always `success`.
    #[schema(value_type = String, example = "success")]
    pub status: &'static str,
}

/// `GET /api/v1/scheduler/status`: state, counters, lateness and the last error.
#[utoipa::path(get, path = "/scheduler/status", tag = "scheduler",
    responses((status = 200, description = "Status", body = StatusReply)))]
pub async fn status(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let sched = state.scheduler.clone();
    let status = blocking(move || Ok(sched.status())).await?;
    Ok(HttpResponse::Ok().json(StatusReply {
        message: None,
        scheduler: status,
        status: "success",
    }))
}

/// `POST /api/v1/scheduler/start` (admin): the loop moderates due orders by itself again.
#[utoipa::path(post, path = "/scheduler/start", tag = "scheduler", security(("admin_token" = [])),
    responses((status = 200, description = "Started", body = StatusReply),
        (status = 401, description = "Admin token missing or wrong", body = ErrorBody)))]
pub async fn start(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.require_admin(&req)?;
    let sched = state.scheduler.clone();
    let status = blocking(move || {
        sched.start()?;
        Ok(sched.status())
    })
    .await?;
    log::info!("scheduler started through the API");
    Ok(HttpResponse::Ok().json(StatusReply {
        message: Some("Scheduler started"),
        scheduler: status,
        status: "success",
    }))
}

/// `POST /api/v1/scheduler/stop` (admin): takes effect after the batch in progress.
#[utoipa::path(post, path = "/scheduler/stop", tag = "scheduler", security(("admin_token" = [])),
    responses((status = 200, description = "Stopped", body = StatusReply),
        (status = 401, description = "Admin token missing or wrong", body = ErrorBody)))]
pub async fn stop(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.require_admin(&req)?;
    let sched = state.scheduler.clone();
    let status = blocking(move || {
        sched.stop()?;
        Ok(sched.status())
    })
    .await?;
    log::info!("scheduler stopped through the API");
    Ok(HttpResponse::Ok().json(StatusReply {
        message: Some("Scheduler stopped"),
        scheduler: status,
        status: "success",
    }))
}

/// `POST /api/v1/scheduler/force-run` (admin): moderates everything due now, even while
/// stopped, and reports it grouped by due time.
#[utoipa::path(post, path = "/scheduler/force-run", tag = "scheduler", security(("admin_token" = [])),
    responses((status = 200, description = "What was moderated, by due time", body = ForceRunReply),
        (status = 401, description = "Admin token missing or wrong", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody)))]
pub async fn force_run(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state.require_admin(&req)?;
    let sched = state.scheduler.clone();
    let report = blocking(move || Ok(sched.force_run()?)).await?;
    Ok(HttpResponse::Ok().json(ForceRunReply {
        message: format!("Processed {} orders", report.processed),
        result: report,
        status: "success",
    }))
}
