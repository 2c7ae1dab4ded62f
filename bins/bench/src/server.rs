//! The real `order-scheduler` binary as a child process: spawned on a free loopback port,
//! waited for until healthy, controlled over HTTP, its peak RSS and CPU time read from `/proc`,
//! killed on drop (or on demand, to play a crashed instance).

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
        Self::start_with(cfg, db_url, autostart, name, &[])
    }

    /// Same as [`start`](Self::start), with extra command-line arguments for the server.
    pub fn start_with(
        cfg: &ServerConfig,
        db_url: &str,
        autostart: bool,
        name: &str,
        extra: &[&str],
    ) -> Result<Server> {
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
            .args(extra)
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

    /// CPU time the process has used so far (user + system), seconds.
    pub fn cpu_s(&self) -> Result<f64> {
        cpu_s(self.pid())
    }

    /// SIGKILL (what `Child::kill` sends on Unix), reaped at once: the process gets no chance
    /// to finish anything, as when a machine or container dies.
    pub fn kill9(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
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

/// Bytes process `pid` has caused to be written to storage so far (`write_bytes` of
/// `/proc/<pid>/io`: counted when a page of a file is dirtied, so a write-ahead log frame and
/// the checkpoint that copies it into the database file both count).
pub fn write_bytes(pid: u32) -> Result<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io"))
        .with_context(|| format!("cannot read /proc/{pid}/io"))?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .context("no write_bytes in /proc/<pid>/io")
}

/// CPU time used so far by process `pid` (`utime + stime` of `/proc/<pid>/stat`), seconds.
pub fn cpu_s(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces and parentheses; the fields after its closing
    // parenthesis start at field 3 (state), so utime (14) and stime (15) are the 12th and 13th.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc/<pid>/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .context("no utime/stime in /proc/<pid>/stat")
    };
    Ok((ticks(11)? + ticks(12)?) / clock_ticks_per_s())
}

/// `getconf CLK_TCK` (the unit of `/proc/<pid>/stat` times); 100, the Linux value, if unknown.
fn clock_ticks_per_s() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
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
