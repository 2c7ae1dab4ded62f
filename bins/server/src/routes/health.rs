//! Liveness and readiness probes.

use super::{blocking, resource};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// Registers the routes under the API prefix.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/health/simple").route(web::get().to(simple)))
        .service(resource("/health").route(web::get().to(ready)));
}

/// The routes' part of the OpenAPI document (paths relative to the API prefix).
#[derive(OpenApi)]
#[openapi(
    paths(simple, ready),
    components(schemas(Alive, Health, DatabaseHealth, SchedulerHealth))
)]
pub struct HealthApi;

/// `{"status": "ok"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Alive {
    /// Always `ok`.
    #[schema(value_type = String, example = "ok")]
    pub status: &'static str,
}

/// The readiness answer; on 503 it also carries the error shape's `detail` and `code`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `database_unavailable` on 503; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub code: Option<&'static str>,
    /// Whether the database answers.
    pub database: DatabaseHealth,
    /// Why the database does not answer; absent when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Whether the scheduler runs.
    pub scheduler: SchedulerHealth,
    /// `ok` or `unavailable`.
    #[schema(value_type = String, pattern = "^(ok|unavailable)$")]
    pub status: &'static str,
}

/// The database part of [`Health`].
#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseHealth {
    /// `postgres` or `sqlite`.
    #[schema(value_type = String)]
    pub backend: &'static str,
    /// The driver's error when the database does not answer.
    pub error: Option<String>,
    /// Whether a query succeeded.
    pub ok: bool,
}

/// The scheduler part of [`Health`].
#[derive(Debug, Serialize, ToSchema)]
pub struct SchedulerHealth {
    /// The loop moderates due orders by itself (false after a stop).
    pub running: bool,
    /// The scheduler thread is alive (it stays alive while stopped).
    pub thread_alive: bool,
}

/// `GET /api/v1/health/simple`: the process answers.
#[utoipa::path(get, path = "/health/simple", tag = "meta",
    responses((status = 200, description = "The process answers", body = Alive)))]
pub async fn simple() -> HttpResponse {
    HttpResponse::Ok().json(Alive { status: "ok" })
}

/// `GET /api/v1/health`: the database answers and the scheduler thread is alive; 503 when the
/// database does not.
#[utoipa::path(get, path = "/health", tag = "meta",
    responses((status = 200, description = "Database and scheduler state", body = Health),
        (status = 503, description = "Database unavailable", body = Health)))]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let db = blocking(move || Ok(store.ping())).await?;
    let liveness = state.scheduler.liveness();
    let health = |error: Option<String>| Health {
        code: error.as_ref().map(|_| "database_unavailable"),
        database: DatabaseHealth {
            backend: state.store.backend_name(),
            ok: error.is_none(),
            error: error.clone(),
        },
        detail: error.as_ref().map(|e| format!("database unavailable: {e}")),
        scheduler: SchedulerHealth {
            running: liveness.running,
            thread_alive: liveness.thread_alive,
        },
        status: if error.is_none() { "ok" } else { "unavailable" },
    };
    Ok(match db {
        Ok(()) => HttpResponse::Ok().json(health(None)),
        Err(e) => HttpResponse::ServiceUnavailable().json(health(Some(e.to_string()))),
    })
}
