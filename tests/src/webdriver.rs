//! A real browser for page tests: Debian's headless `chromium` driven by `chromedriver` over the
//! W3C WebDriver protocol (JSON over HTTP on loopback), with the handful of commands the page
//! tests and the UI benchmark need: open a URL, find and click elements, type, run a script,
//! wait for a condition in the page, take a screenshot, read the console log.
//!
//! [`Browser::start`] spawns chromedriver on a free port (it prints which), opens one session
//! with a fresh profile directory and the flags a root, headless, offline machine needs; drop
//! ends the session and kills the driver. Every call blocks; waits poll the page with a deadline.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine as _;
use serde_json::{json, Value};

/// The browser binary (Debian's `chromium` package).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The driver (Debian's `chromium-driver` package).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long chromedriver may take to say its port, and a session to start (a cold Chromium on a
/// loaded 2-core machine).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Between two looks at the page while waiting for a condition.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// An element of the page, by its WebDriver reference.
#[derive(Clone, Debug)]
pub struct Element(String);

/// A headless Chromium with one WebDriver session; ended and killed on drop.
pub struct Browser {
    driver: Child,
    agent: ureq::Agent,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
    _profile: tempfile::TempDir,
}

/// W3C's key for an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// Whether the browser and its driver are installed (`scripts/setup.sh` installs both).
    pub fn installed() -> bool {
        Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()
    }

    /// Starts chromedriver and a headless Chromium with a `width` × `height` window.
    pub fn start(width: u32, height: u32) -> anyhow::Result<Browser> {
        anyhow::ensure!(
            Browser::installed(),
            "{CHROMIUM} or {CHROMEDRIVER} missing: run scripts/setup.sh (apt: chromium chromium-driver)"
        );
        let mut driver = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("start chromedriver")?;
        let port = match read_driver_port(&mut driver) {
            Ok(port) => port,
            Err(error) => {
                let _ = driver.kill();
                let _ = driver.wait();
                return Err(error);
            }
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(STARTUP_TIMEOUT))
            .build()
            .into();
        let profile = tempfile::tempdir()?;
        let profile_arg = format!("--user-data-dir={}", profile.path().display());
        let window_arg = format!("--window-size={width},{height}");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--mute-audio",
                    "--disable-dev-shm-usage", profile_arg, window_arg,
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
            "timeouts": {"script": 30_000, "pageLoad": 30_000},
        }}});
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            driver,
            agent,
            session: String::new(),
            _profile: profile,
        };
        let answer = browser.call("POST", &format!("{base}/session"), Some(capabilities))?;
        let id = answer["sessionId"]
            .as_str()
            .context("no sessionId in the new session")?;
        browser.session = format!("{base}/session/{id}");
        Ok(browser)
    }

    /// One WebDriver command; its `value`, or an error with the driver's message.
    fn call(&self, method: &str, url: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("Content-Type", "application/json")
            .body(body.map(|b| b.to_string()).unwrap_or_default())?;
        let mut response = self
            .agent
            .run(request)
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string()?;
        let value: Value = serde_json::from_str(&text)
            .with_context(|| format!("{method} {url}: not JSON: {text}"))?;
        let value = value.get("value").cloned().unwrap_or(Value::Null);
        if status >= 400 {
            bail!(
                "{method} {url}: {status} {}: {}",
                value["error"].as_str().unwrap_or("error"),
                value["message"].as_str().unwrap_or_default()
            );
        }
        Ok(value)
    }

    fn command(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        self.call(method, &format!("{}{path}", self.session), body)
    }

    /// Opens `url` and waits for its load event.
    pub fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.command("POST", "/url", Some(json!({ "url": url })))?;
        Ok(())
    }

    /// Resizes the window to `width` × `height` CSS pixels (a phone's screen, say).
    pub fn set_window_size(&self, width: u32, height: u32) -> anyhow::Result<()> {
        self.command(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )?;
        Ok(())
    }

    /// The address the page is at now.
    pub fn current_url(&self) -> anyhow::Result<String> {
        Ok(self
            .command("GET", "/url", None)?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// The first element matching CSS `selector`.
    pub fn find(&self, selector: &str) -> anyhow::Result<Element> {
        let found = self.command(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": selector})),
        )?;
        element_of(&found).with_context(|| format!("no element {selector}: {found}"))
    }

    /// Every element matching CSS `selector`.
    pub fn find_all(&self, selector: &str) -> anyhow::Result<Vec<Element>> {
        let found = self.command(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": selector})),
        )?;
        Ok(found
            .as_array()
            .map(|all| all.iter().filter_map(element_of).collect())
            .unwrap_or_default())
    }

    /// Clicks `element` as a user would (scrolled into view, a trusted input event).
    pub fn click(&self, element: &Element) -> anyhow::Result<()> {
        self.command(
            "POST",
            &format!("/element/{}/click", element.0),
            Some(json!({})),
        )?;
        Ok(())
    }

    /// Clicks at `(x, y)` pixels from the centre of `element` (a real pointer: move, press,
    /// release).
    pub fn click_at(&self, element: &Element, x: i64, y: i64) -> anyhow::Result<()> {
        let mut origin = serde_json::Map::new();
        origin.insert(ELEMENT_KEY.to_owned(), Value::String(element.0.clone()));
        let actions = json!({"actions": [{
            "type": "pointer",
            "id": "mouse",
            "parameters": {"pointerType": "mouse"},
            "actions": [
                {"type": "pointerMove", "duration": 0, "origin": origin, "x": x, "y": y},
                {"type": "pointerDown", "button": 0},
                {"type": "pointerUp", "button": 0},
            ],
        }]});
        self.command("POST", "/actions", Some(actions))?;
        Ok(())
    }

    /// Finds the element matching `selector` and clicks at `(x, y)` from its centre, finding it
    /// again if the page replaced it in between (a page that re-renders on its own, as the
    /// box's timeline does when its listing refreshes).
    pub fn click_at_selector(&self, selector: &str, x: i64, y: i64) -> anyhow::Result<()> {
        let mut tries = 0;
        loop {
            let element = self.find(selector)?;
            match self.click_at(&element, x, y) {
                Err(error) if tries < 3 && error.to_string().contains("stale element") => {
                    tries += 1;
                }
                result => return result,
            }
        }
    }

    /// [`Browser::click_at_selector`] at the centre.
    pub fn click_selector(&self, selector: &str) -> anyhow::Result<()> {
        self.click_at_selector(selector, 0, 0)
    }

    /// Types `text` into `element`.
    pub fn type_text(&self, element: &Element, text: &str) -> anyhow::Result<()> {
        self.command(
            "POST",
            &format!("/element/{}/value", element.0),
            Some(json!({ "text": text })),
        )?;
        Ok(())
    }

    /// The rendered text of `element`.
    pub fn text(&self, element: &Element) -> anyhow::Result<String> {
        Ok(self
            .command("GET", &format!("/element/{}/text", element.0), None)?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page; its return value.
    pub fn execute(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Runs `script` in the page and waits until it calls its last argument (the callback);
    /// returns what it was called with.
    pub fn execute_async(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        self.command(
            "POST",
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Polls `expression` (JavaScript, evaluated in the page) until it is truthy; returns its
    /// value. Fails with `what` and the last value after `timeout`.
    pub fn wait_for(
        &self,
        what: &str,
        expression: &str,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let script = format!("return ({expression});");
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.execute(&script, Vec::new())?;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Ok(value);
            }
            if Instant::now() >= deadline {
                bail!("timed out after {timeout:?} waiting for {what} ({expression} = {value})");
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Writes a PNG screenshot of the window to `path`.
    pub fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let encoded = self.command("GET", "/screenshot", None)?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().context("screenshot is not text")?)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }

    /// The browser console's entries since the last call, as `LEVEL message` lines (CSP
    /// violations, failed loads and script errors show up here).
    pub fn console(&self) -> anyhow::Result<Vec<String>> {
        let entries = self.command("POST", "/se/log", Some(json!({"type": "browser"})))?;
        Ok(entries
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["level"].as_str().unwrap_or("?"),
                            e["message"].as_str().unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &self.session.clone(), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn element_of(value: &Value) -> Option<Element> {
    value
        .get(ELEMENT_KEY)
        .and_then(Value::as_str)
        .map(|id| Element(id.to_owned()))
}

/// Reads chromedriver's stdout until "... started successfully on port N."; the rest of its
/// output is drained on a thread so it never blocks on a full pipe.
fn read_driver_port(driver: &mut Child) -> anyhow::Result<u16> {
    let stdout = driver.stdout.take().context("no chromedriver stdout")?;
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent {
                if let Some(port) = line
                    .split("started successfully on port ")
                    .nth(1)
                    .and_then(|rest| rest.trim_end_matches('.').trim().parse::<u16>().ok())
                {
                    let _ = sender.send(port);
                    sent = true;
                }
            }
        }
    });
    receiver
        .recv_timeout(STARTUP_TIMEOUT)
        .context("chromedriver never said its port")
}
