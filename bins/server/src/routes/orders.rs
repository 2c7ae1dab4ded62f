//! The JSON order API beside the original system's routes: create (idempotent), list with
//! filters and cursor pagination, one order with its history, cancel, and positions with exact
//! P&L. A whole batch in one call is `batch.rs`, which validates each element with this
//! module's [`BodyFields`].

use super::{blocking, due_time_param, order_id, resource};
use crate::error::{ApiError, ErrorBody};
use crate::query::Params;
use crate::state::AppState;
use ::orders::{
    format_ms, Location, LocationType, NewOrder, Order, OrderEvent, OrderStatus, Pnl, Price,
    Quantity, Side,
};
use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::sync::Arc;
use storage::{
    Idempotency, ManualChange, OpenClosed, OrderFilter, OrderPage, PnlTotals, Unreadable,
};
use utoipa::{OpenApi, ToSchema};

/// Registers the routes under the API prefix.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/orders")
            .route(web::post().to(create_order))
            .route(web::get().to(list_orders)),
    )
    .service(resource("/orders/{id}").route(web::get().to(get_order)))
    .service(resource("/orders/{id}/cancel").route(web::post().to(cancel_order)))
    .service(resource("/positions").route(web::get().to(positions)));
}

/// The routes' part of the OpenAPI document (paths relative to the API prefix).
#[derive(OpenApi)]
#[openapi(
    paths(create_order, list_orders, get_order, cancel_order, positions),
    components(schemas(
        CreateOrder,
        OrderPageReply,
        UnreadableOrder,
        OrderDetail,
        Position,
        PositionsReply,
        TotalsReply
    ))
)]
pub struct OrdersApi;

/// Body of `POST /api/v1/orders`. Unknown and repeated fields are refused, so a typo cannot
/// pass silently; numbers are read from their exact JSON text (see [`BodyFields`]).
#[derive(Debug, ToSchema)]
pub struct CreateOrder {
    /// `BUY` or `SELL` (any case).
    pub side: Side,
    /// MWh, at most 3 decimals; a decimal string such as `"1.5"` is accepted too, under the
    /// same rules.
    #[schema(value_type = f64, exclusive_minimum = 0, maximum = 10000, multiple_of = 0.001)]
    pub qty_mwh: Quantity,
    /// $/MWh, at most 2 decimals; a decimal string is accepted too.
    #[schema(value_type = f64, minimum = -1000, maximum = 10000, multiple_of = 0.01)]
    pub limit_price: Price,
    /// Due time: RFC 3339 with an offset, from 2000 to 2099 (UTC).
    #[schema(format = DateTime, pattern = r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,3})?(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])$")]
    pub hour_start_utc: String,
    /// Pricing location; default `PJM-RTO`.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub location: Option<String>,
    /// Kind of location; default `ZONE`.
    pub location_type: Option<LocationType>,
}

/// A stored order that does not decode (a side or status another tool wrote, say): listed by
/// id with the reason instead of failing the listing. Fix or delete the row; reading it by id
/// answers 409 `order_unreadable` with the same reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnreadableOrder {
    /// The order's id.
    pub id: String,
    /// What did not decode, such as `'HOLD' is not a valid side; expected one of BUY, SELL`.
    pub reason: String,
}

impl From<Unreadable> for UnreadableOrder {
    fn from(u: Unreadable) -> Self {
        let Unreadable { id, reason } = u;
        Self { id, reason }
    }
}

/// The listing's unreadable rows as the API shows them.
pub fn unreadable_orders(rows: Vec<Unreadable>) -> Vec<UnreadableOrder> {
    rows.into_iter().map(UnreadableOrder::from).collect()
}

/// A page of orders, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPageReply {
    /// The page's orders; with `unreadable`, at most `limit`.
    pub orders: Vec<Order>,
    /// Pass as `cursor` for the next page; null on the last. It moves past unreadable rows too.
    pub next_cursor: Option<String>,
    /// The page's stored rows that do not decode, newest first; usually empty.
    pub unreadable: Vec<UnreadableOrder>,
}

// Destructured field by field, so a field added to the storage type fails to compile here
// instead of silently missing from the answer and its schema.
impl From<OrderPage> for OrderPageReply {
    fn from(page: OrderPage) -> Self {
        let OrderPage {
            orders,
            next_cursor,
            unreadable,
        } = page;
        Self {
            orders,
            next_cursor,
            unreadable: unreadable_orders(unreadable),
        }
    }
}

/// One order with its P&L and its whole history (keys in alphabetical order, as before).
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderDetail {
    /// Every status change, oldest first.
    pub history: Vec<OrderEvent>,
    /// The order.
    pub order: Order,
    /// Its P&L as a closed position, exact (see [`Position::pnl`]).
    #[schema(value_type = f64, multiple_of = 0.00001)]
    pub pnl: Pnl,
}

/// Open and closed positions with their P&L, and totals over every order of the filter.
#[derive(Debug, Serialize, ToSchema)]
pub struct PositionsReply {
    /// When the rows and totals were read (one snapshot). On a large book, where reading them
    /// takes 20 ms or more, an answer is shared between callers for up to a second.
    pub as_of: String,
    /// Orders no longer pending, newest first.
    pub closed: Vec<Position>,
    /// Pending orders, newest first.
    pub open: Vec<Position>,
    /// Counts and total P&L over all orders, not only the listed ones (unreadable rows
    /// included).
    pub totals: TotalsReply,
    /// Stored rows of either table that do not decode, open ones first; usually empty. Each
    /// takes a place of the `limit` of its table.
    pub unreadable: Vec<UnreadableOrder>,
}

/// Counts and P&L over every order matching the location filter.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotalsReply {
    /// Orders still pending.
    pub open_count: i64,
    /// Orders no longer pending.
    pub closed_count: i64,
    /// Approved (or cleared) orders.
    pub approved_count: i64,
    /// Rejected orders.
    pub rejected_count: i64,
    /// Cancelled orders.
    pub cancelled_count: i64,
    /// Sum of every closed position's P&L, exact.
    #[schema(value_type = f64, multiple_of = 0.00001)]
    pub total_pnl: Pnl,
}

impl From<PnlTotals> for TotalsReply {
    fn from(totals: PnlTotals) -> Self {
        let PnlTotals {
            open_count,
            closed_count,
            approved_count,
            rejected_count,
            cancelled_count,
            total_pnl,
        } = totals;
        Self {
            open_count,
            closed_count,
            approved_count,
            rejected_count,
            cancelled_count,
            total_pnl,
        }
    }
}

/// A JSON object's fields in order, each value kept as its exact JSON text (a JSON number
/// would otherwise be rounded through a float before any rule could see its digits).
#[derive(Debug)]
pub struct BodyFields(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for BodyFields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = BodyFields;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object with the order's fields")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<BodyFields, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    fields.push(entry);
                }
                Ok(BodyFields(fields))
            }
        }
        d.deserialize_map(Fields)
    }
}

const CREATE_FIELDS: [&str; 6] = [
    "side",
    "qty_mwh",
    "limit_price",
    "hour_start_utc",
    "location",
    "location_type",
];

/// A 400 naming the field and the rule it broke.
fn field_error(code: &'static str, field: &str, rule: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest {
        code,
        detail: format!("{field}: {rule}"),
    }
}

/// A field that must be a JSON string (or absent / null when optional).
fn text_field(field: &str, raw: &RawValue) -> Result<Option<String>, ApiError> {
    match raw.get().trim() {
        "null" => Ok(None),
        t => serde_json::from_str::<String>(t)
            .map(Some)
            .map_err(|_| field_error("wrong_type", field, format!("must be a string, not {t}"))),
    }
}

impl BodyFields {
    /// Validates the body into an order, naming the field and the rule of the first error.
    pub(super) fn validate(self) -> Result<NewOrder, ApiError> {
        let mut by_name: std::collections::BTreeMap<String, Box<RawValue>> = Default::default();
        for (name, value) in self.0 {
            if !CREATE_FIELDS.contains(&name.as_str()) {
                return Err(field_error(
                    "unknown_field",
                    &name,
                    format!("unknown field; allowed: {}", CREATE_FIELDS.join(", ")),
                ));
            }
            if by_name.contains_key(&name) {
                return Err(field_error("repeated_field", &name, "given more than once"));
            }
            by_name.insert(name, value);
        }
        let text = |name: &str| -> Result<Option<String>, ApiError> {
            by_name
                .get(name)
                .map(|raw| text_field(name, raw))
                .transpose()
                .map(Option::flatten)
        };
        let required = |name: &'static str| -> Result<&RawValue, ApiError> {
            match by_name.get(name) {
                Some(raw) if raw.get().trim() != "null" => Ok(raw),
                _ => Err(field_error("missing_field", name, "is required")),
            }
        };
        let side = text("side")?
            .ok_or_else(|| field_error("missing_field", "side", "is required"))?
            .parse::<Side>()
            .map_err(|e| field_error("invalid_side", "side", e))?;
        let qty = Quantity::from_json_text(required("qty_mwh")?.get())
            .map_err(|e| field_error(e.code(), "qty_mwh", e))?;
        let price = Price::from_json_text(required("limit_price")?.get())
            .map_err(|e| field_error(e.code(), "limit_price", e))?;
        let due_text = text("hour_start_utc")?
            .ok_or_else(|| field_error("missing_field", "hour_start_utc", "is required"))?;
        let due = due_time_param("hour_start_utc", &due_text)?;
        let location = Location::parse(text("location")?.as_deref().unwrap_or(Location::DEFAULT))?;
        let location_type = match text("location_type")? {
            None => LocationType::Zone,
            Some(t) => t
                .parse::<LocationType>()
                .map_err(|e| field_error("invalid_location_type", "location_type", e))?,
        };
        Ok(NewOrder::new(
            side,
            qty,
            price,
            location,
            location_type,
            due,
        )?)
    }
}

/// The fields that make two creates "the same request" for an idempotency key: the validated
/// order, so `"buy"` and `"BUY"`, `1.5` and `"1.50"` count as equal.
pub(super) fn fingerprint(o: &NewOrder) -> String {
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
#[utoipa::path(post, path = "/orders", tag = "orders",
    request_body = CreateOrder,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255,
        description = "Makes retries safe: a repeat returns the original order")),
    responses((status = 201, description = "Created", body = Order),
        (status = 200, description = "Repeat of an earlier request with this key", body = Order),
        (status = 409, description = "Key reused with another body", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody), (status = 400, description = "Bad input", body = ErrorBody), (status = 503, description = "Database unavailable", body = ErrorBody)))]
pub async fn create_order(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<BodyFields>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let new = body.into_inner().validate()?;
    let due = new.hour_start_utc();
    let hash = fingerprint(&new);
    let idem = key.as_deref().map(|key| Idempotency {
        key,
        request_hash: &hash,
    });
    let inserted = super::insert_order(&state.store, &new, idem, "api").await?;
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

/// The `Idempotency-Key` header, if any: 1 to 255 visible ASCII characters.
pub(super) fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    match req.headers().get("Idempotency-Key") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .filter(|k| (1..=255).contains(&k.len()))
            .map(|k| Some(k.to_string()))
            .ok_or_else(|| ApiError::BadRequest {
                code: "invalid_idempotency_key",
                detail: "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
            }),
    }
}

/// `GET /api/v1/orders?status=&side=&location=&due_from=&due_to=&limit=&cursor=`: newest first;
/// pass `next_cursor` back as `cursor` for the next page.
#[utoipa::path(get, path = "/orders", tag = "orders",
    params(
        ("status" = Option<OrderStatus>, Query, description = "Only this status"),
        ("side" = Option<Side>, Query, description = "Only this side"),
        ("location" = Option<String>, Query, description = "Only this location",
            pattern = r"^[A-Za-z0-9._-]{1,64}$"),
        ("due_from" = Option<String>, Query, description = "Due at or after (RFC 3339 with an offset)",
            format = DateTime, pattern = r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,3})?(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])$"),
        ("due_to" = Option<String>, Query, description = "Due before (RFC 3339 with an offset)",
            format = DateTime, pattern = r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,3})?(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])$"),
        ("limit" = Option<i64>, Query, description = "Default 100", minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page",
            pattern = r"^[A-Za-z0-9_-]{1,64}$"),
    ),
    responses((status = 200, description = "A page, newest first", body = OrderPageReply), (status = 400, description = "Bad input", body = ErrorBody), (status = 503, description = "Database unavailable", body = ErrorBody)))]
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
    let cursor = p.get("cursor").map(super::cursor).transpose()?;
    let store = state.store.clone();
    let page = blocking(move || Ok(store.list_orders(&filter, cursor.as_deref(), limit)?)).await?;
    Ok(HttpResponse::Ok().json(OrderPageReply::from(page)))
}

/// `GET /api/v1/orders/{id}`: the order, its P&L and its whole history.
#[utoipa::path(get, path = "/orders/{id}", tag = "orders",
    params(("id" = String, Path, description = "Order id", pattern = r"^[A-Za-z0-9_-]{1,64}$")),
    responses((status = 200, description = "The order, its P&L and history", body = OrderDetail),
        (status = 404, description = "Unknown order", body = ErrorBody),
        (status = 409, description = "Stored but unreadable (`order_unreadable`): `detail` names what did not decode", body = ErrorBody),
        (status = 400, description = "Bad input", body = ErrorBody), (status = 503, description = "Database unavailable", body = ErrorBody)))]
pub async fn get_order(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = order_id(&path)?;
    let store = state.store.clone();
    let detail = blocking(move || {
        let order = store.get_order(&id)?;
        Ok(OrderDetail {
            history: store.order_events(&id)?,
            pnl: order.pnl(),
            order,
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(detail))
}

/// `POST /api/v1/orders/{id}/cancel`: PENDING → CANCELLED; 409 from any other status.
#[utoipa::path(post, path = "/orders/{id}/cancel", tag = "orders",
    params(("id" = String, Path, description = "Order id", pattern = r"^[A-Za-z0-9_-]{1,64}$")),
    responses((status = 200, description = "Cancelled", body = Order),
        (status = 404, description = "Unknown order", body = ErrorBody),
        (status = 409, description = "Not pending (`illegal_transition`), or stored but unreadable (`order_unreadable`)", body = ErrorBody), (status = 400, description = "Bad input", body = ErrorBody), (status = 503, description = "Database unavailable", body = ErrorBody)))]
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
#[derive(Debug, Serialize, ToSchema)]
pub struct Position {
    /// The order's fields, at the top level of the position.
    #[serde(flatten)]
    pub order: Order,
    /// `(rt - limit) * qty * (+1 BUY / -1 SELL)` when approved, else 0; exact.
    #[schema(value_type = f64, multiple_of = 0.00001)]
    pub pnl: Pnl,
}

/// `GET /api/v1/positions?location=&limit=`: open and closed positions (newest first, up to
/// `limit` each) with per-order P&L, and totals over every order.
#[utoipa::path(get, path = "/positions", tag = "orders",
    params(
        ("location" = Option<String>, Query, description = "Only this location",
            pattern = r"^[A-Za-z0-9._-]{1,64}$"),
        ("limit" = Option<i64>, Query, description = "Per table; default 200", minimum = 0, maximum = 10000),
    ),
    responses((status = 200, description = "Positions with P&L and totals", body = PositionsReply), (status = 400, description = "Bad input", body = ErrorBody), (status = 503, description = "Database unavailable", body = ErrorBody)))]
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
    let (cache, listings) = (Arc::clone(&state.positions), Arc::clone(&state.listings));
    let key = format!("{limit}|{}", location.as_ref().map_or("", |l| l.as_str()));
    let as_positions = |orders: Vec<Order>| -> Vec<Position> {
        orders
            .into_iter()
            .map(|o| Position {
                pnl: o.pnl(),
                order: o,
            })
            .collect()
    };
    // Shared for a second once expensive (a big book), and coalesced below that: callers
    // asking at once share one read begun after each of them asked.
    let body = blocking(move || {
        cache.get_or_compute(&key, || {
            listings.get(&format!("positions:{key}"), || {
                let as_of = orders::format_ms(&chrono::Utc::now());
                // Rows and totals from one snapshot, so the totals describe the listed book.
                let (listed, totals) =
                    store.positions(limit, location.as_ref().map(Location::as_str))?;
                let OpenClosed {
                    open,
                    closed,
                    unreadable,
                } = listed;
                let reply = PositionsReply {
                    as_of,
                    closed: as_positions(closed),
                    open: as_positions(open),
                    totals: totals.into(),
                    unreadable: unreadable_orders(unreadable),
                };
                Ok::<_, ApiError>(web::Bytes::from(serde_json::to_vec(&reply).map_err(
                    |e| ApiError::Internal(format!("cannot serialise positions: {e}")),
                )?))
            })
        })
    })
    .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(web::Bytes::clone(&body)))
}
