//! The real `order-scheduler` binary as a child process: spawned on a free loopback port,
//! waited for until healthy, controlled over HTTP, its peak RSS read from `/proc`, killed on
//! drop.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How the server is started.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Path of the `order-scheduler` binary.
    pub bin: PathBuf,
    /// Directory for the servers' log files.
    pub log_dir: PathBuf,
}

/// A running server process.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Its log file (stdout and stderr).
    pub log: PathBuf,
    client: reqwest::blocking::Client,
}

impl Server {
    /// Starts a server on `db_url`; with `autostart` false the scheduler waits for
    /// `POST /api/v1/scheduler/start`. Returns once `/api/v1/health/simple` answers.
    pub fn start(cfg: &ServerConfig, db_url: &str, autostart: bool, name: &str) -> Result<Server> {
        let port = free_port()?;
        let log = cfg.log_dir.join(format!("server-{name}-{port}.log"));
        let out = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(&cfg.bin);
        cmd.arg("--database-url")
            .arg(db_url)
            .arg("--bind")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--instance-id")
            .arg(name)
            .env_remove("ADMIN_TOKEN")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if !autostart {
            cmd.arg("--no-autostart");
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", cfg.bin.display()))?;
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let mut server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            client,
        };
        server.wait_ready(Duration::from_secs(60))?;
        Ok(server)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        let url = format!("{}/api/v1/health/simple", self.base);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the server exited ({status}) before answering; see {}",
                    self.log.display()
                );
            }
            if let Ok(r) = self.client.get(&url).send() {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if started.elapsed() > timeout {
                bail!(
                    "the server did not answer within {timeout:?}; see {}",
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `POST path` (admin routes need no token: the server listens on loopback only).
    pub fn post(&self, path: &str) -> Result<()> {
        let r = self.client.post(format!("{}{path}", self.base)).send()?;
        if !r.status().is_success() {
            bail!(
                "POST {path}: {} {}",
                r.status(),
                r.text().unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set size so far (`VmHWM`), in MiB.
    pub fn peak_rss_mib(&self) -> Result<f64> {
        peak_rss_mib(self.pid())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VmHWM` of process `pid`, in MiB.
pub fn peak_rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .context("no VmHWM in /proc/<pid>/status")?;
    Ok(kb / 1024.0)
}

/// A loopback port nobody listens on right now.
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The `order-scheduler` binary next to this one (same cargo profile), if present.
pub fn default_server_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .map(|p| p.with_file_name("order-scheduler"))
        .unwrap_or_else(|| PathBuf::from("order-scheduler"))
}

/// Fails early, with the command to fix it, when the server binary is missing.
pub fn check_bin(bin: &Path) -> Result<()> {
    if !bin.is_file() {
        bail!(
            "server binary {} not found; build it first: cargo build --release -p order-scheduler \
             -p order-scheduler-bench (or pass --server-bin)",
            bin.display()
        );
    }
    Ok(())
}
