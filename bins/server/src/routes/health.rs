//! Liveness and readiness probes.
//!
//! Liveness (`/health/simple`) says the process answers. Readiness (`/health`) says it can do
//! its job: the database answers, the scheduler thread is alive, and the scheduler's passes
//! have not been failing without a success for longer than `--unready-after-secs`. An
//! orchestrator that stops routing to (or restarts) an unready instance thus replaces one
//! whose scheduler is dead or stuck, which a 200 with `thread_alive: false` never did.

use super::{blocking, resource};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use scheduler::Liveness;
use serde::Serialize;
use std::time::Duration;
use utoipa::{OpenApi, ToSchema};

/// How long failing passes are tolerated before readiness fails; registered as app data by
/// the application (absent: [`Readiness::DEFAULT_UNREADY_AFTER`]).
#[derive(Debug, Clone, Copy)]
pub struct Readiness {
    /// Failing passes without a success for longer than this make the instance unready.
    pub unready_after: Duration,
}

impl Readiness {
    /// The default tolerance, as `--unready-after-secs` defaults to.
    pub const DEFAULT_UNREADY_AFTER: Duration = Duration::from_secs(60);

    /// Why the instance is not ready, as an error code and a sentence; `None` when it is.
    /// The database's own failure is checked first, since it explains a failing scheduler.
    pub fn verdict(
        &self,
        database_error: Option<&str>,
        scheduler: &Liveness,
        now: DateTime<Utc>,
    ) -> Option<(&'static str, String)> {
        if let Some(e) = database_error {
            return Some(("database_unavailable", format!("database unavailable: {e}")));
        }
        if !scheduler.thread_alive {
            return Some((
                "scheduler_dead",
                "the scheduler thread is not alive".to_string(),
            ));
        }
        let failing_for = scheduler
            .failing_since
            .and_then(|since| (now - since).to_std().ok())?;
        (failing_for > self.unready_after).then(|| {
            (
                "scheduler_failing",
                format!(
                    "scheduler passes have failed for {} s without a success (limit {} s)",
                    failing_for.as_secs(),
                    self.unready_after.as_secs()
                ),
            )
        })
    }
}

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
    /// On 503, what is wrong: `database_unavailable`, `scheduler_dead` or `scheduler_failing`;
    /// absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub code: Option<&'static str>,
    /// Whether the database answers.
    pub database: DatabaseHealth,
    /// Why the instance is not ready; absent when it is.
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
    /// When the current run of failed passes began; `null` while passes succeed.
    #[serde(serialize_with = "orders::time::serde_ms::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub failing_since: Option<DateTime<Utc>>,
}

/// `GET /api/v1/health/simple`: the process answers.
#[utoipa::path(get, path = "/health/simple", tag = "meta",
    responses((status = 200, description = "The process answers", body = Alive)))]
pub async fn simple() -> HttpResponse {
    HttpResponse::Ok().json(Alive { status: "ok" })
}

/// `GET /api/v1/health`: ready when the database answers, the scheduler thread is alive and
/// its passes have not been failing for longer than `--unready-after-secs`; 503 otherwise.
#[utoipa::path(get, path = "/health", tag = "meta",
    responses((status = 200, description = "Database and scheduler state", body = Health),
        (status = 503, description = "Database unavailable, scheduler thread dead, or scheduler \
            failing for too long", body = Health)))]
pub async fn ready(
    state: web::Data<AppState>,
    readiness: Option<web::Data<Readiness>>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let db = blocking(move || Ok(store.ping())).await?;
    let liveness = state.scheduler.liveness();
    let readiness = readiness.map_or(
        Readiness {
            unready_after: Readiness::DEFAULT_UNREADY_AFTER,
        },
        |r| **r,
    );
    let db_error = db.err().map(|e| e.to_string());
    let verdict = readiness.verdict(db_error.as_deref(), &liveness, Utc::now());
    let health = Health {
        code: verdict.as_ref().map(|(code, _)| *code),
        database: DatabaseHealth {
            backend: state.store.backend_name(),
            ok: db_error.is_none(),
            error: db_error,
        },
        detail: verdict.as_ref().map(|(_, detail)| detail.clone()),
        scheduler: SchedulerHealth {
            running: liveness.running,
            thread_alive: liveness.thread_alive,
            failing_since: liveness.failing_since,
        },
        status: if verdict.is_none() {
            "ok"
        } else {
            "unavailable"
        },
    };
    Ok(if verdict.is_none() {
        HttpResponse::Ok().json(health)
    } else {
        HttpResponse::ServiceUnavailable().json(health)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(failing_since: Option<DateTime<Utc>>) -> Liveness {
        Liveness {
            running: true,
            thread_alive: true,
            failing_since,
        }
    }

    const READINESS: Readiness = Readiness {
        unready_after: Duration::from_secs(60),
    };

    #[test]
    fn ready_while_passes_succeed_or_fail_briefly() {
        let now = Utc::now();
        assert_eq!(READINESS.verdict(None, &alive(None), now), None);
        let brief = alive(Some(now - chrono::Duration::seconds(59)));
        assert_eq!(READINESS.verdict(None, &brief, now), None);
    }

    #[test]
    fn unready_when_failing_too_long_or_dead_or_database_down() {
        let now = Utc::now();
        let long = alive(Some(now - chrono::Duration::seconds(61)));
        let (code, detail) = READINESS.verdict(None, &long, now).expect("unready");
        assert_eq!(code, "scheduler_failing");
        assert!(detail.contains("61 s"), "{detail}");
        let dead = Liveness {
            thread_alive: false,
            ..alive(None)
        };
        assert_eq!(
            READINESS.verdict(None, &dead, now).map(|v| v.0),
            Some("scheduler_dead")
        );
        // A stopped scheduler is a decision, not a fault: still ready.
        let stopped = Liveness {
            running: false,
            ..alive(None)
        };
        assert_eq!(READINESS.verdict(None, &stopped, now), None);
        assert_eq!(
            READINESS.verdict(Some("refused"), &long, now).map(|v| v.0),
            Some("database_unavailable")
        );
    }
}
