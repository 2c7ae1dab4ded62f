//! Issue 12 items 1 and 2 against the real binary: in the default setup (loopback, no token)
//! a cross-site page or a rebound DNS name cannot change state, the original front end's
//! origin can, `--allowed-origin` (or `ALLOWED_ORIGINS`) adds one; and invented methods do not
//! grow the metrics.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use storage::testing::TestDb;
use system_tests::ServerProcess;

/// Sends one raw request (so the `Host` header is exactly ours); returns the status and body.
fn send(addr: &str, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(request.as_bytes()).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (code, body)
}

fn post(path: &str, host: &str, origin: Option<&str>) -> String {
    let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\n{origin}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
}

#[test]
fn cross_site_and_rebound_requests_cannot_change_state() {
    let db = TestDb::sqlite();
    let server = ServerProcess::start_with_env(
        &db.url,
        &["--allowed-origin", "https://ops.example.com"],
        &[("ALLOWED_ORIGINS", "https://other.example.com")],
    );
    let addr = server.base_url.trim_start_matches("http://").to_string();
    let paths = [
        "/api/v1/scheduler/stop",
        "/api/v1/scheduler/force-run",
        "/api/v1/orders/moderate/2031-01-01T00:00:00Z",
        "/api/v1/orders/fake?side=BUY&qty_mwh=1&limit_price=40&hour_start_utc=2031-01-01T00:00:00Z",
    ];
    for path in paths {
        let (code, body) = send(
            &addr,
            &post(path, "evil.example", Some("http://evil.example")),
        );
        assert_eq!(code, 403, "{path} rebound: {body}");
        assert!(body.contains("forbidden_host"), "{body}");
        let (code, body) = send(&addr, &post(path, &addr, Some("http://evil.example")));
        assert_eq!(code, 403, "{path} cross-site: {body}");
        assert!(body.contains("forbidden_origin"), "{body}");
    }
    let (_, status) = send(
        &addr,
        &format!(
            "GET /api/v1/scheduler/status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(status.contains(r#""running":true"#), "{status}");
    let create = paths[3];
    // The original front end (localhost:3000, proxying /api), and the listed origin (the
    // flag wins over the environment, as for every flag).
    for (host, origin) in [
        ("localhost:3000", "http://localhost:3000"),
        (addr.as_str(), "https://ops.example.com"),
    ] {
        let (code, body) = send(&addr, &post(create, host, Some(origin)));
        assert_eq!(code, 200, "{origin}: {body}");
    }
    eprintln!("[site_guard] FIGURES refused={} allowed=2", paths.len() * 2);
}

#[test]
fn invented_methods_do_not_grow_the_metrics() {
    let db = TestDb::sqlite();
    let server = ServerProcess::start(&db.url, &[]);
    let addr = server.base_url.trim_start_matches("http://").to_string();
    let scrape = || {
        send(
            &addr,
            &format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        )
        .1
    };
    let before = scrape().len();
    for i in 0..500 {
        let method = format!("M{i:05}{}", "X".repeat(i % 7 * 100));
        send(
            &addr,
            &format!(
                "{method} /api/v1/orders/{i} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            ),
        );
    }
    let after = scrape();
    assert!(!after.contains("M00"), "a method token became a label");
    assert!(after.contains(r#"method="other""#), "{after}");
    assert!(
        after.len() < before + 4096,
        "metrics grew from {before} to {} bytes",
        after.len()
    );
    eprintln!(
        "[site_guard] FIGURES metrics_bytes_before={before} after={}",
        after.len()
    );
}
