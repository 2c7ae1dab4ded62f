//! What runs around every handler: the site guard (state-changing requests only from the
//! server's own names and trusted origins), the body reader with its size limit and deadline,
//! the request metrics, and the extractor and error-handler settings that give every refusal
//! the API's JSON `{"detail", "code"}` shape.

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers, Next};
use actix_web::{error::JsonPayloadError, web, HttpMessage};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// Largest request body accepted, in bytes (every route but [`BATCH_PATH`]).
pub const BODY_LIMIT: usize = 64 * 1024;

/// The one route allowed a larger body: a day-ahead book of up to 1,000 orders.
pub const BATCH_PATH: &str = "/api/v1/orders/batch";

/// Largest body of [`BATCH_PATH`]: 1,000 orders at about 150 bytes each fit three times over,
/// so pretty-printed JSON passes too.
pub const BATCH_BODY_LIMIT: usize = 512 * 1024;

/// The body limit of a request path. The body reader runs before routing, so it goes by the
/// exact path; any other spelling reaches no route and keeps the small limit.
pub fn body_limit(path: &str) -> usize {
    if path == BATCH_PATH {
        BATCH_BODY_LIMIT
    } else {
        BODY_LIMIT
    }
}

/// Longest time a client may take to send a request body. actix's `client_request_timeout`
/// covers only the head; without this, a client that announces a body and stalls holds its
/// socket for ever.
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// Reads the whole body (at most [`body_limit`] bytes, within [`BODY_DEADLINE`]) before any
/// handler runs, answering 413 or 408 itself; handlers then see the buffered body.
pub async fn read_body_with_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // The event stream and other reads carry no body worth waiting for.
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.call(req).await;
    }
    let limit = body_limit(req.path());
    // An announced length over the limit is refused from the header alone.
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge(limit).into());
    }
    let mut payload = req.take_payload();
    let mut body = web::BytesMut::new();
    let read = async {
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| ApiError::BadRequest {
                code: "invalid_body",
                detail: e.to_string(),
            })?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::PayloadTooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(())
    };
    match tokio::time::timeout(BODY_DEADLINE, read).await {
        Err(_) => return Err(ApiError::RequestTimeout(BODY_DEADLINE.as_secs()).into()),
        Ok(Err(e)) => return Err(e.into()),
        Ok(Ok(())) => {}
    }
    req.set_payload(actix_web::dev::Payload::from(body.freeze()));
    next.call(req).await
}

/// Methods counted under their own name; any other token is counted as `other`, so a client
/// cannot grow the metrics with invented methods.
const KNOWN_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The route label of requests no route matched (one value, whatever the path).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The method label: the method's name if it is a standard one, else `other`.
pub fn method_label(method: &Method) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|m| **m == method.as_str())
        .copied()
        .unwrap_or("other")
}

/// Counts requests by route pattern, method and status, every label from a bounded set:
/// the matched pattern (never the raw path), a known method or `other`. Refusals of the inner
/// middlewares (the body reader's 413 and 408, the site guard's 403) are counted too.
pub async fn record_http(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| Arc::clone(&s.metrics));
    let started = std::time::Instant::now();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| UNMATCHED_ROUTE.into());
    let method = method_label(req.method());
    let res = next.call(req).await;
    let status = match &res {
        Ok(r) => r.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    if let Some(m) = metrics {
        let status = status.as_u16().to_string();
        m.http_requests
            .with_label_values(&[route.as_str(), method, status.as_str()])
            .inc();
        m.http_duration
            .with_label_values(&[route.as_str()])
            .observe(started.elapsed().as_secs_f64());
    }
    res
}

/// Which hosts and origins may send state-changing requests (anything but GET, HEAD and
/// OPTIONS).
///
/// Such requests are refused when their `Host` is not one of the server's own names (a
/// loopback name, an IP address, or one listed with `--allowed-host`), which defeats DNS
/// rebinding, and when they carry an `Origin` that is neither a loopback origin nor one listed
/// with `--allowed-origin`, which defeats cross-site form posts from any page the user visits.
/// Requests without an `Origin` (curl, scripts, the CLI) pass the origin check: browsers
/// always send one on cross-site POSTs.
#[derive(Debug, Clone, Default)]
pub struct SiteGuard {
    hosts: Vec<String>,
    origins: Vec<String>,
}

impl SiteGuard {
    /// Builds the guard from the flags' values (case and a trailing `/` do not matter).
    pub fn new(allowed_hosts: &[String], allowed_origins: &[String]) -> Self {
        let clean = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|s| s.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        };
        Self {
            hosts: clean(allowed_hosts),
            origins: clean(allowed_origins),
        }
    }

    /// Why a request with this `Host` and `Origin` is refused, or `None` if it may proceed.
    pub fn refusal(&self, host: Option<&str>, origin: Option<&str>) -> Option<ApiError> {
        let host_ok = host.is_some_and(|h| {
            let name = host_name(h).to_ascii_lowercase();
            is_loopback_or_ip(&name) || self.hosts.iter().any(|a| host_name(a) == name)
        });
        if !host_ok {
            return Some(ApiError::Forbidden {
                code: "forbidden_host",
                detail: format!(
                    "Host '{}' is not one of this server's names; state-changing requests \
                     must address it by a loopback name, an IP address or a name listed with \
                     --allowed-host",
                    host.unwrap_or("")
                ),
            });
        }
        let origin_ok = match origin {
            None => true,
            Some(o) => {
                let o = o.trim().trim_end_matches('/').to_ascii_lowercase();
                is_loopback_origin(&o) || self.origins.contains(&o)
            }
        };
        if !origin_ok {
            return Some(ApiError::Forbidden {
                code: "forbidden_origin",
                detail: format!(
                    "Origin '{}' may not send state-changing requests; allow it with \
                     --allowed-origin (loopback origins are always allowed)",
                    origin.unwrap_or("")
                ),
            });
        }
        None
    }
}

/// The host of a `Host` header value or an authority, without the port (`[::1]:80` → `::1`).
fn host_name(authority: &str) -> &str {
    let a = authority.trim();
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match a.rsplit_once(':') {
        // One colon: a port. More than one: a bare IPv6 address.
        Some((h, _)) if !h.contains(':') => h,
        _ => a,
    }
}

fn is_loopback_or_ip(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// `http(s)://` + a loopback name or address + an optional port.
fn is_loopback_origin(origin: &str) -> bool {
    let Some(authority) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    if authority.contains('/') || authority.contains('@') {
        return false;
    }
    let name = host_name(authority);
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Refuses state-changing requests from foreign hosts or origins (see [`SiteGuard`]) before
/// any handler runs (after the body reader, so oversized and stalled bodies still get their
/// 413 and 408).
pub async fn guard_site(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        if let Some(state) = req.app_data::<web::Data<AppState>>() {
            let header_text = |name: header::HeaderName| {
                req.headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap_or("\u{fffd}"))
            };
            // HTTP/2 carries the host in the URI's authority instead of a Host header.
            let host =
                header_text(header::HOST).or_else(|| req.uri().authority().map(|a| a.as_str()));
            if let Some(refusal) = state.site.refusal(host, header_text(header::ORIGIN)) {
                return Err(refusal.into());
            }
        }
    }
    next.call(req).await
}

/// JSON bodies: the size limit, and each kind of refusal mapped to its stable code.
pub fn json_config() -> web::JsonConfig {
    json_config_limited(BODY_LIMIT)
}

/// [`json_config`] with another size limit (the batch route's).
pub fn json_config_limited(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |err, _| {
            let api = match &err {
                JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => ApiError::PayloadTooLarge(limit),
                JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::BadRequest {
                    code: "invalid_body",
                    detail: e.to_string(),
                },
                JsonPayloadError::Deserialize(e) => ApiError::BadRequest {
                    code: "invalid_json",
                    detail: format!("malformed JSON: {e}"),
                },
                other => ApiError::BadRequest {
                    code: "invalid_json",
                    detail: other.to_string(),
                },
            };
            api.into()
        })
}

/// Path parameters that do not decode are a 400 in the API's shape, not actix's text 404.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|e, _| ApiError::invalid(format!("bad path parameter: {e}")).into())
}

/// Gives every error response without a JSON body (actix's own 404/405/413 and the like) the
/// API's `{"detail", "code"}` shape.
pub fn json_errors<B: 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(json_error_body)
}

fn json_error_body<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => ("route_not_found", "no such route".to_string()),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            format!("method {} not allowed here", res.request().method()),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            format!("request body larger than {BODY_LIMIT} bytes"),
        ),
        s if s.is_client_error() => (
            "bad_request",
            s.canonical_reason().unwrap_or("bad request").into(),
        ),
        s => (
            "internal_error",
            s.canonical_reason().unwrap_or("error").into(),
        ),
    };
    let body = serde_json::to_string(&ErrorBody { detail, code }).unwrap_or_default();
    let (req, mut res) = res.into_parts();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let res = res.set_body(BoxBody::new(body));
    let res = ServiceResponse::new(req, res)
        .map_into_boxed_body()
        .map_into_right_body::<B>();
    Ok(ErrorHandlerResponse::Response(res))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_accepts_own_names_and_loopback_origins_only() {
        let g = SiteGuard::new(
            &["orders.example.com".into()],
            &["https://ops.example.com/".into()],
        );
        for host in [
            "127.0.0.1:8000",
            "localhost:8000",
            "[::1]:8000",
            "10.0.0.5",
            "Orders.Example.com:443",
        ] {
            assert!(g.refusal(Some(host), None).is_none(), "{host}");
        }
        for origin in [
            "http://localhost:3000",
            "http://127.0.0.1:8000",
            "http://[::1]",
            "https://ops.example.com",
        ] {
            assert!(
                g.refusal(Some("localhost"), Some(origin)).is_none(),
                "{origin}"
            );
        }
        assert_eq!(
            g.refusal(Some("evil.example"), None).map(|e| e.code()),
            Some("forbidden_host")
        );
        assert_eq!(
            g.refusal(None, None).map(|e| e.code()),
            Some("forbidden_host")
        );
        for origin in [
            "http://evil.example",
            "null",
            "http://localhost.evil.example",
            "http://127.0.0.1@evil.example",
        ] {
            assert_eq!(
                g.refusal(Some("127.0.0.1"), Some(origin)).map(|e| e.code()),
                Some("forbidden_origin"),
                "{origin}"
            );
        }
    }

    #[test]
    fn method_labels_are_bounded() {
        assert_eq!(method_label(&Method::GET), "GET");
        let odd = Method::from_bytes(b"FROBNICATE").unwrap_or(Method::GET);
        assert_eq!(method_label(&odd), "other");
    }
}
