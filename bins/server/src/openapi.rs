//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]` annotations and the
//! schemas below, served at `GET /api/v1/openapi.json`.
//!
//! Domain types serialise by hand (exact decimals as JSON numbers, times as RFC 3339 text), so
//! their schemas are declared here rather than derived inside the domain crates, which stay
//! free of web concerns.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// An order, with the original system's field names.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Order {
    /// UUIDv7 text id.
    id: String,
    /// RFC 3339 UTC with milliseconds, e.g. `2025-08-17T21:45:45.000Z`.
    created_at: String,
    /// Always `DA`.
    market: String,
    /// `HUB`, `ZONE`, `GEN` or `NODE`.
    location_type: String,
    /// Pricing location.
    location: String,
    /// Due time, UTC with milliseconds.
    hour_start_utc: String,
    /// `BUY` or `SELL`.
    side: String,
    /// MWh, up to 3 decimals.
    qty_mwh: f64,
    /// $/MWh, up to 2 decimals.
    limit_price: f64,
    /// `PENDING`, `APPROVED`, `REJECTED`, `CANCELLED`, `CLEARED` or `UNFILLED`.
    status: String,
    /// Moderation time (set on approval and on rejection).
    approved_at: Option<String>,
    /// Start of the 5-minute real-time interval of the LMP.
    approval_rt_interval_start_utc: Option<String>,
    /// Real-time LMP at approval, $/MWh.
    approval_rt_lmp: Option<f64>,
    /// Where the LMP came from.
    approval_rt_source: Option<String>,
    /// Why the order was rejected.
    reject_reason: Option<String>,
}

/// An order as a position: its fields plus P&L.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Position {
    /// The order's fields (flattened in the JSON).
    #[schema(inline)]
    order: Order,
    /// `(rt - limit) * qty * (+1 BUY / -1 SELL)` when approved, else 0; exact.
    pnl: f64,
}

/// Body of `POST /api/v1/orders`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CreateOrder {
    /// `BUY` or `SELL`, any case.
    side: String,
    /// MWh, > 0 and ≤ 10,000, at most 3 decimals (number or string).
    qty_mwh: f64,
    /// $/MWh, -1,000 to 10,000, at most 2 decimals (number or string).
    limit_price: f64,
    /// RFC 3339 with an offset.
    hour_start_utc: String,
    /// Default `PJM-RTO`: 1-64 letters, digits, `-`, `_`, `.`.
    location: Option<String>,
    /// Default `ZONE`.
    location_type: Option<String>,
}

/// Every error: a human `detail` and a stable `code`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Error {
    /// What went wrong, for a person.
    detail: String,
    /// What went wrong, for a program (`invalid_parameter`, `order_not_found`, ...).
    code: String,
}

/// The scheduler status: the original's fields first, then counters.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SchedulerStatus {
    running: bool,
    thread_alive: bool,
    pending_due_now: Option<i64>,
    upcoming_10_min: Option<i64>,
    next_due_order: Option<String>,
    /// Time of the last real check, not of the request.
    last_check: Option<String>,
    check_interval_seconds: f64,
    instance_id: String,
    processed: u64,
    approved: u64,
    rejected: u64,
    failed: u64,
    /// Recent lateness, ms: `{last, p50, p99, max, samples}`.
    #[schema(value_type = Object)]
    lateness_ms: (),
    last_error: Option<String>,
}

/// `{"status": "success", "scheduler": {...}}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StatusReply {
    status: String,
    /// Only on start and stop.
    message: Option<String>,
    scheduler: SchedulerStatus,
}

/// The original's moderation result for one due time.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HourReport {
    hour_start_utc: String,
    total_orders: i64,
    approved: i64,
    rejected: i64,
    approval_rate: f64,
    orders: Vec<Order>,
}

/// `{"status","message","result": HourReport}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ModerateReply {
    status: String,
    message: String,
    result: HourReport,
}

/// One due time of a forced pass.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HourResult {
    hour_start_utc: String,
    orders_count: i64,
    moderation_result: HourReport,
}

/// What a forced pass did.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PassReport {
    processed: i64,
    results: Vec<HourResult>,
    timestamp: String,
}

/// `{"status","message":"Processed N orders","result": PassReport}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ForceRunReply {
    status: String,
    message: String,
    result: PassReport,
}

/// `{"status","message","order_id","order"}` from the original create route.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FakeOrderReply {
    status: String,
    message: String,
    order_id: String,
    order: Order,
}

/// `{"status","message","order"}` from the original PATCH route.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PatchReply {
    status: String,
    message: String,
    order: Order,
}

/// `{"count","orders"}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OrderList {
    count: i64,
    orders: Vec<Order>,
}

/// The original `fetch_orders` answer.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FetchOrdersReply {
    open: OrderList,
    closed: OrderList,
}

/// A page of orders.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OrderPage {
    orders: Vec<Order>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// One line of an order's history.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OrderEvent {
    id: i64,
    order_id: String,
    from_status: Option<String>,
    to_status: String,
    at: String,
    /// `scheduler:<instance>`, `api`, `admin`, `admin:moderate-hour`.
    actor: String,
    /// The decision's inputs (policy, seed, lateness) or the manual change.
    #[schema(value_type = Object)]
    details: (),
}

/// One order with its P&L and history.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OrderDetail {
    order: Order,
    pnl: f64,
    history: Vec<OrderEvent>,
}

/// Totals over all orders of the filter.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PnlTotals {
    open_count: i64,
    closed_count: i64,
    approved_count: i64,
    rejected_count: i64,
    cancelled_count: i64,
    total_pnl: f64,
}

/// Positions with P&L.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PositionsReply {
    open: Vec<Position>,
    closed: Vec<Position>,
    totals: PnlTotals,
}

/// Health answers.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Health {
    /// `ok` or `unavailable`.
    status: String,
    #[schema(value_type = Object)]
    database: (),
    #[schema(value_type = Object)]
    scheduler: (),
}

struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "order-scheduler",
        description = "Moderates simulated day-ahead energy orders at their exact due time. \
            The original system's routes are kept unchanged beside a JSON order API."
    ),
    paths(
        crate::routes::seed::create_fake_order,
        crate::routes::seed::patch_fake_order,
        crate::routes::seed::moderate_hour,
        crate::routes::seed::fetch_orders,
        crate::routes::scheduler::status,
        crate::routes::scheduler::start,
        crate::routes::scheduler::stop,
        crate::routes::scheduler::force_run,
        crate::routes::health::simple,
        crate::routes::health::ready,
        crate::routes::orders::create_order,
        crate::routes::orders::list_orders,
        crate::routes::orders::get_order,
        crate::routes::orders::cancel_order,
        crate::routes::orders::positions,
        crate::routes::events::events,
        crate::routes::metrics::metrics,
        dashboard_page,
        dashboard_asset,
        openapi_json,
    ),
    components(schemas(
        Order, Position, CreateOrder, Error, SchedulerStatus, StatusReply, HourReport,
        ModerateReply, HourResult, PassReport, ForceRunReply, FakeOrderReply, PatchReply,
        OrderList, FetchOrdersReply, OrderPage, OrderEvent, OrderDetail, PnlTotals,
        PositionsReply, Health
    )),
    modifiers(&AdminToken)
)]
pub struct ApiDoc;

/// The document as JSON text.
pub fn document() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| {
        log::error!("cannot render the OpenAPI document: {e}");
        "{}".into()
    })
}

/// `GET /api/v1/openapi.json`: this document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json")))]
pub async fn openapi_json() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}

/// `GET /`: the dashboard page (served by `routes::dashboard`; documented here).
#[utoipa::path(get, path = "/", tag = "dashboard",
    responses((status = 200, description = "The dashboard page", content_type = "text/html")))]
#[allow(dead_code)]
fn dashboard_page() {}

/// `GET /dashboard/{asset}`: the dashboard's script, style sheet and icon.
#[utoipa::path(get, path = "/dashboard/{asset}", tag = "dashboard",
    params(("asset" = String, Path, description = "app.js, style.css or favicon.svg")),
    responses((status = 200, description = "The file"),
        (status = 404, description = "No such asset", body = Error)))]
#[allow(dead_code)]
fn dashboard_asset() {}

/// Every (method, path) the document describes, for checks against [`crate::app::ROUTES`].
pub fn documented_routes() -> Vec<(String, String)> {
    let doc = ApiDoc::openapi();
    let mut out = Vec::new();
    for (path, item) in doc.paths.paths.iter() {
        let ops = [
            ("GET", item.get.is_some()),
            ("POST", item.post.is_some()),
            ("PUT", item.put.is_some()),
            ("PATCH", item.patch.is_some()),
            ("DELETE", item.delete.is_some()),
        ];
        for (m, present) in ops {
            if present {
                out.push((m.to_string(), path.clone()));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::ROUTES;

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let mut registered: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        registered.sort();
        assert_eq!(documented_routes(), registered);
    }
}
