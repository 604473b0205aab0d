//! The HTTP examples, run as real servers: each example binary gets the same
//! deliveries over real HTTP and must answer each with its mapped status, and
//! its worker must run the handler for the accepted event, once.
//!
//! `cargo test` builds the examples before it runs the tests (`cargo test --test
//! examples` alone does not: a missing or stale example binary fails the test
//! and says so); these tests start `target/<profile>/examples/<name>` on port 0
//! with a fresh store and `WEBHOOK_SECRET` set.
//!
//! Each example also gets slow clients over raw TCP, with its deadlines
//! shortened by flags (`--header-timeout-ms`, `--request-deadline-ms`): a
//! request whose headers stall, one whose body stalls, and a genuine delivery
//! from another client while several of them are open.
//!
//! With `WEBHOOK_INBOX_TEST_POSTGRES` set, each example also runs with
//! `--postgres URL --schema <fresh>` and shares its inbox with a library
//! replica in this process (without it those tests say why and pass, except
//! under `CI=true`).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::{SECRET, TempDir, bluum_body, bluum_headers, now, signer};
use webhook_inbox::{DEFAULT_MAX_BODY, Scheme, Signer};

/// How long an example may take to start listening (a cold start on a busy CI machine).
const STARTUP: Duration = Duration::from_secs(30);
/// How long the worker may take to run the handler for an accepted event.
const HANDLED: Duration = Duration::from_secs(10);

/// The header-read timeout the slow-client tests give the examples.
const HEADER_TIMEOUT: Duration = Duration::from_millis(800);
/// The whole-request deadline they give them.
const REQUEST_DEADLINE: Duration = Duration::from_millis(2000);
/// How late after its deadline a connection may still be closed: a busy
/// machine, and actix waits up to 1 s for the client to close after its 408.
const SLACK: Duration = Duration::from_millis(2000);
/// Connections stalled at once: more than the tiny_http example's 8 threads.
const STALLED: usize = 10;

/// The one scenario every example must pass.
fn scenario(example: &str) {
    let store = TempDir::new(example);
    let mut server = Server::start(example, Some(store.path()), &[]);
    let post = |headers: &[(String, String)], body: &[u8]| server.post(headers, body);

    let body = bluum_body("order.filled", 1);
    let headers = bluum_headers("evt_1", &body);
    assert_eq!(post(&headers, &body), (200, "accepted".into()));
    assert_eq!(
        post(&headers, &body),
        (200, "duplicate".into()),
        "the sender retried"
    );

    let stranger = Signer::new(Scheme::bluum(), "whsec_c29tZWJvZHkgZWxzZQ==").unwrap();
    let forged = stranger.sign("evt_forged", now(), &body);
    assert_eq!(post(&forged, &body), (401, "invalid signature".into()));
    let reserialised = String::from_utf8_lossy(&body).replace(",\"", ", \"");
    let reserialised = reserialised.as_bytes();
    assert_ne!(reserialised, body, "the same JSON, other bytes");
    assert_eq!(
        post(&bluum_headers("evt_reserialised", &body), reserialised),
        (401, "invalid signature".into()),
        "the signature covers the raw bytes"
    );
    let stale = signer().sign("evt_stale", now() - 600, &body);
    assert_eq!(post(&stale, &body).0, 401, "replayed 10 minutes later");

    let not_an_envelope = br#"["order.filled"]"#;
    let signed = bluum_headers("evt_malformed", not_an_envelope);
    assert_eq!(
        post(&signed, not_an_envelope).0,
        400,
        "genuine but no event type"
    );
    assert_eq!(post(&[], &body).0, 400, "no signature headers");

    let oversize = padded_envelope(DEFAULT_MAX_BODY + 1);
    let signed = bluum_headers("evt_oversize", &oversize);
    assert_eq!(post(&signed, &oversize).0, 413);

    hostile(&server);

    let last = bluum_body("order.filled", 2);
    assert_eq!(
        post(&bluum_headers("evt_2", &last), &last),
        (200, "accepted".into())
    );

    server.wait_for("handled order.filled evt_1 attempt 1", HANDLED);
    server.wait_for("handled order.filled evt_2 attempt 1", HANDLED);
    // Give a wrongful second run (or a refused delivery's run) time to show.
    std::thread::sleep(Duration::from_millis(300));
    let mut handled: Vec<&str> = server.lines_starting("handled ");
    handled.sort_unstable();
    assert_eq!(
        handled,
        [
            "handled order.filled evt_1 attempt 1",
            "handled order.filled evt_2 attempt 1"
        ],
        "each accepted event once, nothing refused"
    );
    assert_eq!(server.lines_starting("listening on ").len(), 1);
}

/// Slow clients: connections whose headers stall are closed within the
/// header timeout, those whose body stalls within the request deadline, and
/// while they are all open a genuine delivery from another client is answered.
fn slow_clients(example: &str) {
    let store = TempDir::new(example);
    let ms = |d: Duration| d.as_millis().to_string();
    let flags = [
        "--header-timeout-ms",
        &ms(HEADER_TIMEOUT),
        "--request-deadline-ms",
        &ms(REQUEST_DEADLINE),
    ];
    let mut server = Server::start(example, Some(store.path()), &flags);
    let addr = server.addr().to_owned();

    let head = format!(
        "POST /webhooks/bluum HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n"
    );
    let headers_stalled: Vec<Stalled> = (0..STALLED)
        .map(|_| Stalled::open(&addr, format!("{head}X-Slow: ").as_bytes()))
        .collect();
    let bodies_stalled: Vec<Stalled> = (0..STALLED)
        .map(|i| {
            // Over 1 KiB: tiny_http reads smaller bodies before handing the request over.
            let body = padded_envelope(16 * 1024);
            let mut request = format!("{head}Content-Length: {}\r\n", body.len());
            for (name, value) in bluum_headers(&format!("evt_slow_{i}"), &body) {
                request.push_str(&format!("{name}: {value}\r\n"));
            }
            request.push_str("\r\n");
            let mut sent = request.into_bytes();
            sent.extend_from_slice(&body[..body.len() / 2]);
            Stalled::open(&addr, &sent)
        })
        .collect();

    // Let the server take them all in (a thread each, for tiny_http) before
    // the genuine delivery comes; well within the header timeout.
    std::thread::sleep(HEADER_TIMEOUT / 4);

    // (c) Another client is served meanwhile: before the stalled bodies' deadline.
    let body = bluum_body("order.filled", 1);
    let answered = server.post_within(
        &bluum_headers("evt_meanwhile", &body),
        &body,
        REQUEST_DEADLINE + SLACK,
    );
    assert_eq!(
        answered.as_ref().map_err(ToString::to_string),
        Ok(&(200, "accepted".into())),
        "{example}: a genuine delivery while {STALLED} headers and {STALLED} bodies stall"
    );
    let open = bodies_stalled.iter().filter(|s| s.is_open()).count();
    assert_eq!(
        open, STALLED,
        "{example}: the delivery was answered only after stalled connections were dropped"
    );

    // (a) Stalled headers: closed within the header timeout.
    for stalled in headers_stalled {
        let (answer, after) = stalled.closed_within(HEADER_TIMEOUT + SLACK, example, "headers");
        assert!(
            answer.is_empty()
                || answer.starts_with("HTTP/1.1 408")
                || answer.starts_with("HTTP/1.1 400"),
            "{example}: stalled headers answered {answer:?}"
        );
        eprintln!("{example}: stalled headers closed after {after:?}");
    }
    // (b) Stalled bodies: closed within the request deadline (from when the
    // headers arrived), answered 408 if at all, and nothing stored.
    for stalled in bodies_stalled {
        let (answer, after) = stalled.closed_within(REQUEST_DEADLINE + SLACK, example, "a body");
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{example}: a stalled body answered {answer:?}"
        );
        eprintln!("{example}: a stalled body closed after {after:?}");
    }

    server.wait_for("handled order.filled evt_meanwhile attempt 1", HANDLED);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        server.lines_starting("handled "),
        ["handled order.filled evt_meanwhile attempt 1"],
        "{example}: no half-sent body was stored"
    );
}

/// The connection cap: with `--max-connections 2` and two connections
/// stalled, a third client waits in the accept queue until the header
/// timeout frees a place, and is then served.
fn connection_cap(example: &str) {
    let store = TempDir::new(example);
    let ms = HEADER_TIMEOUT.as_millis().to_string();
    let flags = ["--header-timeout-ms", &ms, "--max-connections", "2"];
    let server = Server::start(example, Some(store.path()), &flags);
    let addr = server.addr().to_owned();
    let stalled = [
        Stalled::open(&addr, b"POST /webhooks/bluum HTTP/1.1\r\n"),
        Stalled::open(&addr, b"POST /webhooks/bluum HTTP/1.1\r\n"),
    ];
    std::thread::sleep(HEADER_TIMEOUT / 4); // both taken in

    let body = bluum_body("order.filled", 1);
    let headers = bluum_headers("evt_capped", &body);
    let answered = server.post_within(&headers, &body, HEADER_TIMEOUT + SLACK);
    // Since the stalled connections opened: their header timeout, at least.
    let waited = stalled[0].opened.elapsed();
    assert_eq!(
        answered.as_ref().map_err(ToString::to_string),
        Ok(&(200, "accepted".into())),
        "{example}: served once a place is free"
    );
    assert!(
        waited >= HEADER_TIMEOUT * 3 / 4,
        "{example}: a third connection was served {waited:?} after 2 stalled ones opened: no cap"
    );
    eprintln!("{example}: the third connection was served {waited:?} after 2 stalled ones opened");
    drop(stalled);
}

/// With `--postgres URL --schema NAME` the example keeps its events in
/// PostgreSQL: it creates the schema on connect, a signed delivery posted
/// over HTTP is committed there (the library, connected to the same schema
/// as another replica would be, answers its redelivery `duplicate` and sees
/// the example's worker handle it), and an event that other replica accepts
/// is run by the example's worker: one inbox, shared.
#[cfg(feature = "postgres")]
fn on_postgres(example: &str) {
    use webhook_inbox::{Ingested, Verifier};
    let Some(schema) = common::postgres::Schema::fresh(example) else {
        return;
    };
    let flags = ["--postgres", schema.url(), "--schema", schema.name()];
    let mut server = Server::start(example, None, &flags);
    let body = bluum_body("order.filled", 1);
    let headers = bluum_headers("evt_pg_http", &body);
    assert_eq!(server.post(&headers, &body), (200, "accepted".into()));

    // Another replica: the library on the same schema, which it never migrates.
    let replica = schema
        .inbox()
        .migrate(false)
        .pool_size(1)
        .connect()
        .expect("the example created the schema");
    let bluum = replica
        .ingestor(Verifier::new(Scheme::bluum(), [SECRET]).unwrap())
        .build()
        .unwrap();
    let again = bluum.ingest(&headers, &body);
    assert!(
        matches!(again, Ok(Ingested::Duplicate { .. })),
        "{example}: the delivery's dedup marker is in the database: {again:?}"
    );
    server.wait_for("handled order.filled evt_pg_http attempt 1", HANDLED);
    // The handler prints before the worker records its outcome.
    let deadline = Instant::now() + HANDLED;
    while replica.event("evt_pg_http").unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "{example}: the example's worker never recorded the outcome in the database"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let other = bluum_body("order.filled", 2);
    let accepted = bluum.ingest(&bluum_headers("evt_pg_replica", &other), &other);
    assert!(
        matches!(accepted, Ok(Ingested::Accepted { .. })),
        "{accepted:?}"
    );
    server.wait_for("handled order.filled evt_pg_replica attempt 1", HANDLED);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.lines_starting("handled ").len(), 2, "each once");
    let stats = replica.stats();
    assert_eq!((stats.pending, stats.dedup_markers), (0, 2), "{stats:?}");
    drop(bluum);
    replica.close().unwrap();

    // Both places at once is a mistake, said before anything is opened.
    let both = Command::new(example_path(example))
        .args(["--port", "0", "--store", "/nonexistent/hooks"])
        .args(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!both.status.success());
    let stderr = String::from_utf8_lossy(&both.stderr);
    assert!(stderr.contains("not both"), "{example}: {stderr}");
}

#[cfg(feature = "axum")]
#[test]
fn axum_example() {
    scenario("axum");
}

#[cfg(feature = "axum")]
#[test]
fn axum_example_slow_clients() {
    slow_clients("axum");
}

#[cfg(feature = "axum")]
#[test]
fn axum_example_connection_cap() {
    connection_cap("axum");
}

#[test]
fn actix_example() {
    scenario("actix");
}

#[test]
fn actix_example_slow_clients() {
    slow_clients("actix");
}

#[test]
fn actix_example_connection_cap() {
    connection_cap("actix");
}

#[cfg(feature = "http")]
#[test]
fn hyper_example() {
    scenario("hyper");
}

#[cfg(feature = "http")]
#[test]
fn hyper_example_slow_clients() {
    slow_clients("hyper");
}

#[cfg(feature = "http")]
#[test]
fn hyper_example_connection_cap() {
    connection_cap("hyper");
}

#[test]
fn tiny_http_example() {
    scenario("tiny_http");
}

#[test]
fn tiny_http_example_slow_clients() {
    slow_clients("tiny_http");
}

#[test]
fn tiny_http_example_connection_cap() {
    connection_cap("tiny_http");
}

#[cfg(all(feature = "axum", feature = "postgres"))]
#[test]
fn axum_example_on_postgres() {
    on_postgres("axum");
}

#[cfg(feature = "postgres")]
#[test]
fn actix_example_on_postgres() {
    on_postgres("actix");
}

#[cfg(all(feature = "http", feature = "postgres"))]
#[test]
fn hyper_example_on_postgres() {
    on_postgres("hyper");
}

#[cfg(feature = "postgres")]
#[test]
fn tiny_http_example_on_postgres() {
    on_postgres("tiny_http");
}

/// A raw connection that sent part of a request and then nothing more.
struct Stalled {
    stream: TcpStream,
    opened: Instant,
}

impl Stalled {
    fn open(addr: &str, sent: &[u8]) -> Self {
        let mut stream = TcpStream::connect(addr).expect("the example accepts connections");
        stream.write_all(sent).expect("the example reads");
        Self {
            stream,
            opened: Instant::now(),
        }
    }

    /// Whether the server still holds it open: nothing to read, no end of stream.
    fn is_open(&self) -> bool {
        let mut byte = [0];
        let _ = self.stream.set_nonblocking(true);
        let peeked = self.stream.peek(&mut byte);
        let _ = self.stream.set_nonblocking(false);
        matches!(peeked, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Waits, at most until `limit` after it was opened, for the server to
    /// close it; what the server sent first, and when it closed. A
    /// connection still open at `limit` fails the test (the server has no
    /// deadline), rather than hanging it.
    fn closed_within(mut self, limit: Duration, example: &str, what: &str) -> (String, Duration) {
        let mut answer = Vec::new();
        let mut chunk = [0; 1024];
        loop {
            let left = limit.saturating_sub(self.opened.elapsed());
            assert!(
                !left.is_zero(),
                "{example}: a connection whose {what} stalled is still open after {limit:?}"
            );
            self.stream.set_read_timeout(Some(left)).expect("a timeout");
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break, // reset: closed too
            }
        }
        let after = self.opened.elapsed();
        (String::from_utf8_lossy(&answer).into_owned(), after)
    }
}

/// A Bluum envelope of exactly `len` bytes.
/// Hostile deliveries over HTTP: each refused with a 4xx — by the framework
/// (too many or too large headers) or by the library — or the connection
/// closed; never a 2xx, never a 5xx, and the server keeps serving. The
/// scenario's handled-exactly-once check then shows none was stored.
type Headers = Vec<(String, String)>;

fn hostile(server: &Server) {
    let body = bluum_body("order.filled", 3);
    let forged = |id: &str| {
        let mut h = bluum_headers(id, &body);
        h[2].1 = "v1,Zm9yZ2Vk".to_owned();
        h
    };
    let mut crowded = forged("evt_crowded");
    crowded.extend((0..10_000).map(|i| (format!("x-junk-{i}"), "y".to_owned())));
    let mut huge_value = bluum_headers("evt_huge_value", &body);
    huge_value[2].1 = format!("v1,{}", "A".repeat(1 << 20));
    let deep = format!(
        r#"{{"data":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    )
    .into_bytes();
    let control = br#"{"event":"order.filled","data":{}}"#.to_vec();
    let truncated = body[..body.len() / 2].to_vec();
    let not_utf8 = b"{\"event\":\"order.\xff\"}".to_vec();
    let mut far_future = bluum_headers("evt_i64", &body);
    far_future[1].1 = i64::MAX.to_string();
    let mut far_past = bluum_headers("evt_i64_min", &body);
    far_past[1].1 = i64::MIN.to_string();
    let long_id = "i".repeat(64 * 1024);
    let cases: Vec<(&str, Headers, Vec<u8>)> = vec![
        ("10,000 headers", crowded, body.clone()),
        ("a 1 MiB header value", huge_value, body.clone()),
        (
            "JSON nested 100,000 deep",
            bluum_headers("evt_deep", &deep),
            deep,
        ),
        (
            "a control character in the type",
            bluum_headers("evt_ctl", &control),
            control,
        ),
        (
            "truncated JSON",
            bluum_headers("evt_trunc", &truncated),
            truncated,
        ),
        (
            "a body that is not UTF-8",
            bluum_headers("evt_utf8", &not_utf8),
            not_utf8,
        ),
        ("timestamp i64::MAX", far_future, body.clone()),
        ("timestamp i64::MIN", far_past, body.clone()),
        ("a 64 KiB id", bluum_headers(&long_id, &body), body.clone()),
    ];
    for (what, headers, body) in cases {
        match server.raw_post(&headers, &body) {
            Ok(status) => assert!((400..500).contains(&status), "{what}: answered {status}"),
            Err(e) => eprintln!("{what}: the server closed the connection ({e})"),
        }
    }
}

fn padded_envelope(len: usize) -> Vec<u8> {
    let (head, tail) = (
        r#"{"event":"order.filled","timestamp":"2026-11-28T14:00:00Z","data":{"note":""#,
        r#""}}"#,
    );
    let pad = "x".repeat(len - head.len() - tail.len());
    format!("{head}{pad}{tail}").into_bytes()
}

/// `target/<profile>/examples/<name>`, next to this test's `deps/` directory.
fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps")
        .join("examples");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let rebuild = "build the examples with `cargo test --all-features` \
        (`cargo test --test examples` alone does not rebuild them)";
    let built = modified(&path);
    assert!(built.is_some(), "{} is missing: {rebuild}", path.display());
    // Cargo's dep-info lists the example's sources: none may be newer than the binary.
    let dep_info = std::fs::read_to_string(dir.join(format!("{name}.d"))).unwrap_or_default();
    let sources = dep_info.split_once(": ").map_or("", |(_, sources)| sources);
    if let Some(newer) = sources
        .split_whitespace()
        .find(|source| modified(Path::new(source)) > built)
    {
        panic!("{} is older than {newer}: {rebuild}", path.display());
    }
    path
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// A running example, killed when dropped, so also when an assertion fails.
struct Server {
    child: std::process::Child,
    /// Its stdout, line by line, from a reader thread.
    lines: Receiver<String>,
    /// Every line read so far.
    seen: Vec<String>,
    url: String,
    agent: ureq::Agent,
}

impl Server {
    /// Starts `example` on port 0 with its store in `store` (none: the
    /// flags say where) and `flags`, and waits until it listens.
    fn start(example: &str, store: Option<&Path>, flags: &[&str]) -> Self {
        let path = example_path(example);
        let mut command = Command::new(&path);
        command.args(["--port", "0"]);
        if let Some(store) = store {
            command.arg("--store").arg(store);
        }
        let mut child = command
            .args(flags)
            .env("WEBHOOK_SECRET", SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let mut server = Self {
            child,
            lines,
            seen: Vec::new(),
            url: String::new(),
            agent,
        };
        let line = server.wait_for("listening on ", STARTUP);
        let port: u16 = line
            .strip_prefix("listening on http://127.0.0.1:")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("{example}: unexpected first line {line:?}"));
        assert_ne!(port, 0);
        server.url = format!("http://127.0.0.1:{port}/webhooks/bluum");
        server
    }

    /// `127.0.0.1:<port>`.
    fn addr(&self) -> &str {
        let addr = self.url.trim_start_matches("http://");
        addr.split('/').next().unwrap_or_default()
    }

    /// POSTs a delivery; returns the status and the body.
    fn post(&self, headers: &[(String, String)], body: &[u8]) -> (u16, String) {
        self.send(&self.agent, headers, body)
            .expect("the example answers")
    }

    /// POSTs a delivery on a connection of its own, giving up after `timeout`.
    fn post_within(
        &self,
        headers: &[(String, String)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<(u16, String), ureq::Error> {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        self.send(&agent, headers, body)
    }

    fn send(
        &self,
        agent: &ureq::Agent,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(u16, String), ureq::Error> {
        let mut request = agent.post(&self.url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let mut response = request.send(body)?;
        let status = response.status().as_u16();
        Ok((
            status,
            response.body_mut().read_to_string().unwrap_or_default(),
        ))
    }

    /// POSTs over a bare TCP connection, so no client-side limit gets in the
    /// way of hostile headers; the status, or the error when the server
    /// closed the connection instead of answering.
    fn raw_post(&self, headers: &[(String, String)], body: &[u8]) -> std::io::Result<u16> {
        let addr = self.addr();
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut request = format!(
            "POST /webhooks/bluum HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes())?;
        stream.write_all(body)?;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer);
        text.split(' ')
            .nth(1)
            .and_then(|status| status.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("no status line in {:?}", text.get(..80))))
    }

    /// Waits for a line containing `needle` (printed before or after this call).
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.seen.iter().find(|line| line.contains(needle)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no line with {needle:?} within {timeout:?}; stdout so far: {:?}",
                        self.seen
                    )
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "the example exited ({:?}) before printing {needle:?}; stdout: {:?}",
                    self.child.try_wait(),
                    self.seen
                ),
            }
        }
    }

    /// The lines printed so far that start with `prefix`.
    fn lines_starting(&mut self, prefix: &str) -> Vec<&str> {
        self.seen.extend(self.lines.try_iter());
        let lines = self.seen.iter().map(String::as_str);
        lines.filter(|line| line.starts_with(prefix)).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
