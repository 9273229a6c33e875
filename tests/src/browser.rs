//! A real browser for the web page's tests: Debian's headless Chromium,
//! driven over the DevTools protocol (a WebSocket of JSON commands) with
//! the WebSocket client the tests already use. Each [`Page`] lives in its
//! own browser context — its own cookies and storage, as a second person on
//! another machine would have. Every wait is bounded.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// How long one DevTools command, or one `wait_for`, may take.
const COMMAND_WAIT: Duration = Duration::from_secs(20);

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// What pages reported that a test may want to see: uncaught exceptions,
/// console errors, security-policy violations.
#[derive(Debug, Default, Clone)]
pub struct Reports {
    pub errors: Vec<String>,
}

/// One headless Chromium, stopped when dropped.
pub struct Browser {
    _child: tokio::process::Child,
    _profile: tempfile::TempDir,
    commands: mpsc::Sender<Message>,
    pending: Pending,
    next_id: Arc<AtomicU64>,
    reports: Arc<Mutex<HashMap<String, Reports>>>,
}

/// A tab in a browser context of its own.
pub struct Page {
    browser: BrowserHandle,
    session: String,
}

#[derive(Clone)]
struct BrowserHandle {
    commands: mpsc::Sender<Message>,
    pending: Pending,
    next_id: Arc<AtomicU64>,
    reports: Arc<Mutex<HashMap<String, Reports>>>,
}

fn chromium_path() -> String {
    if let Ok(path) = std::env::var("HEARTH_CHROMIUM") {
        return path;
    }
    for candidate in ["chromium", "chromium-browser", "google-chrome"] {
        let found = std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(candidate).is_file()))
            .unwrap_or(false);
        if found {
            return candidate.to_string();
        }
    }
    panic!(
        "the web page's tests need Chromium: install it (apt-get install -y chromium, with sudo when not root) \
         or set HEARTH_CHROMIUM to a Chrome or Chromium binary, and run them again"
    );
}

impl Browser {
    pub async fn start() -> Browser {
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut child = tokio::process::Command::new(chromium_path())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--lang=en-GB",
                "--force-prefers-reduced-motion",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            // Chromium makes its singleton socket's directory in TMPDIR and,
            // killed at the end of a test, cannot remove it: one left in /tmp
            // per browser, every run. In the profile it goes with the profile.
            .env("TMPDIR", profile.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("Chromium starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let mut lines = BufReader::new(stderr).lines();
        let url = tokio::time::timeout(COMMAND_WAIT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(at) = line.find("ws://") {
                    return Some(line[at..].trim().to_string());
                }
            }
            None
        })
        .await
        .expect("Chromium printed its DevTools address in time")
        .expect("Chromium printed its DevTools address");
        // Keep reading its stderr so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str()).await.expect("DevTools connects");
        let (mut sink, mut stream) = socket.split();
        // Commands wait for their answers, a few pages at a time: 64 is room enough.
        let (commands, mut outgoing) = mpsc::channel::<Message>(64);
        tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
        });
        let pending: Pending = Arc::default();
        let reports: Arc<Mutex<HashMap<String, Reports>>> = Arc::default();
        let (pending_in, reports_in) = (pending.clone(), reports.clone());
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Ok(text) = message.to_text() else { continue };
                let Ok(frame) = serde_json::from_str::<Value>(text) else { continue };
                if let Some(id) = frame.get("id").and_then(Value::as_u64) {
                    if let Some(waiting) = pending_in.lock().unwrap().remove(&id) {
                        let _ = waiting.send(frame);
                    }
                    continue;
                }
                let session = frame["sessionId"].as_str().unwrap_or_default().to_string();
                let report = match frame["method"].as_str() {
                    Some("Runtime.exceptionThrown") => Some(format!(
                        "exception: {}",
                        frame["params"]["exceptionDetails"]["exception"]["description"]
                            .as_str()
                            .or(frame["params"]["exceptionDetails"]["text"].as_str())
                            .unwrap_or("?")
                    )),
                    Some("Log.entryAdded") if frame["params"]["entry"]["level"] == "error" => {
                        Some(format!("log: {}", frame["params"]["entry"]["text"].as_str().unwrap_or("?")))
                    }
                    Some("Runtime.consoleAPICalled") if frame["params"]["type"] == "error" => {
                        Some(format!("console: {}", frame["params"]["args"]))
                    }
                    _ => None,
                };
                if let Some(report) = report {
                    reports_in.lock().unwrap().entry(session).or_default().errors.push(report);
                }
            }
        });
        Browser { _child: child, _profile: profile, commands, pending, next_id: Arc::new(AtomicU64::new(1)), reports }
    }

    fn handle(&self) -> BrowserHandle {
        BrowserHandle {
            commands: self.commands.clone(),
            pending: self.pending.clone(),
            next_id: self.next_id.clone(),
            reports: self.reports.clone(),
        }
    }

    /// A new page, in a context of its own (its own cookies), `width` ×
    /// `height` CSS pixels, at `url`.
    pub async fn page(&self, url: &str, width: u32, height: u32) -> Page {
        let browser = self.handle();
        let context = browser.call(None, "Target.createBrowserContext", json!({})).await;
        let context = context["browserContextId"].as_str().expect("a context").to_string();
        let target = browser
            .call(None, "Target.createTarget", json!({ "url": "about:blank", "browserContextId": context }))
            .await;
        let target = target["targetId"].as_str().expect("a target").to_string();
        let attached =
            browser.call(None, "Target.attachToTarget", json!({ "targetId": target, "flatten": true })).await;
        let session = attached["sessionId"].as_str().expect("a session").to_string();
        let page = Page { browser, session };
        for domain in ["Runtime.enable", "Page.enable", "Log.enable"] {
            page.call(domain, json!({})).await;
        }
        page.resize(width, height).await;
        page.goto(url).await;
        page
    }
}

impl BrowserHandle {
    async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        let mut command = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            command["sessionId"] = json!(session);
        }
        self.commands.send(Message::text(command.to_string())).await.expect("the DevTools connection is open");
        let answer = tokio::time::timeout(COMMAND_WAIT, rx)
            .await
            .unwrap_or_else(|_| panic!("DevTools answered {method} in time"))
            .expect("DevTools answered");
        if let Some(error) = answer.get("error") {
            panic!("DevTools refused {method}: {error}");
        }
        answer["result"].clone()
    }
}

impl Page {
    async fn call(&self, method: &str, params: Value) -> Value {
        self.browser.call(Some(&self.session), method, params).await
    }

    pub async fn goto(&self, url: &str) {
        self.call("Page.navigate", json!({ "url": url })).await;
    }

    pub async fn reload(&self) {
        self.call("Page.reload", json!({ "ignoreCache": false })).await;
    }

    pub async fn resize(&self, width: u32, height: u32) {
        let mobile = width < 600;
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        )
        .await;
    }

    /// Shows the page as in a system set to `scheme` (`light` or `dark`).
    pub async fn emulate_color_scheme(&self, scheme: &str) {
        let features = json!([{ "name": "prefers-color-scheme", "value": scheme }]);
        self.call("Emulation.setEmulatedMedia", json!({ "features": features })).await;
    }

    /// Runs `script` (an expression; a promise is awaited) and returns its
    /// value as JSON. A script that throws fails the test with the error.
    pub async fn eval(&self, script: &str) -> Value {
        self.try_eval(script).await.unwrap_or_else(|error| panic!("{script}\nthrew: {error}"))
    }

    async fn try_eval(&self, script: &str) -> Result<Value, String> {
        let answer = self
            .call("Runtime.evaluate", json!({ "expression": script, "awaitPromise": true, "returnByValue": true }))
            .await;
        if let Some(details) = answer.get("exceptionDetails") {
            return Err(details["exception"]["description"].as_str().unwrap_or("an exception").to_string());
        }
        Ok(answer["result"]["value"].clone())
    }

    /// Waits until `script` is truthy (it may throw meanwhile: the page is
    /// still loading); `what` says what was awaited when it never is.
    pub async fn wait_for(&self, script: &str, what: &str) -> Value {
        let deadline = tokio::time::Instant::now() + COMMAND_WAIT;
        let mut last;
        loop {
            match self.try_eval(script).await {
                Ok(value) if truthy(&value) => return value,
                Ok(value) => last = value.to_string(),
                Err(error) => last = error,
            }
            if tokio::time::Instant::now() > deadline {
                let text = self.try_eval("document.body ? document.body.innerText.slice(0, 2000) : ''").await;
                panic!(
                    "waited {COMMAND_WAIT:?} for {what} ({script}); last: {last}\nthe page shows:\n{}\nreports: {:?}",
                    text.unwrap_or_default(),
                    self.reports().errors
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a PNG of the page as it is now.
    pub async fn screenshot(&self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" })).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("image data"))
            .expect("base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshots' folder");
        }
        std::fs::write(path, png).expect("the screenshot written");
    }

    /// Errors this page reported so far (exceptions, console errors,
    /// refused loads and policy violations).
    pub fn reports(&self) -> Reports {
        self.browser.reports.lock().unwrap().get(&self.session).cloned().unwrap_or_default()
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}
