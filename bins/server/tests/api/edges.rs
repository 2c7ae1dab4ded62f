//! Issue 12's reproductions, kept as regression tests: admin routes safe from web pages,
//! bounded metric labels, one snapshot per listing, exact money at the JSON edge, errors that
//! name the field and the rule, the original system's moderation item keys, and long control
//! calls.

use crate::app_tests;
use crate::helpers::{spawn_app, Options, TestApp};
use reqwest::{Method, StatusCode};
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

/// Issue 12 item 3: a read snapshot does not see a write committed while it is open.
async fn a_listing_reads_one_snapshot(backend: Backend) {
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
    let order = app.create_fake("BUY", "1", "40", 3_600_000).await;
    let id = order["id"].as_str().expect("id").to_string();
    let pending = |conn: &mut storage::DbConnection| -> Result<i64, storage::StorageError> {
        use diesel::RunQueryDsl;
        Ok(
            diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "(SELECT COUNT(*) FROM orders WHERE status = 'PENDING')",
            ))
            .get_result::<i64>(conn)?,
        )
    };
    let writer = app.store.clone();
    let (inside_before, inside_after) = app
        .store
        .read_snapshot(|conn| {
            let before = pending(conn)?;
            let change = storage::ManualChange {
                to: Some(orders::OrderStatus::Cancelled),
                ..Default::default()
            };
            writer.transition(&id, &change, "test")?;
            Ok((before, pending(conn)?))
        })
        .expect("snapshot read");
    assert_eq!((inside_before, inside_after), (1, 1), "the snapshot moved");
    let after = app.store.read_snapshot(pending).expect("read");
    assert_eq!(after, 0);
}

/// Issue 12 item 3: with many orders moderated at one instant, no `fetch_orders` answer lists
/// an order as both open and closed, and `positions`' rows agree with its totals.
async fn listings_across_a_due_instant_are_consistent(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let due = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let new = orders::NewOrder::new(
        orders::Side::Buy,
        orders::Quantity::from_scaled(1000),
        orders::Price::from_scaled(4000),
        orders::Location::parse("PJM-RTO").expect("location"),
        orders::LocationType::Zone,
        due,
    )
    .expect("valid order");
    let n = 2000;
    app.store
        .insert_orders(&vec![new; n], "test")
        .expect("bulk insert");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = app
            .get("/api/v1/fetch_orders?limit_open=10000&limit_closed=10000")
            .await;
        assert_eq!(r.status, StatusCode::OK);
        let ids = |k: &str| -> std::collections::HashSet<String> {
            r.json[k]["orders"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|o| o["id"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (open, closed) = (ids("open"), ids("closed"));
        assert_eq!(
            open.intersection(&closed).count(),
            0,
            "listed as open and closed"
        );
        assert_eq!(open.len() + closed.len(), n, "an order is missing");
        let p = app.get("/api/v1/positions?limit=10000").await;
        let listed = p.json["open"].as_array().map_or(0, Vec::len) as i64;
        assert_eq!(
            p.json["totals"]["open_count"].as_i64(),
            Some(listed),
            "rows vs totals"
        );
        if closed.len() == n || std::time::Instant::now() > deadline {
            assert_eq!(closed.len(), n, "not all moderated in time");
            break;
        }
    }
}

/// Issue 12 item 7: the moderate route lists each order with the original system's keys
/// (`order_id` first of all, which its front end looks orders up by); force-run's
/// `moderation_result` items the same.
async fn moderation_items_have_the_original_keys(backend: Backend) {
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
    let order = app.create_fake("BUY", "1.5", "40.12", -200).await;
    let id = order["id"].as_str().expect("id").to_string();
    let hour = order["hour_start_utc"].as_str().expect("due").to_string();
    let r = app
        .admin_post(&format!("/api/v1/orders/moderate/{hour}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let items = r.json["result"]["orders"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let item = items
        .iter()
        .find(|o| o["order_id"] == id.as_str())
        .unwrap_or_else(|| panic!("no item with order_id {id}: {}", r.json));
    for key in [
        "order_id",
        "status",
        "approved_at",
        "approval_rt_lmp",
        "approval_rt_source",
        "reject_reason",
    ] {
        assert!(item.get(key).is_some(), "moderate item lacks {key}: {item}");
    }
    assert_ne!(item["status"], "PENDING");
    let other = app.create_fake("SELL", "2", "41", -200).await;
    let other_id = other["id"].as_str().expect("id").to_string();
    let forced = app.admin_post("/api/v1/scheduler/force-run").await;
    assert_eq!(forced.status, StatusCode::OK, "{}", forced.json);
    let items = forced.json["result"]["results"][0]["moderation_result"]["orders"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let item = items
        .iter()
        .find(|o| o["order_id"] == other_id.as_str())
        .unwrap_or_else(|| {
            panic!(
                "no force-run item with order_id {other_id}: {}",
                forced.json
            )
        });
    for key in [
        "order_id",
        "status",
        "approved_at",
        "approval_rt_lmp",
        "approval_rt_source",
        "reject_reason",
    ] {
        assert!(
            item.get(key).is_some(),
            "force-run item lacks {key}: {item}"
        );
    }
}

/// Posts a raw JSON text (a `Value` would already have rounded its numbers through f64).
async fn post_raw(app: &TestApp, path: &str, body: &str) -> crate::helpers::Reply {
    let resp = app
        .client
        .post(format!("{}{path}", app.address))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("sent");
    TestApp::reply(resp).await
}

fn order_body(qty: &str, price: &str) -> String {
    format!(
        r#"{{"side":"BUY","qty_mwh":{qty},"limit_price":{price},"hour_start_utc":"2031-01-01T00:00:00Z"}}"#
    )
}

/// Issue 12 item 4: JSON numbers are read from their exact text, under the rules of strings;
/// money is written from the scaled integers as exact decimals.
async fn money_is_exact_at_the_json_edge(backend: Backend) {
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
    for price in ["9999.999999999999999", "40.1200000000000001"] {
        for form in [price.to_string(), format!("\"{price}\"")] {
            let r = post_raw(&app, "/api/v1/orders", &order_body("1", &form)).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{form}: {}", r.json);
            assert_eq!(r.json["code"], "too_many_decimals", "{form}: {}", r.json);
            assert!(r.json["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("limit_price")));
        }
    }
    let ok = post_raw(&app, "/api/v1/orders", &order_body("1.5e0", "40.1200")).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.json);
    assert_eq!(ok.json["limit_price"], 40.12);
    assert_eq!(app.row_counts().0, 1, "refused orders were not stored");
    // A total whose nearest float prints differently: 625 orders of 109,999.79 $ of P&L
    // each, and one of 0.02474 $.
    let at = chrono::Utc::now() + chrono::Duration::hours(1);
    let big = orders::NewOrder::new(
        orders::Side::Buy,
        orders::Quantity::from_scaled(9_999_999),
        orders::Price::from_scaled(-99_999),
        orders::Location::parse("PJM-RTO").expect("location"),
        orders::LocationType::Zone,
        at,
    )
    .expect("valid");
    let small = orders::NewOrder::new(
        orders::Side::Buy,
        orders::Quantity::from_scaled(1_237),
        orders::Price::from_scaled(4_000),
        orders::Location::parse("PJM-RTO").expect("location"),
        orders::LocationType::Zone,
        at,
    )
    .expect("valid");
    let mut news = vec![big; 625];
    news.push(small);
    let ids = app.store.insert_orders(&news, "test").expect("insert");
    for (i, id) in ids.iter().enumerate() {
        let rt = if i < 625 { 999_999 } else { 4_002 };
        let change = storage::ManualChange {
            to: Some(orders::OrderStatus::Approved),
            rt_lmp: Some(orders::Price::from_scaled(rt)),
            ..Default::default()
        };
        app.store.transition(id, &change, "test").expect("approve");
    }
    let text = app
        .client
        .get(format!("{}/api/v1/positions?limit=0", app.address))
        .send()
        .await
        .expect("positions")
        .text()
        .await
        .expect("body");
    let exact = "68749868125.03724";
    assert_ne!(
        format!("{}", 6_874_986_812_503_724f64 / 1e5),
        exact,
        "the float path would print this total exactly: the test would prove nothing"
    );
    assert!(text.contains(&format!(r#""total_pnl":{exact}"#)), "{text}");
}

/// Issue 12 item 6: each error names the field and the rule; each code names what was wrong.
async fn errors_name_the_field_and_the_rule(backend: Backend) {
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
    let fake = |q: &str, due: &str| {
        format!("/api/v1/orders/fake?side=BUY&qty_mwh={q}&limit_price=40&hour_start_utc={due}")
    };
    let banana = app.post(&fake("banana", "2031-01-01T00:00:00Z")).await;
    assert_eq!(banana.json["code"], "not_a_decimal", "{}", banana.json);
    let detail = banana.json["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        detail.contains("qty_mwh") && !detail.contains("finite"),
        "{detail}"
    );
    let leap = app.post(&fake("1", "2029-02-29T12:00:00Z")).await;
    assert_eq!(leap.json["code"], "nonexistent_date", "{}", leap.json);
    assert!(leap.json["detail"]
        .as_str()
        .is_some_and(|d| d.contains("does not exist") && d.contains("hour_start_utc")));
    let wrong_type = post_raw(&app, "/api/v1/orders", &order_body("true", "40")).await;
    assert_eq!(wrong_type.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong_type.json["code"], "wrong_type", "{}", wrong_type.json);
    let detail = wrong_type.json["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        detail.starts_with("qty_mwh") && !detail.contains("NumberOrText"),
        "{detail}"
    );
    let bad_price = post_raw(&app, "/api/v1/orders", &order_body("1", r#""abc""#)).await;
    assert_eq!(bad_price.json["code"], "not_a_decimal");
    assert!(bad_price.json["detail"]
        .as_str()
        .is_some_and(|d| d.starts_with("limit_price")));
    let unknown = post_raw(
        &app,
        "/api/v1/orders",
        r#"{"side":"BUY","qty_mwh":1,"limit_price":40,"hour_start_utc":"2031-01-01T00:00:00Z","limit_prise":3}"#,
    )
    .await;
    assert_eq!(unknown.json["code"], "unknown_field");
    assert!(unknown.json["detail"]
        .as_str()
        .is_some_and(|d| d.starts_with("limit_prise")));
    let missing = post_raw(&app, "/api/v1/orders", r#"{"side":"BUY","qty_mwh":1}"#).await;
    assert_eq!(missing.json["code"], "missing_field");
    assert!(missing.json["detail"]
        .as_str()
        .is_some_and(|d| d.starts_with("limit_price")));
    let side = post_raw(
        &app,
        "/api/v1/orders",
        r#"{"side":"HOLD","qty_mwh":1,"limit_price":40,"hour_start_utc":"2031-01-01T00:00:00Z"}"#,
    )
    .await;
    assert_eq!(side.json["code"], "invalid_side");
    let cursor = app.get("/api/v1/orders?cursor=..%2Fetc").await;
    assert_eq!(cursor.json["code"], "invalid_cursor", "{}", cursor.json);
    assert_eq!(app.row_counts().0, 0);
}

app_tests!(
    money_is_exact_at_the_json_edge,
    errors_name_the_field_and_the_rule,
    a_listing_reads_one_snapshot,
    listings_across_a_due_instant_are_consistent,
    moderation_items_have_the_original_keys,
    cross_site_requests_are_refused,
    allowed_origins_and_lowercase_bearer,
    metrics_labels_are_bounded,
);
