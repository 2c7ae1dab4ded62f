//! Helpers for end-to-end tests that drive the real `order-scheduler` binary as a child
//! process: find the binary, start it on a free port, wait until it answers, signal it, and
//! read its memory use; and [`memory`], which tells a leak from caches filling up.

pub mod memory;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `order-scheduler` binary built by this `cargo test` run (it sits next to the test
/// executables' `deps/` directory). `cargo test --workspace` builds it; run
/// `cargo build -p order-scheduler` first when testing this package alone.
pub fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("order-scheduler");
    assert!(
        bin.exists(),
        "{} missing: run `cargo build -p order-scheduler` first",
        bin.display()
    );
    bin
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running server process; killed (SIGKILL) on drop if still alive.
pub struct ServerProcess {
    /// The child process.
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// Every line the server wrote to stderr so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Starts `order-scheduler serve` on a free port with `database_url` and extra `args`,
    /// and waits (up to 60 s) until `/api/v1/health/simple` answers.
    pub fn start(database_url: &str, args: &[&str]) -> ServerProcess {
        Self::start_with_env(database_url, args, &[])
    }

    /// Same as [`start`](Self::start), with extra environment variables.
    pub fn start_with_env(
        database_url: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let port = free_port();
        let mut cmd = Command::new(server_binary());
        cmd.arg("serve")
            .args([
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                database_url,
            ])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn order-scheduler");
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            let sink = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Ok(mut l) = sink.lock() {
                        l.push(line);
                    }
                }
            });
        }
        let server = ServerProcess {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            log,
        };
        server.wait_healthy(Duration::from_secs(60));
        server
    }

    fn wait_healthy(&self, limit: Duration) {
        let client = reqwest::blocking::Client::new();
        let start = Instant::now();
        while start.elapsed() < limit {
            if client
                .get(format!("{}/api/v1/health/simple", self.base_url))
                .timeout(Duration::from_secs(2))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not become healthy; log: {:?}", self.log_lines());
    }

    /// The stderr lines so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Sends a signal (`"KILL"`, `"TERM"`, ...) to the process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name} failed");
    }

    /// SIGKILL and reap.
    pub fn kill9(mut self) {
        self.signal("KILL");
        let _ = self.child.wait();
    }

    /// Peak resident memory (VmHWM) and current (VmRSS) of the process, in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
