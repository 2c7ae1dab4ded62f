//! The real `order-scheduler` binary: start-up errors, `migrate`, and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_order-scheduler");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn bad_database_urls_fail_with_one_clear_line() {
    for (url, needle) in [
        ("mysql://h/db", "invalid database URL"),
        (
            "postgres://postgres@127.0.0.1:1/none",
            "database unavailable",
        ),
    ] {
        let out = Command::new(BIN)
            .args(["--database-url", url, "--bind", "127.0.0.1:0"])
            .env("RUST_LOG", "off")
            .output()
            .expect("run");
        assert!(!out.status.success(), "{url}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{url}: {stderr}");
        assert!(!stderr.contains("panicked"), "{url}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{url}: {stderr}");
    }
}

#[test]
fn migrate_subcommand_applies_migrations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("m.db");
    let out = Command::new(BIN)
        .args(["migrate", "--database-url"])
        .arg(&db)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));
    assert!(db.exists());
}

/// Kills the child if the test fails before it exits, so no server outlives the test run.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `order-scheduler serve` on a free port with an SQLite file; killed on drop.
fn serve(db: &std::path::Path, rust_log: &str, stderr: Stdio) -> (KillOnDrop, u16) {
    let port = free_port();
    let child = Command::new(BIN)
        .args([
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--database-url",
        ])
        .arg(db)
        .env("RUST_LOG", rust_log)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn");
    (KillOnDrop(child), port)
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut guard, port) = serve(&dir.path().join("s.db"), "info", Stdio::piped());
    let child = &mut guard.0;
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains("listening on")) {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => lines.push(l),
            Err(_) => panic!("server did not start: {lines:?}"),
        }
    }
    let status = std::net::TcpStream::connect(("127.0.0.1", port));
    assert!(status.is_ok(), "the port answers");
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit:?}");
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
        lines.push(l);
    }
    assert!(
        lines.iter().any(|l| l.contains("Order scheduler stopped")),
        "{lines:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

fn run(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn cli_seed_orders_moderate_and_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("cli.db");
    let db = db.to_str().expect("utf-8 path");
    let seeded = run(&[
        "seed",
        "--database-url",
        db,
        "-n",
        "250",
        "--start-in-secs",
        "3600",
    ]);
    assert!(seeded.contains("created 250 orders"), "{seeded}");
    run(&[
        "seed",
        "--database-url",
        db,
        "-n",
        "4",
        "--at",
        "2031-01-01T02:00:00+02:00",
    ]);
    let listed: serde_json::Value = serde_json::from_str(&run(&[
        "orders",
        "--database-url",
        db,
        "--limit",
        "1000",
        "--json",
    ]))
    .expect("json");
    let all = listed.as_array().expect("array");
    assert_eq!(all.len(), 254);
    assert!(all.iter().all(|o| o["status"] == "PENDING"));
    let table = run(&["orders", "--database-url", db, "--limit", "5"]);
    assert!(
        table.contains("PENDING") && table.contains("5 orders shown"),
        "{table}"
    );
    // The tool takes the server's policy and price-source flags: a missing price file is a
    // one-line error before anything is moderated.
    let refused = Command::new(BIN)
        .args([
            "moderate",
            "--database-url",
            db,
            "--hour",
            "2031-01-01T00:00:00Z",
        ])
        .args([
            "--policy",
            "clearing",
            "--price-source",
            "file:/nonexistent/prices.csv",
        ])
        .output()
        .expect("run");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("/nonexistent/prices.csv"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let moderated = run(&[
        "moderate",
        "--database-url",
        db,
        "--hour",
        "2031-01-01T00:00:00Z",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&moderated).expect("json");
    assert_eq!(report["total_orders"], 4, "exactly that hour's orders");
    let pending: serde_json::Value = serde_json::from_str(&run(&[
        "orders",
        "--database-url",
        db,
        "--status",
        "PENDING",
        "--limit",
        "1000",
        "--json",
    ]))
    .expect("json");
    assert_eq!(
        pending.as_array().map(Vec::len),
        Some(250),
        "the other hours are untouched"
    );
    let id = report["orders"][0]["id"].as_str().expect("id");
    let shown = run(&["orders", "--database-url", db, "--id", id]);
    assert!(shown.contains("PENDING ->"), "history shown: {shown}");
    let dry = run(&["clean", "--database-url", db]);
    assert!(dry.contains("add --yes"), "{dry}");
    assert!(run(&["clean", "--database-url", db, "--yes"]).contains("deleted 254 orders"));
}

#[test]
fn cli_status_reads_a_running_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut guard, port) = serve(&dir.path().join("st.db"), "warn", Stdio::null());
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = Command::new(BIN)
            .args(["status", "--server-url", &url])
            .output()
            .expect("run");
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("running") && text.contains("true"), "{text}");
    let _ = guard.0.kill();
}

/// Runs the binary and returns (success, stdout, stderr).
fn run_raw(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Issue 12, item 5: flags that once stored a due time in year 11533 or panicked on overflow
/// or `nan` now fail with a short error and a non-zero exit.
#[test]
fn bad_flag_values_fail_cleanly_and_store_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("flags.db");
    let db = db.to_str().expect("utf-8 path");
    let seed = |extra: &[&str]| {
        let mut args = vec!["seed", "--database-url", db, "-n", "1"];
        args.extend_from_slice(extra);
        run_raw(&args)
    };
    for bad in [
        vec!["--start-in-secs", "3e11"],
        vec!["--start-in-secs", "1e20"],
        vec!["--start-in-secs", "-1e20"],
        vec!["--start-in-secs", "nan"],
        vec!["--start-in-secs", "inf"],
        vec!["--window-secs", "1e300"],
        vec!["--window-secs", "-5"],
        vec!["--window-secs", "nan"],
        // Within the flag's bounds, but beyond 2099.
        vec!["--start-in-secs", "3000000000"],
        vec!["--start-in-secs", "-1000000000"],
        vec!["--at", "2100-01-01T00:00:00Z"],
    ] {
        let (ok, _, stderr) = seed(&bad);
        assert!(!ok, "{bad:?} was accepted");
        assert!(!stderr.contains("panicked"), "{bad:?}: {stderr}");
        assert!(!stderr.trim().is_empty(), "{bad:?}: no message");
    }
    assert!(
        !std::path::Path::new(db).exists(),
        "a refused seed must not create the database"
    );
    for bad in [
        vec!["serve", "--check-interval-secs", "nan"],
        vec!["serve", "--check-interval-secs", "-1"],
        vec!["serve", "--check-interval-secs", "1e300"],
        vec!["serve", "--batch-size", "0"],
        vec!["serve", "--pg-writers", "0"],
        vec!["serve", "--pg-writers", "33"],
        vec!["serve", "--workers", "0"],
        vec!["serve", "--pool-size", "0"],
        vec!["serve", "--approval-probability", "nan"],
        vec!["serve", "--approval-probability", "1.5"],
        vec!["serve", "--rt-lmp-base", "inf"],
        vec!["orders", "--limit", "-3"],
        vec!["seed", "-n", "0"],
    ] {
        let (ok, _, stderr) = run_raw(&bad);
        assert!(!ok, "{bad:?} was accepted");
        assert!(!stderr.contains("panicked"), "{bad:?}: {stderr}");
        assert!(stderr.contains("error:"), "{bad:?}: {stderr}");
    }
    // Still accepted: a negative start (already due) within range.
    let (ok, out, stderr) = seed(&["--start-in-secs", "-60", "--window-secs", "0"]);
    assert!(ok, "{stderr}");
    assert!(out.contains("created 1 orders"), "{out}");
}

/// Starts `order-scheduler serve` on `url` with extra flags, and waits until it answers;
/// returns the guard and the base URL.
fn serve_on(url: &str, extra: &[&str]) -> (KillOnDrop, String) {
    let port = free_port();
    let child = Command::new(BIN)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .args(["--database-url", url])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let guard = KillOnDrop(child);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::blocking::get(format!("{base}/api/v1/scheduler/status")).is_err() {
        assert!(Instant::now() < deadline, "server did not start on {url}");
        std::thread::sleep(Duration::from_millis(50));
    }
    (guard, base)
}

const TOKEN: &str = "operator-token-1";

fn admin_post(base: &str, path: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
    let mut req = reqwest::blocking::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(serde_json::Value::Null))
}

fn get_json(url: &str) -> serde_json::Value {
    reqwest::blocking::get(url)
        .expect("request")
        .json()
        .expect("json")
}

/// Issue 16, item 1, on both backends against the real binary: parked orders are listed (API
/// and `orders --parked`), discarded (rejected, in the history, token required) and retried
/// (the scheduler takes them at once).
fn parked_orders_round_trip(backend: storage::testing::Backend) {
    let Some(db) = storage::testing::TestDb::new(backend) else {
        return;
    };
    let store = db.store();
    let new = |due_in_secs: i64| {
        orders::NewOrder::from_fields(&orders::NewOrderFields {
            side: Some("BUY"),
            qty_mwh: Some("1"),
            limit_price: Some("40"),
            hour_start_utc: Some(&orders::format_ms(
                &(chrono::Utc::now() + chrono::Duration::seconds(due_in_secs)),
            )),
            location: None,
            location_type: None,
        })
        .expect("valid")
    };
    // Due a minute ago and parked: only a retry lets the scheduler take it.
    let a = store
        .insert_order(&new(-60), None, "test")
        .expect("insert")
        .order
        .id;
    let b = store
        .insert_order(&new(3600), None, "test")
        .expect("insert")
        .order
        .id;
    assert!(store.park_order(&a, "cannot decode").expect("park"));
    assert!(store.park_order(&b, "cannot decide").expect("park"));

    let listed = run(&["orders", "--database-url", &db.url, "--parked", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(listed["count"], 2, "{listed}");
    let table = run(&["orders", "--database-url", &db.url, "--parked"]);
    assert!(
        table.contains("cannot decode") && table.contains("2 parked orders"),
        "{table}"
    );

    let (_guard, base) = serve_on(&db.url, &["--admin-token", TOKEN]);
    let list = get_json(&format!("{base}/api/v1/parked"));
    assert_eq!(list["count"], 2, "{list}");
    assert_eq!(list["orders"].as_array().map(Vec::len), Some(2));

    let unauth = reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/parked/{b}/discard"))
        .send()
        .expect("request");
    assert_eq!(unauth.status().as_u16(), 401, "discard needs the token");

    let (status, reply) = admin_post(
        &base,
        &format!("/api/v1/parked/{b}/discard"),
        Some(serde_json::json!({"reason": "bad feed"})),
    );
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["reject_reason"], "Discarded by operator: bad feed");
    let shown = get_json(&format!("{base}/api/v1/orders/{b}"));
    let text = shown.to_string();
    assert!(
        text.contains("REJECTED") && text.contains("Discarded by operator: bad feed"),
        "{text}"
    );
    let (status, _) = admin_post(&base, &format!("/api/v1/parked/{b}/discard"), None);
    assert_eq!(status, 409, "discarding twice is a conflict");

    let (status, reply) = admin_post(&base, &format!("/api/v1/parked/{a}/retry"), None);
    assert_eq!((status, &reply["retried"]), (200, &serde_json::json!(1)));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = store.get_order(&a).expect("get");
        if o.status != orders::OrderStatus::Pending {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the retried order was not moderated"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let list = get_json(&format!("{base}/api/v1/parked"));
    assert_eq!(list["count"], 0, "{list}");
    assert_eq!(list["retried_total"], 1, "{list}");
    assert_eq!(list["discarded_total"], 1, "{list}");
    let (status, reply) = admin_post(&base, "/api/v1/parked/retry", None);
    assert_eq!((status, &reply["retried"]), (200, &serde_json::json!(0)));
    // The operator's actions are counted in the metrics too.
    let metrics = reqwest::blocking::get(format!("{base}/metrics"))
        .and_then(|r| r.text())
        .expect("metrics");
    for line in [
        "order_scheduler_parked_retried_total 1",
        "order_scheduler_parked_discarded_total 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

#[test]
fn parked_orders_round_trip_sqlite() {
    parked_orders_round_trip(storage::testing::Backend::Sqlite);
}

#[test]
fn parked_orders_round_trip_postgres() {
    parked_orders_round_trip(storage::testing::Backend::Postgres);
}

/// Issue 16, item 4: `--log-format json` writes one JSON object per line with the fields a
/// collector filters on; the default stays text.
#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("log.db");
    let port = free_port();
    let mut guard = KillOnDrop(
        Command::new(BIN)
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .args(["--instance-id", "logtest", "--log-format", "json"])
            .arg("--database-url")
            .arg(&db)
            .env("RUST_LOG", "info,actix_web::middleware::logger=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    let stderr = guard.0.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let base = format!("http://127.0.0.1:{port}");
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    // Until a request line shows up: the server is up and the request was logged.
    while !lines
        .iter()
        .any(|l: &String| l.contains("/api/v1/scheduler/status"))
    {
        let _ = reqwest::blocking::get(format!("{base}/api/v1/scheduler/status"));
        while let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            lines.push(l);
        }
        assert!(Instant::now() < deadline, "no request line: {lines:?}");
    }
    let objects: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for o in &objects {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(o[key].is_string(), "{key} missing: {o}");
        }
        assert_eq!(o["instance"], "logtest", "{o}");
    }
    assert!(
        objects.iter().any(|o| o["message"]
            .as_str()
            .is_some_and(|m| m.contains("listening on"))),
        "{lines:?}"
    );
    let request = objects
        .iter()
        .find(|o| o["path"] == "/api/v1/scheduler/status")
        .expect("a request line");
    assert_eq!(request["method"], "GET", "{request}");
    assert_eq!(request["status"], 200, "{request}");
    assert!(request["duration_ms"].is_number(), "{request}");
    // An order due in half a second: its moderation line carries the due time and lateness.
    let due = orders::format_ms(&(chrono::Utc::now() + chrono::Duration::milliseconds(500)));
    let created = reqwest::blocking::Client::new()
        .post(format!(
            "{base}/api/v1/orders/fake?side=BUY&qty_mwh=1&limit_price=40&hour_start_utc={due}"
        ))
        .send()
        .expect("create");
    assert!(created.status().is_success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let moderated = loop {
        let l = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("a moderation line within 10 s");
        let o: serde_json::Value = serde_json::from_str(&l).expect("JSON");
        if o["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("✅ Moderated"))
        {
            break o;
        }
    };
    assert_eq!(moderated["due"], due.as_str(), "{moderated}");
    assert!(
        moderated["lateness_ms"]
            .as_f64()
            .is_some_and(|ms| (0.0..1000.0).contains(&ms)),
        "{moderated}"
    );
    let _ = guard.0.kill();

    // The default: text lines, as before.
    let (mut text, _port) = serve(&dir.path().join("text.db"), "info", Stdio::piped());
    let first = BufReader::new(text.0.stderr.take().expect("stderr"))
        .lines()
        .map_while(Result::ok)
        .next()
        .expect("a line");
    assert!(
        serde_json::from_str::<serde_json::Value>(&first).is_err(),
        "{first}"
    );
    assert!(first.contains("INFO"), "{first}");
}

/// Issue 16, item 6: `scheduler status|stop|start|force-run` against a running server with a
/// token, and `migrate --status` before and after migrating.
#[test]
fn cli_controls_the_scheduler_and_lists_migrations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("ctl.db");
    let db = db.to_str().expect("utf-8 path");

    let (ok, out, err) = run_raw(&["migrate", "--status", "--database-url", db]);
    assert!(ok, "{err}");
    assert!(
        out.contains("pending") && out.contains("0 applied"),
        "{out}"
    );
    assert!(out.contains("_create_orders"), "{out}");
    run(&["migrate", "--database-url", db]);
    let (ok, out, err) = run_raw(&["migrate", "--status", "--database-url", db]);
    assert!(ok, "{err}");
    assert!(
        out.contains(", 0 pending") && !out.contains("pending  "),
        "{out}"
    );
    assert!(
        out.lines().filter(|l| l.starts_with("applied")).count() >= 2,
        "{out}"
    );

    let (_guard, base) = serve_on(db, &["--admin-token", TOKEN]);
    let ctl = |action: &str, token: Option<&str>| {
        let mut args = vec!["scheduler", action, "--server-url", &base];
        if let Some(t) = token {
            args.extend(["--token", t]);
        }
        run_raw(&args)
    };
    let (ok, out, err) = ctl("status", None);
    assert!(ok, "{err}");
    assert!(out.contains("running") && out.contains("true"), "{out}");

    let (ok, _, err) = ctl("stop", None);
    assert!(!ok, "stop without the token must fail");
    assert!(err.contains("401") && err.lines().count() == 1, "{err}");

    let (ok, out, err) = ctl("stop", Some(TOKEN));
    assert!(ok, "{err}");
    assert!(out.contains("Scheduler stopped"), "{out}");
    let (_, out, _) = ctl("status", None);
    let running = out
        .lines()
        .find(|l| l.starts_with("running "))
        .expect("running line");
    assert!(running.ends_with("false"), "{out}");

    run(&[
        "seed",
        "--database-url",
        db,
        "-n",
        "3",
        "--start-in-secs",
        "-5",
        "--window-secs",
        "0",
    ]);
    let (ok, out, err) = ctl("force-run", Some(TOKEN));
    assert!(ok, "{err}");
    assert!(out.contains("3 orders"), "{out}");

    let (ok, out, err) = ctl("start", Some(TOKEN));
    assert!(ok, "{err}");
    assert!(out.contains("Scheduler started"), "{out}");

    let (ok, _, err) = run_raw(&["scheduler", "status", "--server-url", "http://127.0.0.1:1"]);
    assert!(!ok && err.contains("cannot reach"), "{err}");
}

/// Issue 16, item 3, on both backends against the real binary: with `--retain-closed-days`,
/// old closed orders and their history go soon after start, pending and recent ones stay, and
/// `GET /api/v1/retention` shows the count.
fn retention_deletes_old_closed_orders(backend: storage::testing::Backend) {
    use diesel::prelude::*;
    use storage::schema::orders as t;
    let Some(db) = storage::testing::TestDb::new(backend) else {
        return;
    };
    let store = db.store();
    let new = orders::NewOrder::from_fields(&orders::NewOrderFields {
        side: Some("SELL"),
        qty_mwh: Some("1"),
        limit_price: Some("40"),
        hour_start_utc: Some(&orders::format_ms(
            &(chrono::Utc::now() + chrono::Duration::hours(2)),
        )),
        location: None,
        location_type: None,
    })
    .expect("valid");
    let ids: Vec<String> = (0..5)
        .map(|_| {
            store
                .insert_order(&new, None, "test")
                .expect("insert")
                .order
                .id
        })
        .collect();
    let reject = storage::ManualChange {
        to: Some(orders::OrderStatus::Rejected),
        ..Default::default()
    };
    for id in &ids[..4] {
        store.transition(id, &reject, "test").expect("reject");
    }
    let old = (chrono::Utc::now() - chrono::Duration::days(40)).naive_utc();
    // Three old closed orders; ids[3] closed recently; ids[4] pending (and old).
    diesel::update(t::table.filter(t::id.eq_any(&ids[..3])))
        .set(t::approved_at.eq(Some(old)))
        .execute(&mut *store.conn().expect("conn"))
        .expect("age");
    diesel::update(t::table.filter(t::id.eq(&ids[4])))
        .set(t::created_at.eq(old))
        .execute(&mut *store.conn().expect("conn"))
        .expect("age");

    let (_guard, base) = serve_on(&db.url, &["--retain-closed-days", "30"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let s = get_json(&format!("{base}/api/v1/retention"));
        if s["sweeps"].as_u64().unwrap_or(0) >= 1 {
            break s;
        }
        assert!(Instant::now() < deadline, "no sweep: {s}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["enabled"], true, "{status}");
    assert_eq!(status["retain_closed_days"], 30, "{status}");
    assert_eq!(status["deleted_orders"], 3, "{status}");
    assert_eq!(status["deleted_events"], 6, "{status}");
    for id in &ids[..3] {
        assert!(store.get_order(id).is_err(), "{id} should be gone");
    }
    assert!(store.get_order(&ids[3]).is_ok(), "recently closed kept");
    assert!(store.get_order(&ids[4]).is_ok(), "pending kept");
    let shown = run(&["status", "--server-url", &base]);
    assert!(
        shown.contains("retention deleted") && shown.contains("3 orders, 6 history rows"),
        "{shown}"
    );
    let metrics = reqwest::blocking::get(format!("{base}/metrics"))
        .and_then(|r| r.text())
        .expect("metrics");
    for line in [
        "order_scheduler_retention_deleted_orders_total 3",
        "order_scheduler_retention_deleted_events_total 6",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

#[test]
fn retention_deletes_old_closed_orders_sqlite() {
    retention_deletes_old_closed_orders(storage::testing::Backend::Sqlite);
}

#[test]
fn retention_deletes_old_closed_orders_postgres() {
    retention_deletes_old_closed_orders(storage::testing::Backend::Postgres);
}

#[test]
fn retention_is_off_by_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("off.db");
    let (_guard, base) = serve_on(db.to_str().expect("utf-8"), &[]);
    let s = get_json(&format!("{base}/api/v1/retention"));
    assert_eq!(s["enabled"], false, "{s}");
    assert_eq!(s["deleted_orders"], 0, "{s}");
}

#[test]
fn a_reader_that_stops_early_ends_the_tool_quietly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("pipe.db");
    let db = db.to_str().expect("utf-8");
    run(&[
        "seed",
        "--database-url",
        db,
        "-n",
        "3000",
        "--start-in-secs",
        "86400",
    ]);
    let mut child = Command::new(BIN)
        .args(["orders", "--database-url", db, "--limit", "3000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = String::new();
    let stdout = child.stdout.take().expect("stdout");
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("first line");
    // The reader closes the pipe after one line, as `| head -1` does.
    let out = child.wait_with_output().expect("wait");
    assert!(first.starts_with("ID"), "{first}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}

/// Issue 16: `orders` lists the readable orders and names each stored row it cannot read on
/// stderr, instead of failing the whole listing.
#[test]
fn orders_names_rows_it_cannot_read() {
    use diesel::prelude::*;
    let db = storage::testing::TestDb::sqlite();
    let store = db.store();
    let ids: Vec<String> = (0..3)
        .map(|i| {
            let new = orders::NewOrder::from_fields(&orders::NewOrderFields {
                side: Some("BUY"),
                qty_mwh: Some("1"),
                limit_price: Some("40"),
                hour_start_utc: Some(&orders::format_ms(
                    &(chrono::Utc::now() + chrono::Duration::hours(1 + i)),
                )),
                location: None,
                location_type: None,
            })
            .expect("valid");
            store
                .insert_order(&new, None, "test")
                .expect("insert")
                .order
                .id
        })
        .collect();
    diesel::update(storage::schema::orders::table.filter(storage::schema::orders::id.eq(&ids[1])))
        .set(storage::schema::orders::side.eq("HOLD"))
        .execute(&mut *store.conn().expect("conn"))
        .expect("corrupt one row");
    let (ok, out, err) = run_raw(&["orders", "--database-url", &db.url, "--json"]);
    assert!(ok, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).expect("a JSON array");
    let shown: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|o| o["id"].as_str())
        .collect();
    assert_eq!(shown.len(), 2, "{out}");
    assert!(!shown.contains(&ids[1].as_str()), "{out}");
    assert!(
        err.contains(&ids[1]) && err.contains("HOLD"),
        "stderr names the unreadable row: {err}"
    );
}

/// Each thread of a process as (thread id, name, nice value), from /proc.
#[cfg(target_os = "linux")]
fn threads_with_nice(pid: u32) -> Vec<(u32, String, i32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc") {
        let path = entry.expect("task").path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue; // the thread ended meanwhile
        };
        // "tid (name) state ppid ...": the name may hold spaces, so split at the last ')'.
        let (head, rest) = stat.rsplit_once(')').expect("stat format");
        let (tid, name) = head.split_once(" (").expect("stat format");
        // After the name: state is field 3 and nice field 19 of stat(5).
        let nice = rest.split_whitespace().nth(16).expect("nice field");
        out.push((
            tid.parse().expect("tid"),
            name.to_string(),
            nice.parse().expect("nice"),
        ));
    }
    out
}

/// Request handlers run ten nice levels below the scheduler by default, so that under CPU
/// contention a due pass is not queued behind them; `--http-nice 0` leaves every thread alone.
#[cfg(target_os = "linux")]
#[test]
fn http_workers_run_below_the_scheduler() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (flag, offset) in [(None, 10), (Some("0"), 0)] {
        let url = dir.path().join(format!("nice-{offset}.db"));
        let url = url.to_string_lossy().to_string();
        let extra: Vec<&str> = flag.map(|v| vec!["--http-nice", v]).unwrap_or_default();
        let (guard, base) = serve_on(&url, &extra);
        // A request that reads the database, so that its blocking threads exist too.
        let _ = get_json(&format!("{base}/api/v1/orders"));
        let pid = guard.0.id();
        let threads = threads_with_nice(pid);
        let main_nice = threads
            .iter()
            .find(|(tid, _, _)| *tid == pid)
            .map(|t| t.2)
            .expect("main thread");
        let scheduler: Vec<_> = threads
            .iter()
            .filter(|(tid, name, _)| *tid != pid && name == "order-scheduler")
            .collect();
        assert_eq!(scheduler.len(), 1, "one scheduler thread: {threads:?}");
        assert_eq!(
            scheduler[0].2, main_nice,
            "scheduler keeps the process's value"
        );
        let expected = (main_nice + offset).min(19);
        let lowered = threads.iter().filter(|t| t.2 == expected).count();
        if offset == 0 {
            assert_eq!(lowered, threads.len(), "nothing lowered: {threads:?}");
        } else {
            // The workers (one per core at least) and the blocking threads they started.
            assert!(lowered >= 1, "no thread at nice {expected}: {threads:?}");
            assert!(
                threads.iter().all(|t| t.2 == main_nice || t.2 == expected),
                "{threads:?}"
            );
        }
    }
}

/// A command-line tool on Postgres exits cleanly, every time. With a pool that replaced each
/// connection taken out on a background thread, a tool that finished quickly could exit while
/// that thread was still connecting, and libpq (OpenSSL 3) crashed it at exit: `seed` died of
/// SIGSEGV in about one run of ten here. Tools' pools no longer connect in the background.
#[test]
fn cli_tools_on_postgres_exit_cleanly_every_time() {
    let Some(db) = storage::testing::TestDb::postgres() else {
        return;
    };
    for i in 0..30 {
        let (ok, out, err) = run_raw(&["seed", "--database-url", &db.url, "--count", "3"]);
        assert!(
            ok && out.contains("created 3 orders"),
            "run {i}: stdout {out:?}, stderr {err:?}"
        );
    }
    let store = storage::Store::open(&db.url, &storage::PoolConfig::default()).expect("open");
    assert_eq!(store.row_counts().expect("counts").0, 90);
}
