//! A real headless Chromium driven over WebDriver, for tests of pages the
//! crate serves (the admin dashboard).
//!
//! Debian's `chromium` and `chromium-driver` packages (installed by `.ci/run`);
//! `chromedriver` runs as a child process on a free 127.0.0.1 port and is
//! killed when the [`Browser`] is dropped. The client is `fantoccini` (async,
//! hyper-based, plain HTTP to the local driver, no TLS stack, no driver
//! download); every method here is blocking, over a small current-thread tokio
//! runtime, like the rest of the synchronous test suite.
//!
//! Every page gets an alert hook before any of its own scripts run (Chrome
//! DevTools `Page.addScriptToEvaluateOnNewDocument`): `alert`, `confirm` and
//! `prompt` record their message in `window.__alerts` instead of opening a
//! dialog. [`Browser::alerts`] reads them; [`Browser::assert_no_alert`] checks
//! both that list and, through WebDriver's alert endpoint, that no native
//! dialog is open (should a page get around the hook).
//!
//! ```text
//! let Some(mut b) = common::browser::Browser::launch("admin_search") else { return };
//! b.goto("http://127.0.0.1:8080/admin");
//! b.fill("input[name=q]", "ord_1");
//! b.submit("form#search");
//! assert_eq!(b.text("#result"), "1 match");
//! b.assert_no_alert();
//! b.screenshot("admin-search");
//! ```
#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// Chromium's flags for this machine: root without a sandbox, no GPU, and no
/// traffic of its own (updates, sync, QUIC, first-run pages).
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

/// Installed before every document's own scripts: dialogs are recorded, not shown.
const ALERT_HOOK: &str = r#"(() => {
  // Frames of the same origin write to the top page's list.
  let log = null;
  try { if (window !== window.top) log = window.top.__alerts || null; } catch (e) {}
  log = log || [];
  Object.defineProperty(window, "__alerts", { value: log, writable: false, configurable: false });
  for (const kind of ["alert", "confirm", "prompt"]) {
    window[kind] = function (message) { log.push(kind + ":" + String(message)); return kind === "confirm" ? false : null; };
  }
})();"#;

/// How long one wait (driver start, element, text) lasts at most.
pub const WAIT: Duration = Duration::from_secs(10);

/// `chromium` and `chromedriver` paths, or why they are missing.
pub fn find_tools() -> Result<(PathBuf, PathBuf), String> {
    let find = |names: &[&str]| -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        names.iter().find_map(|name| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    };
    let chromium = find(&["chromium", "chromium-browser"])
        .ok_or("chromium is not installed (apt-get install chromium)")?;
    let driver = find(&["chromedriver"])
        .ok_or("chromedriver is not installed (apt-get install chromium-driver)")?;
    Ok((chromium, driver))
}

/// A chromedriver child process, killed (and reaped) on drop.
struct Driver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start(binary: &Path, log: PathBuf) -> Result<Self, String> {
        let mut last = String::new();
        // A free port can be taken between our probe and the driver's bind: retry.
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no free port: {e}"))?
                .port();
            let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
            let err = out.try_clone().map_err(|e| e.to_string())?;
            let child = Command::new(binary)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .map_err(|e| format!("{}: {e}", binary.display()))?;
            let mut driver = Driver {
                child,
                port,
                log: log.clone(),
            };
            let deadline = Instant::now() + WAIT;
            while Instant::now() < deadline {
                if let Ok(Some(status)) = driver.child.try_wait() {
                    last = format!("chromedriver exited with {status}: {}", driver.log_text());
                    break;
                }
                if driver.ready() {
                    return Ok(driver);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if last.is_empty() {
                last = format!("chromedriver not ready in {WAIT:?}: {}", driver.log_text());
            }
        }
        Err(last)
    }

    /// `GET /status` answers `"ready": true`.
    fn ready(&self) -> bool {
        use std::io::Write;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.contains("\"ready\":true") || answer.contains("\"ready\": true")
    }

    fn log_text(&self) -> String {
        // The end of the log: the last 4000 characters.
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let skip = text.chars().count().saturating_sub(4000);
        text.chars().skip(skip).collect()
    }
}

/// A raw chromedriver command: `POST /session/{id}/goog/cdp/execute`.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// A headless Chromium session (its driver, profile and runtime with it).
pub struct Browser {
    client: Option<Client>,
    rt: tokio::runtime::Runtime,
    driver: Driver,
    /// The test's name: screenshots are `target/screenshots/{name}-{label}.png`.
    name: String,
    /// Holds the empty `--user-data-dir` and the driver's log; removed on drop.
    profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Ends the session, so chromedriver closes Chromium before it is killed.
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), client.close()).await
            });
        }
    }
}

/// Whether a test that needs the browser must fail rather than skip.
fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("BROWSER_REQUIRED").is_ok_and(|v| v == "1")
}

impl Browser {
    /// Starts chromedriver and a fresh Chromium session for test `name`.
    ///
    /// Returns `None` (after printing why) when Chromium or chromedriver is
    /// missing, so the test can skip; under `CI=true` (or
    /// `BROWSER_REQUIRED=1`) that panics instead. A browser that is installed
    /// but fails to start always panics, with chromedriver's log.
    #[track_caller]
    pub fn launch(name: &str) -> Option<Self> {
        let (chromium, driver) = match find_tools() {
            Ok(tools) => tools,
            Err(why) if required() => panic!("browser test {name}: {why} (CI=true: not skipped)"),
            Err(why) => {
                eprintln!("SKIPPED browser test {name}: {why}");
                return None;
            }
        };
        match Self::start(name, &chromium, &driver) {
            Ok(b) => Some(b),
            Err(why) => panic!("browser test {name}: {why}"),
        }
    }

    fn start(name: &str, chromium: &Path, driver: &Path) -> Result<Self, String> {
        let profile = tempfile::Builder::new()
            .prefix("webhook-inbox-chromium-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let user_data = profile.path().join("profile");
        std::fs::create_dir(&user_data).map_err(|e| e.to_string())?;
        let driver = Driver::start(driver, profile.path().join("chromedriver.log"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;

        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", user_data.display()));
        let mut caps = Capabilities::new();
        caps.insert("browserName".into(), json!("chrome"));
        // Dialogs the hook misses stay open, for `alert_open` to see.
        caps.insert("unhandledPromptBehavior".into(), json!("ignore"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium, "args": args }),
        );
        let url = format!("http://127.0.0.1:{}", driver.port);
        let client = rt
            .block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(30),
                    ClientBuilder::new(HttpConnector::new())
                        .capabilities(caps)
                        .connect(&url),
                )
                .await
            })
            .map_err(|_| format!("no session in 30 s: {}", driver.log_text()))?
            .map_err(|e| format!("new session: {e}: {}", driver.log_text()))?;
        let mut b = Browser {
            client: Some(client),
            rt,
            driver,
            name: name.replace(
                |c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-',
                "_",
            ),
            profile,
        };
        b.cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": ALERT_HOOK }),
        );
        Ok(b)
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("session open until drop")
    }

    /// Runs a WebDriver call with a time limit, panicking with `what` on failure.
    #[track_caller]
    fn run<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
    ) -> T {
        match self
            .rt
            .block_on(async { tokio::time::timeout(WAIT * 3, f).await })
        {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => panic!("browser: {what}: {e}"),
            Err(_) => panic!("browser: {what}: no answer in {:?}", WAIT * 3),
        }
    }

    /// Sends a Chrome DevTools Protocol command through chromedriver.
    #[track_caller]
    pub fn cdp(&mut self, cmd: &'static str, params: Value) -> Value {
        let c = self.client().clone();
        self.run(cmd, async move { c.issue_cmd(Cdp { cmd, params }).await })
    }

    /// Loads `url` and waits for it (document loaded, `pageLoadStrategy` normal).
    #[track_caller]
    pub fn goto(&mut self, url: &str) {
        let c = self.client().clone();
        self.run(&format!("goto {url}"), async move { c.goto(url).await });
    }

    /// The current URL.
    #[track_caller]
    pub fn url(&mut self) -> String {
        let c = self.client().clone();
        self.run("current url", async move { c.current_url().await })
            .to_string()
    }

    /// The page's `<title>`.
    #[track_caller]
    pub fn title(&mut self) -> String {
        let c = self.client().clone();
        self.run("title", async move { c.title().await })
    }

    /// The page's HTML as the browser now has it.
    #[track_caller]
    pub fn source(&mut self) -> String {
        let c = self.client().clone();
        self.run("page source", async move { c.source().await })
    }

    /// The first element matching CSS selector `css`, waiting up to [`WAIT`].
    #[track_caller]
    pub fn find(&mut self, css: &str) -> fantoccini::elements::Element {
        let c = self.client().clone();
        let sel = css.to_owned();
        self.run(&format!("find {css:?}"), async move {
            c.wait().at_most(WAIT).for_element(Locator::Css(&sel)).await
        })
    }

    /// How many elements match `css` now (no wait; 0 is a valid answer).
    #[track_caller]
    pub fn count(&mut self, css: &str) -> usize {
        let c = self.client().clone();
        let sel = css.to_owned();
        self.run(&format!("find all {css:?}"), async move {
            c.find_all(Locator::Css(&sel)).await
        })
        .len()
    }

    /// The rendered text of the first element matching `css`.
    #[track_caller]
    pub fn text(&mut self, css: &str) -> String {
        let e = self.find(css);
        self.run(&format!("text of {css:?}"), async move { e.text().await })
    }

    /// The rendered texts of every element matching `css` (e.g. table cells).
    #[track_caller]
    pub fn texts(&mut self, css: &str) -> Vec<String> {
        let c = self.client().clone();
        let sel = css.to_owned();
        self.run(&format!("texts of {css:?}"), async move {
            let mut out = Vec::new();
            for e in c.find_all(Locator::Css(&sel)).await? {
                out.push(e.text().await?);
            }
            Ok(out)
        })
    }

    /// Attribute `name` of the first element matching `css`.
    #[track_caller]
    pub fn attr(&mut self, css: &str, name: &str) -> Option<String> {
        let e = self.find(css);
        let name = name.to_owned();
        self.run(&format!("attribute of {css:?}"), async move {
            e.attr(&name).await
        })
    }

    /// Waits up to [`WAIT`] until the element matching `css` has text `want`.
    #[track_caller]
    pub fn wait_for_text(&mut self, css: &str, want: &str) {
        let deadline = Instant::now() + WAIT;
        let mut last = String::new();
        while Instant::now() < deadline {
            if self.count(css) > 0 {
                last = self.text(css);
                if last == want {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("browser: {css:?} has text {last:?}, not {want:?}, after {WAIT:?}");
    }

    /// Clicks the first element matching `css` (chromedriver waits for a
    /// navigation the click starts).
    #[track_caller]
    pub fn click(&mut self, css: &str) {
        let e = self.find(css);
        self.run(&format!("click {css:?}"), async move { e.click().await });
    }

    /// Clears the input matching `css` and types `value` into it, key by key.
    #[track_caller]
    pub fn fill(&mut self, css: &str, value: &str) {
        let e = self.find(css);
        let value = value.to_owned();
        self.run(&format!("fill {css:?}"), async move {
            e.clear().await?;
            e.send_keys(&value).await
        });
    }

    /// Submits the form matching `css` with its submit button, as a person would.
    #[track_caller]
    pub fn submit(&mut self, css: &str) {
        let c = self.client().clone();
        let sel = css.to_owned();
        self.run(&format!("submit {css:?}"), async move {
            c.form(Locator::Css(&sel)).await?.submit().await
        });
    }

    /// Runs `script` (a function body: `return ...;`) with `args` (`arguments[i]`).
    #[track_caller]
    pub fn execute(&mut self, script: &str, args: Vec<Value>) -> Value {
        let c = self.client().clone();
        let s = script.to_owned();
        self.run("execute script", async move { c.execute(&s, args).await })
    }

    /// `document.querySelectorAll(css).length`, in the page.
    #[track_caller]
    pub fn count_js(&mut self, css: &str) -> u64 {
        self.execute(
            "return document.querySelectorAll(arguments[0]).length;",
            vec![json!(css)],
        )
        .as_u64()
        .unwrap_or(0)
    }

    /// The dialogs the page asked for (`"alert:1"`, `"confirm:..."`), from the hook.
    #[track_caller]
    pub fn alerts(&mut self) -> Vec<String> {
        let v = self.execute(
            "return Array.from(window.__alerts || ['hook missing']);",
            vec![],
        );
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s.as_str().unwrap_or("?").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The text of a native dialog now open (one that got around the hook).
    #[track_caller]
    pub fn alert_open(&mut self) -> Option<String> {
        let c = self.client().clone();
        match self
            .rt
            .block_on(async { tokio::time::timeout(WAIT, c.get_alert_text()).await })
        {
            Ok(Ok(text)) => Some(text),
            Ok(Err(e)) if e.is_no_such_alert() => None,
            Ok(Err(e)) => panic!("browser: alert text: {e}"),
            Err(_) => panic!("browser: alert text: no answer in {WAIT:?}"),
        }
    }

    /// Panics if the page ran `alert`/`confirm`/`prompt` or a dialog is open.
    #[track_caller]
    pub fn assert_no_alert(&mut self) {
        if let Some(text) = self.alert_open() {
            panic!("browser: a native dialog is open: {text:?}");
        }
        let alerts = self.alerts();
        assert!(
            alerts.is_empty(),
            "browser: the page ran dialogs: {alerts:?}"
        );
    }

    /// Writes a PNG of the viewport to `target/screenshots/{test}-{label}.png`
    /// and returns its path.
    #[track_caller]
    pub fn screenshot(&mut self, label: &str) -> PathBuf {
        let c = self.client().clone();
        let png = self.run("screenshot", async move { c.screenshot().await });
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("browser: {}: {e}", dir.display());
        }
        let label = label.replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-',
            "_",
        );
        let path = dir.join(format!("{}-{label}.png", self.name));
        if let Err(e) = std::fs::write(&path, &png) {
            panic!("browser: {}: {e}", path.display());
        }
        path
    }

    /// The fantoccini client and runtime, for anything not wrapped here.
    pub fn raw(&self) -> (&Client, &tokio::runtime::Runtime) {
        (self.client(), &self.rt)
    }

    /// The driver's log so far (for failure messages).
    pub fn driver_log(&self) -> String {
        self.driver.log_text()
    }
}
