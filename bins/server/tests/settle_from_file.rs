//! End to end: the server started with `--policy clearing --price-source file:PATH` over a
//! Data Miner style `rt_hrl_lmps` file the test writes (three nodes × 48 hours around now, a
//! negative LMP, a superseded row). Orders are settled at the file's price for the hour
//! containing their due time, record `FILE:<name>` and that hour, a missing price rejects with
//! its location and hour, and the market routes answer from the same file. A bad file stops
//! the binary at start with the line of the bad row.

use chrono::{DateTime, Duration, DurationRound, Utc};
use clap::Parser;
use order_scheduler::app::Application;
use order_scheduler::config::{Cli, Command, ServeArgs};
use orders::format_ms;
use reqwest::StatusCode;
use serde_json::Value;
use std::path::Path;
use storage::testing::{Backend, TestDb};

/// Nodes in the fixture, and their LMP in cents for hour `h` (0..48) of the file.
const NODES: [&str; 3] = ["X_HUB", "Y_ZONE", "NEG_NODE"];
const HOURS: i64 = 48;
/// Energy and loss components of every row, in cents; congestion is the rest.
const ENERGY: i64 = 2500;
const LOSS: i64 = 50;

fn lmp_cents(node: usize, h: i64) -> i64 {
    match node {
        0 => 3000 + 37 * h,
        1 => 5000 + 11 * h,
        // Negative all day: a glut of wind, say.
        _ => -550 - h,
    }
}

fn dollars(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

/// Data Miner 2's time format: `3/10/2024 7:00:00 AM`.
fn data_miner(t: DateTime<Utc>) -> String {
    t.format("%-m/%-d/%Y %-I:%M:%S %p").to_string()
}

/// The first hour of the file: a day before the current hour, so the file covers now.
fn first_hour() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(Duration::hours(1))
        .expect("an hour divides a timestamp")
        - Duration::hours(24)
}

/// Writes `rt_hrl_lmps.csv` with PJM's columns (the local-time column too, which the loader
/// must ignore, and a superseded row it must skip) and returns its path.
fn write_fixture(dir: &Path, start: DateTime<Utc>) -> std::path::PathBuf {
    let mut csv = String::from(
        "datetime_beginning_utc,datetime_beginning_ept,pnode_id,pnode_name,voltage,equipment,type,zone,\
         system_energy_price_rt,total_lmp_rt,congestion_price_rt,marginal_loss_price_rt,row_is_current,version_nbr\n",
    );
    for h in 0..HOURS {
        let t = start + Duration::hours(h);
        // EPT is UTC-5 or -4; the loader must not read it, so an approximation will do.
        let ept = t - Duration::hours(5);
        for (i, node) in NODES.iter().enumerate() {
            let lmp = lmp_cents(i, h);
            csv.push_str(&format!(
                "{},{},{},{node},,,HUB,,{},{},{},{},TRUE,1\n",
                data_miner(t),
                data_miner(ept),
                1000 + i,
                dollars(ENERGY),
                dollars(lmp),
                dollars(lmp - ENERGY - LOSS),
                dollars(LOSS),
            ));
        }
        // A superseded version of X_HUB's price: skipped.
        csv.push_str(&format!(
            "{},{},1000,X_HUB,,,HUB,,25.00,999.99,974.49,0.50,FALSE,0\n",
            data_miner(t),
            data_miner(ept),
        ));
    }
    let path = dir.join("rt_hrl_lmps.csv");
    std::fs::write(&path, csv).expect("fixture written");
    path
}

fn serve_args(db_url: &str, prices: &Path) -> ServeArgs {
    let source = format!("file:{}", prices.display());
    let argv = [
        "order-scheduler",
        "serve",
        "--database-url",
        db_url,
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--instance-id",
        "settle",
        "--moderation-seed",
        "7",
        "--policy",
        "clearing",
        "--price-source",
        &source,
    ];
    match Cli::try_parse_from(argv).expect("flags parse").command {
        Some(Command::Serve(args)) => args,
        other => panic!("expected serve, got {other:?}"),
    }
}

struct App {
    base: String,
    client: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
}

impl App {
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request sent");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn create(&self, side: &str, limit: &str, location: &str, due: DateTime<Utc>) -> String {
        let r = self
            .client
            .post(format!(
                "{}/api/v1/orders/fake?side={side}&qty_mwh=2&limit_price={limit}&hour_start_utc={}&location={location}&location_type=HUB",
                self.base,
                format_ms(&due)
            ))
            .send()
            .await
            .expect("request sent");
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.expect("json");
        body["order_id"].as_str().expect("an id").to_string()
    }

    /// The order and its P&L once moderated; gives up after 15 s (a broken scheduler).
    async fn settled(&self, id: &str) -> Value {
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let (_, detail) = self.get(&format!("/api/v1/orders/{id}")).await;
            if detail["order"]["status"] != "PENDING" || std::time::Instant::now() > give_up {
                return detail;
            }
            actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn settles_at_the_files_price(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let start = first_hour();
    let file = write_fixture(dir.path(), start);
    let app = Application::build(&serve_args(&db.url, &file)).expect("application builds");
    let app = App {
        base: format!("http://127.0.0.1:{}", app.port()),
        client: reqwest::Client::new(),
        handle: {
            let handle = app.handle();
            actix_web::rt::spawn(app.run_until_stopped());
            handle
        },
    };

    // The status names the policy and the file.
    let (status, st) = app.get("/api/v1/scheduler/status").await;
    assert_eq!(status, StatusCode::OK, "{st}");
    assert_eq!(st["scheduler"]["policy"], "clearing(rejection_rate=0)");
    assert_eq!(st["scheduler"]["price_source"], "FILE:rt_hrl_lmps.csv");

    // Due in a second: hour H is the one containing the due time.
    let due = Utc::now() + Duration::seconds(1);
    let hour = due.duration_trunc(Duration::hours(1)).expect("hour");
    let h = (hour - start).num_hours();
    let x = lmp_cents(0, h);
    let buy = app.create("BUY", "100", "X_HUB", due).await;
    let sell = app.create("SELL", "100", "X_HUB", due).await;
    let negative = app.create("SELL", "-10", "NEG_NODE", due).await;
    let missing = app.create("BUY", "100", "NOWHERE", due).await;

    let detail = app.settled(&buy).await;
    let order = &detail["order"];
    assert_eq!(order["status"], "APPROVED", "{detail}");
    assert_eq!(
        (order["approval_rt_lmp"].as_f64().expect("lmp") * 100.0).round() as i64,
        x
    );
    assert_eq!(order["approval_rt_source"], "FILE:rt_hrl_lmps.csv");
    assert_eq!(order["approval_rt_interval_start_utc"], format_ms(&hour));
    // BUY 2 MWh limit 100 settled at x: P&L = (x - 100) * 2 $, exactly.
    let pnl_cents = (x - 10_000) * 2;
    assert_eq!(
        (detail["pnl"].as_f64().expect("pnl") * 100.0).round() as i64,
        pnl_cents,
        "{detail}"
    );
    // The moderation event names policy and source.
    let event = detail["history"]
        .as_array()
        .and_then(|h| h.last())
        .expect("a moderation event");
    assert_eq!(event["details"]["policy"], "clearing(rejection_rate=0)");
    assert_eq!(event["details"]["price_source"], "FILE:rt_hrl_lmps.csv");

    let detail = app.settled(&sell).await;
    assert_eq!(detail["order"]["status"], "REJECTED", "{detail}");
    assert_eq!(
        detail["order"]["reject_reason"],
        "Price outside acceptable range"
    );

    let detail = app.settled(&negative).await;
    assert_eq!(detail["order"]["status"], "APPROVED", "{detail}");
    assert_eq!(
        (detail["order"]["approval_rt_lmp"].as_f64().expect("lmp") * 100.0).round() as i64,
        lmp_cents(2, h),
        "a negative LMP is kept"
    );

    let detail = app.settled(&missing).await;
    assert_eq!(detail["order"]["status"], "REJECTED", "{detail}");
    assert_eq!(
        detail["order"]["reject_reason"],
        format!("No real-time price for NOWHERE at {}", format_ms(&hour))
    );

    // The original's per-hour moderation, without its parameters, settles with the configured
    // policy and prices too: an order due an hour ahead, moderated now.
    let ahead = hour + Duration::hours(1);
    let early = app.create("BUY", "100", "X_HUB", ahead).await;
    let r = app
        .client
        .post(format!(
            "{}/api/v1/orders/moderate/{}",
            app.base,
            format_ms(&ahead)
        ))
        .send()
        .await
        .expect("request sent");
    assert_eq!(r.status(), StatusCode::OK);
    let detail = app.settled(&early).await;
    assert_eq!(detail["order"]["status"], "APPROVED", "{detail}");
    assert_eq!(
        detail["order"]["approval_rt_source"],
        "FILE:rt_hrl_lmps.csv"
    );
    assert_eq!(
        (detail["order"]["approval_rt_lmp"].as_f64().expect("lmp") * 100.0).round() as i64,
        lmp_cents(0, h + 1)
    );

    // The market routes answer from the same file.
    let (status, latest) = app
        .get("/api/v1/realtime/latest?market=pjm&location=X_HUB")
        .await;
    assert_eq!(status, StatusCode::OK, "{latest}");
    assert_eq!(latest["market"], "pjm");
    assert_eq!(latest["location"], "X_HUB");
    let now_hour = Utc::now().duration_trunc(Duration::hours(1)).expect("hour");
    let point = &latest["data"][0];
    assert_eq!(point["interval_start_utc"], format_ms(&now_hour));
    let now_h = (now_hour - start).num_hours();
    assert_eq!(
        (point["lmp"].as_f64().expect("lmp") * 100.0).round() as i64,
        lmp_cents(0, now_h)
    );
    assert_eq!(point["energy"], 25.0);
    assert_eq!(point["loss"], 0.5);
    let parts = ["energy", "congestion", "loss"]
        .iter()
        .map(|k| (point[k].as_f64().expect("component") * 100.0).round() as i64)
        .sum::<i64>();
    assert_eq!(parts, lmp_cents(0, now_h), "components add up: {point}");

    let (status, day) = app
        .get("/api/v1/realtime/last24h?market=pjm&location=Y_ZONE")
        .await;
    assert_eq!(status, StatusCode::OK, "{day}");
    let data = day["data"].as_array().expect("data");
    assert_eq!(data.len(), 24, "{day}");
    assert_eq!(data[23]["interval_start_utc"], format_ms(&now_hour));
    assert_eq!(
        data[0]["interval_start_utc"],
        format_ms(&(now_hour - Duration::hours(23)))
    );
    let lmps: Vec<i64> = data
        .iter()
        .map(|p| (p["lmp"].as_f64().expect("lmp") * 100.0).round() as i64)
        .collect();
    let want: Vec<i64> = (now_h - 23..=now_h).map(|h| lmp_cents(1, h)).collect();
    assert_eq!(lmps, want, "in time order");

    let (from, to) = (start + Duration::hours(2), start + Duration::hours(5));
    let (status, range) = app
        .get(&format!(
            "/api/v1/realtime/range?start={}&end={}&market=pjm&location=NEG_NODE",
            format_ms(&from),
            format_ms(&to)
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{range}");
    assert_eq!(range["start"], format_ms(&from));
    assert_eq!(range["end"], format_ms(&to));
    let lmps: Vec<i64> = range["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|p| (p["lmp"].as_f64().expect("lmp") * 100.0).round() as i64)
        .collect();
    assert_eq!(
        lmps,
        vec![lmp_cents(2, 2), lmp_cents(2, 3), lmp_cents(2, 4)]
    );

    // Bad queries: the API's JSON error.
    for (path, code) in [
        ("/api/v1/realtime/latest?market=pjm", Some("invalid_parameter")),
        ("/api/v1/realtime/latest?location=X_HUB&location=Y_ZONE", Some("repeated_parameter")),
        ("/api/v1/realtime/latest?location=X_HUB&node=1", Some("unknown_parameter")),
        ("/api/v1/realtime/range?location=X_HUB&start=2024-01-02T00:00:00Z&end=2024-01-01T00:00:00Z", Some("invalid_parameter")),
        // Whatever code the server's time parser gives.
        ("/api/v1/realtime/range?location=X_HUB&start=yesterday&end=2024-01-01T00:00:00Z", None),
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(body["code"].is_string(), "{path}: {body}");
        if let Some(code) = code {
            assert_eq!(body["code"], code, "{path}: {body}");
        }
        assert!(body["detail"].is_string(), "{path}: {body}");
    }
    let (status, body) = app.get("/api/v1/realtime/latest?location=NOWHERE").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "no_price");
}

#[actix_web::test]
async fn sqlite_settles_at_the_files_price() {
    settles_at_the_files_price(Backend::Sqlite).await;
}

#[actix_web::test]
async fn postgres_settles_at_the_files_price() {
    settles_at_the_files_price(Backend::Postgres).await;
}

/// A bad row stops the binary before it serves, with the file's line and a non-zero exit.
#[test]
fn a_bad_price_file_stops_the_server_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("lmps.csv");
    std::fs::write(
        &file,
        "datetime_beginning_utc,pnode_name,total_lmp_rt\n\
         1/1/2024 5:00:00 AM,X_HUB,41.23\n\
         1/1/2024 6:00:00 AM,X_HUB,12,5\n",
    )
    .expect("fixture written");
    let db = dir.path().join("orders.db");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_order-scheduler"))
        .args(["serve", "--bind", "127.0.0.1:0", "--database-url"])
        .arg(&db)
        .arg("--price-source")
        .arg(format!("file:{}", file.display()))
        .output()
        .expect("the binary runs");
    assert!(!out.status.success(), "must not start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("price file, line 3"),
        "names the line: {stderr}"
    );
    assert!(!db.exists(), "fails before touching the database");
}
