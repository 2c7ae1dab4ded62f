//! Scenario 2: restart the database server under a running order-scheduler. A private
//! PostgreSQL cluster (initdb/pg_ctl on its own port, in a temporary directory) so that no
//! other test is disturbed. During the outage the server must keep answering (503 JSON for
//! what needs the database) and show the error in its status; once the database is back,
//! without a restart of our server, every order is moderated exactly once.

use crate::support::{client, heavy, lateness_ms, pct, wait_for, Audit};
use chrono::{Duration as ChronoDuration, Utc};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use storage::{PoolConfig, Store};
use system_tests::{free_port, ServerProcess};

/// The newest `/usr/lib/postgresql/<version>/bin` (Debian's layout), or `PG_BIN`.
fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"), |(_, p)| p)
}

const ORDERS: usize = 200;

/// A throw-away PostgreSQL cluster; stopped (immediately) and deleted on drop.
struct PrivateCluster {
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl PrivateCluster {
    /// Creates and starts a cluster, or `None` (after a loud SKIPPED line) when the
    /// PostgreSQL binaries are missing and `REQUIRE_POSTGRES` is not `1`.
    fn create() -> Option<Self> {
        let bin = pg_bin().join("initdb");
        if !bin.exists() {
            assert!(
                std::env::var("REQUIRE_POSTGRES").ok().as_deref() != Some("1"),
                "REQUIRE_POSTGRES=1 but {} is missing",
                bin.display()
            );
            eprintln!(
                "\n*** SKIPPED: database restart test ({} missing) ***\n",
                bin.display()
            );
            return None;
        }
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let dir = tempfile::Builder::new()
            .prefix("os-pg-")
            .tempdir()
            .expect("a temporary directory");
        if root {
            // Root may not run postgres: the cluster belongs to the postgres user.
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown of {} to postgres failed", dir.path().display());
        }
        let cluster = PrivateCluster {
            dir,
            port: free_port(),
            as_postgres: root,
        };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        cluster.start();
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = pg_bin().join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}\n{}\nserver log: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.log()).unwrap_or_default()
        );
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let (data, log) = (self.data(), self.log().to_string_lossy().into_owned());
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &opts, "-w", "-t", "60", "start",
            ],
        );
    }

    fn stop(&self, mode: &str) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", mode, "-w", "stop"]);
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let exe = pg_bin().join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let _ = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .output()
        } else {
            Command::new(&exe).args(args).output()
        };
    }
}

/// One request's status, JSON body and how long it took.
fn call(req: reqwest::blocking::RequestBuilder) -> (u16, Value, Duration) {
    let t = Instant::now();
    let r = req.send().expect("the server answers during the outage");
    let status = r.status().as_u16();
    let body = r.json::<Value>().unwrap_or(Value::Null);
    (status, body, t.elapsed())
}

#[test]
fn database_restart_while_orders_fall_due() {
    let Some(cluster) = PrivateCluster::create() else {
        return;
    };
    let _guard = heavy();
    let url = cluster.url();
    let mut server =
        ServerProcess::start(&url, &["--batch-size", "50", "--check-interval-secs", "1"]);
    let http = client();
    let base = server.base_url.clone();

    // Orders due from 2 s to 12 s from now, created through the API.
    let start = Utc::now();
    for i in 0..ORDERS {
        let due = start + ChronoDuration::milliseconds(2_000 + (i as i64 * 10_000) / ORDERS as i64);
        let r = http
            .post(format!("{base}/api/v1/orders"))
            .json(&json!({
                "side": if i % 2 == 0 { "BUY" } else { "SELL" },
                "qty_mwh": 1.5, "limit_price": 40,
                "hour_start_utc": orders::format_ms(&due),
            }))
            .send()
            .expect("create");
        assert_eq!(r.status().as_u16(), 201, "create #{i}: {:?}", r.text());
    }
    // Let the first orders fall due and be moderated, then take the database away.
    std::thread::sleep(Duration::from_millis(
        (start + ChronoDuration::seconds(3) - Utc::now())
            .num_milliseconds()
            .max(0) as u64,
    ));
    let stopped_at = Utc::now();
    cluster.stop("fast");
    eprintln!(
        "[db-restart] database stopped (fast) at {}",
        orders::format_ms(&stopped_at)
    );

    // During the outage, all at once (each may wait for the pool's checkout timeout).
    let outage_t0 = Instant::now();
    let (simple, ready, create, list) = std::thread::scope(|sc| {
        let simple = sc.spawn(|| call(http.get(format!("{base}/api/v1/health/simple"))));
        let ready = sc.spawn(|| call(http.get(format!("{base}/api/v1/health"))));
        let create = sc.spawn(|| {
            call(http.post(format!("{base}/api/v1/orders")).json(&json!({
                "side": "BUY", "qty_mwh": 1, "limit_price": 40,
                "hour_start_utc": orders::format_ms(&(Utc::now() + ChronoDuration::seconds(5))),
            })))
        });
        let list = sc.spawn(|| call(http.get(format!("{base}/api/v1/orders?limit=5"))));
        let join = |h: std::thread::ScopedJoinHandle<'_, (u16, Value, Duration)>| {
            h.join().expect("a request thread")
        };
        (join(simple), join(ready), join(create), join(list))
    });
    let (s, _, t_simple) = simple;
    assert_eq!(s, 200, "liveness during the outage");
    let (s, body, t_ready) = ready;
    assert_eq!(s, 503, "readiness during the outage: {body}");
    assert_eq!(body["code"], "database_unavailable", "{body}");
    let (s, body, t_create) = create;
    assert_eq!(s, 503, "create during the outage: {body}");
    assert_eq!(body["code"], "database_unavailable", "{body}");
    assert!(body["detail"].is_string(), "{body}");
    let (s, body, t_list) = list;
    assert_eq!(s, 503, "list during the outage: {body}");
    assert_eq!(body["code"], "database_unavailable", "{body}");
    let last_error = wait_for(
        "scheduler status to show last_error",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            let (s, body, t) = call(http.get(format!("{base}/api/v1/scheduler/status")));
            assert_eq!(s, 200, "status during the outage: {body}");
            body["scheduler"]["last_error"]
                .as_str()
                .map(|e| (e.to_string(), t))
        },
    );
    eprintln!(
        "[db-restart] outage answers: health/simple 200 in {t_simple:?}, health 503 in \
         {t_ready:?}, create 503 in {t_create:?}, list 503 in {t_list:?}, status 200 in {:?} \
         with last_error={:?}",
        last_error.1, last_error.0
    );
    // Keep it down about 8 s in all while more orders fall due.
    std::thread::sleep(Duration::from_secs(8).saturating_sub(outage_t0.elapsed()));
    cluster.start();
    let restarted_at = Utc::now();
    eprintln!(
        "[db-restart] database started again after {} ms",
        (restarted_at - stopped_at).num_milliseconds()
    );

    let store = Store::open(&url, &PoolConfig::default()).expect("the private database");
    let recovered = Instant::now();
    wait_for(
        "every order to be moderated after the restart",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || (crate::support::moderation_events(&store).ok()? >= ORDERS as i64).then_some(()),
    );
    let recovery = recovered.elapsed();
    // A create works again, on the same server process.
    let r = http
        .post(format!("{base}/api/v1/orders"))
        .json(&json!({"side": "BUY", "qty_mwh": 1, "limit_price": 40,
            "hour_start_utc": orders::format_ms(&(Utc::now() + ChronoDuration::hours(1)))}))
        .send()
        .expect("create after the restart");
    assert_eq!(
        r.status().as_u16(),
        201,
        "create after the restart: {:?}",
        r.text()
    );
    let (s, body, _) = call(http.get(format!("{base}/api/v1/health")));
    assert_eq!(s, 200, "readiness after the restart: {body}");
    std::thread::sleep(Duration::from_millis(500));
    store
        .delete_orders(Some(orders::OrderStatus::Pending))
        .expect("drop the far-future order");
    let audit = Audit::of(&store);
    let (late, _) = lateness_ms(&store);
    let status: Value = http
        .get(format!("{base}/api/v1/scheduler/status"))
        .send()
        .and_then(|r| r.json())
        .expect("status after the restart");
    eprintln!(
        "[db-restart] FIGURES orders={} moderated_once={} duplicates={} lost={} half_written={} \
         outage_ms={} all_moderated_{:.1}s_after_restart lateness_ms p50={} max={} \
         scheduler_failed={} consecutive_failures={} rss={}KiB",
        audit.orders,
        audit.with_one_event,
        audit.duplicated,
        audit.without_event,
        audit.approved_half_written + audit.rejected_half_written,
        (restarted_at - stopped_at).num_milliseconds(),
        recovery.as_secs_f64(),
        pct(&late, 0.5),
        pct(&late, 1.0),
        status["scheduler"]["failed"],
        status["scheduler"]["consecutive_failures"],
        server.memory_kib().1,
    );
    audit.assert_complete("db-restart", ORDERS as i64);
    assert!(
        server.child.try_wait().is_ok_and(|exited| exited.is_none()),
        "the server process exited"
    );
    assert!(
        late.first().is_some_and(|&l| l >= 0),
        "an order was moderated before its due time"
    );
}
