//! The original front end's market routes: real-time prices of a location, from the price
//! source the moderator uses (the simulated model, or a price file), so that its P&L marks and
//! charts show the prices orders were settled at.
//!
//! - `GET /realtime/latest?market=&location=`: the interval containing now, or else the last
//!   one before it, as `data[0]`; 404 when the source has nothing at or before now.
//! - `GET /realtime/last24h?market=&location=`: the 24 hours up to that latest interval, in
//!   time order (anchored on the latest interval rather than on now, so that a file of past
//!   prices still draws its last day).
//! - `GET /realtime/range?start=&end=&market=&location=`: intervals starting in
//!   `[start, end)`, in time order, at most 31 days.
//!
//! Lookups read memory only (the file was loaded at start), so handlers do not need the
//! blocking pool.

use super::{due_time_param, resource};
use crate::error::{ApiError, ErrorBody};
use crate::query::Params;
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use moderator::{PriceSource, RtPrice};
use orders::{format_ms, Price};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// The market named when the query names none (the original front end trades PJM).
const DEFAULT_MARKET: &str = "pjm";
/// Longest span `range` answers, so one request cannot ask for years of 5-minute intervals.
const MAX_RANGE_DAYS: i64 = 31;
/// Longest location name accepted.
const MAX_LOCATION_LEN: usize = 100;

/// Registers the routes under the API prefix.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/realtime/latest").route(web::get().to(latest)))
        .service(resource("/realtime/last24h").route(web::get().to(last24h)))
        .service(resource("/realtime/range").route(web::get().to(range)));
}

/// The routes' part of the OpenAPI document (paths relative to the API prefix).
#[derive(OpenApi)]
#[openapi(
    paths(latest, last24h, range),
    components(schemas(RealtimeReply, RangeReply, RealtimePoint))
)]
pub struct MarketApi;

/// One interval's price, in the original's field names.
#[derive(Debug, Serialize, ToSchema)]
pub struct RealtimePoint {
    /// Start of the interval, UTC.
    #[serde(with = "orders::time::serde_ms")]
    #[schema(value_type = String, format = DateTime, example = "2024-01-01T05:00:00.000Z")]
    pub interval_start_utc: DateTime<Utc>,
    /// Locational marginal price, $/MWh (may be negative).
    #[schema(value_type = f64, example = 41.23)]
    pub lmp: Price,
    /// System energy component, $/MWh (`null` when the source lacks it).
    #[schema(value_type = Option<f64>)]
    pub energy: Option<Price>,
    /// Congestion component, $/MWh.
    #[schema(value_type = Option<f64>)]
    pub congestion: Option<Price>,
    /// Marginal loss component, $/MWh.
    #[schema(value_type = Option<f64>)]
    pub loss: Option<Price>,
}

impl From<RtPrice> for RealtimePoint {
    fn from(p: RtPrice) -> Self {
        Self {
            interval_start_utc: p.interval_start_utc,
            lmp: p.lmp,
            energy: p.energy,
            congestion: p.congestion,
            loss: p.loss,
        }
    }
}

/// The answer of `latest` and `last24h`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RealtimeReply {
    /// The market asked about (`pjm` by default).
    pub market: String,
    /// The location asked about.
    pub location: String,
    /// The intervals, in time order.
    pub data: Vec<RealtimePoint>,
}

/// The answer of `range`: [`RealtimeReply`]'s fields and the range asked for.
#[derive(Debug, Serialize, ToSchema)]
pub struct RangeReply {
    /// The market asked about.
    pub market: String,
    /// The location asked about.
    pub location: String,
    /// Start of the range, as normalised (UTC, milliseconds).
    pub start: String,
    /// End of the range (exclusive).
    pub end: String,
    /// Intervals starting in `[start, end)`, in time order.
    pub data: Vec<RealtimePoint>,
}

/// `market` (default `pjm`) and `location` (required) of a market query.
fn market_and_location(p: &Params) -> Result<(String, String), ApiError> {
    let market = p.get("market").unwrap_or(DEFAULT_MARKET).trim();
    if market.is_empty()
        || market.len() > 16
        || !market
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ApiError::invalid(
            "market must be 1 to 16 letters, digits, '-' or '_'",
        ));
    }
    // Price files name nodes with spaces ("WESTERN HUB"), so this is looser than an order's
    // location; it only has to be a name a source could know.
    let location = p.get("location").unwrap_or("").trim();
    if location.is_empty()
        || location.len() > MAX_LOCATION_LEN
        || location.chars().any(char::is_control)
    {
        return Err(ApiError::invalid(format!(
            "location is required: 1 to {MAX_LOCATION_LEN} characters, no control characters"
        )));
    }
    Ok((market.to_ascii_lowercase(), location.to_string()))
}

fn prices(state: &AppState) -> &dyn PriceSource {
    &**state.scheduler.moderator().prices()
}

fn no_price(location: &str, at: DateTime<Utc>) -> HttpResponse {
    HttpResponse::NotFound().json(ErrorBody {
        detail: format!(
            "No real-time price for {location} at or before {}",
            format_ms(&at)
        ),
        code: "no_price",
    })
}

/// `GET /api/v1/realtime/latest?market=pjm&location=NODE`: the interval containing now, or
/// the last one before it.
#[utoipa::path(get, path = "/realtime/latest", tag = "original",
    params(
        ("market" = Option<String>, Query, description = "Default pjm", pattern = "^[A-Za-z0-9_-]{1,16}$"),
        ("location" = String, Query, description = "Node as the price source names it"),
    ),
    responses(
        (status = 200, description = "The current interval's price as data[0]", body = RealtimeReply),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 404, description = "No price at or before now", body = ErrorBody)))]
pub async fn latest(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let p = Params::parse(req.query_string(), &["market", "location"])?;
    let (market, location) = market_and_location(&p)?;
    let now = Utc::now();
    let Some(price) = prices(&state).latest_at_or_before(&location, now) else {
        return Ok(no_price(&location, now));
    };
    Ok(HttpResponse::Ok().json(RealtimeReply {
        market,
        location,
        data: vec![price.into()],
    }))
}

/// `GET /api/v1/realtime/last24h?market=pjm&location=NODE`: the 24 hours up to the latest
/// interval, in time order (empty when the source has nothing at or before now).
#[utoipa::path(get, path = "/realtime/last24h", tag = "original",
    params(
        ("market" = Option<String>, Query, description = "Default pjm", pattern = "^[A-Za-z0-9_-]{1,16}$"),
        ("location" = String, Query, description = "Node as the price source names it"),
    ),
    responses(
        (status = 200, description = "The last day's intervals, oldest first", body = RealtimeReply),
        (status = 400, description = "Bad input", body = ErrorBody)))]
pub async fn last24h(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let p = Params::parse(req.query_string(), &["market", "location"])?;
    let (market, location) = market_and_location(&p)?;
    let source = prices(&state);
    let data = match source.latest_at_or_before(&location, Utc::now()) {
        Some(last) => {
            // Up to and including the latest interval.
            let end = last.interval_start_utc + Duration::milliseconds(1);
            source
                .range(&location, end - Duration::hours(24), end)
                .into_iter()
                .map(RealtimePoint::from)
                .collect()
        }
        None => Vec::new(),
    };
    Ok(HttpResponse::Ok().json(RealtimeReply {
        market,
        location,
        data,
    }))
}

/// `GET /api/v1/realtime/range?start=&end=&market=pjm&location=NODE`: intervals starting in
/// `[start, end)`, in time order.
#[utoipa::path(get, path = "/realtime/range", tag = "original",
    params(
        ("start" = String, Query, format = DateTime, description = "RFC 3339 with an offset"),
        ("end" = String, Query, format = DateTime, description = "RFC 3339 with an offset, after start, at most 31 days later"),
        ("market" = Option<String>, Query, description = "Default pjm", pattern = "^[A-Za-z0-9_-]{1,16}$"),
        ("location" = String, Query, description = "Node as the price source names it"),
    ),
    responses(
        (status = 200, description = "The intervals, oldest first", body = RangeReply),
        (status = 400, description = "Bad input", body = ErrorBody)))]
pub async fn range(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let p = Params::parse(req.query_string(), &["start", "end", "market", "location"])?;
    let (market, location) = market_and_location(&p)?;
    let time = |name: &str| -> Result<DateTime<Utc>, ApiError> {
        let raw = p
            .get(name)
            .ok_or_else(|| ApiError::invalid(format!("{name} is required")))?;
        due_time_param(name, raw)
    };
    let (start, end) = (time("start")?, time("end")?);
    if end <= start {
        return Err(ApiError::invalid("end must be after start"));
    }
    if end - start > Duration::days(MAX_RANGE_DAYS) {
        return Err(ApiError::invalid(format!(
            "range must span at most {MAX_RANGE_DAYS} days"
        )));
    }
    let data = prices(&state)
        .range(&location, start, end)
        .into_iter()
        .map(RealtimePoint::from)
        .collect();
    Ok(HttpResponse::Ok().json(RangeReply {
        market,
        location,
        start: format_ms(&start),
        end: format_ms(&end),
        data,
    }))
}
