//! Scenario 4 (the part the API table in `bins/server/tests/api/bad_input.rs` lacks): due
//! times written with many valid offsets are stored as the right UTC instant and moderated at
//! that instant by the real binary, never early and never hours off (the seed compared them
//! as text). The hostile-request table itself lives in [`crate::hostile`].

use crate::support::{client, heavy, wait_for};
use chrono::{DateTime, Duration as ChronoDuration, FixedOffset, SecondsFormat, Utc};
use orders::format_ms;
use serde_json::{json, Value};
use std::time::Duration;
use storage::testing::TestDb;
use system_tests::ServerProcess;

/// Offsets in seconds east of UTC, as written: `Z`, zero both ways, and the odd real ones.
const OFFSETS: &[(i32, &str)] = &[
    (0, "Z"),
    (0, "+00:00"),
    (0, "-00:00"),
    (-4 * 3600, "-04:00"),
    (5 * 3600 + 1800, "+05:30"),
    (14 * 3600, "+14:00"),
    (-12 * 3600, "-12:00"),
    (5 * 3600 + 2700, "+05:45"),
    (-(9 * 3600 + 1800), "-09:30"),
    (12 * 3600 + 2700, "+12:45"),
];

/// `instant` written in the local time of `offset_secs`, with that offset spelled `suffix`.
fn written_with(instant: DateTime<Utc>, offset_secs: i32, suffix: &str) -> String {
    let tz = FixedOffset::east_opt(offset_secs).expect("a valid offset");
    let local = instant
        .with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    // chrono writes the offset as +hh:mm (or Z for UTC with use_z); swap in our spelling.
    let cut = local.len() - if local.ends_with('Z') { 1 } else { 6 };
    format!("{}{suffix}", &local[..cut])
}

fn offsets_are_moderated_at_their_instant(backend: &str, db: &TestDb) {
    let _guard = heavy();
    let server = ServerProcess::start(&db.url, &[]);
    let http = client();
    let base = &server.base_url;
    let first_due = Utc::now() + ChronoDuration::milliseconds(3_000);
    let mut created = Vec::new();
    for (i, (secs, suffix)) in OFFSETS.iter().enumerate() {
        for (j, route) in ["json", "seed"].into_iter().enumerate() {
            let due = orders::truncate_ms(
                first_due + ChronoDuration::milliseconds(((i * 2 + j) * 97) as i64),
            );
            let text = written_with(due, *secs, suffix);
            let r = match route {
                "json" => http.post(format!("{base}/api/v1/orders")).json(&json!({
                    "side": "SELL", "qty_mwh": "2.5", "limit_price": "41.5", "hour_start_utc": text,
                })),
                _ => http.post(format!("{base}/api/v1/orders/fake")).query(&[
                    ("side", "BUY"),
                    ("qty_mwh", "1"),
                    ("limit_price", "40"),
                    ("hour_start_utc", text.as_str()),
                ]),
            }
            .send()
            .expect("create");
            let status = r.status().as_u16();
            let body: Value = r.json().expect("JSON");
            assert!(
                status == 200 || status == 201,
                "{route} create with {text}: {status} {body}"
            );
            let order = if body["id"].is_string() {
                body.clone()
            } else {
                body["order"].clone()
            };
            assert_eq!(
                order["hour_start_utc"].as_str(),
                Some(format_ms(&due).as_str()),
                "{route}: {text} must be stored as {}: {body}",
                format_ms(&due)
            );
            let id = order["id"].as_str().expect("an id").to_string();
            created.push((id, text, due, route));
        }
    }
    assert!(
        Utc::now() < first_due,
        "creating the orders took longer than their lead time; the check would prove nothing"
    );
    let last_due = created.iter().map(|c| c.2).max().expect("orders");
    let mut worst = 0i64;
    let mut lateness = Vec::new();
    for (id, text, due, route) in &created {
        let order: Value = wait_for(
            "the order to be moderated",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || {
                let v: Value = http
                    .get(format!("{base}/api/v1/orders/{id}"))
                    .send()
                    .and_then(|r| r.json())
                    .ok()?;
                (v["order"]["status"] != "PENDING").then_some(v)
            },
        );
        let history = order["history"].as_array().expect("history");
        let moderations: Vec<&Value> = history
            .iter()
            .filter(|e| e["from_status"] == "PENDING")
            .collect();
        assert_eq!(
            moderations.len(),
            1,
            "{route} {text}: one moderation event: {order}"
        );
        let at = DateTime::parse_from_rfc3339(moderations[0]["at"].as_str().expect("at"))
            .expect("an RFC 3339 event time")
            .with_timezone(&Utc);
        let late = (at - *due).num_milliseconds();
        assert!(
            late >= 0,
            "{route} {text}: moderated {late} ms BEFORE its due time: {order}"
        );
        assert!(
            late < 1_000,
            "{route} {text}: moderated {late} ms late: {order}"
        );
        worst = worst.max(late);
        lateness.push(format!("{suffix}:{late}", suffix = &text[23..]));
    }
    assert!(Utc::now() > last_due);
    eprintln!(
        "[offsets/{backend}] FIGURES orders={} offsets={} worst_lateness_ms={worst} \
         per_order(offset:ms)={lateness:?}",
        created.len(),
        OFFSETS.len()
    );
}

#[test]
fn offsets_are_moderated_at_their_utc_instant_sqlite() {
    offsets_are_moderated_at_their_instant("sqlite", &TestDb::sqlite());
}

#[test]
fn offsets_are_moderated_at_their_utc_instant_postgres() {
    if let Some(db) = TestDb::postgres() {
        offsets_are_moderated_at_their_instant("postgres", &db);
    }
}
