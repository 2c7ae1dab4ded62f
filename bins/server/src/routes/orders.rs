//! The JSON order API beside the seed's routes: create (idempotent), list with filters and
//! cursor pagination, one order with its history, cancel, and positions with exact P&L.

use super::{blocking, due_time_param, order_id};
use crate::error::ApiError;
use crate::query::Params;
use crate::state::AppState;
use ::orders::{
    format_ms, Location, LocationType, NewOrder, Order, OrderStatus, Pnl, Price, Quantity, Side,
};
use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use storage::{Idempotency, ManualChange, OrderFilter};

/// Body of `POST /api/v1/orders`. Unknown fields are refused, so a typo cannot pass silently.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    /// `BUY` or `SELL` (any case).
    pub side: Side,
    /// MWh, > 0 and ≤ 10,000, at most 3 decimals (number or string).
    pub qty_mwh: Quantity,
    /// $/MWh, -1,000 to 10,000, at most 2 decimals (number or string).
    pub limit_price: Price,
    /// RFC 3339 with an offset.
    pub hour_start_utc: String,
    /// Default `PJM-RTO`.
    pub location: Option<String>,
    /// Default `ZONE`.
    pub location_type: Option<LocationType>,
}

impl CreateOrder {
    fn validate(self) -> Result<NewOrder, ApiError> {
        let due = due_time_param("hour_start_utc", &self.hour_start_utc)?;
        let location = Location::parse(self.location.as_deref().unwrap_or(Location::DEFAULT))?;
        Ok(NewOrder::new(
            self.side,
            self.qty_mwh,
            self.limit_price,
            location,
            self.location_type.unwrap_or(LocationType::Zone),
            due,
        )?)
    }
}

/// The fields that make two creates "the same request" for an idempotency key: the validated
/// order, so `"buy"` and `"BUY"`, `1.5` and `"1.50"` count as equal.
fn fingerprint(o: &NewOrder) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}",
        o.side(),
        o.qty_mwh().scaled(),
        o.limit_price().scaled(),
        o.location().as_str(),
        o.location_type(),
        format_ms(&o.hour_start_utc())
    )
}

/// `POST /api/v1/orders` with a JSON body and an optional `Idempotency-Key` header: 201 with
/// the new order, or 200 with the original on a repeat of the same key and body.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders",
    request_body = crate::openapi::CreateOrder,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: a repeat returns the original order")),
    responses((status = 201, description = "Created", body = crate::openapi::Order),
        (status = 200, description = "Repeat of an earlier request with this key", body = crate::openapi::Order),
        (status = 409, description = "Key reused with another body", body = crate::openapi::Error),
        (status = 413, description = "Body over 64 KiB", body = crate::openapi::Error),
        (status = 415, description = "Not JSON", body = crate::openapi::Error), (status = 400, description = "Bad input", body = crate::openapi::Error), (status = 503, description = "Database unavailable", body = crate::openapi::Error)))]
pub async fn create_order(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<CreateOrder>,
) -> Result<HttpResponse, ApiError> {
    let key = match req.headers().get("Idempotency-Key") {
        None => None,
        Some(v) => {
            let k = v
                .to_str()
                .ok()
                .filter(|k| (1..=255).contains(&k.len()))
                .ok_or_else(|| ApiError::BadRequest {
                    code: "invalid_idempotency_key",
                    detail: "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
                })?;
            Some(k.to_string())
        }
    };
    let new = body.into_inner().validate()?;
    let due = new.hour_start_utc();
    let store = state.store.clone();
    let inserted = blocking(move || {
        let hash = fingerprint(&new);
        let idem = key.as_deref().map(|key| Idempotency {
            key,
            request_hash: &hash,
        });
        Ok(store.insert_order(&new, idem, "api")?)
    })
    .await?;
    if inserted.created {
        state.scheduler.notify_due(due);
        Ok(HttpResponse::Created()
            .insert_header((
                header::LOCATION,
                format!("/api/v1/orders/{}", inserted.order.id),
            ))
            .json(&inserted.order))
    } else {
        Ok(HttpResponse::Ok().json(&inserted.order))
    }
}

/// `GET /api/v1/orders?status=&side=&location=&due_from=&due_to=&limit=&cursor=`: newest first;
/// pass `next_cursor` back as `cursor` for the next page.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders",
    params(
        ("status" = Option<String>, Query, description = "Only this status"),
        ("side" = Option<String>, Query, description = "BUY or SELL"),
        ("location" = Option<String>, Query, description = "Only this location"),
        ("due_from" = Option<String>, Query, description = "Due at or after (RFC 3339)"),
        ("due_to" = Option<String>, Query, description = "Due before (RFC 3339)"),
        ("limit" = Option<i64>, Query, description = "1 to 1000, default 100"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses((status = 200, description = "A page, newest first", body = crate::openapi::OrderPage), (status = 400, description = "Bad input", body = crate::openapi::Error), (status = 503, description = "Database unavailable", body = crate::openapi::Error)))]
pub async fn list_orders(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let p = Params::parse(
        req.query_string(),
        &[
            "status", "side", "location", "due_from", "due_to", "limit", "cursor",
        ],
    )?;
    let filter = OrderFilter {
        status: p.parsed::<OrderStatus>("status")?,
        side: p.parsed::<Side>("side")?,
        location: p
            .get("location")
            .map(Location::parse)
            .transpose()?
            .map(|l| l.as_str().to_string()),
        due_from: p
            .get("due_from")
            .map(|t| due_time_param("due_from", t))
            .transpose()?,
        due_to: p
            .get("due_to")
            .map(|t| due_time_param("due_to", t))
            .transpose()?,
    };
    let limit = p.int_in("limit", 100, 1, 1_000)?;
    let cursor = p.get("cursor").map(order_id).transpose()?;
    let store = state.store.clone();
    let page = blocking(move || Ok(store.list_orders(&filter, cursor.as_deref(), limit)?)).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `GET /api/v1/orders/{id}`: the order, its P&L and its whole history.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, description = "The order, its P&L and history", body = crate::openapi::OrderDetail),
        (status = 404, description = "Unknown order", body = crate::openapi::Error), (status = 400, description = "Bad input", body = crate::openapi::Error), (status = 503, description = "Database unavailable", body = crate::openapi::Error)))]
pub async fn get_order(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = order_id(&path)?;
    let store = state.store.clone();
    let (order, history) = blocking(move || {
        let order = store.get_order(&id)?;
        Ok((order, store.order_events(&id)?))
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "pnl": order.pnl(), "order": order, "history": history })))
}

/// `POST /api/v1/orders/{id}/cancel`: PENDING → CANCELLED; 409 from any other status.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, description = "Cancelled", body = crate::openapi::Order),
        (status = 404, description = "Unknown order", body = crate::openapi::Error),
        (status = 409, description = "Not pending", body = crate::openapi::Error), (status = 400, description = "Bad input", body = crate::openapi::Error), (status = 503, description = "Database unavailable", body = crate::openapi::Error)))]
pub async fn cancel_order(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = order_id(&path)?;
    let store = state.store.clone();
    let change = ManualChange {
        to: Some(OrderStatus::Cancelled),
        ..Default::default()
    };
    let order = blocking(move || Ok(store.transition(&id, &change, "api")?)).await?;
    Ok(HttpResponse::Ok().json(order))
}

/// One position: the order's fields and its P&L.
#[derive(Debug, Serialize)]
pub struct Position {
    /// The order.
    #[serde(flatten)]
    pub order: Order,
    /// `(rt - limit) * qty * (+1 BUY / -1 SELL)` when approved, else 0; exact.
    pub pnl: Pnl,
}

/// `GET /api/v1/positions?location=&limit=`: open and closed positions (newest first, up to
/// `limit` each) with per-order P&L, and totals over every order.
#[utoipa::path(get, path = "/api/v1/positions", tag = "orders",
    params(
        ("location" = Option<String>, Query, description = "Only this location"),
        ("limit" = Option<i64>, Query, description = "0 to 10000 per table, default 200"),
    ),
    responses((status = 200, description = "Positions with P&L and totals", body = crate::openapi::PositionsReply), (status = 400, description = "Bad input", body = crate::openapi::Error), (status = 503, description = "Database unavailable", body = crate::openapi::Error)))]
pub async fn positions(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let p = Params::parse(req.query_string(), &["location", "limit"])?;
    let limit = p.int_in("limit", 200, 0, 10_000)?;
    let location = p
        .get("location")
        .filter(|l| !l.is_empty())
        .map(Location::parse)
        .transpose()?;
    let store = state.store.clone();
    let (open, closed, totals) = blocking(move || {
        let loc = location.as_ref().map(Location::as_str);
        let (open, closed) = store.fetch_orders(limit, limit, loc)?;
        Ok((open, closed, store.pnl_totals(loc)?))
    })
    .await?;
    let as_positions = |orders: Vec<Order>| -> Vec<Position> {
        orders
            .into_iter()
            .map(|o| Position {
                pnl: o.pnl(),
                order: o,
            })
            .collect()
    };
    Ok(HttpResponse::Ok().json(json!({
        "open": as_positions(open),
        "closed": as_positions(closed),
        "totals": totals,
    })))
}
