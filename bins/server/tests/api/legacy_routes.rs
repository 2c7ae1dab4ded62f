//! The original system's routes keep their parameters and JSON shapes.

use crate::app_tests;
use crate::helpers::{assert_keys, spawn_app, Options, ORDER_KEYS};
use reqwest::StatusCode;
use serde_json::Value;
use storage::testing::Backend;

fn is_ms_utc(v: &serde_json::Value) -> bool {
    let s = v.as_str().unwrap_or("");
    s.len() == 24 && s.ends_with('Z') && s.as_bytes()[19] == b'.'
}

async fn create_fake_order_answers_the_original_shape(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let r = app
        .post("/api/v1/orders/fake?side=buy&qty_mwh=2.5&limit_price=40.25&hour_start_utc=2031-01-01T05:00:00-04:00&location=PJM-RTO&location_type=ZONE")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_keys(&r.json, &["status", "message", "order_id", "order"]);
    assert_eq!(r.json["status"], "success");
    let order = &r.json["order"];
    assert_keys(order, ORDER_KEYS);
    assert_eq!(r.json["order_id"], order["id"]);
    assert_eq!(
        order["hour_start_utc"], "2031-01-01T09:00:00.000Z",
        "offset normalised to UTC"
    );
    assert_eq!(order["side"], "BUY");
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["market"], "DA");
    assert_eq!(order["qty_mwh"], 2.5);
    assert_eq!(order["limit_price"], 40.25);
    assert!(is_ms_utc(&order["created_at"]));
    // An unencoded '+' arrives as a space; the offset is still understood.
    let r = app
        .post("/api/v1/orders/fake?side=SELL&qty_mwh=1&limit_price=1&hour_start_utc=2031-01-01T10:30:00+05:30")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(
        r.json["order"]["hour_start_utc"],
        "2031-01-01T05:00:00.000Z"
    );
}

async fn order_due_in_two_seconds_settles_by_itself(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let order = app.create_fake("BUY", "2", "40", 2_000).await;
    let id = order["id"].as_str().expect("id").to_string();
    let settled = app.wait_moderated(&id, 6).await;
    let status = settled["status"].as_str().unwrap_or("");
    assert!(status == "APPROVED" || status == "REJECTED", "{settled}");
    assert!(
        is_ms_utc(&settled["approved_at"]),
        "moderation time set on either outcome"
    );
    let fetched = app.get("/api/v1/fetch_orders").await;
    assert_keys(&fetched.json, &["open", "closed"]);
    assert_keys(&fetched.json["closed"], &["count", "orders"]);
    assert_eq!(fetched.json["open"]["count"], 0);
    assert_eq!(fetched.json["closed"]["count"], 1);
    assert_eq!(fetched.json["closed"]["orders"][0]["id"], id.as_str());
    let positions = app.get("/api/v1/positions").await;
    let closed = &positions.json["closed"][0];
    let expected_pnl = if status == "APPROVED" {
        let lmp = settled["approval_rt_lmp"].as_f64().expect("lmp");
        assert!((30.0..=50.0).contains(&lmp));
        assert_eq!(settled["approval_rt_source"], "SIMULATED_RT");
        ((lmp * 100.0).round() as i64 - 4000) * 2
    } else {
        assert!(settled["reject_reason"].is_string());
        0
    };
    let got = (closed["pnl"].as_f64().expect("pnl") * 100.0).round() as i64;
    assert_eq!(got, expected_pnl, "P&L in cents: (lmp - 40) * 2 MWh");
    assert_eq!(positions.json["totals"]["closed_count"], 1);
}

async fn moderate_hour_moderates_exactly_that_hour(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let hour = "2032-06-01T12:00:00.000Z";
    for _ in 0..3 {
        let r = app
            .post(&format!(
                "/api/v1/orders/fake?side=BUY&qty_mwh=1&limit_price=40&hour_start_utc={hour}"
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let other = app.create_fake("SELL", "1", "40", 3_600_000).await;
    let r = app
        .admin_post(&format!("/api/v1/orders/moderate/{hour}?approval_probability=1&rt_lmp_base=50&rt_lmp_variance=0"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_keys(&r.json, &["status", "message", "result"]);
    assert_keys(
        &r.json["result"],
        &[
            "hour_start_utc",
            "total_orders",
            "approved",
            "rejected",
            "approval_rate",
            "orders",
        ],
    );
    assert_eq!(r.json["result"]["total_orders"], 3);
    assert_eq!(r.json["result"]["approved"], 3);
    assert_eq!(r.json["result"]["approval_rate"], 1.0);
    for o in r.json["result"]["orders"].as_array().expect("orders") {
        assert_eq!(o["approval_rt_lmp"], 50.0);
    }
    let untouched = app
        .get(&format!(
            "/api/v1/orders/{}",
            other["id"].as_str().unwrap_or("")
        ))
        .await;
    assert_eq!(untouched.json["order"]["status"], "PENDING");
    let bad = app
        .admin_post(&format!(
            "/api/v1/orders/moderate/{hour}?approval_probability=1.5"
        ))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

async fn patch_follows_legal_transitions(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let order = app.create_fake("BUY", "1", "40", 3_600_000).await;
    let id = order["id"].as_str().expect("id");
    let patch = |q: String| {
        app.request(
            reqwest::Method::PATCH,
            format!("/api/v1/orders/fake/{id}?{q}"),
            None,
            true,
        )
    };
    let r = patch("status=APPROVED&approval_rt_lmp=42.5".into()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_keys(&r.json, &["status", "message", "order"]);
    assert_eq!(r.json["order"]["status"], "APPROVED");
    assert_eq!(r.json["order"]["approval_rt_lmp"], 42.5);
    let illegal = patch("status=REJECTED&reject_reason=late".into()).await;
    assert_eq!(illegal.status, StatusCode::CONFLICT);
    assert_eq!(illegal.json["code"], "illegal_transition");
    let back = patch("status=PENDING".into()).await;
    assert_eq!(back.status, StatusCode::CONFLICT);
    let settle = patch("status=CLEARED".into()).await;
    assert_eq!(settle.status, StatusCode::OK);
    let missing = app
        .request(
            reqwest::Method::PATCH,
            "/api/v1/orders/fake/no-such-order?status=CANCELLED",
            None,
            true,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json["code"], "order_not_found");
}

async fn scheduler_routes_answer_the_original_shape(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let original_fields = [
        "running",
        "thread_alive",
        "pending_due_now",
        "upcoming_10_min",
        "next_due_order",
        "last_check",
        "check_interval_seconds",
    ];
    let status = app.get("/api/v1/scheduler/status").await;
    assert_eq!(status.status, StatusCode::OK);
    assert_keys(&status.json, &["status", "scheduler"]);
    for f in original_fields {
        assert!(
            status.json["scheduler"].get(f).is_some(),
            "status lacks {f}"
        );
    }
    assert_eq!(status.json["scheduler"]["check_interval_seconds"], 30.0);
    let stop = app.admin_post("/api/v1/scheduler/stop").await;
    assert_keys(&stop.json, &["status", "message", "scheduler"]);
    assert_eq!(stop.json["scheduler"]["running"], false);
    assert_eq!(stop.json["scheduler"]["thread_alive"], true);
    let order = app.create_fake("BUY", "1", "40", -1_000).await;
    actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
    let still = app
        .get(&format!(
            "/api/v1/orders/{}",
            order["id"].as_str().unwrap_or("")
        ))
        .await;
    assert_eq!(
        still.json["order"]["status"], "PENDING",
        "a stopped scheduler moderates nothing"
    );
    // The status shares its counts between calls for up to a second (`counts_computed_at`),
    // so the new order shows once they are read again.
    let mut pending = Value::Null;
    for _ in 0..40 {
        pending =
            app.get("/api/v1/scheduler/status").await.json["scheduler"]["pending_due_now"].clone();
        if pending == 1 {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(pending, 1);
    let forced = app.admin_post("/api/v1/scheduler/force-run").await;
    assert_eq!(forced.status, StatusCode::OK);
    assert_keys(&forced.json, &["status", "message", "result"]);
    assert_eq!(forced.json["message"], "Processed 1 orders");
    assert_keys(
        &forced.json["result"],
        &["processed", "results", "timestamp"],
    );
    let group = &forced.json["result"]["results"][0];
    assert_keys(
        group,
        &["hour_start_utc", "orders_count", "moderation_result"],
    );
    assert_eq!(group["orders_count"], 1);
    let start = app.admin_post("/api/v1/scheduler/start").await;
    assert_eq!(start.json["scheduler"]["running"], true);
    assert!(is_ms_utc(&start.json["scheduler"]["last_check"]));
}

async fn health_routes_report_database_and_scheduler(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let simple = app.get("/api/v1/health/simple").await;
    assert_eq!(
        (simple.status, simple.json["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let full = app.get("/api/v1/health").await;
    assert_eq!(full.status, StatusCode::OK);
    assert_eq!(full.json["database"]["ok"], true);
    assert_eq!(full.json["scheduler"]["thread_alive"], true);
}

app_tests!(
    create_fake_order_answers_the_original_shape,
    order_due_in_two_seconds_settles_by_itself,
    moderate_hour_moderates_exactly_that_hour,
    patch_follows_legal_transitions,
    scheduler_routes_answer_the_original_shape,
    health_routes_report_database_and_scheduler,
);
