//! What runs around every handler: the body reader with its size limit and deadline, the
//! request metrics, and the extractor and error-handler settings that give every refusal the
//! API's JSON `{"detail", "code"}` shape.

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

/// Largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Longest time a client may take to send a request body. actix's `client_request_timeout`
/// covers only the head; without this, a client that announces a body and stalls holds its
/// socket for ever.
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// Reads the whole body (at most [`BODY_LIMIT`] bytes, within [`BODY_DEADLINE`]) before any
/// handler runs, answering 413 or 408 itself; handlers then see the buffered body.
pub async fn read_body_with_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // The event stream and other reads carry no body worth waiting for.
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.call(req).await;
    }
    // An announced length over the limit is refused from the header alone.
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(ApiError::PayloadTooLarge(BODY_LIMIT).into());
    }
    let mut payload = req.take_payload();
    let mut body = web::BytesMut::new();
    let read = async {
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| ApiError::BadRequest {
                code: "invalid_body",
                detail: e.to_string(),
            })?;
            if body.len() + chunk.len() > BODY_LIMIT {
                return Err(ApiError::PayloadTooLarge(BODY_LIMIT));
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

/// Counts requests by route pattern (bounded cardinality), method and status.
pub async fn record_http(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| Arc::clone(&s.metrics));
    let started = std::time::Instant::now();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let res = next.call(req).await?;
    if let Some(m) = metrics {
        let status = res.status().as_u16().to_string();
        m.http_requests
            .with_label_values(&[route.as_str(), method.as_str(), status.as_str()])
            .inc();
        m.http_duration
            .with_label_values(&[route.as_str()])
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(res)
}

/// JSON bodies: the size limit, and each kind of refusal mapped to its stable code.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(BODY_LIMIT)
        .error_handler(|err, _| {
            let api = match &err {
                JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => {
                    ApiError::PayloadTooLarge(BODY_LIMIT)
                }
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
