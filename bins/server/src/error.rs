//! The API's error type: every failure becomes JSON `{"detail": ..., "code": ...}` with a
//! stable `code` and the matching status; nothing a client sends can produce an HTML page or a
//! bare 500.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use scheduler::SchedulerError;
use serde::Serialize;
use storage::StorageError;

/// Everything a handler can answer with instead of success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A parameter or body field is missing, malformed or out of range.
    #[error("{detail}")]
    BadRequest {
        /// Stable machine-readable reason (`invalid_parameter`, `invalid_json`, ...).
        code: &'static str,
        /// Human explanation naming the field.
        detail: String,
    },
    /// Admin route without the right bearer token.
    #[error("admin token missing or wrong: send 'Authorization: Bearer <token>'")]
    Unauthorized,
    /// A state-changing request from a foreign host or web origin.
    #[error("{detail}")]
    Forbidden {
        /// `forbidden_host` or `forbidden_origin`.
        code: &'static str,
        /// Which header was refused and how to allow it.
        detail: String,
    },
    /// No such order.
    #[error("order {0} not found")]
    OrderNotFound(String),
    /// No such route.
    #[error("no route for {0}")]
    RouteNotFound(String),
    /// The route exists, not with this method.
    #[error("method {0} not allowed here")]
    MethodNotAllowed(String),
    /// A status change the order's current status does not allow, or a concurrent change.
    #[error("{detail}")]
    Conflict {
        /// `illegal_transition`, `concurrent_change`, `idempotency_key_reused`.
        code: &'static str,
        /// What conflicted, naming the order and statuses.
        detail: String,
    },
    /// The order is stored but does not decode (a side or status another tool wrote): 409,
    /// since the request is sound and only fixing or deleting the row resolves it; not a 500,
    /// which would hide the reason and page whoever watches server errors.
    #[error("order {id} is stored but cannot be read: {reason}; fix or delete the row")]
    OrderUnreadable {
        /// The order's id.
        id: String,
        /// What did not decode.
        reason: String,
    },
    /// The body is larger than the limit.
    #[error("request body larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The body is not JSON.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// The body did not arrive in time.
    #[error("request body not received within {0} seconds")]
    RequestTimeout(u64),
    /// The database cannot be reached; retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The scheduler thread is gone or did not answer; retry later.
    #[error("scheduler unavailable: {0}")]
    SchedulerUnavailable(String),
    /// A bug or an unexpected failure; the detail is logged, not sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A 400 with the `invalid_parameter` code.
    pub fn invalid(detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code: "invalid_parameter",
            detail: detail.into(),
        }
    }

    /// The stable code sent as `code`.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Forbidden { code, .. } => code,
            ApiError::Unauthorized => "unauthorized",
            ApiError::OrderNotFound(_) => "order_not_found",
            ApiError::OrderUnreadable { .. } => "order_unreadable",
            ApiError::RouteNotFound(_) => "route_not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::Unavailable(_) => "database_unavailable",
            ApiError::SchedulerUnavailable(_) => "scheduler_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }
}

/// The JSON body of every error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub detail: String,
    /// What went wrong, for a program; stable across versions (`invalid_parameter`,
    /// `order_not_found`, `database_unavailable`, ...).
    #[schema(value_type = String, example = "invalid_parameter")]
    pub code: &'static str,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::OrderNotFound(_) | ApiError::RouteNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } | ApiError::OrderUnreadable { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) | ApiError::SchedulerUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(cause) => log::error!("internal error: {cause}"),
            // Logged because only an operator can fix it, and the client may not report it.
            ApiError::OrderUnreadable { .. } => log::warn!("{self}"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unauthorized) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response.json(ErrorBody {
            detail: self.to_string(),
            code: self.code(),
        })
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound(id) => ApiError::OrderNotFound(id),
            StorageError::IllegalTransition(t) => ApiError::Conflict {
                code: "illegal_transition",
                detail: t.to_string(),
            },
            StorageError::Conflict(_) => ApiError::Conflict {
                code: "concurrent_change",
                detail: e.to_string(),
            },
            StorageError::IdempotencyMismatch { .. } => ApiError::Conflict {
                code: "idempotency_key_reused",
                detail: e.to_string(),
            },
            StorageError::MissingField(detail) => ApiError::BadRequest {
                code: "missing_parameter",
                detail,
            },
            StorageError::Unavailable(msg) => ApiError::Unavailable(msg),
            StorageError::Corrupt { id, reason } => ApiError::OrderUnreadable { id, reason },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<SchedulerError> for ApiError {
    fn from(e: SchedulerError) -> Self {
        match e {
            SchedulerError::Storage(s) => s.into(),
            // Neither is a bug of the request: the thread died (readiness reports it and the
            // server exits) or is busy beyond the handle's wait.
            SchedulerError::ThreadGone | SchedulerError::Timeout(_) => {
                ApiError::SchedulerUnavailable(e.to_string())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(format!("blocking task failed: {e}"))
    }
}

impl From<orders::ValidationError> for ApiError {
    fn from(e: orders::ValidationError) -> Self {
        ApiError::BadRequest {
            code: e.code,
            detail: e.to_string(),
        }
    }
}
