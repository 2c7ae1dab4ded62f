//! The scheduler's status and controls, at the original system's `/api/v1/scheduler/*` paths:
//! read the status, start and stop the loop, and force a pass now.

use super::legacy::ModerationResult;
use super::{blocking, resource};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use scheduler::{DueResult, PassReport, SchedulerError, Status};
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
    components(schemas(
        StatusReply,
        ForceRunReply,
        ForceRunResult,
        ForceRunEntry,
        AcceptedReply
    ))
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
    pub result: ForceRunResult,
    /// Always `success`.
    #[schema(value_type = String, example = "success")]
    pub status: &'static str,
}

/// The original system's force-run result: every due time the pass moderated, each with its
/// `moderation_result` in the same shape as the moderate route's.
#[derive(Debug, Serialize, ToSchema)]
pub struct ForceRunResult {
    /// Orders moderated, all due times included (also those beyond the list's cap).
    pub processed: usize,
    /// One entry per due time, soonest first (at most 10,000).
    pub results: Vec<ForceRunEntry>,
    /// Present (and true) only when more due times were moderated than listed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub results_truncated: bool,
    /// When the pass ended.
    #[serde(with = "::orders::time::serde_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: chrono::DateTime<chrono::Utc>,
}

/// One due time of a forced pass.
#[derive(Debug, Serialize, ToSchema)]
pub struct ForceRunEntry {
    /// The due time (repeated from `moderation_result`, as the original system did).
    #[serde(with = "::orders::time::serde_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub hour_start_utc: chrono::DateTime<chrono::Utc>,
    /// Orders moderated for it.
    pub orders_count: usize,
    /// Counts and the moderated orders, each with `order_id`.
    pub moderation_result: ModerationResult,
}

// Field by field, so a field added to the scheduler's report fails to compile here.
impl From<PassReport> for ForceRunResult {
    fn from(report: PassReport) -> Self {
        let PassReport {
            processed,
            results,
            results_truncated,
            timestamp,
        } = report;
        Self {
            processed,
            results: results
                .into_iter()
                .map(|r| {
                    let DueResult {
                        hour_start_utc,
                        orders_count,
                        moderation_result,
                    } = r;
                    ForceRunEntry {
                        hour_start_utc,
                        orders_count,
                        moderation_result: moderation_result.into(),
                    }
                })
                .collect(),
            results_truncated,
            timestamp,
        }
    }
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
        (status = 202, description = "Accepted; applied when the running pass ends", body = AcceptedReply),
        (status = 401, description = "Admin token missing or wrong", body = ErrorBody)))]
pub async fn start(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.require_admin(&req)?;
    let sched = state.scheduler.clone();
    let (done, status) = blocking(move || {
        let done = sched.start();
        Ok((done, sched.status()))
    })
    .await?;
    log::info!("scheduler start requested through the API");
    control_reply(done, status, "Scheduler started", "start")
}

/// `POST /api/v1/scheduler/stop` (admin): takes effect after the batch in progress.
#[utoipa::path(post, path = "/scheduler/stop", tag = "scheduler", security(("admin_token" = [])),
    responses((status = 200, description = "Stopped", body = StatusReply),
        (status = 202, description = "Accepted; applied when the running pass ends", body = AcceptedReply),
        (status = 401, description = "Admin token missing or wrong", body = ErrorBody)))]
pub async fn stop(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.require_admin(&req)?;
    let sched = state.scheduler.clone();
    let (done, status) = blocking(move || {
        let done = sched.stop();
        Ok((done, sched.status()))
    })
    .await?;
    log::info!("scheduler stop requested through the API");
    control_reply(done, status, "Scheduler stopped", "stop")
}

/// `POST /api/v1/scheduler/force-run` (admin): moderates everything due now, even while
/// stopped, and reports it grouped by due time.
#[utoipa::path(post, path = "/scheduler/force-run", tag = "scheduler", security(("admin_token" = [])),
    responses((status = 200, description = "What was moderated, by due time", body = ForceRunReply),
        (status = 202, description = "The pass outlived the wait and goes on", body = AcceptedReply),
        (status = 401, description = "Admin token missing or wrong", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody)))]
pub async fn force_run(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state.require_admin(&req)?;
    let sched = state.scheduler.clone();
    let (done, status) = blocking(move || {
        let done = sched.force_run();
        // Only needed when the pass outlived the wait; cheap (shared counts).
        let status = matches!(done, Err(SchedulerError::Timeout(_))).then(|| sched.status());
        Ok((done, status))
    })
    .await?;
    match (done, status) {
        (Ok(report), _) => Ok(HttpResponse::Ok().json(ForceRunReply {
            message: format!("Processed {} orders", report.processed),
            result: report.into(),
            status: "success",
        })),
        (Err(SchedulerError::Timeout(waited)), Some(status)) => {
            Ok(still_running(&status, "force-run", waited))
        }
        (Err(e), _) => Err(e.into()),
    }
}

/// What a control call answers: 200 once the scheduler thread applied it, 202 when the
/// thread is still busy with a long pass after the handle's wait (the command stays queued
/// and takes effect when the pass ends), an error otherwise.
pub fn control_reply(
    done: Result<(), SchedulerError>,
    status: Status,
    message: &'static str,
    action: &str,
) -> Result<HttpResponse, ApiError> {
    match done {
        Ok(()) => Ok(HttpResponse::Ok().json(StatusReply {
            message: Some(message),
            scheduler: status,
            status: "success",
        })),
        Err(SchedulerError::Timeout(waited)) => Ok(still_running(&status, action, waited)),
        Err(e) => Err(e.into()),
    }
}

/// `{"status": "accepted", "message", "scheduler"}` with 202: the call was accepted and the
/// scheduler thread is still in a pass; the status shows when it takes effect.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedReply {
    /// What was accepted and where to watch for its effect.
    pub message: String,
    /// The scheduler's state when the answer was sent.
    pub scheduler: Status,
    /// Always `accepted`.
    #[schema(value_type = String, example = "accepted")]
    pub status: &'static str,
}

fn still_running(status: &Status, action: &str, waited: std::time::Duration) -> HttpResponse {
    log::warn!(
        "scheduler {action}: the scheduler thread is still in a pass after {}s; answering 202",
        waited.as_secs()
    );
    HttpResponse::Accepted().json(AcceptedReply {
        message: format!(
            "{action} accepted; the scheduler is still running a pass after {} s and applies \
             it when the pass ends: watch GET /api/v1/scheduler/status and the event stream",
            waited.as_secs()
        ),
        scheduler: status.clone(),
        status: "accepted",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::StatusCode;

    /// Issue 12 item 9: a control call the scheduler thread does not answer within the
    /// handle's wait answers 202 with the status, never 500.
    #[test]
    fn a_pass_that_outlives_the_wait_is_accepted_not_an_error() {
        let db = storage::testing::TestDb::new(storage::testing::Backend::Sqlite)
            .expect("SQLite is always available");
        let store =
            storage::Store::open(&db.url, &storage::PoolConfig::default()).expect("store opens");
        let sched = scheduler::Scheduler::builder(store)
            .autostart(false)
            .spawn()
            .expect("scheduler spawns");
        let status = sched.status();
        let reply = control_reply(
            Err(SchedulerError::Timeout(std::time::Duration::from_secs(60))),
            status.clone(),
            "Scheduler started",
            "start",
        );
        assert_eq!(reply.map(|r| r.status()).ok(), Some(StatusCode::ACCEPTED));
        let gone = control_reply(Err(SchedulerError::ThreadGone), status, "x", "stop");
        let code = gone
            .err()
            .map(|e| actix_web::ResponseError::status_code(&e));
        assert_eq!(code, Some(StatusCode::SERVICE_UNAVAILABLE));
    }
}
