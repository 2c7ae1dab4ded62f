//! The original system's routes, parameters and JSON shapes, unchanged so its front end and
//! scripts keep working: create a fake order, PATCH its status, moderate one due time, and
//! `fetch_orders`. Their inputs are query parameters; the document states each one's rules.

use super::orders::{unreadable_orders, UnreadableOrder};
use super::{blocking, due_time_param, order_id, resource};
use crate::error::{ApiError, ErrorBody};
use crate::query::Params;
use crate::state::AppState;
use ::orders::{
    format_ms, Location, LocationType, NewOrder, NewOrderFields, Order, OrderStatus, Price, Side,
};
use actix_web::{web, HttpRequest, HttpResponse};
use moderator::Policy;
use scheduler::DueReport;
use serde::Serialize;
use storage::{ManualChange, OpenClosed};
use utoipa::{OpenApi, ToSchema};

/// Registers the routes under the API prefix.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/orders/fake").route(web::post().to(create_fake_order)))
        .service(resource("/orders/fake/{order_id}").route(web::patch().to(patch_fake_order)))
        .service(resource("/orders/moderate/{hour_start_utc}").route(web::post().to(moderate_hour)))
        .service(resource("/fetch_orders").route(web::get().to(fetch_orders)));
}

/// The routes' part of the OpenAPI document (paths relative to the API prefix).
#[derive(OpenApi)]
#[openapi(
    paths(create_fake_order, patch_fake_order, moderate_hour, fetch_orders),
    components(schemas(
        FakeOrderReply,
        PatchReply,
        ModerateReply,
        ModerationResult,
        ModeratedOrder,
        FetchOrdersReply,
        OrderList
    ))
)]
pub struct LegacyApi;

/// Answer of the create route. Fields in alphabetical order, as the original's JSON had them.
#[derive(Debug, Serialize, ToSchema)]
pub struct FakeOrderReply {
    /// `Fake BUY order for 1.5 MWh created, due <time>`.
    pub message: String,
    /// The stored order.
    pub order: Order,
    /// Its id, repeated for the original's scripts.
    pub order_id: String,
    /// Always `success`.
    #[schema(value_type = String, example = "success")]
    pub status: &'static str,
}

/// Answer of the PATCH route.
#[derive(Debug, Serialize, ToSchema)]
pub struct PatchReply {
    /// `Order <id> updated to <STATUS>`.
    pub message: String,
    /// The order after the change.
    pub order: Order,
    /// Always `success`.
    #[schema(value_type = String, example = "success")]
    pub status: &'static str,
}

/// Answer of the moderate route.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModerateReply {
    /// `Moderated N orders for <time>: A approved, R rejected`.
    pub message: String,
    /// Counts and the moderated orders.
    pub result: ModerationResult,
    /// Always `success`.
    #[schema(value_type = String, example = "success")]
    pub status: &'static str,
}

/// The original system's `moderation_result`: one due time's counts and its moderated orders,
/// each with the original's keys (`order_id`, `status`, `approved_at`, `approval_rt_lmp`,
/// `approval_rt_source`, `reject_reason`) beside the order's own fields. Its front end finds
/// its order in `orders` by `order_id`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModerationResult {
    /// The due time the orders shared.
    #[serde(with = "::orders::time::serde_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub hour_start_utc: chrono::DateTime<chrono::Utc>,
    /// Orders moderated for this due time.
    pub total_orders: usize,
    /// Of `total_orders`, how many were approved.
    pub approved: usize,
    /// Of `total_orders`, how many were rejected.
    pub rejected: usize,
    /// `approved / total_orders`, 0 when there were none.
    pub approval_rate: f64,
    /// The moderated orders (at most 1,000 per answer; the counts are complete).
    pub orders: Vec<ModeratedOrder>,
}

/// One moderated order: the original system's `order_id` and the whole order.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModeratedOrder {
    /// The order's id, under the original system's key (also present as `id`).
    pub order_id: String,
    /// Every field of the order (`id`, `status`, `approved_at`, `approval_rt_lmp`,
    /// `approval_rt_source`, `reject_reason`, ...).
    #[serde(flatten)]
    pub order: Order,
}

// Destructured field by field, so a field added to the scheduler's report fails to compile
// here instead of silently missing from the answer.
impl From<DueReport> for ModerationResult {
    fn from(report: DueReport) -> Self {
        let DueReport {
            hour_start_utc,
            total_orders,
            approved,
            rejected,
            approval_rate,
            orders,
        } = report;
        Self {
            hour_start_utc,
            total_orders,
            approved,
            rejected,
            approval_rate,
            orders: orders
                .into_iter()
                .map(|order| ModeratedOrder {
                    order_id: order.id.clone(),
                    order,
                })
                .collect(),
        }
    }
}

/// Answer of `fetch_orders`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FetchOrdersReply {
    /// Orders no longer pending, newest first.
    pub closed: OrderList,
    /// Pending orders, newest first.
    pub open: OrderList,
    /// Stored rows of either list that do not decode, open ones first; each takes a place of
    /// its list's limit and is not in its `count`. Absent when there are none, so the answer
    /// stays the original's exactly on a healthy book.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub unreadable: Vec<UnreadableOrder>,
}

/// Orders with their number (`count` is the length of `orders`, not a total).
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderList {
    /// Number of orders listed.
    pub count: usize,
    /// The orders.
    pub orders: Vec<Order>,
}

impl From<Vec<Order>> for OrderList {
    fn from(orders: Vec<Order>) -> Self {
        Self {
            count: orders.len(),
            orders,
        }
    }
}

/// `POST /api/v1/orders/fake?side=&qty_mwh=&limit_price=&hour_start_utc=&location=&location_type=`
#[utoipa::path(post, path = "/orders/fake", tag = "original",
    params(
        ("side" = Side, Query, description = "BUY or SELL, any case"),
        ("qty_mwh" = f64, Query, description = "MWh, at most 3 decimals",
            exclusive_minimum = 0, maximum = 10000, multiple_of = 0.001),
        ("limit_price" = f64, Query, description = "$/MWh, at most 2 decimals",
            minimum = -1000, maximum = 10000, multiple_of = 0.01),
        ("hour_start_utc" = String, Query, format = DateTime, pattern = r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,3})?(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])$",
            description = "Due time, RFC 3339 with an offset, from 2000 to 2099 (UTC)"),
        ("location" = Option<String>, Query, description = "Default PJM-RTO",
            pattern = r"^[A-Za-z0-9._-]{1,64}$"),
        ("location_type" = Option<LocationType>, Query, description = "Default ZONE"),
    ),
    responses((status = 200, description = "Created", body = FakeOrderReply), (status = 400, description = "Bad input", body = ErrorBody), (status = 503, description = "Database unavailable", body = ErrorBody)))]
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
    let inserted = super::insert_order(&state.store, &new, None, "api").await?;
    state.scheduler.notify_due(due);
    let order = inserted.order;
    Ok(HttpResponse::Ok().json(FakeOrderReply {
        message: format!(
            "Fake {} order for {} MWh created, due {}",
            order.side,
            order.qty_mwh,
            format_ms(&due)
        ),
        order_id: order.id.clone(),
        order,
        status: "success",
    }))
}

/// `PATCH /api/v1/orders/fake/{order_id}?status=&approval_rt_lmp=&approval_rt_source=&reject_reason=`
/// (admin): a manual status change, legal transitions only.
#[utoipa::path(patch, path = "/orders/fake/{order_id}", tag = "original",
    security(("admin_token" = [])),
    params(
        ("order_id" = String, Path, description = "Order id", pattern = r"^[A-Za-z0-9_-]{1,64}$"),
        ("status" = OrderStatus, Query, description = "Target status; legal transitions only"),
        ("approval_rt_lmp" = Option<f64>, Query, description = "Required to approve, $/MWh",
            minimum = 0.01, maximum = 10000, multiple_of = 0.01),
        ("approval_rt_source" = Option<String>, Query, description = "Default MANUAL",
            pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,200}$"),
        ("reject_reason" = Option<String>, Query, description = "Default 'Manual rejection'",
            pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,200}$"),
    ),
    responses((status = 200, description = "Updated", body = PatchReply), (status = 401, description = "Admin token missing or wrong", body = ErrorBody),
        (status = 404, description = "Unknown order", body = ErrorBody),
        (status = 409, description = "Illegal transition", body = ErrorBody), (status = 400, description = "Bad input", body = ErrorBody), (status = 503, description = "Database unavailable", body = ErrorBody)))]
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
    Ok(HttpResponse::Ok().json(PatchReply {
        message: format!("Order {} updated to {}", order.id, order.status),
        order,
        status: "success",
    }))
}

/// `POST /api/v1/orders/moderate/{hour_start_utc}?approval_probability=&rt_lmp_base=&rt_lmp_variance=`
/// (admin): moderates every pending order of that due time now.
#[utoipa::path(post, path = "/orders/moderate/{hour_start_utc}", tag = "original",
    security(("admin_token" = [])),
    params(
        ("hour_start_utc" = String, Path, format = DateTime, pattern = r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,3})?(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])$",
            description = "Due time, RFC 3339 with an offset, from 2000 to 2099 (UTC)"),
        ("approval_probability" = Option<f64>, Query, description = "Default the server's",
            minimum = 0, maximum = 1),
        ("rt_lmp_base" = Option<f64>, Query, description = "$/MWh; default the server's",
            minimum = 0, maximum = 10000, multiple_of = 0.01),
        ("rt_lmp_variance" = Option<f64>, Query, description = "$/MWh; default the server's",
            minimum = 0, maximum = 10000, multiple_of = 0.01),
    ),
    responses((status = 200, description = "Moderated", body = ModerateReply), (status = 401, description = "Admin token missing or wrong", body = ErrorBody), (status = 400, description = "Bad input", body = ErrorBody), (status = 503, description = "Database unavailable", body = ErrorBody)))]
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
    // Without parameters, the configured policy and price source decide; any of the original's
    // parameters asks for its random policy with them (over the configured prices).
    let overridden = ["approval_probability", "rt_lmp_base", "rt_lmp_variance"]
        .iter()
        .any(|name| p.get(name).is_some());
    let moderator = state
        .scheduler
        .manual_moderator(overridden.then_some(&policy));
    let store = state.store.clone();
    let (seed, batch) = (state.moderation_seed, state.batch_size);
    let report = blocking(move || {
        Ok(scheduler::moderate_due_time_with(
            &store,
            &moderator,
            seed,
            hour,
            "admin:moderate-hour",
            batch,
        )?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(ModerateReply {
        message: format!(
            "Moderated {} orders for {}: {} approved, {} rejected",
            report.total_orders,
            format_ms(&hour),
            report.approved,
            report.rejected
        ),
        result: report.into(),
        status: "success",
    }))
}

/// `GET /api/v1/fetch_orders?limit_open=200&limit_closed=200&location=`: open (PENDING) and
/// closed orders, newest first.
#[utoipa::path(get, path = "/fetch_orders", tag = "original",
    params(
        ("limit_open" = Option<i64>, Query, description = "Default 200", minimum = 0, maximum = 10000),
        ("limit_closed" = Option<i64>, Query, description = "Default 200", minimum = 0, maximum = 10000),
        ("location" = Option<String>, Query, description = "Only this location",
            pattern = r"^[A-Za-z0-9._-]{1,64}$"),
    ),
    responses((status = 200, description = "Open and closed orders, newest first", body = FetchOrdersReply), (status = 400, description = "Bad input", body = ErrorBody), (status = 503, description = "Database unavailable", body = ErrorBody)))]
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
    // Coalesced: pollers asking the same question at once share one read that began after
    // each of them asked (so a caller still sees its own writes), and its serialisation.
    let key = format!(
        "fetch_orders:{limit_open}:{limit_closed}:{}",
        location.as_ref().map(Location::as_str).unwrap_or("")
    );
    let (store, listings) = (state.store.clone(), state.listings.clone());
    let body = blocking(move || {
        listings.get(&key, || -> Result<web::Bytes, ApiError> {
            let OpenClosed {
                open,
                closed,
                unreadable,
            } = store.fetch_orders(
                limit_open,
                limit_closed,
                location.as_ref().map(Location::as_str),
            )?;
            let reply = FetchOrdersReply {
                closed: closed.into(),
                open: open.into(),
                unreadable: unreadable_orders(unreadable),
            };
            Ok(web::Bytes::from(serde_json::to_vec(&reply).map_err(
                |e| ApiError::Internal(format!("cannot serialise orders: {e}")),
            )?))
        })
    })
    .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}
