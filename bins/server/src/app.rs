//! Builds the application: opens the store, spawns the scheduler, binds the listener and
//! mounts the routes. `main.rs` only parses the command line and calls this; tests build the
//! same application on port 0.

use crate::config::ServeArgs;
use crate::events::EventHub;
use crate::metrics::Metrics;
use crate::middleware::{self, BODY_LIMIT};
use crate::state::AppState;
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::Logger;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use moderator::Policy;
use scheduler::Scheduler;
use std::net::{TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use storage::{PoolConfig, Store};
use tokio::signal::unix::{signal, Signal, SignalKind};

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
    // Dropped with the application: stops the retention sweeper and joins its thread.
    _retention: Option<crate::retention::Sweeper>,
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
        let moderator = args.market.build(&args.policy)?;
        // A short checkout timeout: while the database is down, requests answer 503 in about a
        // second and a half instead of hanging for the pool's default.
        let pool = PoolConfig {
            max_size: args.db.pool_size.max(2),
            connection_timeout: std::time::Duration::from_millis(1500),
            // A service: one connection stays ready for the next request.
            min_idle: 1,
            // Claims and group commits write thousands of pages at a time; their commits
            // should not also copy them into the file (SQLite; see storage's checkpoint.rs).
            background_checkpoints: true,
            ..PoolConfig::default()
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
        crate::logging::set_instance(&instance_id);
        let builder = Scheduler::builder(store.clone())
            .instance_id(instance_id.clone())
            .observer(crate::observer::observer(
                Arc::clone(&metrics),
                Arc::clone(&events),
                instance_id,
            ))
            .moderator(moderator)
            .check_interval(args.check_interval())
            .batch_size(args.batch_size)
            .pg_writers(args.pg_writers)
            .moderation_seed(args.policy.moderation_seed)
            .autostart(!args.no_autostart);
        let scheduler = Arc::new(builder.spawn()?);
        let retention = args
            .retain_closed_days
            .map(|days| {
                let cfg = crate::retention::RetentionConfig::days(
                    days,
                    Duration::from_secs(args.retention_interval_secs),
                );
                crate::retention::start(store.clone(), cfg)
            })
            .transpose()?;
        let listener = TcpListener::bind(&addrs[..])
            .with_context(|| format!("cannot listen on {}", args.bind))?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(AppState {
            store: store.clone(),
            scheduler: Arc::clone(&scheduler),
            policy,
            moderation_seed: args.policy.moderation_seed,
            batch_size: args.batch_size,
            admin_token: args.admin_token.clone(),
            events,
            metrics: Arc::clone(&metrics),
            site: middleware::SiteGuard::new(&args.allowed_hosts, &args.allowed_origins),
            // Shared for a second once reading one takes 20 ms or more (a large book).
            positions: Arc::new(crate::snapshot_cache::SnapshotCache::new(
                Duration::from_secs(1),
                Duration::from_millis(20),
            )),
            listings: Arc::new(crate::coalesce::Coalescer::default()),
        });
        let readiness = web::Data::new(crate::routes::health::Readiness {
            unready_after: Duration::from_secs(args.unready_after_secs),
        });
        // Read here, on the thread that started the scheduler: the workers' value is relative
        // to the scheduler's.
        let (nice_base, http_nice) = (crate::priority::current_nice(), args.http_nice);
        let mut server = HttpServer::new(move || {
            // Runs on each worker thread as it starts.
            if let Err(e) = crate::priority::lower_this_thread(nice_base, http_nice) {
                log::warn!("could not lower an HTTP worker's priority: {e}");
            }
            App::new()
                .app_data(state.clone())
                .app_data(readiness.clone())
                .app_data(middleware::json_config())
                .app_data(middleware::path_config())
                .app_data(web::PayloadConfig::new(BODY_LIMIT))
                .wrap(middleware::json_errors())
                // Inside the body reader: an oversized or stalled body is answered 413/408
                // whatever its Host, as before; the guard judges complete requests.
                .wrap(actix_web::middleware::from_fn(middleware::guard_site))
                .wrap(actix_web::middleware::from_fn(
                    middleware::read_body_with_deadline,
                ))
                .wrap(actix_web::middleware::from_fn(middleware::record_http))
                .wrap(Logger::new("%a \"%r\" %s %b %Dms"))
                // The document's route first: the routes' `/api/v1` scope would take it.
                .configure(crate::openapi::configure)
                .configure(crate::routes::configure)
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
            _retention: retention,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The store the application opened (tests read and fill the database through it).
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
            _ = scheduler_death(Arc::clone(&self.scheduler)) => {
                // A server whose scheduler is gone would keep answering while moderating
                // nothing; exiting non-zero lets a supervisor restart it.
                log::error!(
                    "the scheduler thread died unexpectedly (its panic, if any, is logged \
                     above); stopping the server and exiting with an error"
                );
                let _ = Self::graceful(handle, server, "scheduler death").await;
                Err(std::io::Error::other("the scheduler thread died unexpectedly"))
            }
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

/// Resolves when the scheduler thread is no longer alive (it stays alive while stopped, so
/// this means it died). Looks twice a second: cheap, and quick enough for a supervisor.
async fn scheduler_death(scheduler: Arc<Scheduler>) {
    loop {
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
        if !scheduler.liveness().thread_alive {
            return;
        }
    }
}

fn rand_id() -> u32 {
    // Time-seeded is enough to tell instances apart in the history.
    let nanos = chrono::Utc::now().timestamp_subsec_nanos();
    nanos ^ std::process::id().rotate_left(16)
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
