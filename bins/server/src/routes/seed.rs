//! The original system's routes, parameters and JSON shapes, unchanged so its front end and
//! scripts keep working: create a fake order, PATCH its status, moderate one hour, and
//! `fetch_orders`.

use super::{blocking, due_time_param, order_id};
use crate::error::ApiError;
use crate::query::Params;
use crate::state::AppState;
use ::orders::{format_ms, Location, NewOrder, NewOrderFields, OrderStatus, Price};
use actix_web::{web, HttpRequest, HttpResponse};
use moderator::Policy;
use serde_json::json;
use storage::ManualChange;

/// `POST /api/v1/orders/fake?side=&qty_mwh=&limit_price=&hour_start_utc=&location=&location_type=`
#[utoipa::path(post, path = "/api/v1/orders/fake", tag = "original",
    params(
        ("side" = String, Query, description = "BUY or SELL, any case"),
        ("qty_mwh" = String, Query, description = "MWh, > 0 and <= 10000, at most 3 decimals"),
        ("limit_price" = String, Query, description = "$/MWh, -1000 to 10000, at most 2 decimals"),
        ("hour_start_utc" = String, Query, description = "Due time, RFC 3339 with an offset"),
        ("location" = Option<String>, Query, description = "Default PJM-RTO"),
        ("location_type" = Option<String>, Query, description = "HUB, ZONE (default), GEN or NODE"),
    ),
    responses((status = 200, description = "Created", body = crate::openapi::FakeOrderReply), (status = 400, description = "Bad input", body = crate::openapi::Error), (status = 503, description = "Database unavailable", body = crate::openapi::Error)))]
pub async fn create_fake_order(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let p = Params::parse(
        req.query_string(),
        &[
            "side",
            "qty_mwh",
            "limit_price",
            "hour_start_utc",
            "location",
            "location_type",
        ],
    )?;
    let due = p
        .get("hour_start_utc")
        .map(|raw| due_time_param("hour_start_utc", raw))
        .transpose()?;
    let due_text = due.map(|t| format_ms(&t));
    let new = NewOrder::from_fields(&NewOrderFields {
        side: p.get("side"),
        qty_mwh: p.get("qty_mwh"),
        limit_price: p.get("limit_price"),
        hour_start_utc: due_text.as_deref(),
        location: p.get("location"),
        location_type: p.get("location_type"),
    })?;
    let due = new.hour_start_utc();
    let store = state.store.clone();
    let inserted = blocking(move || Ok(store.insert_order(&new, None, "api")?)).await?;
    state.scheduler.notify_due(due);
    let order = inserted.order;
    Ok(HttpResponse::Ok().json(json!({
        "status": "success",
        "message": format!("Fake {} order for {} MWh created, due {}", order.side, order.qty_mwh, format_ms(&due)),
        "order_id": order.id,
        "order": order,
    })))
}

/// `PATCH /api/v1/orders/fake/{order_id}?status=&approval_rt_lmp=&approval_rt_source=&reject_reason=`
/// (admin): a manual status change, legal transitions only.
#[utoipa::path(patch, path = "/api/v1/orders/fake/{order_id}", tag = "original",
    security(("admin_token" = [])),
    params(
        ("order_id" = String, Path, description = "Order id"),
        ("status" = String, Query, description = "Target status; legal transitions only"),
        ("approval_rt_lmp" = Option<String>, Query, description = "Required to approve, $/MWh"),
        ("approval_rt_source" = Option<String>, Query, description = "Default MANUAL"),
        ("reject_reason" = Option<String>, Query, description = "Default 'Manual rejection'"),
    ),
    responses((status = 200, description = "Updated", body = crate::openapi::PatchReply), (status = 401, description = "Admin token missing or wrong", body = crate::openapi::Error),
        (status = 404, description = "Unknown order", body = crate::openapi::Error),
        (status = 409, description = "Illegal transition", body = crate::openapi::Error), (status = 400, description = "Bad input", body = crate::openapi::Error), (status = 503, description = "Database unavailable", body = crate::openapi::Error)))]
pub async fn patch_fake_order(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.require_admin(&req)?;
    let id = order_id(&path)?;
    let p = Params::parse(
        req.query_string(),
        &[
            "status",
            "approval_rt_lmp",
            "approval_rt_source",
            "reject_reason",
        ],
    )?;
    let to = p
        .parsed::<OrderStatus>("status")?
        .ok_or_else(|| ApiError::BadRequest {
            code: "missing_parameter",
            detail: "status is required".into(),
        })?;
    let rt_lmp = match p.get("approval_rt_lmp") {
        None => None,
        Some(raw) => {
            let price = Price::parse(raw)
                .map_err(|e| ApiError::invalid(format!("approval_rt_lmp: {e}")))?;
            if price.scaled() < 1 || price.scaled() > 1_000_000 {
                return Err(ApiError::invalid(
                    "approval_rt_lmp must be between 0.01 and 10000",
                ));
            }
            Some(price)
        }
    };
    let text = |name: &str| -> Result<Option<String>, ApiError> {
        match p.get(name) {
            Some(v)
                if v.is_empty() || v.chars().count() > 200 || v.chars().any(char::is_control) =>
            {
                Err(ApiError::invalid(format!(
                    "{name} must be 1 to 200 printable characters"
                )))
            }
            other => Ok(other.map(str::to_string)),
        }
    };
    let change = ManualChange {
        to: Some(to),
        rt_lmp,
        rt_source: text("approval_rt_source")?,
        reject_reason: text("reject_reason")?,
    };
    let store = state.store.clone();
    let order = blocking(move || Ok(store.transition(&id, &change, "admin")?)).await?;
    Ok(HttpResponse::Ok().json(json!({
        "status": "success",
        "message": format!("Order {} updated to {}", order.id, order.status),
        "order": order,
    })))
}

/// `POST /api/v1/orders/moderate/{hour_start_utc}?approval_probability=&rt_lmp_base=&rt_lmp_variance=`
/// (admin): moderates every pending order of that due time now.
#[utoipa::path(post, path = "/api/v1/orders/moderate/{hour_start_utc}", tag = "original",
    security(("admin_token" = [])),
    params(
        ("hour_start_utc" = String, Path, description = "Due time, RFC 3339 with an offset"),
        ("approval_probability" = Option<f64>, Query, description = "0 to 1; default the server's"),
        ("rt_lmp_base" = Option<f64>, Query, description = "$/MWh; default the server's"),
        ("rt_lmp_variance" = Option<f64>, Query, description = "$/MWh; default the server's"),
    ),
    responses((status = 200, description = "Moderated", body = crate::openapi::ModerateReply), (status = 401, description = "Admin token missing or wrong", body = crate::openapi::Error), (status = 400, description = "Bad input", body = crate::openapi::Error), (status = 503, description = "Database unavailable", body = crate::openapi::Error)))]
pub async fn moderate_hour(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.require_admin(&req)?;
    let hour = due_time_param("hour_start_utc", &path)?;
    let p = Params::parse(
        req.query_string(),
        &["approval_probability", "rt_lmp_base", "rt_lmp_variance"],
    )?;
    let defaults = state.policy;
    let policy = Policy::new(
        p.finite("approval_probability", defaults.approval_probability())?,
        p.finite("rt_lmp_base", defaults.rt_lmp_base().to_f64())?,
        p.finite("rt_lmp_variance", defaults.rt_lmp_variance().to_f64())?,
    )
    .map_err(|e| ApiError::invalid(e.to_string()))?;
    let store = state.store.clone();
    let (seed, batch) = (state.seed, state.batch_size);
    let report = blocking(move || {
        Ok(scheduler::moderate_hour(
            &store,
            &policy,
            seed,
            hour,
            "admin:moderate-hour",
            batch,
        )?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "status": "success",
        "message": format!(
            "Moderated {} orders for {}: {} approved, {} rejected",
            report.total_orders, format_ms(&hour), report.approved, report.rejected
        ),
        "result": report,
    })))
}

/// `GET /api/v1/fetch_orders?limit_open=200&limit_closed=200&location=`: open (PENDING) and
/// closed orders, newest first.
#[utoipa::path(get, path = "/api/v1/fetch_orders", tag = "original",
    params(
        ("limit_open" = Option<i64>, Query, description = "0 to 10000, default 200"),
        ("limit_closed" = Option<i64>, Query, description = "0 to 10000, default 200"),
        ("location" = Option<String>, Query, description = "Only this location"),
    ),
    responses((status = 200, description = "Open and closed orders, newest first", body = crate::openapi::FetchOrdersReply), (status = 400, description = "Bad input", body = crate::openapi::Error), (status = 503, description = "Database unavailable", body = crate::openapi::Error)))]
pub async fn fetch_orders(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let p = Params::parse(
        req.query_string(),
        &["limit_open", "limit_closed", "location"],
    )?;
    let limit_open = p.int_in("limit_open", 200, 0, 10_000)?;
    let limit_closed = p.int_in("limit_closed", 200, 0, 10_000)?;
    let location = p
        .get("location")
        .filter(|l| !l.is_empty())
        .map(Location::parse)
        .transpose()?;
    let store = state.store.clone();
    let (open, closed) = blocking(move || {
        Ok(store.fetch_orders(
            limit_open,
            limit_closed,
            location.as_ref().map(Location::as_str),
        )?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "open": { "count": open.len(), "orders": open },
        "closed": { "count": closed.len(), "orders": closed },
    })))
}
