//! `spawn_app()` and typed request helpers.

use clap::Parser;
use order_scheduler::app::Application;
use order_scheduler::config::{Cli, Command, ServeArgs};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use storage::testing::{Backend, TestDb};
use storage::Store;

/// A running application on a fresh database.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub token: Option<String>,
    handle: actix_web::dev::ServerHandle,
    /// The database this app created (None when it shares another app's).
    pub db: Option<TestDb>,
}

/// Settings a test may change.
pub struct Options {
    pub admin_token: Option<String>,
    pub autostart: bool,
    /// Makes moderation outcomes reproducible.
    pub moderation_seed: Option<u64>,
    /// Extra origins allowed to send state-changing requests.
    pub allowed_origins: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            admin_token: None,
            autostart: true,
            moderation_seed: None,
            allowed_origins: Vec::new(),
        }
    }
}

/// The server's settings for a test, parsed from flags like the binary's, so that a flag
/// added to the server gets its default here without touching this file.
pub fn serve_args(url: &str, o: &Options) -> ServeArgs {
    let mut argv: Vec<String> = [
        "order-scheduler",
        "serve",
        "--database-url",
        url,
        "--pool-size",
        "8",
        "--bind",
        "127.0.0.1:0",
        "--batch-size",
        "500",
        "--instance-id",
        "test",
        "--workers",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !o.autostart {
        argv.push("--no-autostart".into());
    }
    if let Some(t) = &o.admin_token {
        argv.extend(["--admin-token".into(), t.clone()]);
    }
    if let Some(seed) = o.moderation_seed {
        argv.extend(["--moderation-seed".into(), seed.to_string()]);
    }
    for origin in &o.allowed_origins {
        argv.extend(["--allowed-origin".into(), origin.clone()]);
    }
    let cli = Cli::try_parse_from(argv).expect("test flags parse");
    match cli.command {
        Some(Command::Serve(args)) => args,
        _ => cli.serve,
    }
}

/// Starts the application on `backend`, or `None` if that backend is unavailable (Postgres
/// tests then print a SKIPPED line).
pub async fn spawn_app(backend: Backend, options: Options) -> Option<TestApp> {
    let db = TestDb::new(backend)?;
    let mut app = spawn_app_on(&db.url, options).await;
    app.db = Some(db);
    Some(app)
}

/// Starts another application on an existing database (several instances, one database).
pub async fn spawn_app_on(url: &str, options: Options) -> TestApp {
    let app = Application::build(&serve_args(url, &options)).expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let store = app.store().clone();
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        store,
        token: options.admin_token,
        handle,
        db: None,
    }
}

/// A response's status and JSON body (`Value::Null` if the body is not JSON).
pub struct Reply {
    pub status: StatusCode,
    pub json: Value,
    pub content_type: String,
}

impl TestApp {
    pub async fn request(
        &self,
        method: Method,
        path: impl AsRef<str>,
        body: Option<Value>,
        admin: bool,
    ) -> Reply {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.address, path.as_ref()));
        if let Some(b) = body {
            req = req.json(&b);
        }
        if admin {
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
        }
        Self::reply(req.send().await.expect("request sent")).await
    }

    pub async fn reply(resp: reqwest::Response) -> Reply {
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = resp.text().await.unwrap_or_default();
        Reply {
            status,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            content_type,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, None, false).await
    }

    pub async fn post(&self, path: &str) -> Reply {
        self.request(Method::POST, path, None, false).await
    }

    pub async fn admin_post(&self, path: &str) -> Reply {
        self.request(Method::POST, path, None, true).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Reply {
        self.request(Method::POST, path, Some(body), false).await
    }

    /// Creates an order through the original system's route, due `secs` from now.
    pub async fn create_fake(&self, side: &str, qty: &str, price: &str, due_in_ms: i64) -> Value {
        let due =
            orders::format_ms(&(chrono::Utc::now() + chrono::Duration::milliseconds(due_in_ms)));
        let r = self
            .post(&format!(
                "/api/v1/orders/fake?side={side}&qty_mwh={qty}&limit_price={price}&hour_start_utc={due}"
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        r.json["order"].clone()
    }

    /// Polls until the order is no longer PENDING, or gives up after `secs`.
    pub async fn wait_moderated(&self, id: &str, secs: u64) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let r = self.get(&format!("/api/v1/orders/{id}")).await;
            if r.json["order"]["status"] != "PENDING" || std::time::Instant::now() > deadline {
                return r.json["order"].clone();
            }
            actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub fn row_counts(&self) -> (i64, i64) {
        self.store.row_counts().expect("row counts")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop accepting; the runtime of the test ends right after.
        drop(self.handle.stop(false));
    }
}

/// Asserts a JSON object has exactly these keys.
pub fn assert_keys(v: &Value, keys: &[&str]) {
    let mut got: Vec<&str> = v
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    got.sort_unstable();
    let mut want = keys.to_vec();
    want.sort_unstable();
    assert_eq!(got, want, "keys of {v}");
}

pub const ORDER_KEYS: &[&str] = &[
    "id",
    "created_at",
    "market",
    "location_type",
    "location",
    "hour_start_utc",
    "side",
    "qty_mwh",
    "limit_price",
    "status",
    "approved_at",
    "approval_rt_interval_start_utc",
    "approval_rt_lmp",
    "approval_rt_source",
    "reject_reason",
];

/// One `#[actix_web::test]` per backend from `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! app_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[actix_web::test]
            async fn $name() {
                super::$name(storage::testing::Backend::Sqlite).await;
            })+
        }
        mod postgres {
            $(#[actix_web::test]
            async fn $name() {
                super::$name(storage::testing::Backend::Postgres).await;
            })+
        }
    };
}
