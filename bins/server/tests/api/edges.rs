//! Issue 12's reproductions, kept as regression tests: admin routes safe from web pages,
//! bounded metric labels, one snapshot per listing, exact money at the JSON edge, errors that
//! name the field and the rule, the original system's moderation item keys, and long control
//! calls.

use crate::app_tests;
use crate::helpers::{spawn_app, Options, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use storage::testing::Backend;

/// Sends `method path` with the given extra headers.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> crate::helpers::Reply {
    let mut req = app.client.request(method, format!("{}{path}", app.address));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    TestApp::reply(req.send().await.expect("request sent")).await
}

/// Issue 12 item 1: with the default setup (loopback, no token), a page on another site or a
/// rebound DNS name cannot stop the scheduler, force a run, moderate, create or cancel; the
/// original front end on http://localhost:3000, proxying /api, still can.
async fn cross_site_requests_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let order = app.create_fake("BUY", "1", "40", 3_600_000).await;
    let id = order["id"].as_str().expect("id").to_string();
    let paths = [
        "/api/v1/scheduler/stop".to_string(),
        "/api/v1/scheduler/force-run".to_string(),
        "/api/v1/orders/moderate/2031-01-01T00:00:00Z".to_string(),
        "/api/v1/orders/fake?side=BUY&qty_mwh=1&limit_price=40&hour_start_utc=2031-01-01T00:00:00Z"
            .to_string(),
        format!("/api/v1/orders/{id}/cancel"),
    ];
    let before = app.row_counts();
    for path in &paths {
        let rebound = send(
            &app,
            Method::POST,
            path,
            &[("Host", "evil.example"), ("Origin", "http://evil.example")],
        )
        .await;
        assert_eq!(
            rebound.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            rebound.json
        );
        assert_eq!(rebound.json["code"], "forbidden_host");
        let cross_site = send(
            &app,
            Method::POST,
            path,
            &[("Origin", "http://evil.example")],
        )
        .await;
        assert_eq!(
            cross_site.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            cross_site.json
        );
        assert_eq!(cross_site.json["code"], "forbidden_origin");
        assert!(
            cross_site.json["detail"]
                .as_str()
                .is_some_and(|d| d.contains("--allowed-origin")),
            "{}",
            cross_site.json
        );
    }
    assert_eq!(app.row_counts(), before, "a refused request wrote nothing");
    let status = app.get("/api/v1/scheduler/status").await;
    assert_eq!(status.json["scheduler"]["running"], true);
    // Reads stay open to any page (they change nothing).
    let read = send(
        &app,
        Method::GET,
        "/api/v1/fetch_orders",
        &[("Origin", "http://evil.example")],
    )
    .await;
    assert_eq!(read.status, StatusCode::OK);
    // The original front end: served on localhost:3000, its dev server proxying /api here
    // (with the Host it was addressed by, or rewritten to ours).
    for host in ["localhost:3000", "127.0.0.1"] {
        let created = send(
            &app,
            Method::POST,
            "/api/v1/orders/fake?side=SELL&qty_mwh=2&limit_price=41&hour_start_utc=2031-01-01T00:00:00Z",
            &[("Host", host), ("Origin", "http://localhost:3000")],
        )
        .await;
        assert_eq!(created.status, StatusCode::OK, "{host}: {}", created.json);
    }
    let cancel = send(
        &app,
        Method::POST,
        &format!("/api/v1/orders/{id}/cancel"),
        &[("Origin", "http://localhost:3000")],
    )
    .await;
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.json);
}

/// Issue 12 item 1: an origin listed with `--allowed-origin` may post; the bearer scheme is
/// case-insensitive (RFC 7235).
async fn allowed_origins_and_lowercase_bearer(backend: Backend) {
    let options = Options {
        admin_token: Some("s3cret-token".into()),
        allowed_origins: vec!["https://ops.example.com".into()],
        ..Options::default()
    };
    let Some(app) = spawn_app(backend, options).await else {
        return;
    };
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let auth = format!("{scheme} s3cret-token");
        let r = send(
            &app,
            Method::POST,
            "/api/v1/scheduler/start",
            &[
                ("Authorization", &auth),
                ("Origin", "https://ops.example.com"),
            ],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{scheme}: {}", r.json);
    }
    let r = send(
        &app,
        Method::POST,
        "/api/v1/scheduler/stop",
        &[
            ("Authorization", "bearer s3cret-token"),
            ("Origin", "https://other.example.com"),
        ],
    )
    .await;
    assert_eq!(r.json["code"], "forbidden_origin");
}

/// Issue 12 item 2 and issue 16 item 5: labels come from bounded sets (known methods, matched
/// route patterns), the body reader's refusals are counted, names share one prefix, and the
/// process and build metrics are there.
async fn metrics_labels_are_bounded(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    for i in 0..40 {
        let method = Method::from_bytes(format!("FROB{i}").as_bytes()).expect("method token");
        send(&app, method, "/api/v1/orders", &[]).await;
        app.get(&format!("/no/such/path/{i}")).await;
    }
    let long = Method::from_bytes("X".repeat(3000).as_bytes()).expect("long method token");
    let _ = app
        .client
        .request(long, format!("{}/api/v1/orders", app.address))
        .send()
        .await;
    // Over the body limit, announced by its length: the body reader answers 413 itself.
    let big = app
        .client
        .post(format!("{}/api/v1/orders", app.address))
        .header("Content-Type", "application/json")
        .body(vec![b' '; 70 * 1024])
        .send()
        .await
        .expect("sent");
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let text = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(!text.contains("FROB"), "method tokens became labels");
    assert!(!text.contains("XXXX"), "a long method became a label");
    assert!(!text.contains("/no/such/path"), "raw paths became labels");
    assert!(text.contains(r#"method="other""#), "{text}");
    assert!(text.contains(r#"route="unmatched""#), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("order_scheduler_http_requests_total")
                && l.contains(r#"status="413""#)),
        "the 413 was not counted:\n{text}"
    );
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(
            line.starts_with("order_scheduler_") || line.starts_with("process_"),
            "unprefixed metric: {line}"
        );
    }
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        text.contains(&format!(
            r#"order_scheduler_build_info{{version="{version}"}} 1"#
        )),
        "{text}"
    );
    assert!(text.contains("process_resident_memory_bytes"), "{text}");
    assert!(text.contains("process_open_fds"), "{text}");
    assert!(
        text.contains(r#"order_scheduler_orders_due_now{scope="database"}"#),
        "{text}"
    );
    assert!(
        text.lines().count() < 400,
        "metrics grew to {} lines",
        text.lines().count()
    );
}

app_tests!(
    cross_site_requests_are_refused,
    allowed_origins_and_lowercase_bearer,
    metrics_labels_are_bounded,
);

#[allow(dead_code)]
fn _unused(_: Value) -> Value {
    json!(null)
}
