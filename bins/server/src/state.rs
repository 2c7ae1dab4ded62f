//! What every handler shares: the store, the scheduler handle, the policy and the admin token.

use crate::error::ApiError;
use crate::events::EventHub;
use crate::metrics::Metrics;
use crate::middleware::SiteGuard;
use actix_web::HttpRequest;
use moderator::Policy;
use scheduler::Scheduler;
use std::sync::Arc;
use storage::Store;
use subtle::ConstantTimeEq;

/// Shared, read-only application state.
pub struct AppState {
    /// Every read and write of orders goes through it (handlers call it inside `web::block`).
    pub store: Store,
    /// This process's scheduler: woken by new orders, controlled by the scheduler routes.
    pub scheduler: Arc<Scheduler>,
    /// The configured policy (manual moderation may override it per request).
    pub policy: Policy,
    /// The configured moderation seed: with one, outcomes are reproducible.
    pub moderation_seed: Option<u64>,
    /// Batch size for manual moderation.
    pub batch_size: usize,
    /// When set, admin routes need `Authorization: Bearer <token>`.
    pub admin_token: Option<String>,
    /// Live order and scheduler events for `GET /api/v1/events`.
    pub events: Arc<EventHub>,
    /// Counters the middleware and the scheduler observer feed; `/metrics` renders them.
    pub metrics: Arc<Metrics>,
    /// Which hosts and origins may send state-changing requests.
    pub site: SiteGuard,
    /// Positions answers shared between callers for up to a second (their totals count the
    /// whole book).
    /// Held serialised, so sharing an answer also shares its serialisation.
    pub positions: Arc<crate::snapshot_cache::SnapshotCache<actix_web::web::Bytes>>,
    /// Listings asked at the same time share one read begun after each caller asked.
    pub listings: Arc<crate::coalesce::Coalescer>,
}

impl AppState {
    /// Checks the bearer token of an admin request, in constant time. The scheme name is
    /// case-insensitive (RFC 7235): `bearer`, `Bearer` and `BEARER` are the same.
    pub fn require_admin(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let Some(expected) = &self.admin_token else {
            return Ok(());
        };
        let given = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .unwrap_or("");
        if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value, whatever the scheme's case.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start())
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for v in ["Bearer abc", "bearer abc", "BEARER  abc"] {
            assert_eq!(bearer_token(v), Some("abc"), "{v}");
        }
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
