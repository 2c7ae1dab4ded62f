//! Scenario 6: security of the real binary. Admin routes need `ADMIN_TOKEN`; a non-loopback
//! bind without a token is refused; the token never reaches the log, even at debug level;
//! bodies over 64 KiB get 413; stalled connections do not starve the workers.

use crate::support::{client, heavy};
use reqwest::Method;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use storage::testing::TestDb;
use system_tests::{server_binary, ServerProcess};

const TOKEN: &str = "tok-8f3a9c2e71d4-secret";
const WRONG: &str = "tok-wrong-5be0d7a1c9-guess";

#[test]
fn admin_routes_need_the_token_and_it_is_never_logged() {
    let _guard = heavy();
    let db = TestDb::sqlite();
    let server = ServerProcess::start_with_env(
        &db.url,
        &[],
        &[("ADMIN_TOKEN", TOKEN), ("RUST_LOG", "debug")],
    );
    let http = client();
    let base = &server.base_url;
    let created: Value = http
        .post(format!("{base}/api/v1/orders/fake"))
        .query(&[
            ("side", "BUY"),
            ("qty_mwh", "1"),
            ("limit_price", "40"),
            ("hour_start_utc", "2031-02-01T00:00:00Z"),
        ])
        .send()
        .and_then(|r| r.json())
        .expect("create an order");
    let id = created["order_id"].as_str().expect("order_id").to_string();
    let routes = [
        (Method::POST, "/api/v1/scheduler/stop".to_string()),
        (Method::POST, "/api/v1/scheduler/start".to_string()),
        (Method::POST, "/api/v1/scheduler/force-run".to_string()),
        (
            Method::POST,
            "/api/v1/orders/moderate/2031-01-01T00:00:00Z".to_string(),
        ),
        (
            Method::PATCH,
            format!("/api/v1/orders/fake/{id}?status=CANCELLED"),
        ),
    ];
    let mut checked = 0;
    for (method, path) in &routes {
        let url = format!("{base}{path}");
        let bad_auth = [
            None,
            Some(format!("Bearer {WRONG}")),
            Some(format!("Bearer {TOKEN}x")),
            Some(format!("Basic {TOKEN}")),
            Some(TOKEN.to_string()),
            Some("Bearer ".to_string()),
        ];
        for auth in bad_auth {
            let mut req = http.request(method.clone(), &url);
            if let Some(a) = &auth {
                req = req.header("Authorization", a);
            }
            let r = req.send().expect("send");
            let status = r.status().as_u16();
            let body: Value = r.json().unwrap_or(Value::Null);
            assert_eq!(status, 401, "{method} {path} with {auth:?}: {body}");
            assert_eq!(body["code"], "unauthorized", "{method} {path}: {body}");
            checked += 1;
        }
        let r = http
            .request(method.clone(), &url)
            .bearer_auth(TOKEN)
            .send()
            .expect("send");
        let status = r.status().as_u16();
        assert_eq!(
            status,
            200,
            "{method} {path} with the right token: {:?}",
            r.text()
        );
        checked += 1;
    }
    // Let the log reader thread catch up, then look for the secrets anywhere in it.
    std::thread::sleep(Duration::from_millis(500));
    let log = server.log_lines();
    let leaks: Vec<&String> = log
        .iter()
        .filter(|l| l.contains(TOKEN) || l.contains(WRONG) || l.contains("tok-"))
        .collect();
    let debug_lines = log.iter().filter(|l| l.contains("DEBUG")).count();
    eprintln!(
        "[security] FIGURES admin_requests={checked} (401 and 200 as expected) log_lines={} \
         debug_lines={debug_lines} token_leaks={}",
        log.len(),
        leaks.len()
    );
    assert!(
        debug_lines > 0,
        "RUST_LOG=debug produced no debug line; the check proves nothing"
    );
    assert!(
        leaks.is_empty(),
        "the admin token (or a guess) appears in the log: {leaks:?}"
    );
}

#[test]
fn refuses_a_public_bind_without_a_token() {
    let db = TestDb::sqlite();
    for bind in ["0.0.0.0:0", "[::]:0"] {
        let child = Command::new(server_binary())
            .args(["serve", "--bind", bind, "--database-url", &db.url])
            .env_remove("ADMIN_TOKEN")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let started = Instant::now();
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!(
            "[security] bind {bind} without a token: exit {:?} after {:?}: {}",
            out.status.code(),
            started.elapsed(),
            stderr.lines().last().unwrap_or("")
        );
        assert!(
            !out.status.success(),
            "{bind}: the server started without a token"
        );
        assert!(
            stderr.contains("refusing") && stderr.contains("admin token"),
            "{bind}: the refusal does not say why: {stderr}"
        );
    }
    // With a token the same bind is allowed.
    let mut child = Command::new(server_binary())
        .args(["serve", "--bind", "0.0.0.0:0", "--database-url", &db.url])
        .env("ADMIN_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_secs(2));
    let still_running = child.try_wait().is_ok_and(|s| s.is_none());
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        still_running,
        "with a token the public bind should be accepted"
    );
}

/// Sends a raw request and returns the status code of the answer (0 when the connection was
/// closed without one).
fn raw(addr: &str, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // The server may answer and close before reading everything: ignore write errors.
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

#[test]
fn oversized_bodies_get_413_and_write_nothing() {
    let _guard = heavy();
    let db = TestDb::sqlite();
    let store = db.store();
    let server = ServerProcess::start(&db.url, &[]);
    let http = client();
    let before = store.row_counts().expect("counts");
    let good = r#"{"side":"BUY","qty_mwh":1,"limit_price":40,"hour_start_utc":"2031-01-01T00:00:00Z","location":""#;
    let mut cases = 0;
    for size in [64 * 1024 + 1, 100 * 1024, 8 * 1024 * 1024] {
        let mut body = good.as_bytes().to_vec();
        body.resize(size - 2, b'A');
        body.extend(b"\"}");
        let r = http
            .post(format!("{}/api/v1/orders", server.base_url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .expect("send");
        let status = r.status().as_u16();
        let json: Value = r.json().unwrap_or(Value::Null);
        assert_eq!(status, 413, "{size} bytes: {json}");
        assert_eq!(json["code"], "payload_too_large", "{size} bytes: {json}");
        cases += 1;
    }
    // Chunked, so the length is only known while reading.
    let addr = server.base_url.trim_start_matches("http://").to_string();
    let mut req = b"POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
        Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        .to_vec();
    for _ in 0..20 {
        req.extend(b"1000\r\n");
        req.extend(std::iter::repeat_n(b' ', 0x1000));
        req.extend(b"\r\n");
    }
    req.extend(b"0\r\n\r\n");
    let (code, text) = raw(&addr, &req);
    assert_eq!(
        code,
        413,
        "chunked 80 KiB body: {}",
        &text[..text.len().min(300)]
    );
    cases += 1;
    // An over-limit Content-Length with no body sent yet: refused from the header alone.
    let (code, text) = raw(
        &addr,
        b"POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 1000000000\r\nConnection: close\r\n\r\n{",
    );
    assert_eq!(
        code,
        413,
        "Content-Length 1e9: {}",
        &text[..text.len().min(300)]
    );
    cases += 1;
    assert_eq!(
        store.row_counts().expect("counts"),
        before,
        "an oversized request wrote rows"
    );
    eprintln!("[security] FIGURES oversized_requests={cases} all_413=true rows_written=0");
}

#[test]
fn stalled_connections_do_not_starve_the_workers() {
    let _guard = heavy();
    let db = TestDb::sqlite();
    let server = ServerProcess::start(&db.url, &[]);
    let addr = server.base_url.trim_start_matches("http://").to_string();
    // 100 connections stall inside the headers, 100 inside a body they announced.
    let mut stalled = Vec::new();
    for i in 0..200 {
        let mut s = TcpStream::connect(&addr).expect("connect");
        let half: &[u8] = if i % 2 == 0 {
            b"GET /api/v1/orders?limit=1 HTTP/1.1\r\nHost: x\r\nX-Slow: "
        } else {
            b"POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 500\r\n\r\n{\"side\":"
        };
        s.write_all(half).expect("half a request");
        stalled.push(s);
    }
    let opened = Instant::now();
    // Meanwhile, normal requests keep being served quickly.
    let http = client();
    let mut worst = Duration::ZERO;
    let mut served = 0;
    while opened.elapsed() < Duration::from_secs(3) {
        let t = Instant::now();
        let r = http
            .get(format!("{}/api/v1/orders?limit=5", server.base_url))
            .timeout(Duration::from_secs(1))
            .send()
            .expect("a normal request during the stall (1 s budget)");
        assert!(r.status().is_success(), "{}", r.status());
        worst = worst.max(t.elapsed());
        served += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        worst < Duration::from_secs(1),
        "a normal request took {worst:?}"
    );
    // The server drops the stalled connections by itself (client_request_timeout 5 s for the
    // headers). Read each until it is closed, with a bound.
    let mut header_closed = 0;
    let mut body_closed = 0;
    let deadline = opened + Duration::from_secs(12);
    for (i, s) in stalled.iter_mut().enumerate() {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10));
        s.set_read_timeout(Some(left)).expect("timeout");
        let mut buf = Vec::new();
        if s.read_to_end(&mut buf).is_ok() {
            if i % 2 == 0 {
                header_closed += 1;
            } else {
                body_closed += 1;
            }
        }
    }
    let closed_after = opened.elapsed();
    eprintln!(
        "[security] FIGURES stalled_connections=200 normal_requests_served={served} \
         worst_latency={worst:?} closed_by_server_within_{:.0}s: header_stalls={header_closed}/100 \
         body_stalls={body_closed}/100",
        closed_after.as_secs_f64()
    );
    assert_eq!(
        header_closed, 100,
        "connections stalled in the headers were not timed out"
    );
    // Body stalls are bounded by a 10 s deadline, longer than this wait: see
    // `stalled_bodies_are_timed_out`. They do not starve the workers (checked above).
    let _ = body_closed;
}

/// A request whose headers announce a body that never comes is answered 408 and closed once
/// the server's body deadline (10 s) passes; before that deadline existed such a connection
/// stayed open for ever (observed > 8 min), and enough of them would exhaust file descriptors.
#[test]
fn stalled_bodies_are_timed_out() {
    let db = TestDb::sqlite();
    let server = ServerProcess::start(&db.url, &[]);
    let addr = server.base_url.trim_start_matches("http://").to_string();
    let opened = Instant::now();
    let mut stalled: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).expect("connect");
            s.write_all(
                b"POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                  Content-Length: 500\r\n\r\n{\"side\":",
            )
            .expect("half a body");
            s
        })
        .collect();
    let mut closed = 0;
    for s in &mut stalled {
        let left = (opened + Duration::from_secs(20)).saturating_duration_since(Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(10))))
            .expect("timeout");
        let mut buf = Vec::new();
        if s.read_to_end(&mut buf).is_ok() {
            closed += 1;
        }
    }
    eprintln!("[security] body stalls closed by the server within 20 s: {closed}/20");
    assert_eq!(
        closed, 20,
        "connections stalled in the body were not closed"
    );
}
