//! Issue 16: a stored row that does not decode (`side = 'HOLD'`, written by another tool) no
//! longer breaks the listings. They answer 200 with the readable orders and name the others in
//! a new `unreadable` key (existing keys unchanged); the order itself answers 409
//! `order_unreadable` naming the reason.

use crate::app_tests;
use crate::helpers::{assert_keys, spawn_app, Options, TestApp};
use diesel::connection::SimpleConnection;
use reqwest::StatusCode;
use serde_json::{json, Value};
use storage::testing::Backend;

/// Runs raw SQL on the app's database, as another tool would.
fn write_sql(app: &TestApp, sql: &str) {
    app.store
        .conn()
        .expect("a connection")
        .batch_execute(sql)
        .expect("raw SQL");
}

fn id_of(order: &Value) -> String {
    order["id"].as_str().expect("id").to_string()
}

fn listed_ids(list: &Value) -> Vec<String> {
    list.as_array().expect("a list").iter().map(id_of).collect()
}

/// A book of two readable pending orders, one readable cancelled one, a pending order another
/// tool wrote `HOLD` into, and one parked for it and then discarded (REJECTED, still `HOLD`).
/// Returns (readable open ids, readable closed id, held id, discarded id), ids newest first.
async fn book(app: &TestApp) -> (Vec<String>, String, String, String) {
    let due_in = 3_600_000;
    let discarded = id_of(&app.create_fake("BUY", "1", "40", due_in).await);
    let cancelled = id_of(&app.create_fake("SELL", "1", "40", due_in).await);
    let r = app
        .post(&format!("/api/v1/orders/{cancelled}/cancel"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let older = id_of(&app.create_fake("BUY", "2", "41", due_in).await);
    let held = id_of(&app.create_fake("SELL", "3", "42", due_in).await);
    let newer = id_of(&app.create_fake("BUY", "4", "43", due_in).await);
    write_sql(
        app,
        &format!(
            "UPDATE orders SET side = 'HOLD' WHERE id = '{held}';
             UPDATE orders SET side = 'HOLD', status = 'REJECTED',
                 reject_reason = 'Discarded by operator: bad feed' WHERE id = '{discarded}'"
        ),
    );
    (vec![newer, older], cancelled, held, discarded)
}

/// `[{id, reason}, ...]` names exactly `ids`, in order, each reason naming the bad value.
fn assert_unreadable(list: &Value, ids: &[&str]) {
    let items = list.as_array().expect("unreadable is a list");
    assert_eq!(items.len(), ids.len(), "{list}");
    for (item, id) in items.iter().zip(ids) {
        assert_keys(item, &["id", "reason"]);
        assert_eq!(item["id"], *id);
        let reason = item["reason"].as_str().expect("reason");
        assert!(
            reason.contains("'HOLD'") && reason.contains("side"),
            "{reason}"
        );
    }
}

async fn listings_answer_readable_orders_and_name_the_rest(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let (open, cancelled, held, discarded) = book(&app).await;

    let page = app.get("/api/v1/orders").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.json);
    assert_keys(&page.json, &["orders", "next_cursor", "unreadable"]);
    assert_eq!(
        listed_ids(&page.json["orders"]),
        [open[0].as_str(), &open[1], &cancelled]
    );
    assert_unreadable(&page.json["unreadable"], &[&held, &discarded]);
    // A small page still moves past the unreadable rows.
    let first = app.get("/api/v1/orders?limit=2").await;
    assert_eq!(listed_ids(&first.json["orders"]), [open[0].as_str()]);
    assert_unreadable(&first.json["unreadable"], &[&held]);
    let cursor = first.json["next_cursor"].as_str().expect("a next page");
    let second = app
        .get(&format!("/api/v1/orders?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(
        listed_ids(&second.json["orders"]),
        [open[1].as_str(), &cancelled]
    );

    let positions = app.get("/api/v1/positions").await;
    assert_eq!(positions.status, StatusCode::OK, "{}", positions.json);
    assert_keys(
        &positions.json,
        &["as_of", "open", "closed", "totals", "unreadable"],
    );
    assert_eq!(listed_ids(&positions.json["open"]), open);
    assert_eq!(listed_ids(&positions.json["closed"]), [cancelled.as_str()]);
    assert_unreadable(&positions.json["unreadable"], &[&held, &discarded]);
    let totals = &positions.json["totals"];
    assert_eq!(
        (
            &totals["open_count"],
            &totals["closed_count"],
            &totals["rejected_count"]
        ),
        (&json!(3), &json!(2), &json!(1)),
        "the totals, summed in SQL, count every row: {totals}"
    );

    // The original system's listing keeps its keys and adds the new one.
    let fetched = app.get("/api/v1/fetch_orders").await;
    assert_eq!(fetched.status, StatusCode::OK, "{}", fetched.json);
    assert_keys(&fetched.json, &["open", "closed", "unreadable"]);
    assert_keys(&fetched.json["open"], &["count", "orders"]);
    assert_eq!(fetched.json["open"]["count"], 2);
    assert_eq!(listed_ids(&fetched.json["open"]["orders"]), open);
    assert_eq!(fetched.json["closed"]["count"], 1);
    assert_unreadable(&fetched.json["unreadable"], &[&held, &discarded]);
}

async fn an_unreadable_order_answers_a_json_error(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let (open, _, held, discarded) = book(&app).await;
    for id in [&held, &discarded] {
        let r = app.get(&format!("/api/v1/orders/{id}")).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.json);
        assert_keys(&r.json, &["detail", "code"]);
        assert_eq!(r.json["code"], "order_unreadable");
        let detail = r.json["detail"].as_str().expect("detail");
        assert!(
            detail.contains(id.as_str()) && detail.contains("'HOLD' is not a valid side"),
            "{detail}"
        );
    }
    // Cancelling it is refused the same way, and writes nothing.
    let counts = app.row_counts();
    let r = app.post(&format!("/api/v1/orders/{held}/cancel")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.json);
    assert_eq!(r.json["code"], "order_unreadable");
    assert_eq!(app.row_counts(), counts);
    // Readable orders are unaffected.
    let r = app.get(&format!("/api/v1/orders/{}", open[0])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

app_tests!(
    listings_answer_readable_orders_and_name_the_rest,
    an_unreadable_order_answers_a_json_error
);

/// The document shows the new key: always present on the JSON API's listings, absent from the
/// original's `fetch_orders` when there is nothing to report (its answer stays the original's).
#[test]
fn the_document_describes_the_unreadable_rows() {
    let doc: Value = serde_json::from_str(&order_scheduler::openapi::document_json())
        .expect("the document is JSON");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["UnreadableOrder"]["required"],
        json!(["id", "reason"])
    );
    let item = json!({"$ref": "#/components/schemas/UnreadableOrder"});
    for (name, required) in [
        ("OrderPageReply", true),
        ("PositionsReply", true),
        ("FetchOrdersReply", false),
    ] {
        let schema = &schemas[name];
        assert_eq!(schema["properties"]["unreadable"]["items"], item, "{name}");
        let listed = schema["required"]
            .as_array()
            .expect("required fields")
            .contains(&json!("unreadable"));
        assert_eq!(listed, required, "{name}: {schema}");
    }
    let get_order = &doc["paths"]["/api/v1/orders/{id}"]["get"]["responses"];
    assert!(get_order["409"].is_object(), "{get_order}");
}
