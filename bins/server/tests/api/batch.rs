//! `POST /api/v1/orders/batch`: a whole day-ahead book in one call, validated before anything
//! is written, idempotent as a whole, with its own larger body limit, and waking the
//! scheduler for its earliest order.

use crate::app_tests;
use crate::helpers::{assert_keys, spawn_app, Options, TestApp, ORDER_KEYS};
use chrono::{DateTime, Duration, DurationRound, Utc};
use orders::format_ms;
use reqwest::StatusCode;
use serde_json::{json, Value};
use storage::testing::Backend;

const BATCH: &str = "/api/v1/orders/batch";

/// One order body due at `due`.
fn order_at(due: DateTime<Utc>, side: &str) -> Value {
    json!({"side": side, "qty_mwh": "2.5", "limit_price": 41.25,
        "hour_start_utc": format_ms(&due), "location": "WEST", "location_type": "HUB"})
}

/// The 24 hours of tomorrow (UTC), one order each.
fn tomorrow_book() -> Vec<Value> {
    let midnight = Utc::now()
        .duration_trunc(Duration::days(1))
        .expect("midnight")
        + Duration::days(1);
    (0..24)
        .map(|h| {
            order_at(
                midnight + Duration::hours(h),
                if h % 2 == 0 { "BUY" } else { "SELL" },
            )
        })
        .collect()
}

async fn post_batch(app: &TestApp, body: &Value, key: Option<&str>) -> crate::helpers::Reply {
    let mut req = app
        .client
        .post(format!("{}{BATCH}", app.address))
        .json(body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    TestApp::reply(req.send().await.expect("sent")).await
}

async fn post_raw(app: &TestApp, path: &str, body: String) -> crate::helpers::Reply {
    let req = app
        .client
        .post(format!("{}{path}", app.address))
        .header("content-type", "application/json")
        .body(body);
    TestApp::reply(req.send().await.expect("sent")).await
}

async fn day_ahead_book_in_one_call(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let book = tomorrow_book();
    let r = post_batch(&app, &json!(book), None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let created = r.json.as_array().expect("array");
    assert_eq!(created.len(), 24);
    for (got, sent) in created.iter().zip(&book) {
        assert_keys(got, ORDER_KEYS);
        assert_eq!(got["hour_start_utc"], sent["hour_start_utc"]);
        assert_eq!(got["side"], sent["side"]);
        assert_eq!(got["status"], "PENDING");
        assert_eq!(got["limit_price"], 41.25);
    }
    assert_eq!(app.row_counts(), (24, 24));
    let listed = app.get("/api/v1/orders?limit=100").await;
    assert_eq!(listed.status, StatusCode::OK);
    let mut listed_ids: Vec<&str> = listed.json["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .filter_map(|o| o["id"].as_str())
        .collect();
    let mut created_ids: Vec<&str> = created.iter().filter_map(|o| o["id"].as_str()).collect();
    listed_ids.sort_unstable();
    created_ids.sort_unstable();
    assert_eq!(listed_ids, created_ids);
    // Each has its own creation event.
    let one = app.get(&format!("/api/v1/orders/{}", created_ids[0])).await;
    assert_eq!(one.json["history"].as_array().map(Vec::len), Some(1));
}

async fn one_bad_order_refuses_the_whole_batch(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    app.create_fake("BUY", "1", "40", 3_600_000).await;
    let before = app.row_counts();
    let cases: Vec<(usize, &str, Value, &str)> = vec![
        (3, "limit_price", json!("12.345"), "orders[3].limit_price: "),
        (0, "qty_mwh", json!(0), "orders[0].qty_mwh: "),
        (23, "side", json!("HOLD"), "orders[23].side: "),
        (
            5,
            "hour_start_utc",
            json!("tomorrow"),
            "orders[5].hour_start_utc: ",
        ),
        (7, "colour", json!("red"), "orders[7].colour: "),
    ];
    for (index, field, value, prefix) in cases {
        let mut book = tomorrow_book();
        book[index][field] = value;
        let r = post_batch(&app, &json!(book), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
        let detail = r.json["detail"].as_str().expect("detail");
        assert!(detail.starts_with(prefix), "{detail}");
        assert!(r.json["code"].as_str().is_some_and(|c| !c.is_empty()));
    }
    // A missing field and an element that is not an object are named by index too.
    let mut book = tomorrow_book();
    book[2]
        .as_object_mut()
        .expect("object")
        .remove("limit_price");
    let r = post_batch(&app, &json!(book), None).await;
    assert_eq!(r.json["detail"], "orders[2].limit_price: is required");
    assert_eq!(r.json["code"], "missing_field");
    let mut book = tomorrow_book();
    book[1] = json!(42);
    let r = post_batch(&app, &json!(book), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("orders[1]: ")),
        "{}",
        r.json
    );
    // Not an array at all.
    let r = post_batch(&app, &tomorrow_book()[0], None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.row_counts(), before, "nothing written");
}

async fn batch_idempotency_key_covers_the_whole_batch(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let book = tomorrow_book();
    let first = post_batch(&app, &json!(book), Some("book-2031")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.json);
    // The same orders spelt differently are the same request.
    let respelt: Vec<Value> = book
        .iter()
        .map(|o| {
            let mut o = o.clone();
            o["side"] = json!(o["side"].as_str().map(str::to_lowercase));
            o["limit_price"] = json!("41.250");
            o
        })
        .collect();
    let repeat = post_batch(&app, &json!(respelt), Some("book-2031")).await;
    assert_eq!(repeat.status, StatusCode::OK, "{}", repeat.json);
    assert_eq!(repeat.json, first.json);
    assert_eq!(app.row_counts(), (24, 24));
    // Another batch under the key: 409, nothing written.
    let mut other = book.clone();
    other[10]["qty_mwh"] = json!("3");
    let clash = post_batch(&app, &json!(other), Some("book-2031")).await;
    assert_eq!(clash.status, StatusCode::CONFLICT, "{}", clash.json);
    assert_eq!(clash.json["code"], "idempotency_key_reused");
    let shorter = post_batch(&app, &json!(book[..23]), Some("book-2031")).await;
    assert_eq!(shorter.status, StatusCode::CONFLICT);
    assert_eq!(app.row_counts(), (24, 24));
    // A single create may use the same key text: another key space.
    let single = app
        .client
        .post(format!("{}/api/v1/orders", app.address))
        .header("Idempotency-Key", "book-2031")
        .json(&book[0])
        .send()
        .await
        .expect("sent");
    assert_eq!(single.status(), StatusCode::CREATED);
    // Without a key, the same book is created again.
    let again = post_batch(&app, &json!(book), None).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(app.row_counts(), (49, 49));
}

async fn batch_size_and_body_limits(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let due = Utc::now() + Duration::days(1);
    let many = |n: usize| -> Vec<Value> { (0..n).map(|_| order_at(due, "BUY")).collect() };
    let over = post_batch(&app, &json!(many(1_001)), None).await;
    assert_eq!(over.status, StatusCode::BAD_REQUEST, "{}", over.json);
    assert_eq!(over.json["code"], "invalid_batch_size");
    let empty = post_batch(&app, &json!([]), None).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert_eq!(empty.json["code"], "invalid_batch_size");
    assert_eq!(app.row_counts(), (0, 0));
    // 1,000 orders are well over 64 KiB: this route takes them...
    let full = serde_json::to_string_pretty(&many(1_000)).expect("json");
    assert!(full.len() > 64 * 1024, "{} bytes", full.len());
    let r = post_raw(&app, BATCH, full.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(r.json.as_array().map(Vec::len), Some(1_000));
    assert_eq!(app.row_counts(), (1_000, 1_000));
    // ...every other route keeps 64 KiB...
    let padded = format!("{}{}", " ".repeat(64 * 1024), order_at(due, "BUY"));
    let single = post_raw(&app, "/api/v1/orders", padded).await;
    assert_eq!(
        single.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        single.json
    );
    assert_eq!(single.json["code"], "payload_too_large");
    // ...and this one stops at 512 KiB.
    let huge = format!("{}{full}", " ".repeat(512 * 1024));
    let r = post_raw(&app, BATCH, huge).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.json);
    assert_eq!(app.row_counts(), (1_000, 1_000));
}

async fn batch_wakes_the_scheduler_for_its_earliest(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    // The scheduler first sleeps towards an order an hour away.
    app.create_fake("BUY", "1", "40", 3_600_000).await;
    actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut book = tomorrow_book();
    let soon = Utc::now() + Duration::seconds(1);
    book[17] = order_at(soon, "SELL");
    let r = post_batch(&app, &json!(book), None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let id = r.json[17]["id"].as_str().expect("id").to_string();
    let order = app.wait_moderated(&id, 5).await;
    assert_ne!(order["status"], "PENDING", "{order}");
    let detail = app.get(&format!("/api/v1/orders/{id}")).await;
    let history = detail.json["history"].as_array().expect("history");
    let moderated_at: DateTime<Utc> = history
        .last()
        .and_then(|e| e["at"].as_str())
        .and_then(|t| t.parse().ok())
        .expect("moderation time");
    let due: DateTime<Utc> = order["hour_start_utc"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("due");
    let late = moderated_at - due;
    assert!(
        late >= Duration::zero() && late <= Duration::milliseconds(500),
        "moderated {late} after due"
    );
    // The rest of the book waits for tomorrow.
    assert_eq!(r.json[16]["status"], "PENDING");
}

app_tests!(
    day_ahead_book_in_one_call,
    one_bad_order_refuses_the_whole_batch,
    batch_idempotency_key_covers_the_whole_batch,
    batch_size_and_body_limits,
    batch_wakes_the_scheduler_for_its_earliest,
);
