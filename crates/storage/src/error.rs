//! The storage crate's error type: what went wrong, classified so callers can map it to a
//! status code (unavailable → 503, not found → 404, illegal transition → 409, ...).

use ::orders::StatusTransitionError;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// Everything a storage call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database URL names no supported backend or is malformed.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// The database cannot be reached (connection refused, pool timed out, connection lost).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// No order has this id.
    #[error("order {0} not found")]
    NotFound(String),
    /// The status change is not in the table of legal transitions.
    #[error(transparent)]
    IllegalTransition(#[from] StatusTransitionError),
    /// A status change needs a field it was not given (an approval needs an LMP).
    #[error("{0}")]
    MissingField(String),
    /// Another writer changed the order between our read and our write.
    #[error("order {0} was changed concurrently; retry")]
    Conflict(String),
    /// An idempotency key was reused for a different request.
    #[error("idempotency key already used for a different request (order {order_id})")]
    IdempotencyMismatch {
        /// The order the key was first used for.
        order_id: String,
    },
    /// A stored row does not decode into a valid order.
    #[error("stored order {id} is invalid: {reason}")]
    Corrupt {
        /// The row's id.
        id: String,
        /// What did not decode.
        reason: String,
    },
    /// The caller's decision closure failed or panicked on one order; the whole batch was
    /// rolled back.
    #[error("deciding order {order_id} failed: {reason}")]
    Decide {
        /// The order being decided.
        order_id: String,
        /// The closure's error or panic message.
        reason: String,
    },
    /// Any other database error.
    #[error("database error: {0}")]
    Query(DieselError),
}

impl StorageError {
    /// Whether retrying later may succeed because the database itself is the problem.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StorageError::Unavailable(_))
    }
}

impl From<DieselError> for StorageError {
    fn from(e: DieselError) -> Self {
        match &e {
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                StorageError::Unavailable(info.message().to_string())
            }
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
                if is_connection_message(info.message()) =>
            {
                StorageError::Unavailable(info.message().to_string())
            }
            DieselError::BrokenTransactionManager => {
                StorageError::Unavailable("connection left in a broken transaction".into())
            }
            _ => StorageError::Query(e),
        }
    }
}

impl From<r2d2::Error> for StorageError {
    fn from(e: r2d2::Error) -> Self {
        StorageError::Unavailable(e.to_string())
    }
}

/// libpq reports a dropped server as an "unknown" error whose text says so.
fn is_connection_message(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    [
        "server closed the connection",
        "connection to server",
        "terminating connection",
        "no connection to the server",
        "could not connect",
        "the database system is shutting down",
        "the database system is starting up",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}
