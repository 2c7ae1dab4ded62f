//! A small W3C WebDriver client over `reqwest::blocking`, enough to drive Chromium through
//! `chromedriver`: sessions, navigation, elements, scripts, screenshots and browser logs. It
//! keeps the browser test synchronous like the rest of this package and adds no async runtime.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key under which WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The browser and driver binaries found on this machine.
pub struct Tools {
    /// The Chromium binary.
    pub chromium: PathBuf,
    /// The matching `chromedriver`.
    pub chromedriver: PathBuf,
}

impl Tools {
    /// Finds Chromium and chromedriver: `CHROME_BIN` / `CHROMEDRIVER`, else on `PATH`.
    pub fn find() -> Result<Tools, String> {
        let chromium = from_env_or_path("CHROME_BIN", &["chromium", "chromium-browser"]);
        let chromedriver = from_env_or_path("CHROMEDRIVER", &["chromedriver"]);
        match (chromium, chromedriver) {
            (Some(chromium), Some(chromedriver)) => Ok(Tools {
                chromium,
                chromedriver,
            }),
            (c, d) => Err(format!(
                "missing {}{}{} (Debian: apt-get install chromium chromium-driver, or run \
                 scripts/ensure-chromium.sh)",
                if c.is_none() { "chromium" } else { "" },
                if c.is_none() && d.is_none() {
                    " and "
                } else {
                    ""
                },
                if d.is_none() { "chromedriver" } else { "" },
            )),
        }
    }
}

fn from_env_or_path(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var).map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// A running `chromedriver`, killed on drop.
pub struct Driver {
    child: Child,
    url: String,
    http: reqwest::blocking::Client,
}

impl Driver {
    /// Starts chromedriver on a free loopback port and waits until it is ready.
    pub fn start(tools: &Tools, log_file: &Path) -> Driver {
        let port = system_tests::free_port();
        let log = std::fs::File::create(log_file).expect("create chromedriver log");
        let child = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log_file.display()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn chromedriver");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http,
        };
        let start = Instant::now();
        loop {
            let ready = driver
                .http
                .get(format!("{}/status", driver.url))
                .timeout(Duration::from_secs(2))
                .send()
                .ok()
                .and_then(|r| r.json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == json!(true));
            if ready {
                return driver;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "chromedriver did not become ready; see {}",
                log_file.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Opens a browser session with these capabilities.
    pub fn session(&self, capabilities: Value) -> Session<'_> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/session",
                Some(json!({ "capabilities": { "alwaysMatch": capabilities } })),
            )
            .unwrap_or_else(|e| panic!("cannot start a browser session: {e}"));
        let id = v["sessionId"]
            .as_str()
            .expect("session id in the new-session answer")
            .to_string();
        Session {
            driver: self,
            id,
            closed: false,
        }
    }

    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().map_err(|e| format!("{path}: {e}"))?;
        let ok = res.status().is_success();
        let v: Value = res.json().map_err(|e| format!("{path}: bad JSON: {e}"))?;
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(format!(
                "{path}: {} ({})",
                v["value"]["error"].as_str().unwrap_or("error"),
                v["value"]["message"].as_str().unwrap_or("")
            ))
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser session; deleted (closing the browser) on drop.
pub struct Session<'d> {
    driver: &'d Driver,
    id: String,
    closed: bool,
}

/// A reference to an element of the current page.
pub struct Element(String);

impl Session<'_> {
    fn cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        self.driver
            .call(method, &format!("/session/{}{path}", self.id), body)
    }

    fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        self.cmd(reqwest::Method::POST, path, Some(body))
    }

    /// Navigates to `url` and waits for the load event.
    pub fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url }))
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// Sets the outer window size.
    pub fn set_window_size(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({ "width": width, "height": height }))
            .unwrap_or_else(|e| panic!("resize: {e}"));
    }

    /// Runs a Chrome DevTools Protocol command (chromedriver's extension).
    pub fn cdp(&self, cmd: &str, params: Value) -> Result<Value, String> {
        self.post("/goog/cdp/execute", json!({ "cmd": cmd, "params": params }))
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its result.
    pub fn js(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// The first element matching a CSS selector.
    pub fn find(&self, css: &str) -> Element {
        let v = self
            .post("/element", json!({ "using": "css selector", "value": css }))
            .unwrap_or_else(|e| panic!("find {css}: {e}"));
        match v[ELEMENT_KEY].as_str() {
            Some(id) => Element(id.to_string()),
            None => panic!("find {css}: no element reference in {v}"),
        }
    }

    /// Clicks an element (scrolling it into view), as a user would. Live panels re-render
    /// their rows on every poll, so the element found may be replaced before the click lands
    /// ("stale element reference"): then it is found again, as a user's second click would,
    /// a few times at most.
    pub fn click(&self, css: &str) {
        let mut attempts = 0;
        loop {
            let el = self.find(css);
            match self.post(&format!("/element/{}/click", el.0), json!({})) {
                Ok(_) => return,
                Err(e) if e.contains("stale element reference") && attempts < 5 => {
                    attempts += 1;
                }
                Err(e) => panic!("click {css}: {e}"),
            }
        }
    }

    /// Clears an input and types `text` into it with key events.
    pub fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css);
        self.post(&format!("/element/{}/clear", el.0), json!({}))
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        self.post(&format!("/element/{}/value", el.0), json!({ "text": text }))
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Sends the Enter key to an element, as a keyboard user activating it.
    pub fn press_enter_on(&self, css: &str) {
        let el = self.find(css);
        self.post(
            &format!("/element/{}/value", el.0),
            json!({ "text": "\u{E007}" }),
        )
        .unwrap_or_else(|e| panic!("press Enter on {css}: {e}"));
    }

    /// A PNG screenshot of the viewport.
    pub fn screenshot_png(&self) -> Vec<u8> {
        use base64::Engine as _;
        let v = self
            .cmd(reqwest::Method::GET, "/screenshot", None)
            .unwrap_or_else(|e| panic!("screenshot: {e}"));
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 screenshot"))
            .expect("screenshot is base64")
    }

    /// The browser's console and network log entries since the last call (chromedriver's
    /// legacy log endpoint; needs the `goog:loggingPrefs` capability).
    pub fn browser_log(&self) -> Result<Vec<Value>, String> {
        self.post("/se/log", json!({ "type": "browser" }))
            .map(|v| v.as_array().cloned().unwrap_or_default())
    }

    /// Polls `script` every 50 ms until it returns something other than `null`/`false`, and
    /// returns that; panics with `what` after `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration, script: &str, args: Value) -> Value {
        let start = Instant::now();
        loop {
            let v = self.js(script, args.clone());
            if !v.is_null() && v != json!(false) {
                return v;
            }
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ends the session and closes the browser.
    pub fn close(mut self) {
        self.end();
    }

    fn end(&mut self) {
        if !self.closed {
            self.closed = true;
            let _ = self.cmd(reqwest::Method::DELETE, "", None);
        }
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.end();
    }
}
