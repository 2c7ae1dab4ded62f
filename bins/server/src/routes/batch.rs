//! `POST /api/v1/orders/batch`: a whole batch of orders (a day-ahead book) in one call,
//! validated element by element with the single create's rules before anything is written,
//! then written in one transaction, idempotent for the whole batch under one key.

use super::orders::{fingerprint, idempotency_key, BodyFields, CreateOrder};
use super::{blocking, resource};
use crate::error::{ApiError, ErrorBody};
use crate::middleware::{json_config_limited, BATCH_BODY_LIMIT};
use crate::state::AppState;
use ::orders::{NewOrder, Order};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::value::RawValue;
use storage::Idempotency;
use utoipa::openapi::schema::{ArrayBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{OpenApi, PartialSchema, ToSchema};

/// Most orders in one `POST /api/v1/orders/batch`.
pub const MAX_BATCH: usize = 1_000;

/// Registers the route under the API prefix. It must come before `orders::configure`, whose
/// `/orders/{id}` resource would otherwise answer 405 to a POST here.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/orders/batch")
            .app_data(json_config_limited(BATCH_BODY_LIMIT))
            .route(web::post().to(create_orders_batch)),
    );
}

/// The route's part of the OpenAPI document (path relative to the API prefix).
#[derive(OpenApi)]
#[openapi(paths(create_orders_batch), components(schemas(CreateOrderBatch)))]
pub struct BatchApi;

/// Body of `POST /api/v1/orders/batch`: 1 to 1,000 [`CreateOrder`] bodies in a JSON array
/// (documentation only; the handler reads [`BodyFields`] per element).
pub struct CreateOrderBatch;

impl PartialSchema for CreateOrderBatch {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(RefOr::Ref(Ref::from_schema_name(CreateOrder::name())))
            .min_items(Some(1))
            .max_items(Some(MAX_BATCH))
            .description(Some(
                "Orders to create together, each shaped like the body of POST /orders",
            ))
            .into()
    }
}

impl ToSchema for CreateOrderBatch {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((CreateOrder::name().into_owned(), CreateOrder::schema()));
        <CreateOrder as ToSchema>::schemas(schemas);
    }
}

/// The request hash of a batch: its size and a 128-bit FNV-1a digest of every validated
/// order's [`fingerprint`], in order. Written out here because it is stored with the rows and
/// must not change between builds (std's hasher promises no such thing); it guards a client's
/// own key against its own mistakes, not against an adversary.
fn batch_fingerprint(news: &[NewOrder]) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut hash = OFFSET;
    for new in news {
        for byte in fingerprint(new).bytes().chain(std::iter::once(b'\n')) {
            hash ^= u128::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    format!("batch:{}:{hash:032x}", news.len())
}

/// A bad element's error, its detail prefixed with where it is (`orders[3].limit_price: …`).
fn at_index(index: usize, e: ApiError) -> ApiError {
    match e {
        ApiError::BadRequest { code, detail } => ApiError::BadRequest {
            code,
            detail: format!("orders[{index}].{detail}"),
        },
        other => other,
    }
}

/// `POST /api/v1/orders/batch` with a JSON array of 1 to 1,000 order bodies (each as for
/// `POST /api/v1/orders`) and an optional `Idempotency-Key` for the whole batch. Every order is
/// validated before anything is written; they are written in one transaction and answered in
/// input order: 201 when created, 200 with the same orders on a repeat of the same key and
/// body.
#[utoipa::path(post, path = "/orders/batch", tag = "orders",
    request_body(content = CreateOrderBatch,
        description = "1 to 1,000 orders, each shaped like the body of POST /orders"),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255,
        description = "Makes retries safe for the whole batch: a repeat returns the original orders")),
    responses((status = 201, description = "Created, in input order", body = Vec<Order>),
        (status = 200, description = "Repeat of an earlier batch with this key: the same orders", body = Vec<Order>),
        (status = 400, description = "Bad input; `detail` names the first bad element and field (`orders[3].limit_price: ...`); nothing written", body = ErrorBody),
        (status = 409, description = "Key reused with another batch", body = ErrorBody),
        (status = 413, description = "Body over 512 KiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody)))]
pub async fn create_orders_batch(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Vec<Box<RawValue>>>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let bodies = body.into_inner();
    if bodies.is_empty() || bodies.len() > MAX_BATCH {
        return Err(ApiError::BadRequest {
            code: "invalid_batch_size",
            detail: format!(
                "orders: 1 to {MAX_BATCH} orders per batch, not {}",
                bodies.len()
            ),
        });
    }
    let news = bodies
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            // Each element read on its own, so even a malformed one is named by its index.
            serde_json::from_str::<BodyFields>(raw.get())
                .map_err(|e| ApiError::BadRequest {
                    code: "invalid_body",
                    detail: format!("orders[{i}]: {e}"),
                })?
                .validate()
                .map_err(|e| at_index(i, e))
        })
        .collect::<Result<Vec<NewOrder>, ApiError>>()?;
    let earliest = news.iter().map(NewOrder::hour_start_utc).min();
    let store = state.store.clone();
    let inserted = blocking(move || {
        // Digested only under a key: a keyless batch has nothing to compare it with.
        let hash = key.as_ref().map(|_| batch_fingerprint(&news));
        let idem = key
            .as_deref()
            .zip(hash.as_deref())
            .map(|(key, request_hash)| Idempotency { key, request_hash });
        Ok(store.insert_batch(&news, idem, "api")?)
    })
    .await?;
    let created = inserted.iter().any(|i| i.created);
    let orders: Vec<&Order> = inserted.iter().map(|i| &i.order).collect();
    if created {
        if let Some(due) = earliest {
            state.scheduler.notify_due(due);
        }
        Ok(HttpResponse::Created().json(&orders))
    } else {
        Ok(HttpResponse::Ok().json(&orders))
    }
}
