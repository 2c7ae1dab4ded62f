//! Liveness and readiness probes.

use super::blocking;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde_json::json;

/// `GET /api/v1/health/simple`: the process answers.
#[utoipa::path(get, path = "/api/v1/health/simple", tag = "meta",
    responses((status = 200, description = "The process answers")))]
pub async fn simple() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /api/v1/health`: the database answers and the scheduler thread is alive; 503 when the
/// database does not.
#[utoipa::path(get, path = "/api/v1/health", tag = "meta",
    responses((status = 200, description = "Database and scheduler state", body = crate::openapi::Health),
        (status = 503, description = "Database unavailable", body = crate::openapi::Health)))]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let db = blocking(move || Ok(store.ping())).await?;
    let status = state.scheduler.status_light();
    let body = |ok: bool, error: Option<String>| {
        json!({
            "status": if ok { "ok" } else { "unavailable" },
            "database": { "ok": ok, "backend": state.store.backend_name(), "error": error },
            "scheduler": { "running": status.0, "thread_alive": status.1 },
        })
    };
    Ok(match db {
        Ok(()) => HttpResponse::Ok().json(body(true, None)),
        Err(e) => {
            let mut b = body(false, Some(e.to_string()));
            b["detail"] = json!(format!("database unavailable: {e}"));
            b["code"] = json!("database_unavailable");
            HttpResponse::ServiceUnavailable().json(b)
        }
    })
}
