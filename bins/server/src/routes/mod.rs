//! HTTP routes. `seed` keeps the original system's routes and shapes; `orders` is the JSON
//! order API; `scheduler` controls the scheduler; `health` answers probes.

pub mod dashboard;
pub mod events;
pub mod health;
pub mod metrics;
pub mod orders;
pub mod scheduler;
pub mod seed;

use crate::error::ApiError;
use actix_web::web;

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
    let ok = (1..=64).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(raw.to_string())
    } else {
        Err(ApiError::BadRequest {
            code: "invalid_order_id",
            detail: "order id must be 1 to 64 letters, digits, '-' or '_'".into(),
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
    ::orders::parse_due_time(&fixed).map_err(|e| ApiError::invalid(format!("{name}: {e}")))
}
