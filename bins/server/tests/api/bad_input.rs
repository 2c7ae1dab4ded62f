//! A table of malformed and hostile requests: each gets a 4xx JSON error with `detail` and
//! `code`, none a 5xx, and nothing is written.

use crate::app_tests;
use crate::helpers::{spawn_app, Options, TestApp};
use reqwest::{Method, StatusCode};
use storage::testing::Backend;

struct Case {
    method: Method,
    path: String,
    body: Option<Vec<u8>>,
    content_type: Option<&'static str>,
    header: Option<(&'static str, String)>,
    expect: u16,
}

fn case(method: Method, path: impl Into<String>, expect: u16) -> Case {
    Case {
        method,
        path: path.into(),
        body: None,
        content_type: None,
        header: None,
        expect,
    }
}

fn json_case(body: &[u8], expect: u16) -> Case {
    Case {
        method: Method::POST,
        path: "/api/v1/orders".into(),
        body: Some(body.to_vec()),
        content_type: Some("application/json"),
        header: None,
        expect,
    }
}

const OK_FIELDS: &str = "side=BUY&qty_mwh=1&limit_price=40&hour_start_utc=2031-01-01T00:00:00Z";

fn fake(replace: &str, with: &str) -> String {
    let query = OK_FIELDS
        .split('&')
        .filter(|kv| !kv.starts_with(&format!("{replace}=")))
        .chain((!with.is_empty()).then_some(with))
        .collect::<Vec<_>>()
        .join("&");
    format!("/api/v1/orders/fake?{query}")
}

fn cases(existing: &str) -> Vec<Case> {
    let good_json =
        r#"{"side":"BUY","qty_mwh":1,"limit_price":40,"hour_start_utc":"2031-01-01T00:00:00Z"}"#;
    let mut big = b"{\"side\":\"BUY\",\"location\":\"".to_vec();
    big.extend(std::iter::repeat_n(b'A', 70 * 1024));
    big.extend(b"\"}");
    vec![
        case(Method::POST, fake("side", ""), 400),
        case(Method::POST, fake("side", "side=HOLD"), 400),
        case(Method::POST, fake("qty_mwh", "qty_mwh=abc"), 400),
        case(Method::POST, fake("qty_mwh", "qty_mwh=0"), 400),
        case(Method::POST, fake("qty_mwh", "qty_mwh=-5"), 400),
        case(Method::POST, fake("qty_mwh", "qty_mwh=NaN"), 400),
        case(Method::POST, fake("qty_mwh", "qty_mwh=Infinity"), 400),
        case(Method::POST, fake("qty_mwh", "qty_mwh=1e400"), 400),
        case(Method::POST, fake("qty_mwh", "qty_mwh=1.0001"), 400),
        case(Method::POST, fake("qty_mwh", "qty_mwh=10000.001"), 400),
        case(Method::POST, fake("limit_price", "limit_price=40.123"), 400),
        case(Method::POST, fake("limit_price", "limit_price=-1000.01"), 400),
        case(Method::POST, fake("limit_price", "limit_price=99999999999999999999999"), 400),
        case(Method::POST, fake("hour_start_utc", "hour_start_utc=2031-01-01T00:00:00"), 400),
        case(Method::POST, fake("hour_start_utc", "hour_start_utc=2031-01-01"), 400),
        case(Method::POST, fake("hour_start_utc", "hour_start_utc=2031-01-01T00:00:00%2B25:00"), 400),
        case(Method::POST, fake("hour_start_utc", "hour_start_utc=1900-01-01T00:00:00Z"), 400),
        case(Method::POST, fake("hour_start_utc", "hour_start_utc=2031-13-01T00:00:00Z"), 400),
        case(Method::POST, fake("location", "location=%27%3B%20DROP%20TABLE%20orders%3B--"), 400),
        case(Method::POST, fake("location", "location=..%2F..%2Fetc"), 400),
        case(Method::POST, fake("location", &format!("location={}", "L".repeat(65))), 400),
        case(Method::POST, fake("location_type", "location_type=CITY"), 400),
        case(Method::POST, fake("side", "side=BUY&side=SELL"), 400),
        case(Method::POST, fake("x", "foo=1"), 400),
        case(Method::POST, fake("location", "location=%FF%FE"), 400),
        json_case(b"{", 400),
        json_case(b"", 400),
        json_case(br#"{"side":1,"qty_mwh":1,"limit_price":40,"hour_start_utc":"2031-01-01T00:00:00Z"}"#, 400),
        json_case(br#"{"side":"BUY","qty_mwh":true,"limit_price":40,"hour_start_utc":"2031-01-01T00:00:00Z"}"#, 400),
        json_case(br#"{"side":"BUY","qty_mwh":1,"limit_price":40,"hour_start_utc":"2031-01-01T00:00:00Z","admin":true}"#, 400),
        json_case(br#"{"side":"BUY","qty_mwh":"NaN","limit_price":40,"hour_start_utc":"2031-01-01T00:00:00Z"}"#, 400),
        json_case(br#"{"side":"BUY","qty_mwh":1e309,"limit_price":40,"hour_start_utc":"2031-01-01T00:00:00Z"}"#, 400),
        json_case(br#"{"side":"BUY","qty_mwh":1,"limit_price":40}"#, 400),
        json_case(br#"{"side":"BUY","qty_mwh":1,"limit_price":40,"hour_start_utc":"2031-01-01T00:00:00+99:00"}"#, 400),
        json_case(br#"[1,2,3]"#, 400),
        json_case(b"{\"side\":\"BU\xff\"}", 400),
        json_case(&big, 413),
        Case { content_type: Some("text/plain"), ..json_case(good_json.as_bytes(), 415) },
        Case { header: Some(("Idempotency-Key", "k".repeat(300))), ..json_case(good_json.as_bytes(), 400) },
        case(Method::GET, "/api/v1/orders?limit=0", 400),
        case(Method::GET, "/api/v1/orders?limit=1001", 400),
        case(Method::GET, "/api/v1/orders?status=BOGUS", 400),
        case(Method::GET, "/api/v1/orders?cursor=..%2F..%2Fetc", 400),
        case(Method::GET, "/api/v1/orders?due_from=yesterday", 400),
        case(Method::GET, "/api/v1/orders/..%2F..%2Fetc%2Fpasswd", 400),
        case(Method::GET, "/api/v1/orders/%27%20OR%201=1", 400),
        case(Method::DELETE, "/api/v1/orders", 405),
        case(Method::PUT, "/api/v1/scheduler/status", 405),
        case(Method::GET, "/api/v1/scheduler/force-run", 405),
        case(Method::PATCH, format!("/api/v1/orders/fake/{existing}"), 400),
        case(Method::PATCH, format!("/api/v1/orders/fake/{existing}?status=APPROVED&approval_rt_lmp=-1"), 400),
        case(Method::PATCH, format!("/api/v1/orders/fake/{existing}?status=APPROVED"), 400),
        case(Method::PATCH, format!("/api/v1/orders/fake/{existing}?status=SHIPPED"), 400),
        case(Method::POST, "/api/v1/orders/moderate/not-a-time", 400),
        case(Method::POST, "/api/v1/orders/moderate/2031-01-01T00:00:00Z?approval_probability=NaN", 400),
        case(Method::POST, "/api/v1/orders/moderate/2031-01-01T00:00:00Z?rt_lmp_variance=-1", 400),
        case(Method::GET, "/api/v1/fetch_orders?limit_open=-1", 400),
        case(Method::GET, "/api/v1/fetch_orders?limit_closed=abc", 400),
        case(Method::GET, "/api/v1/positions?limit=99999999999999999999", 400),
        case(Method::POST, "/api/v1/orders/00000000-0000-7000-8000-000000000000/cancel", 404),
        case(Method::POST, format!("/api/v1/orders/{}/cancel", "x".repeat(65)), 400),
        case(Method::GET, "/api/v1/does-not-exist", 404),
    ]
}

async fn hostile_requests_get_json_4xx_and_write_nothing(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let existing = app.create_fake("BUY", "1", "40", 3_600_000).await;
    let existing = existing["id"].as_str().expect("id").to_string();
    let before = app.row_counts();
    let table = cases(&existing);
    assert!(table.len() >= 40);
    for c in table {
        let mut req = app
            .client
            .request(c.method.clone(), format!("{}{}", app.address, c.path));
        if let Some(ct) = c.content_type {
            req = req.header("content-type", ct);
        }
        if let Some((k, v)) = &c.header {
            req = req.header(*k, v.as_str());
        }
        if let Some(body) = c.body {
            req = req.body(body);
        }
        let r = TestApp::reply(req.send().await.expect("send")).await;
        let what = format!("{} {}", c.method, &c.path[..c.path.len().min(120)]);
        assert_eq!(r.status.as_u16(), c.expect, "{what}: {}", r.json);
        assert!(r.status.is_client_error(), "{what}");
        assert!(
            r.content_type.starts_with("application/json"),
            "{what}: {}",
            r.content_type
        );
        assert!(
            r.json["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{what}: {}",
            r.json
        );
        assert!(
            r.json["code"].as_str().is_some_and(|d| !d.is_empty()),
            "{what}: {}",
            r.json
        );
    }
    assert_eq!(app.row_counts(), before, "no refused request wrote a row");
    let still = app.get(&format!("/api/v1/orders/{existing}")).await;
    assert_eq!(still.json["order"]["status"], "PENDING");
    assert_eq!(still.status, StatusCode::OK);
}

app_tests!(hostile_requests_get_json_4xx_and_write_nothing);
