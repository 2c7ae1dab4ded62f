//! HTTP routes. Each module registers its own routes (`configure`) and documents them (an
//! OpenAPI fragment that the `openapi` module merges): `legacy` keeps the original system's
//! routes and shapes; `orders` is the JSON order API and `batch` its batch create;
//! `scheduler_api` shows and controls the scheduler; `parked` lists, retries and discards
//! parked orders; `retention` reports deletions; `health` answers probes; `events` streams
//! changes; `metrics_endpoint` serves Prometheus; `dashboard` serves the page.

pub mod batch;
pub mod dashboard;
pub mod events;
pub mod health;
pub mod legacy;
pub mod market;
pub mod metrics_endpoint;
pub mod orders;
pub mod parked;
pub mod retention;
pub mod scheduler_api;

use crate::error::ApiError;
use actix_web::{web, HttpRequest, HttpResponse};

/// Prefix of every JSON route; the modules' paths and their documents are relative to it.
pub const API_PREFIX: &str = "/api/v1";

/// Registers every route of the server except the OpenAPI document's own (see
/// `openapi::configure`, which must come first; this module does not depend on it).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(API_PREFIX)
            // The original system's routes first, so `/orders/fake` and `/orders/moderate`
            // win over `/orders/{id}`.
            .configure(legacy::configure)
            .configure(scheduler_api::configure)
            .configure(health::configure)
            // Before `orders`, whose `/orders/{id}` would answer 405 to `POST /orders/batch`.
            .configure(batch::configure)
            .configure(orders::configure)
            .configure(parked::configure)
            .configure(retention::configure)
            .configure(events::configure)
            .configure(market::configure),
    )
    .configure(metrics_endpoint::configure)
    .configure(dashboard::configure)
    .default_service(web::to(not_found));
}

/// The dashboard's page and files: registered by [`dashboard::configure`], not part of the
/// OpenAPI document (they are not API operations), listed here for the route list.
pub const DASHBOARD_ROUTES: &[&str] = &["/", "/dashboard/{asset}"];

/// A resource whose other methods answer 405 in the API's JSON error shape.
pub fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|req: HttpRequest| async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed(req.method().to_string()))
    }))
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound(format!(
        "{} {}",
        req.method(),
        req.path()
    )))
}

/// Stores a new order through the store's group commit without holding a thread while it
/// waits: the create is queued and its answer awaited. If nobody is committing, this request
/// starts the leader on the blocking pool, where it commits every group that queues until the
/// queue is empty; this request is answered with its own group, like the others.
pub async fn insert_order(
    store: &storage::Store,
    new: &::orders::NewOrder,
    idempotency: Option<storage::Idempotency<'_>>,
    actor: &str,
) -> Result<storage::Inserted, ApiError> {
    let (answer, leader) = store.queue_insert(new, idempotency, actor);
    if let Some(leader) = leader {
        // Not awaited: the answer arrives through `answer`. Dropping the handle detaches it.
        drop(actix_web::rt::task::spawn_blocking(move || leader.run()));
    }
    Ok(answer.answer().await?)
}

/// Runs blocking database work on actix's blocking pool, never on an async worker.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    web::block(f).await?
}

/// Checks an order id taken from a path: ids are UUIDs, so anything outside letters, digits,
/// `-` and `_` (a path traversal, quotes, spaces) is refused before any query.
pub fn order_id(raw: &str) -> Result<String, ApiError> {
    checked_id(raw, "invalid_order_id", "order id")
}

/// Checks a pagination cursor (the last order id of the previous page), with its own code.
pub fn cursor(raw: &str) -> Result<String, ApiError> {
    checked_id(
        raw,
        "invalid_cursor",
        "cursor (the next_cursor of the previous page)",
    )
}

fn checked_id(raw: &str, code: &'static str, what: &str) -> Result<String, ApiError> {
    let ok = (1..=64).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(raw.to_string())
    } else {
        Err(ApiError::BadRequest {
            code,
            detail: format!("{what} must be 1 to 64 letters, digits, '-' or '_'"),
        })
    }
}

/// Reads a due time from a URL, where an unencoded `+` of an offset arrives as a space
/// (`...T10:00:00 05:30`); that one space is put back before parsing.
pub fn due_time_param(name: &str, raw: &str) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    let fixed = match raw.rfind(' ') {
        Some(i) if raw.len() - i == 6 && raw.as_bytes()[i + 3] == b':' => {
            format!("{}+{}", &raw[..i], &raw[i + 1..])
        }
        _ => raw.to_string(),
    };
    ::orders::parse_due_time(&fixed).map_err(|e| ApiError::BadRequest {
        code: e.code(),
        detail: format!("{name}: {e}"),
    })
}
