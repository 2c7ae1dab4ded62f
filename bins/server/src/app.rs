//! Builds the application: opens the store, spawns the scheduler, binds the listener and
//! mounts the routes. `main.rs` only parses the command line and calls this; tests build the
//! same application on port 0.

use crate::config::ServeArgs;
use crate::error::{ApiError, ErrorBody};
use crate::events::{EventHub, SchedulerState};
use crate::metrics::Metrics;
use crate::routes::{events as events_route, metrics as metrics_route};
use crate::routes::{health, orders, scheduler as sched_routes, seed};
use crate::state::AppState;
use actix_web::body::BoxBody;
use actix_web::dev::{Server, ServerHandle, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers, Logger};
use actix_web::{error::JsonPayloadError, web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context;
use moderator::Policy;
use scheduler::Scheduler;
use scheduler::SchedulerEvent;
use std::net::{TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use storage::{PoolConfig, Store};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Longest time a client may take to send a request body. actix's `client_request_timeout`
/// covers only the head; without this, a client that announces a body and stalls holds its
/// socket for ever.
pub const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// A built, bound application, not yet serving.
pub struct Application {
    port: u16,
    server: Server,
    // Registered before the "listening" line, so a signal sent as soon as the server says it
    // is up is already ours to handle gracefully.
    sigterm: Signal,
    sigint: Signal,
    scheduler: Arc<Scheduler>,
    store: Store,
}

impl Application {
    /// Opens the database (migrating it), spawns the scheduler and binds the listener. Fails
    /// with a clear message on a bad URL, an unreachable database, an invalid policy, or a
    /// non-loopback address without an admin token.
    pub fn build(args: &ServeArgs) -> anyhow::Result<Self> {
        let addrs: Vec<_> = args
            .bind
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve bind address '{}'", args.bind))?
            .collect();
        if args.admin_token.is_none() && addrs.iter().any(|a| !a.ip().is_loopback()) {
            anyhow::bail!(
                "refusing to listen on {} without an admin token: anyone who can reach it could \
                 stop the scheduler or rewrite orders. Set --admin-token (or ADMIN_TOKEN), or bind \
                 to 127.0.0.1.",
                args.bind
            );
        }
        if args.admin_token.as_deref().is_some_and(|t| t.len() < 8) {
            anyhow::bail!("--admin-token must be at least 8 characters");
        }
        let policy = Policy::new(
            args.policy.approval_probability,
            args.policy.rt_lmp_base,
            args.policy.rt_lmp_variance,
        )
        .context("invalid moderation policy")?;
        // A short checkout timeout: while the database is down, requests answer 503 in about a
        // second and a half instead of hanging for the pool's default.
        let pool = PoolConfig {
            max_size: args.db.pool_size.max(2),
            connection_timeout: std::time::Duration::from_millis(1500),
        };
        let store = Store::open(&args.db.database_url, &pool).with_context(|| {
            format!("cannot open the database {}", redact(&args.db.database_url))
        })?;
        let metrics = Arc::new(Metrics::new());
        let events = Arc::new(EventHub::start(store.clone())?);
        let instance_id = args
            .instance_id
            .clone()
            .unwrap_or_else(|| format!("{:08x}", rand_id()));
        let builder = Scheduler::builder(store.clone())
            .instance_id(instance_id.clone())
            .observer(observer(
                Arc::clone(&metrics),
                Arc::clone(&events),
                instance_id,
            ))
            .policy(policy)
            .check_interval(args.check_interval())
            .batch_size(args.batch_size)
            .moderation_seed(args.policy.moderation_seed)
            .autostart(!args.no_autostart);
        let scheduler = Arc::new(builder.spawn()?);
        let listener = TcpListener::bind(&addrs[..])
            .with_context(|| format!("cannot listen on {}", args.bind))?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(AppState {
            store: store.clone(),
            scheduler: Arc::clone(&scheduler),
            policy,
            seed: args.policy.moderation_seed,
            batch_size: args.batch_size,
            admin_token: args.admin_token.clone(),
            events,
            metrics: Arc::clone(&metrics),
        });
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(json_config())
                .app_data(web::PathConfig::default().error_handler(|e, _| {
                    ApiError::invalid(format!("bad path parameter: {e}")).into()
                }))
                .app_data(web::PayloadConfig::new(BODY_LIMIT))
                .wrap(ErrorHandlers::new().default_handler(json_error_body))
                .wrap(actix_web::middleware::from_fn(read_body_with_deadline))
                .wrap(actix_web::middleware::from_fn(record_http))
                .wrap(Logger::new("%a \"%r\" %s %b %Dms"))
                .configure(routes)
        })
        .listen(listener)?
        .client_request_timeout(Duration::from_secs(5))
        .client_disconnect_timeout(Duration::from_secs(1))
        .keep_alive(Duration::from_secs(30))
        .shutdown_timeout(5)
        .disable_signals();
        if let Some(w) = args.workers {
            server = server.workers(w.max(1));
        }
        let sigterm = signal(SignalKind::terminate())?;
        let sigint = signal(SignalKind::interrupt())?;
        log::info!(
            "listening on http://{} ({} database, scheduler {})",
            listener_addr(&args.bind, port),
            store.backend_name(),
            if args.no_autostart {
                "stopped until started"
            } else {
                "running"
            }
        );
        Ok(Self {
            port,
            server: server.run(),
            sigterm,
            sigint,
            scheduler,
            store,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The store the application uses.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A handle that can stop the server (tests).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (or the handle) stops the server: in-flight requests finish,
    /// then the scheduler stops after its current batch and its thread is joined.
    pub async fn run_until_stopped(mut self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let mut server = self.server;
        let result = tokio::select! {
            r = &mut server => r,
            _ = self.sigterm.recv() => Self::graceful(handle, server, "SIGTERM").await,
            _ = self.sigint.recv() => Self::graceful(handle, server, "SIGINT").await,
        };
        log::info!("HTTP server stopped; stopping the scheduler");
        let sched = self.scheduler;
        let _ = web::block(move || {
            let _ = sched.stop();
            drop(sched);
        })
        .await;
        result
    }
}

impl Application {
    async fn graceful(handle: ServerHandle, server: Server, signal: &str) -> std::io::Result<()> {
        log::info!("{signal} received: finishing in-flight requests");
        // The stop command is answered by the server future itself, so it must be awaited
        // beside it, not before it.
        actix_web::rt::spawn(async move { handle.stop(true).await });
        server.await
    }
}

fn rand_id() -> u32 {
    // Time-seeded is enough to tell instances apart in the history.
    let nanos = chrono::Utc::now().timestamp_subsec_nanos();
    nanos ^ std::process::id().rotate_left(16)
}

/// Feeds metrics and the event stream from the scheduler thread; cheap and non-blocking.
fn observer(
    metrics: Arc<Metrics>,
    events: Arc<EventHub>,
    instance_id: String,
) -> scheduler::Observer {
    Arc::new(move |event: &SchedulerEvent<'_>| {
        let state = |state: &'static str, error: Option<String>| SchedulerState {
            state,
            at: chrono::Utc::now(),
            instance_id: instance_id.clone(),
            error,
        };
        match event {
            SchedulerEvent::Moderated { orders, at } => {
                for o in orders.iter() {
                    let outcome = if o.status.is_approved() {
                        "approved"
                    } else {
                        "rejected"
                    };
                    metrics.moderated.with_label_values(&[outcome]).inc();
                    let late = (*at - o.hour_start_utc).num_microseconds().unwrap_or(0);
                    metrics.lateness.observe(late as f64 / 1e6);
                }
                events.poke();
            }
            SchedulerEvent::PassFinished {
                processed,
                duration,
            } if *processed > 0 => {
                metrics.pass_duration.observe(duration.as_secs_f64());
            }
            SchedulerEvent::PassFinished { .. } => {}
            SchedulerEvent::Parked { .. } => metrics.parked.inc(),
            SchedulerEvent::Failed { error } => {
                metrics.failures.inc();
                events.publish_scheduler(state("error", Some(error.to_string())));
            }
            SchedulerEvent::Started => events.publish_scheduler(state("started", None)),
            SchedulerEvent::Stopped => events.publish_scheduler(state("stopped", None)),
        }
    })
}

/// Reads the whole body (at most [`BODY_LIMIT`] bytes, within [`BODY_DEADLINE`]) before any
/// handler runs, answering 413 or 408 itself; handlers then see the buffered body.
async fn read_body_with_deadline(
    mut req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::HttpMessage;
    use futures_util::StreamExt;
    // The event stream and other reads carry no body worth waiting for.
    if matches!(
        *req.method(),
        actix_web::http::Method::GET | actix_web::http::Method::HEAD
    ) {
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
async fn record_http(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
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

fn listener_addr(bind: &str, port: u16) -> String {
    match bind.rsplit_once(':') {
        Some((host, _)) => format!("{host}:{port}"),
        None => format!("{bind}:{port}"),
    }
}

/// Hides a password in a database URL before it is printed.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Every (method, path) the server registers; a test checks each is registered and each is
/// in the OpenAPI document, and the document holds nothing else.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/orders/fake"),
    ("PATCH", "/api/v1/orders/fake/{order_id}"),
    ("POST", "/api/v1/orders/moderate/{hour_start_utc}"),
    ("GET", "/api/v1/fetch_orders"),
    ("GET", "/api/v1/scheduler/status"),
    ("POST", "/api/v1/scheduler/start"),
    ("POST", "/api/v1/scheduler/stop"),
    ("POST", "/api/v1/scheduler/force-run"),
    ("GET", "/api/v1/health/simple"),
    ("GET", "/api/v1/health"),
    ("POST", "/api/v1/orders"),
    ("GET", "/api/v1/orders"),
    ("GET", "/api/v1/orders/{id}"),
    ("POST", "/api/v1/orders/{id}/cancel"),
    ("GET", "/api/v1/positions"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/metrics"),
    ("GET", "/"),
    ("GET", "/dashboard/{asset}"),
];

/// Every route of the API.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            // The seed's routes, first so `/orders/fake` and `/orders/moderate` win over `{id}`.
            .service(resource("/orders/fake").route(web::post().to(seed::create_fake_order)))
            .service(
                resource("/orders/fake/{order_id}").route(web::patch().to(seed::patch_fake_order)),
            )
            .service(
                resource("/orders/moderate/{hour_start_utc}")
                    .route(web::post().to(seed::moderate_hour)),
            )
            .service(resource("/fetch_orders").route(web::get().to(seed::fetch_orders)))
            .service(resource("/scheduler/status").route(web::get().to(sched_routes::status)))
            .service(resource("/scheduler/start").route(web::post().to(sched_routes::start)))
            .service(resource("/scheduler/stop").route(web::post().to(sched_routes::stop)))
            .service(
                resource("/scheduler/force-run").route(web::post().to(sched_routes::force_run)),
            )
            .service(resource("/health/simple").route(web::get().to(health::simple)))
            .service(resource("/health").route(web::get().to(health::ready)))
            // The JSON order API.
            .service(
                resource("/orders")
                    .route(web::post().to(orders::create_order))
                    .route(web::get().to(orders::list_orders)),
            )
            .service(resource("/orders/{id}").route(web::get().to(orders::get_order)))
            .service(resource("/orders/{id}/cancel").route(web::post().to(orders::cancel_order)))
            .service(resource("/positions").route(web::get().to(orders::positions)))
            .service(resource("/events").route(web::get().to(events_route::events)))
            .service(resource("/openapi.json").route(web::get().to(crate::openapi::openapi_json))),
    )
    .service(resource("/metrics").route(web::get().to(metrics_route::metrics)))
    .configure(crate::routes::dashboard::configure)
    .default_service(web::to(not_found));
}

/// A resource whose other methods answer 405 in the API's JSON error shape.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|req: HttpRequest| async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed(req.method().to_string()))
    }))
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound(format!(
        "{} {}",
        req.method(),
        req.path()
    )))
}

fn json_config() -> web::JsonConfig {
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

/// Gives every error response without a JSON body (actix's own 404/405/413 and the like) the
/// API's `{"detail", "code"}` shape.
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
    use super::redact;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("./data/orders.db"), "./data/orders.db");
    }
}
