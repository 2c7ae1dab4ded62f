//! Parked orders: pending orders the scheduler set aside because it could not decode or decide
//! them. List them (`GET /parked`), retry one or all (un-park, then wake the scheduler so its
//! next pass takes them) and discard one (rejected with "Discarded by operator: ...", recorded
//! in the history). Retry and discard are admin operations, like the scheduler controls.

use super::{blocking, order_id, resource};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use storage::{Discarded, ParkedOrder};
use utoipa::{IntoParams, OpenApi, ToSchema};

/// Registers the routes under the API prefix.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/parked").route(web::get().to(list)))
        .service(resource("/parked/retry").route(web::post().to(retry_all)))
        .service(resource("/parked/{id}/retry").route(web::post().to(retry_one)))
        .service(resource("/parked/{id}/discard").route(web::post().to(discard)));
}

/// The routes' part of the OpenAPI document (paths relative to the API prefix).
#[derive(OpenApi)]
#[openapi(
    paths(list, retry_all, retry_one, discard),
    components(schemas(ParkedList, ParkedItem, RetryReply, DiscardReply, DiscardBody))
)]
pub struct ParkedApi;

/// Orders retried and discarded through these routes since the process started (the parked
/// count itself is the database's, from [`storage::Store::parked_count`]).
static RETRIED: AtomicU64 = AtomicU64::new(0);
static DISCARDED: AtomicU64 = AtomicU64::new(0);

/// `(retried, discarded)` by this process since it started, for metrics.
pub fn operator_counts() -> (u64, u64) {
    (
        RETRIED.load(Ordering::Relaxed),
        DISCARDED.load(Ordering::Relaxed),
    )
}

/// One parked order, as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParkedItem {
    /// Order id.
    pub id: String,
    /// Why the scheduler set it aside.
    pub parked_reason: String,
    /// Due time, RFC 3339 UTC.
    pub hour_start_utc: String,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// Side as stored (possibly what failed to decode).
    pub side: String,
    /// Location as stored.
    pub location: String,
}

impl From<ParkedOrder> for ParkedItem {
    fn from(p: ParkedOrder) -> Self {
        Self {
            id: p.id,
            parked_reason: p.parked_reason,
            hour_start_utc: orders::format_ms(&p.hour_start_utc),
            created_at: orders::format_ms(&p.created_at),
            side: p.side,
            location: p.location,
        }
    }
}

/// `GET /parked`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParkedList {
    /// Parked orders in the database (all of them, not only those listed).
    pub count: i64,
    /// At most `limit` of them, oldest first.
    pub orders: Vec<ParkedItem>,
    /// Orders retried through this process since it started.
    pub retried_total: u64,
    /// Orders discarded through this process since it started.
    pub discarded_total: u64,
    /// Always `success`.
    #[schema(value_type = String, example = "success")]
    pub status: &'static str,
}

/// Query of `GET /parked`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Most orders listed, 1 to 1000 (default 100).
    pub limit: Option<i64>,
}

/// What a retry did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetryReply {
    /// Orders un-parked (0 when the id was not parked).
    pub retried: usize,
    /// Always `success`.
    #[schema(value_type = String, example = "success")]
    pub status: &'static str,
}

/// Body of a discard (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct DiscardBody {
    /// Why the operator discards it; appended to "Discarded by operator: ".
    #[serde(default)]
    pub reason: Option<String>,
}

/// What a discard did.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscardReply {
    /// Order id.
    pub id: String,
    /// Now `REJECTED`.
    #[schema(value_type = String, example = "REJECTED")]
    pub order_status: &'static str,
    /// The rejection reason written.
    pub reject_reason: String,
    /// Always `success`.
    #[schema(value_type = String, example = "success")]
    pub status: &'static str,
}

/// `GET /api/v1/parked`: parked orders and their count.
#[utoipa::path(get, path = "/parked", tag = "parked", params(ListQuery),
    responses((status = 200, description = "Parked orders", body = ParkedList),
        (status = 400, description = "Bad limit", body = ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest {
            code: "invalid_limit",
            detail: "limit must be between 1 and 1000".into(),
        });
    }
    let store = state.store.clone();
    let (count, orders) =
        blocking(move || Ok((store.parked_count()?, store.parked_list(limit)?))).await?;
    let (retried_total, discarded_total) = operator_counts();
    Ok(HttpResponse::Ok().json(ParkedList {
        count,
        orders: orders.into_iter().map(ParkedItem::from).collect(),
        retried_total,
        discarded_total,
        status: "success",
    }))
}

async fn retry(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: Option<String>,
) -> Result<HttpResponse, ApiError> {
    state.require_admin(&req)?;
    let store = state.store.clone();
    let which = id.clone();
    let retried = blocking(move || Ok(store.retry_parked(which.as_deref())?)).await?;
    if retried > 0 {
        RETRIED.fetch_add(retried as u64, Ordering::Relaxed);
        // Un-parked orders may be due already: the scheduler takes them now, not at its
        // next deadline.
        state.scheduler.wake();
        log::info!(
            "retried {retried} parked order(s){}",
            id.map(|i| format!(" ({i})")).unwrap_or_default()
        );
    }
    Ok(HttpResponse::Ok().json(RetryReply {
        retried,
        status: "success",
    }))
}

/// `POST /api/v1/parked/retry` (admin): un-parks every parked order.
#[utoipa::path(post, path = "/parked/retry", tag = "parked", security(("admin_token" = [])),
    responses((status = 200, description = "Un-parked", body = RetryReply),
        (status = 401, description = "Admin token missing or wrong", body = ErrorBody)))]
pub async fn retry_all(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    retry(state, req, None).await
}

/// `POST /api/v1/parked/{id}/retry` (admin): un-parks one order (`retried: 0` if it is not
/// parked).
#[utoipa::path(post, path = "/parked/{id}/retry", tag = "parked", security(("admin_token" = [])),
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, description = "Un-parked", body = RetryReply),
        (status = 401, description = "Admin token missing or wrong", body = ErrorBody)))]
pub async fn retry_one(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = order_id(&path.into_inner())?;
    retry(state, req, Some(id)).await
}

/// `POST /api/v1/parked/{id}/discard` (admin): rejects a parked order with "Discarded by
/// operator: <reason>". 409 if it is no longer parked, 404 if there is no such order.
#[utoipa::path(post, path = "/parked/{id}/discard", tag = "parked", security(("admin_token" = [])),
    params(("id" = String, Path, description = "Order id")),
    request_body(content = DiscardBody, description = "Optional reason"),
    responses((status = 200, description = "Discarded", body = DiscardReply),
        (status = 401, description = "Admin token missing or wrong", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 409, description = "Not parked (any more)", body = ErrorBody)))]
pub async fn discard(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state.require_admin(&req)?;
    let id = order_id(&path.into_inner())?;
    let body: DiscardBody = if body.iter().all(u8::is_ascii_whitespace) {
        DiscardBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest {
            code: "invalid_body",
            detail: format!("reason: {e}"),
        })?
    };
    let reason = body.reason.unwrap_or_default();
    if reason.chars().count() > 500 {
        return Err(ApiError::BadRequest {
            code: "invalid_reason",
            detail: "reason must be at most 500 characters".into(),
        });
    }
    let store = state.store.clone();
    let target = id.clone();
    let Discarded { id, reject_reason } = blocking(move || {
        store
            .discard_parked(&target, &reason, "api:operator")
            .map_err(|e| match e {
                storage::StorageError::Conflict(id) => ApiError::Conflict {
                    code: "not_parked",
                    detail: format!("order {id} is not parked (retried or moderated meanwhile)"),
                },
                other => other.into(),
            })
    })
    .await?;
    DISCARDED.fetch_add(1, Ordering::Relaxed);
    log::info!("discarded parked order {id}: {reject_reason}");
    Ok(HttpResponse::Ok().json(DiscardReply {
        id,
        order_status: "REJECTED",
        reject_reason,
        status: "success",
    }))
}
