//! The event stream, Prometheus metrics and the OpenAPI document.

use crate::app_tests;
use crate::helpers::{spawn_app, spawn_app_on, Options, TestApp};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};
use storage::testing::Backend;

/// A minimal SSE reader over a streaming response.
struct Sse {
    resp: reqwest::Response,
    buf: String,
}

/// One parsed server-sent event.
#[derive(Debug)]
struct Event {
    id: Option<i64>,
    kind: String,
    data: Value,
}

impl Sse {
    async fn connect(app: &TestApp, last_event_id: Option<i64>) -> Sse {
        let mut req = app.client.get(format!("{}/api/v1/events", app.address));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let resp = req.send().await.expect("connect");
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/event-stream"));
        Sse {
            resp,
            buf: String::new(),
        }
    }

    /// The next event (skipping comments), or None after `limit`.
    async fn next(&mut self, limit: Duration) -> Option<Event> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                let mut ev = Event {
                    id: None,
                    kind: "message".into(),
                    data: Value::Null,
                };
                let mut has_data = false;
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        ev.id = v.parse().ok();
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        ev.kind = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        ev.data = serde_json::from_str(v).unwrap_or(Value::Null);
                        has_data = true;
                    }
                }
                if has_data {
                    return Some(ev);
                }
                continue;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.resp.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    /// Reads events until one matches, or None after `limit`.
    async fn find(
        &mut self,
        limit: Duration,
        mut pred: impl FnMut(&Event) -> bool,
    ) -> Option<Event> {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let ev = self.next(left).await?;
            if pred(&ev) {
                return Some(ev);
            }
        }
        None
    }
}

fn is_moderation_of(ev: &Event, id: &str) -> bool {
    ev.kind == "order" && ev.data["order_id"] == id && ev.data["from_status"] == "PENDING"
}

async fn stream_shows_approvals_and_replays_after_reconnect(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let mut sse = Sse::connect(&app, None).await;
    let order = app.create_fake("BUY", "1", "40", 1_000).await;
    let id = order["id"].as_str().expect("id").to_string();
    let created = sse
        .find(Duration::from_secs(5), |e| {
            e.kind == "order" && e.data["order_id"] == id.as_str()
        })
        .await
        .expect("creation event");
    assert_eq!(created.data["to_status"], "PENDING");
    assert_eq!(created.data["hour_start_utc"], order["hour_start_utc"]);
    let moderated = sse
        .find(Duration::from_secs(5), |e| is_moderation_of(e, &id))
        .await
        .expect("moderation event");
    let to = moderated.data["to_status"].as_str().unwrap_or("");
    assert!(to == "APPROVED" || to == "REJECTED", "{}", moderated.data);
    assert!(moderated.data["details"]["lateness_ms"].is_i64());
    let outcome = if to == "APPROVED" { "rt_lmp" } else { "reason" };
    assert!(
        !moderated.data["details"][outcome].is_null(),
        "the LMP or reason is in the event: {}",
        moderated.data
    );
    let last_seen = moderated.id.expect("events carry ids");
    drop(sse);
    // Missed while disconnected: one created and cancelled.
    let missed = app.create_fake("SELL", "2", "41", 3_600_000).await;
    let missed_id = missed["id"].as_str().expect("id").to_string();
    assert_eq!(
        app.post(&format!("/api/v1/orders/{missed_id}/cancel"))
            .await
            .status,
        StatusCode::OK
    );
    let mut again = Sse::connect(&app, Some(last_seen)).await;
    let first = again
        .next(Duration::from_secs(5))
        .await
        .expect("replayed event");
    assert_eq!(first.data["order_id"], missed_id.as_str());
    assert_eq!(first.data["to_status"], "PENDING");
    assert!(first.id > Some(last_seen));
    let second = again
        .next(Duration::from_secs(5))
        .await
        .expect("replayed event");
    assert_eq!(second.data["to_status"], "CANCELLED");
    // Scheduler state changes are on the stream too.
    assert_eq!(
        app.admin_post("/api/v1/scheduler/stop").await.status,
        StatusCode::OK
    );
    let stopped = again
        .find(Duration::from_secs(5), |e| e.kind == "scheduler")
        .await
        .expect("scheduler event");
    assert_eq!(stopped.data["state"], "stopped");
}

async fn metrics_count_what_was_moderated(backend: Backend) {
    let Some(app) = spawn_app(
        backend,
        Options {
            autostart: false,
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    for _ in 0..7 {
        app.create_fake("BUY", "1", "40", -500).await;
    }
    let forced = app.admin_post("/api/v1/scheduler/force-run").await;
    assert_eq!(forced.json["result"]["processed"], 7);
    let text = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    let value = |prefix: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    };
    assert_eq!(
        value("order_scheduler_orders_moderated_total{"),
        7.0,
        "{text}"
    );
    assert_eq!(
        value("order_scheduler_moderation_lateness_seconds_count"),
        7.0
    );
    assert_eq!(value("order_scheduler_orders_due_now"), 0.0);
    assert_eq!(value("order_scheduler_running"), 0.0);
    assert!(
        value("order_scheduler_http_requests_total{method=\"POST\",route=\"/api/v1/orders/fake\",status=\"200\"}")
            >= 7.0,
        "{text}"
    );
    // The seven creates went through the group commit: seven answered, in one to seven commits.
    assert_eq!(value("order_scheduler_creates_total"), 7.0, "{text}");
    let commits = value("order_scheduler_create_commits_total");
    assert!((1.0..=7.0).contains(&commits), "{text}");
    for name in [
        "order_scheduler_orders_pending",
        "order_scheduler_pass_duration_seconds_bucket",
        "order_scheduler_pass_failures_total",
        "order_scheduler_orders_parked_total",
        "order_scheduler_db_pool_connections",
    ] {
        assert!(text.contains(name), "missing {name}");
    }
}

app_tests!(
    stream_shows_approvals_and_replays_after_reconnect,
    metrics_count_what_was_moderated
);

#[actix_web::test]
async fn another_instance_sees_moderations_on_its_stream() {
    let Some(db) = storage::testing::TestDb::postgres() else {
        return;
    };
    let mut worker = spawn_app_on(&db.url, Options::default()).await;
    worker.db = Some(db);
    let url = worker.db.as_ref().map(|d| d.url.clone()).expect("url");
    // The watcher never moderates: its scheduler is stopped.
    let watcher = spawn_app_on(
        &url,
        Options {
            autostart: false,
            ..Options::default()
        },
    )
    .await;
    let mut sse = Sse::connect(&watcher, None).await;
    let order = worker.create_fake("BUY", "1", "40", 800).await;
    let id = order["id"].as_str().expect("id").to_string();
    let seen = sse
        .find(Duration::from_secs(8), |e| is_moderation_of(e, &id))
        .await
        .expect("moderation by the other instance");
    assert_eq!(seen.data["actor"], "scheduler:test");
    assert_eq!(
        watcher.get("/api/v1/scheduler/status").await.json["scheduler"]["processed"],
        0
    );
}

fn refs_resolve(doc: &Value, node: &Value, missing: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                let pointer = r.trim_start_matches('#');
                if doc.pointer(pointer).is_none() {
                    missing.push(r.clone());
                }
            }
            map.values().for_each(|v| refs_resolve(doc, v, missing));
        }
        Value::Array(items) => items.iter().for_each(|v| refs_resolve(doc, v, missing)),
        _ => {}
    }
}

#[actix_web::test]
async fn openapi_document_is_valid_and_every_route_answers() {
    let Some(app) = spawn_app(Backend::Sqlite, Options::default()).await else {
        return;
    };
    let r = app.get("/api/v1/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    let doc = r.json;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    let mut missing = Vec::new();
    refs_resolve(&doc, &doc, &mut missing);
    assert!(missing.is_empty(), "unresolved $refs: {missing:?}");
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            documented += 1;
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
        }
    }
    let routes = order_scheduler::openapi::route_list();
    let dashboard = order_scheduler::routes::DASHBOARD_ROUTES.len();
    assert_eq!(documented + dashboard, routes.len());
    // Every listed route is really registered: no route_not_found / method_not_allowed.
    for order_scheduler::openapi::Route { method, path } in &routes {
        let concrete = path
            .replace("{order_id}", "00000000-0000-7000-8000-000000000000")
            .replace("{id}", "00000000-0000-7000-8000-000000000000")
            .replace("{hour_start_utc}", "2031-01-01T00:00:00Z")
            .replace("{asset}", "app.js");
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let resp = app
            .client
            .request(m, format!("{}{concrete}", app.address))
            .send()
            .await
            .expect("send");
        let status = resp.status();
        let is_stream = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let body: Value = if is_stream {
            Value::Null
        } else {
            resp.json().await.unwrap_or(Value::Null)
        };
        assert!(
            !matches!(
                body["code"].as_str(),
                Some("route_not_found") | Some("method_not_allowed")
            ),
            "{method} {path} is documented but not registered ({status})"
        );
        assert!(!status.is_server_error(), "{method} {path}: {status}");
    }
}

/// Issue 12 item 8: an event whose transaction commits after a later event (and after the
/// 2 s the poller used to wait) still reaches live clients, and a client reconnecting with the
/// `Last-Event-ID` of the later event replays it. Postgres only: SQLite commits ids in order.
#[actix_web::test]
async fn a_late_committing_event_is_never_skipped() {
    use diesel::RunQueryDsl;
    let Some(app) = spawn_app(Backend::Postgres, Options::default()).await else {
        return;
    };
    let first = app.create_fake("BUY", "1", "40", 3_600_000).await;
    let first_id = first["id"].as_str().expect("id").to_string();
    let mut live = Sse::connect(&app, None).await;
    let mut late_writer = app.store.conn().expect("a connection");
    diesel::sql_query("BEGIN")
        .execute(&mut *late_writer)
        .expect("begin");
    diesel::sql_query(format!(
        "INSERT INTO order_events (order_id, from_status, to_status, at, actor, details) \
         VALUES ('{first_id}', NULL, 'PENDING', CAST(now() AT TIME ZONE 'UTC' AS TIMESTAMP), \
         'late-writer', '{{}}')"
    ))
    .execute(&mut *late_writer)
    .expect("insert in the open transaction");
    // A later id commits while the first is still open.
    let second = app.create_fake("SELL", "1", "40", 3_600_000).await;
    let second_id = second["id"].as_str().expect("id").to_string();
    let later = live
        .find(Duration::from_secs(5), |e| {
            e.data["order_id"] == second_id.as_str()
        })
        .await
        .expect("the later event is live at once");
    let later_cursor = later.id.expect("frames carry ids");
    assert!(
        later_cursor < later.data["id"].as_i64().unwrap_or(0),
        "the frame's id must stay below the open id, or a reconnect could not replay it"
    );
    // Longer than the 2 s after which the poller used to give up on a gap.
    tokio::time::sleep(Duration::from_secs(3)).await;
    diesel::sql_query("COMMIT")
        .execute(&mut *late_writer)
        .expect("commit");
    drop(late_writer);
    let is_late = |e: &Event| e.kind == "order" && e.data["actor"] == "late-writer";
    let late = live.find(Duration::from_secs(5), is_late).await;
    assert!(
        late.is_some(),
        "the late event never reached the live client"
    );
    let mut again = Sse::connect(&app, Some(later_cursor)).await;
    let replayed = again.find(Duration::from_secs(5), is_late).await;
    assert!(
        replayed.is_some(),
        "the late event is missing from the replay"
    );
}
