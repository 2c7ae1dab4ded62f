//! The JSON order API: idempotent create, listing, history, cancel, positions.

use crate::app_tests;
use crate::helpers::{assert_keys, spawn_app, Options, ORDER_KEYS};
use reqwest::StatusCode;
use serde_json::json;
use storage::testing::Backend;

async fn idempotent_create_returns_the_original(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let body = json!({"side": "buy", "qty_mwh": 1.5, "limit_price": "40.10", "hour_start_utc": "2031-03-03T03:00:00Z", "location": "WEST", "location_type": "hub"});
    let send = |b: serde_json::Value, key: &str| {
        app.client
            .post(format!("{}/api/v1/orders", app.address))
            .header("Idempotency-Key", key)
            .json(&b)
            .send()
    };
    let first =
        crate::helpers::TestApp::reply(send(body.clone(), "abc").await.expect("send")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.json);
    assert_keys(&first.json, ORDER_KEYS);
    assert_eq!(first.json["location_type"], "HUB");
    // Same meaning, different spelling: still the same request.
    let same = json!({"side": "BUY", "qty_mwh": "1.500", "limit_price": 40.1, "hour_start_utc": "2031-03-03T05:00:00+02:00", "location": "WEST", "location_type": "HUB"});
    let repeat = crate::helpers::TestApp::reply(send(same, "abc").await.expect("send")).await;
    assert_eq!(repeat.status, StatusCode::OK);
    assert_eq!(repeat.json["id"], first.json["id"]);
    let mut different = body.clone();
    different["qty_mwh"] = json!(2);
    let conflict =
        crate::helpers::TestApp::reply(send(different, "abc").await.expect("send")).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.json["code"], "idempotency_key_reused");
    assert_eq!(app.row_counts(), (1, 1));
    let without_key = app.post_json("/api/v1/orders", body).await;
    assert_eq!(without_key.status, StatusCode::CREATED);
    assert_ne!(without_key.json["id"], first.json["id"]);
}

async fn list_get_and_cancel(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let mut ids = Vec::new();
    for i in 0..7 {
        let side = if i < 3 { "SELL" } else { "BUY" };
        let r = app
            .post_json("/api/v1/orders", json!({"side": side, "qty_mwh": 1, "limit_price": 40, "hour_start_utc": format!("2031-04-04T0{i}:00:00Z")}))
            .await;
        ids.push(r.json["id"].as_str().expect("id").to_string());
    }
    let page = app.get("/api/v1/orders?limit=3").await;
    assert_keys(&page.json, &["orders", "next_cursor", "unreadable"]);
    assert_eq!(
        page.json["unreadable"],
        json!([]),
        "present, and empty on a healthy book"
    );
    assert_eq!(page.json["orders"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        page.json["orders"][0]["id"],
        ids[6].as_str(),
        "newest first"
    );
    let cursor = page.json["next_cursor"].as_str().expect("cursor");
    let next = app
        .get(&format!("/api/v1/orders?limit=3&cursor={cursor}"))
        .await;
    assert_eq!(next.json["orders"][0]["id"], ids[3].as_str());
    let sells = app.get("/api/v1/orders?side=sell&status=PENDING").await;
    assert_eq!(sells.json["orders"].as_array().map(Vec::len), Some(3));
    let window = app
        .get("/api/v1/orders?due_from=2031-04-04T01:00:00Z&due_to=2031-04-04T03:00:00Z")
        .await;
    assert_eq!(window.json["orders"].as_array().map(Vec::len), Some(2));
    let cancelled = app.post(&format!("/api/v1/orders/{}/cancel", ids[0])).await;
    assert_eq!(cancelled.status, StatusCode::OK);
    assert_eq!(cancelled.json["status"], "CANCELLED");
    let again = app.post(&format!("/api/v1/orders/{}/cancel", ids[0])).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let one = app.get(&format!("/api/v1/orders/{}", ids[0])).await;
    assert_keys(&one.json, &["order", "pnl", "history"]);
    let history: Vec<&str> = one.json["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|e| e["to_status"].as_str())
        .collect();
    assert_eq!(history, vec!["PENDING", "CANCELLED"]);
    assert_eq!(one.json["history"][1]["actor"], "api");
    let missing = app
        .get("/api/v1/orders/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

async fn positions_total_exact_pnl(backend: Backend) {
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
    // Three approvals by hand at known LMPs: P&L is exact to the cent and beyond.
    let cases = [
        ("BUY", "0.333", "40.01", "40.04"),
        ("SELL", "1.5", "39.99", "40.02"),
        ("BUY", "10", "41", "40.5"),
    ];
    for (side, qty, limit, lmp) in cases {
        let o = app.post_json("/api/v1/orders", json!({"side": side, "qty_mwh": qty, "limit_price": limit, "hour_start_utc": "2031-05-05T00:00:00Z"})).await;
        let id = o.json["id"].as_str().expect("id").to_string();
        let r = app
            .request(
                reqwest::Method::PATCH,
                &format!("/api/v1/orders/fake/{id}?status=APPROVED&approval_rt_lmp={lmp}"),
                None,
                true,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    }
    app.post_json("/api/v1/orders", json!({"side": "BUY", "qty_mwh": 1, "limit_price": 1, "hour_start_utc": "2031-05-05T00:00:00Z"})).await;
    let p = app.get("/api/v1/positions").await;
    assert_keys(
        &p.json,
        &["as_of", "open", "closed", "totals", "unreadable"],
    );
    assert_eq!(p.json["unreadable"], json!([]));
    // 0.03 * 0.333 = 0.00999; -(0.03 * 1.5) = -0.045; -0.5 * 10 = -5  → -5.03501
    assert_eq!(p.json["totals"]["total_pnl"], -5.03501);
    assert_eq!(p.json["totals"]["approved_count"], 3);
    assert_eq!(p.json["totals"]["open_count"], 1);
    let pnls: Vec<f64> = p.json["closed"]
        .as_array()
        .expect("closed")
        .iter()
        .filter_map(|o| o["pnl"].as_f64())
        .collect();
    assert_eq!(pnls.len(), 3);
    assert!(
        pnls.contains(&0.00999) && pnls.contains(&-0.045) && pnls.contains(&-5.0),
        "{pnls:?}"
    );
    assert_eq!(p.json["open"][0]["pnl"], 0.0);
    // On a small book every answer is read afresh: a create shows at once.
    app.post_json("/api/v1/orders", json!({"side": "SELL", "qty_mwh": 1, "limit_price": 1, "hour_start_utc": "2031-05-05T00:00:00Z"})).await;
    let fresh = app.get("/api/v1/positions").await;
    assert!(fresh.json["as_of"].is_string(), "{}", fresh.json);
    assert_eq!(fresh.json["totals"]["open_count"], 2, "{}", fresh.json);
}

app_tests!(
    idempotent_create_returns_the_original,
    list_get_and_cancel,
    positions_total_exact_pnl
);
