//! `spawn_app()` and typed request helpers.

use order_scheduler::app::Application;
use order_scheduler::config::{DbArgs, PolicyArgs, ServeArgs};
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
}

impl Default for Options {
    fn default() -> Self {
        Self {
            admin_token: None,
            autostart: true,
            moderation_seed: None,
        }
    }
}

pub fn serve_args(url: &str, o: &Options) -> ServeArgs {
    ServeArgs {
        db: DbArgs {
            database_url: url.to_string(),
            pool_size: 8,
        },
        policy: PolicyArgs {
            approval_probability: 0.7,
            rt_lmp_base: 40.0,
            rt_lmp_variance: 10.0,
            moderation_seed: o.moderation_seed,
        },
        bind: "127.0.0.1:0".into(),
        check_interval_secs: 30.0,
        batch_size: 500,
        no_autostart: !o.autostart,
        instance_id: Some("test".into()),
        admin_token: o.admin_token.clone(),
        workers: Some(2),
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
