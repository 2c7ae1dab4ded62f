//! Scenario 4 against the real binary, for what the in-process table of
//! `bins/server/tests/api/bad_input.rs` cannot send through an HTTP client: raw bytes on a TCP
//! socket (invalid UTF-8 and NUL in the request line, unnormalised `..`, conflicting lengths,
//! oversized headers, garbage protocol lines) and JSON that only a hand-written body carries
//! (duplicate keys, deep nesting, a BOM). Each gets a 4xx, none a 5xx, the server stays up, and
//! the number of rows in `orders` and `order_events` does not change.

use crate::support::heavy;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use storage::testing::TestDb;
use system_tests::ServerProcess;

struct Raw {
    what: &'static str,
    request: Vec<u8>,
    /// Whether the answer must be the API's JSON error (requests that reach the router);
    /// protocol errors are refused by the HTTP codec before routing.
    json: bool,
}

fn raw(what: &'static str, request: impl Into<Vec<u8>>, json: bool) -> Raw {
    Raw {
        what,
        request: request.into(),
        json,
    }
}

fn post_json(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend(body);
    r
}

fn get(path: &[u8]) -> Vec<u8> {
    let mut r = b"GET ".to_vec();
    r.extend(path);
    r.extend(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    r
}

fn cases() -> Vec<Raw> {
    let due = r#""hour_start_utc":"2031-01-01T00:00:00Z""#;
    let mut deep = b"{\"side\":".to_vec();
    deep.extend(std::iter::repeat_n(b'[', 10_000));
    deep.extend(std::iter::repeat_n(b']', 10_000));
    deep.extend(b"}");
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend(format!(r#"{{"side":"BUY","qty_mwh":1,"limit_price":40,{due}}}"#).as_bytes());
    let many_headers: String = (0..500).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    vec![
        raw("invalid UTF-8 in the path", get(b"/api/v1/orders/\xff\xfe\xfd"), false),
        raw("NUL in the path (encoded)", get(b"/api/v1/orders/abc%00def"), true),
        raw("raw .. in the path", get(b"/api/v1/../../../etc/passwd"), true),
        raw("encoded traversal in an id", get(b"/api/v1/orders/%2e%2e%2f%2e%2e%2fetc%2fpasswd"), true),
        raw("traversal in cancel", b"POST /api/v1/orders/..%2F..%2Fadmin/cancel HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(), true),
        raw("bad percent-encoding in the query", get(b"/api/v1/orders?status=%ZZ"), true),
        raw("invalid UTF-8 in the query", get(b"/api/v1/fetch_orders?location=%C3%28"), true),
        raw("100 KiB URL", get(format!("/api/v1/orders?cursor={}", "a".repeat(100 * 1024)).as_bytes()), false),
        raw("1 MiB header", format!("GET /api/v1/orders HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n", "b".repeat(1024 * 1024)), false),
        raw("500 headers", format!("GET /api/v1/orders HTTP/1.1\r\nHost: x\r\n{many_headers}Connection: close\r\n\r\n"), false),
        raw("Content-Length and Transfer-Encoding", "POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n", false),
        raw("two Content-Lengths", "POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 40\r\nConnection: close\r\n\r\n{}", false),
        raw("negative Content-Length", "POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\nConnection: close\r\n\r\n", false),
        raw("garbage request line", "HELLO WORLD\r\n\r\n", false),
        raw("HTTP/3.0 on a TCP socket", "GET /api/v1/orders HTTP/3.0\r\nHost: x\r\n\r\n", false),
        raw("made-up method", "BREW /api/v1/orders HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", true),
        raw("TRACE", "TRACE /api/v1/orders HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", true),
        raw("duplicate JSON keys", post_json(format!(r#"{{"side":"BUY","side":"SELL","qty_mwh":1,"limit_price":40,{due}}}"#).as_bytes()), true),
        raw("10,000-deep JSON", post_json(&deep), true),
        raw("JSON with a BOM", post_json(&bom), true),
        raw("JSON with a trailing second document", post_json(format!(r#"{{"side":"BUY","qty_mwh":1,"limit_price":40,{due}}} {{}}"#).as_bytes()), true),
        raw("NUL inside a JSON string", post_json(format!("{{\"side\":\"BUY\\u0000\",\"qty_mwh\":1,\"limit_price\":40,{due}}}").as_bytes()), true),
        raw("year 275760", post_json(br#"{"side":"BUY","qty_mwh":1,"limit_price":40,"hour_start_utc":"+275760-09-13T00:00:00Z"}"#), true),
        raw("integer quantity beyond i64", post_json(format!(r#"{{"side":"BUY","qty_mwh":100000000000000000000000,"limit_price":40,{due}}}"#).as_bytes()), true),
        raw("price -0.001", post_json(format!(r#"{{"side":"BUY","qty_mwh":1,"limit_price":"-0.001",{due}}}"#).as_bytes()), true),
        raw("hexadecimal quantity", post_json(format!(r#"{{"side":"BUY","qty_mwh":"0x10","limit_price":40,{due}}}"#).as_bytes()), true),
        raw("null side", post_json(format!(r#"{{"side":null,"qty_mwh":1,"limit_price":40,{due}}}"#).as_bytes()), true),
        raw("due time with spaces and no T", post_json(br#"{"side":"BUY","qty_mwh":1,"limit_price":40,"hour_start_utc":"2031-01-01 00:00:00 +0000"}"#), true),
        raw("due time as a Unix number", post_json(br#"{"side":"BUY","qty_mwh":1,"limit_price":40,"hour_start_utc":1924992000}"#), true),
        raw("non-ASCII Idempotency-Key", {
            let body = format!(r#"{{"side":"BUY","qty_mwh":1,"limit_price":40,{due}}}"#);
            let mut r = format!("POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nIdempotency-Key: k\u{e9}y-\u{1F600}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
            r.extend(body.as_bytes());
            r
        }, true),
        raw("JSON to a query-string route", {
            let body = format!(r#"{{"side":"BUY","qty_mwh":1,"limit_price":40,{due}}}"#);
            let mut r = format!("POST /api/v1/orders/fake HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
            r.extend(body.as_bytes());
            r
        }, true),
    ]
}

/// Sends raw bytes; returns the status code (0 when closed without an answer) and the body.
fn send(addr: &str, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

#[test]
fn raw_hostile_requests_get_4xx_and_write_nothing() {
    let _guard = heavy();
    let db = TestDb::sqlite();
    let store = db.store();
    let mut server = ServerProcess::start(&db.url, &[]);
    let addr = server.base_url.trim_start_matches("http://").to_string();
    let before = store.row_counts().expect("row counts");
    let table = cases();
    let mut failures = Vec::new();
    let mut codes = std::collections::BTreeMap::new();
    for c in &table {
        let (code, body) = send(&addr, &c.request);
        *codes.entry(code).or_insert(0) += 1;
        let json: Option<serde_json::Value> = serde_json::from_str(&body).ok();
        let shaped = json
            .as_ref()
            .is_some_and(|j| j["detail"].is_string() && j["code"].is_string());
        if !(400..500).contains(&code) || (c.json && !shaped) {
            failures.push(format!(
                "{}: {code} {}",
                c.what,
                &body[..body.len().min(200)]
            ));
        }
    }
    let after = store.row_counts().expect("row counts");
    let alive = server.child.try_wait().is_ok_and(|exited| exited.is_none());
    eprintln!(
        "[hostile] FIGURES raw_requests={} status_codes={codes:?} failures={} rows_before={before:?} \
         rows_after={after:?} server_alive={alive}",
        table.len(),
        failures.len()
    );
    assert!(table.len() >= 30);
    assert!(
        failures.is_empty(),
        "requests not refused with a 4xx JSON error:\n{}",
        failures.join("\n")
    );
    assert_eq!(after, before, "a refused request wrote rows");
    assert!(alive, "the server died");
}
