//! The Bluum emulator (`webhook-inbox emulate`) as a child process, a blocking
//! JSON client for its API, and [`Receiver`], a webhook endpoint that records
//! every delivery and checks it with the library's own `Ingestor`.
//!
//! `cargo test --all-features` builds the binary first; a missing or stale one
//! fails with the command that builds it.
#![cfg(feature = "cli")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use webhook_inbox::{Inbox, IngestError, Ingested, Ingestor, Scheme, Verifier};

use super::TempDir;

/// The tenant-wide key every emulator started here accepts.
pub const TENANT_KEY: &str = "bk_test_tenant_7d2f";
/// Its secret.
pub const TENANT_SECRET: &str = "bs_test_tenant_secret_41c9e0";
/// An investor-scoped key every emulator started here accepts (403 on webhook routes).
pub const INVESTOR_KEY: &str = "bk_test_investor_9a1b";
/// Its secret.
pub const INVESTOR_SECRET: &str = "bs_test_investor_secret_c3d5f7";

/// How long the emulator may take to print its `listening on` line.
pub const STARTUP: Duration = Duration::from_secs(20);
/// Timeout of each HTTP request made by the helpers here.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// The `webhook-inbox` binary (cargo builds it before any integration test).
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_webhook-inbox"))
}

/// A blocking client that returns every status as a response (no error on 4xx/5xx).
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(REQUEST_TIMEOUT))
        .build()
        .into()
}

/// The `Authorization` header of HTTP Basic with `key:secret`.
pub fn basic(key: &str, secret: &str) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}"));
    format!("Basic {encoded}")
}

/// Who a request claims to be.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    /// [`TENANT_KEY`].
    Tenant,
    /// [`INVESTOR_KEY`].
    Investor,
    /// Basic with this key and secret.
    Basic(&'a str, &'a str),
    /// This `Authorization` header value, as it is.
    Header(&'a str),
    /// No `Authorization` header.
    None,
}

impl Auth<'_> {
    fn header(self) -> Option<String> {
        match self {
            Auth::Tenant => Some(basic(TENANT_KEY, TENANT_SECRET)),
            Auth::Investor => Some(basic(INVESTOR_KEY, INVESTOR_SECRET)),
            Auth::Basic(key, secret) => Some(basic(key, secret)),
            Auth::Header(value) => Some(value.to_owned()),
            Auth::None => None,
        }
    }
}

/// Sends `method url` with `auth` and, for POST and PATCH, `body` as
/// `application/json`; returns the status and the answer parsed as JSON (a
/// JSON string holding the raw text when it is not JSON, `null` when empty).
pub fn request(
    agent: &ureq::Agent,
    auth: Auth<'_>,
    method: &str,
    url: &str,
    body: Option<&[u8]>,
) -> (u16, Value) {
    let authorization = auth.header();
    macro_rules! with_auth {
        ($builder:expr) => {{
            let builder = $builder;
            match &authorization {
                Some(value) => builder.header("authorization", value),
                None => builder,
            }
        }};
    }
    let sent = match method {
        "GET" => with_auth!(agent.get(url)).call(),
        "DELETE" => with_auth!(agent.delete(url)).call(),
        "POST" | "PATCH" | "PUT" => {
            let builder = match method {
                "POST" => agent.post(url),
                "PATCH" => agent.patch(url),
                _ => agent.put(url),
            };
            let builder = with_auth!(builder);
            match body {
                Some(body) => builder
                    .header("content-type", "application/json")
                    .send(body),
                None => builder.send_empty(),
            }
        }
        other => panic!("unsupported method {other}"),
    };
    let mut response = sent.unwrap_or_else(|e| panic!("{method} {url}: no answer: {e}"));
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .unwrap_or_else(|e| panic!("{method} {url}: unreadable answer: {e}"));
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// Polls `probe` every 10 ms until it returns `Some`, for at most `timeout`;
/// panics with `what` and the last value seen otherwise.
pub fn poll<T: std::fmt::Debug>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, Option<String>>,
) -> T {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(seen) => last = seen.or(last),
        }
        if Instant::now() >= deadline {
            panic!("{what}: not within {timeout:?}; last seen: {last:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A running emulator, SIGKILLed when dropped (so also when a test panics).
pub struct Emulator {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    base: String,
    /// Stdout lines after the first.
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    agent: ureq::Agent,
}

impl Emulator {
    /// Starts `webhook-inbox emulate --listen 127.0.0.1:0 --store STORE` with
    /// [`TENANT_KEY`] and [`INVESTOR_KEY`], plus `extra_args`, and waits for
    /// its `listening on` line.
    pub fn start(store: &Path, extra_args: &[&str]) -> Self {
        let path = binary();
        let tenant = format!("{TENANT_KEY}:{TENANT_SECRET}");
        let investor = format!("{INVESTOR_KEY}:{INVESTOR_SECRET}");
        let mut child = Command::new(&path)
            .args(["emulate", "--listen", "127.0.0.1:0", "--store"])
            .arg(store)
            .args(["--tenant-key", &tenant, "--investor-key", &investor])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));

        let stderr: Arc<Mutex<String>> = Arc::default();
        let mut pipe = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                let text = String::from_utf8_lossy(&chunk[..n]);
                sink.lock().unwrap().push_str(&text);
            }
        });

        let stdout: Arc<Mutex<Vec<String>>> = Arc::default();
        let pipe = child.stdout.take().expect("stdout is piped");
        let (first_line, first) = mpsc::channel();
        let sink = Arc::clone(&stdout);
        std::thread::spawn(move || {
            let mut lines = BufReader::new(pipe).lines().map_while(Result::ok);
            if let Some(line) = lines.next() {
                let _ = first_line.send(line);
            }
            for line in lines {
                sink.lock().unwrap().push(line);
            }
        });

        let mut emulator = Self {
            child,
            base: String::new(),
            stdout,
            stderr,
            agent: agent(),
        };
        let line = match first.recv_timeout(STARTUP) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!(
                "the emulator printed nothing within {STARTUP:?}; stderr: {}",
                emulator.stderr()
            ),
            Err(RecvTimeoutError::Disconnected) => {
                // Let the stderr reader catch up with a process that just exited.
                let status = emulator.child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "the emulator exited ({status:?}) before listening; stderr: {}",
                    emulator.stderr()
                )
            }
        };
        let port: u16 = line
            .strip_prefix("listening on http://127.0.0.1:")
            .and_then(|port| port.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}; stderr: {}",
                    emulator.stderr()
                )
            });
        assert_ne!(port, 0, "the emulator reports the port it got");
        emulator.base = format!("http://127.0.0.1:{port}");
        emulator
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn url(&self) -> String {
        format!("{}/v1", self.base)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `127.0.0.1:PORT`, for raw TCP.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// Whether the child process is still running (not exited, not killed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILLs the emulator and waits for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (`TERM`, `INT`) and waits up to `timeout` for the
    /// emulator to exit; its exit status.
    pub fn signal(&mut self, signal: &str, timeout: Duration) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} failed");
        poll(
            &format!("the emulator exits after SIG{signal}"),
            timeout,
            || self.child.try_wait().expect("try_wait").ok_or(None),
        )
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The stdout lines after `listening on`, so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// `method /v1PATH` with `auth` and a raw body; status and JSON answer.
    pub fn send(
        &self,
        auth: Auth<'_>,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.url());
        request(&self.agent, auth, method, &url, body)
    }

    /// `method /v1PATH` with the tenant key and `body` as JSON.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| serde_json::to_vec(&b).expect("serialise"));
        self.send(Auth::Tenant, method, path, body.as_deref())
    }

    /// Creates a webhook (asserting 201) and returns it, secret included.
    pub fn create_webhook(&self, name: &str, url: &str, event_types: &[&str]) -> Value {
        let body = serde_json::json!({"name": name, "url": url, "eventTypeNames": event_types});
        let (status, webhook) = self.call("POST", "/webhooks", Some(body));
        assert_eq!(status, 201, "create webhook {name}: {webhook}");
        webhook
    }

    /// Triggers an event through `POST /v1/_emulator/events` (asserting 202).
    pub fn trigger(&self, event_type: &str, data: Value) -> Value {
        let body = serde_json::json!({"type": event_type, "data": data});
        let (status, event) = self.call("POST", "/_emulator/events", Some(body));
        assert_eq!(status, 202, "trigger {event_type}: {event}");
        event
    }

    /// `GET /v1/_emulator/deliveries/{id}` (asserting 200).
    pub fn delivery(&self, id: &str) -> Value {
        let (status, delivery) = self.call("GET", &format!("/_emulator/deliveries/{id}"), None);
        assert_eq!(status, 200, "delivery {id}: {delivery}");
        delivery
    }

    /// Polls delivery `id` until `done` holds, for at most `timeout`.
    pub fn wait_delivery(
        &self,
        id: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        poll(&format!("delivery {id}"), timeout, || {
            let delivery = self.delivery(id);
            if done(&delivery) {
                Ok(delivery)
            } else {
                Err(Some(delivery.to_string()))
            }
        })
    }

    /// Polls delivery `id` until its `state` is `state`.
    pub fn wait_state(&self, id: &str, state: &str, timeout: Duration) -> Value {
        self.wait_delivery(id, timeout, |d| d["state"] == state)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a raw HTTP/1.1 exchange ([`raw_exchange`]) got back.
#[derive(Debug)]
pub enum RawOutcome {
    /// A complete response (after any `1xx`): status, headers with lowercased
    /// names, and body (chunked bodies decoded).
    Answered {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// The connection ended (EOF or reset) before a complete response; why,
    /// and the bytes read before that.
    Closed(String, Vec<u8>),
    /// No complete response and no close within the timeout; the bytes read.
    TimedOut(Vec<u8>),
}

impl RawOutcome {
    /// The status of a complete response.
    pub fn status(&self) -> Option<u16> {
        match self {
            RawOutcome::Answered { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The body of a complete response parsed as JSON (`null` otherwise).
    pub fn json(&self) -> Value {
        match self {
            RawOutcome::Answered { body, .. } => {
                serde_json::from_slice(body).unwrap_or(Value::Null)
            }
            _ => Value::Null,
        }
    }
}

/// Connects to `addr` over plain TCP, writes `request` as it is (from another
/// thread, so an early answer is read while the rest is still being sent;
/// write errors are ignored), and reads one response, all within `timeout`.
/// No HTTP client library is involved, so the bytes sent are exactly these.
pub fn raw_exchange(addr: &str, request: Vec<u8>, timeout: Duration) -> RawOutcome {
    let deadline = Instant::now() + timeout;
    let socket = addr.parse().expect("a socket address");
    let mut stream = TcpStream::connect_timeout(&socket, timeout)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream
        .set_write_timeout(Some(timeout))
        .expect("write timeout");
    let mut writer = stream.try_clone().expect("clone the stream");
    let sending = std::thread::spawn(move || {
        let _ = writer.write_all(&request);
        let _ = writer.flush();
    });
    let outcome = read_response(&mut stream, deadline);
    // Unblocks a writer the server stopped reading from.
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sending.join();
    outcome
}

/// Reads one HTTP/1.1 response from `stream` (skipping `1xx`), until `deadline`.
pub fn read_response(stream: &mut TcpStream, deadline: Instant) -> RawOutcome {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let end = loop {
        if let Some(answer) = parse_response(&buf, false) {
            return answer;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return RawOutcome::TimedOut(buf);
        }
        stream
            .set_read_timeout(Some(left))
            .expect("set a read timeout");
        match stream.read(&mut chunk) {
            Ok(0) => break "EOF".to_owned(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => break e.to_string(),
        }
    };
    // A response without a length ends at EOF.
    parse_response(&buf, true).unwrap_or(RawOutcome::Closed(end, buf))
}

/// A complete response at the start of `buf` (after any `1xx`); `at_eof`
/// when no more bytes will come.
fn parse_response(mut buf: &[u8], at_eof: bool) -> Option<RawOutcome> {
    loop {
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let rest = &buf[end + 4..];
        let mut lines = head.split("\r\n");
        let status_line = lines.next()?;
        let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        if (100..200).contains(&status) {
            buf = rest;
            continue;
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let body = if let Some(length) = header("content-length") {
            let length: usize = length.parse().ok()?;
            rest.get(..length)?.to_vec()
        } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            decode_chunked(rest)?
        } else if at_eof {
            rest.to_vec()
        } else {
            return None;
        };
        return Some(RawOutcome::Answered {
            status,
            headers,
            body,
        });
    }
}

/// A complete chunked body, or `None` while it is incomplete.
fn decode_chunked(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = String::from_utf8_lossy(&rest[..line_end]);
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// How a [`Receiver`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// 200 to everything.
    Ok,
    /// This status to everything.
    Status(u16),
    /// 500 to the first `n` requests (counted from the start), 200 after.
    FailFirst(usize),
    /// Waits this long, then 200.
    Sleep(Duration),
    /// What the library's `Ingestor` answers (`Reply::from`), 500 when no secret is set.
    Ingest,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// Method and URL path, e.g. `POST /webhooks/bluum`.
    pub method: String,
    pub path: String,
    /// Header names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
    /// The status the receiver answered.
    pub answered: u16,
    /// The receiving `Ingestor`'s outcome (with the secret from
    /// [`Receiver::set_secret`]), or `None` when no secret was set yet.
    pub ingested: Option<Result<Ingested, String>>,
}

impl Received {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the delivery's body is JSON")
    }

    /// Asserts the receiving ingestor took it in (accepted or duplicate).
    pub fn assert_ingested(&self) -> &Ingested {
        match &self.ingested {
            Some(Ok(ingested)) => ingested,
            Some(Err(e)) => panic!("the ingestor refused the delivery: {e}; {self:?}"),
            None => panic!("no secret was set on the receiver"),
        }
    }
}

struct ReceiverState {
    policy: Policy,
    received: Vec<Received>,
    ingestor: Option<Ingestor>,
    inbox: Option<Inbox>,
}

/// A webhook endpoint on `127.0.0.1:0` (tiny_http, one thread) that records
/// every request and answers per its [`Policy`].
pub struct Receiver {
    server: Arc<tiny_http::Server>,
    url: String,
    state: Arc<(Mutex<ReceiverState>, Condvar)>,
    thread: Option<JoinHandle<()>>,
    dir: TempDir,
}

impl Receiver {
    /// Starts a receiver answering per `policy`.
    pub fn start(policy: Policy) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind 127.0.0.1:0"));
        let port = server.server_addr().to_ip().expect("an IP listener").port();
        let state = Arc::new((
            Mutex::new(ReceiverState {
                policy,
                received: Vec::new(),
                ingestor: None,
                inbox: None,
            }),
            Condvar::new(),
        ));
        let thread = {
            let server = Arc::clone(&server);
            let state = Arc::clone(&state);
            std::thread::spawn(move || serve(&server, &state))
        };
        Self {
            server,
            url: format!("http://127.0.0.1:{port}/webhooks/bluum"),
            state,
            thread: Some(thread),
            dir: TempDir::new("receiver"),
        }
    }

    /// `http://127.0.0.1:PORT/webhooks/bluum`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Answers per `policy` from now on.
    pub fn set_policy(&self, policy: Policy) {
        self.state.0.lock().unwrap().policy = policy;
    }

    /// Checks every request from now on with a real `Ingestor` for
    /// `Scheme::bluum()` and `secret` over a real `Inbox` in a temp dir.
    pub fn set_secret(&self, secret: &str) {
        let mut state = self.state.0.lock().unwrap();
        state.ingestor = None;
        if let Some(inbox) = state.inbox.take() {
            inbox.close().expect("close the receiver's inbox");
        }
        let inbox = Inbox::open(self.dir.path()).expect("open the receiver's inbox");
        let verifier = Verifier::new(Scheme::bluum(), [secret]).expect("a valid bluum secret");
        let ingestor = inbox
            .ingestor(verifier)
            .build()
            .expect("build the receiver's ingestor");
        state.ingestor = Some(ingestor);
        state.inbox = Some(inbox);
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.0.lock().unwrap().received.clone()
    }

    /// How many requests so far.
    pub fn count(&self) -> usize {
        self.state.0.lock().unwrap().received.len()
    }

    /// Waits until at least `n` requests arrived (at most `timeout`); all of them.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let (lock, arrived) = &*self.state;
        let deadline = Instant::now() + timeout;
        let mut state = lock.lock().unwrap();
        while state.received.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "{}: {} request(s) within {timeout:?}, expected {n}",
                    self.url,
                    state.received.len()
                );
            }
            state = arrived.wait_timeout(state, left).unwrap().0;
        }
        state.received.clone()
    }

    /// Waits until the requests so far satisfy `done` (at most `timeout`); all of them.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let (lock, arrived) = &*self.state;
        let deadline = Instant::now() + timeout;
        let mut state = lock.lock().unwrap();
        while !done(&state.received) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let answered: Vec<u16> = state.received.iter().map(|r| r.answered).collect();
                panic!(
                    "{}: {what} not within {timeout:?}; answered so far: {answered:?}",
                    self.url
                );
            }
            state = arrived.wait_timeout(state, left).unwrap().0;
        }
        state.received.clone()
    }

    /// Waits until some request was answered with `status`; all requests so far.
    pub fn wait_answered(&self, status: u16, timeout: Duration) -> Vec<Received> {
        self.wait_until(&format!("a request answered {status}"), timeout, |got| {
            got.iter().any(|r| r.answered == status)
        })
    }

    /// Asserts that no more than `n` requests arrive during `quiet`.
    pub fn assert_stays_at(&self, n: usize, quiet: Duration) {
        std::thread::sleep(quiet);
        let count = self.count();
        assert_eq!(count, n, "{}: {count} requests, expected {n}", self.url);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let mut state = self.state.0.lock().unwrap_or_else(|p| p.into_inner());
        state.ingestor = None;
        if let Some(inbox) = state.inbox.take() {
            let _ = inbox.close();
        }
    }
}

fn serve(server: &tiny_http::Server, state: &(Mutex<ReceiverState>, Condvar)) {
    let (lock, arrived) = state;
    for mut request in server.incoming_requests() {
        let at = Instant::now();
        let mut body = Vec::new();
        let _ = request.as_reader().read_to_end(&mut body);
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|h| {
                (
                    h.field.as_str().as_str().to_ascii_lowercase(),
                    h.value.as_str().to_owned(),
                )
            })
            .collect();
        let (policy, ingested, nth) = {
            let state = lock.lock().unwrap();
            let ingested = state
                .ingestor
                .as_ref()
                .map(|i| i.ingest(&headers, &body).map_err(|e| e.to_string()));
            (state.policy.clone(), ingested, state.received.len())
        };
        let answered = match &policy {
            Policy::Ok => 200,
            Policy::Status(status) => *status,
            Policy::FailFirst(n) if nth < *n => 500,
            Policy::FailFirst(_) => 200,
            Policy::Sleep(pause) => {
                std::thread::sleep(*pause);
                200
            }
            Policy::Ingest => match &ingested {
                Some(Ok(_)) => 200,
                Some(Err(_)) => 401,
                None => 500,
            },
        };
        let record = Received {
            method: request.method().as_str().to_owned(),
            path: request.url().to_owned(),
            headers,
            body,
            at,
            answered,
            ingested,
        };
        // Recorded before answering, so a test that saw the answer sees the record.
        lock.lock().unwrap().received.push(record);
        arrived.notify_all();
        let _ = request.respond(tiny_http::Response::from_string("ok").with_status_code(answered));
    }
}

/// Checks `received` with a fresh `Ingestor` for `Scheme::bluum()` and
/// `secret` over a fresh `Inbox`, as a receiver holding `secret` would.
pub fn ingest_with(secret: &str, received: &Received) -> Result<Ingested, IngestError> {
    let dir = TempDir::new("ingest-with");
    let inbox = Inbox::open(dir.path()).expect("open a temp inbox");
    let verifier = Verifier::new(Scheme::bluum(), [secret]).expect("a valid bluum secret");
    let ingestor = inbox.ingestor(verifier).build().expect("build an ingestor");
    let outcome = ingestor.ingest(&received.headers, &received.body);
    drop(ingestor);
    let _ = inbox.close();
    outcome
}
