//! The emulator's safety limits (issue 14; docs/BLUUM_API.md, "Emulator
//! safety limits"), each against a real `webhook-inbox emulate` process over
//! real TCP: header and body deadlines, the connection cap, the credential
//! checked before the body, answers left unread, private store files, the
//! delivery-target rule (SSRF) at registration and at delivery, pruning and
//! paging, and webhook URLs logged without their query.
//!
//! Deadlines are set short by flags, so every test takes seconds.
#![cfg(feature = "cli")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TempDir;
use common::emulator::{
    Auth, Emulator, Policy, RawOutcome, Receiver, TENANT_KEY, TENANT_SECRET, basic, poll,
    raw_exchange, read_response,
};
use serde_json::{Value, json};

/// How long a delivery may take to arrive when nothing delays it.
const ARRIVE: Duration = Duration::from_secs(10);

fn str_of<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is a string in {value}"))
}

/// A request head (through the blank line) with the tenant key.
fn head(addr: &str, method: &str, target: &str, extra: &str) -> String {
    format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\n{extra}\r\n",
        basic(TENANT_KEY, TENANT_SECRET)
    )
}

/// Connects to `addr` and writes `bytes`; the stream stays open.
fn connect_and_send(addr: &str, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    stream
}

/// Reads from `stream` until the server closes it (EOF or reset) or
/// `deadline`; whether it closed, and when.
fn closed_by(stream: &mut TcpStream, deadline: Instant) -> Option<Instant> {
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => return Some(Instant::now()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(Instant::now()),
        }
    }
}

/// A field of /proc/PID/status, in kB.
fn proc_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

// ---------------------------------------------------------------------------
// Deadlines and the connection cap

#[test]
fn a_stalled_request_head_is_closed_within_the_header_timeout_while_others_are_served() {
    let store = TempDir::new("hard-stalled-head");
    let mut emulator = Emulator::start(
        store.path(),
        &["--header-timeout", "2s", "--request-timeout", "1s"],
    );
    let started = Instant::now();
    // Half a request head, then nothing; and a connection that sends nothing.
    let mut stalled = connect_and_send(
        emulator.addr(),
        format!("GET /v1/webhooks HTTP/1.1\r\nHost: {}\r\n", emulator.addr()).as_bytes(),
    );
    let mut idle = TcpStream::connect(emulator.addr()).unwrap();

    // Meanwhile another client is served at once.
    let (status, list) = emulator.call("GET", "/webhooks", None);
    assert_eq!(status, 200, "{list}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "served while the stalled one waits: {:?}",
        started.elapsed()
    );

    let deadline = started + Duration::from_secs(8);
    for (what, stream) in [
        ("a stalled head", &mut stalled),
        ("an idle connection", &mut idle),
    ] {
        let closed = closed_by(stream, deadline)
            .unwrap_or_else(|| panic!("{what} was still open after 8 s"));
        let after = closed - started;
        assert!(
            after >= Duration::from_millis(1800) && after < Duration::from_secs(6),
            "{what} closed after {after:?}, expected about the 2 s header timeout"
        );
    }
    assert!(emulator.is_running());
}

#[test]
fn a_body_that_stops_coming_is_answered_408_within_the_request_timeout() {
    let store = TempDir::new("hard-stalled-body");
    let emulator = Emulator::start(
        store.path(),
        &["--header-timeout", "500ms", "--request-timeout", "1s"],
    );
    let started = Instant::now();
    let mut request = head(
        emulator.addr(),
        "POST",
        "/v1/webhooks",
        "Content-Type: application/json\r\nContent-Length: 1000\r\n",
    )
    .into_bytes();
    request.extend_from_slice(br#"{"name": "#);
    let mut stalled = connect_and_send(emulator.addr(), &request);
    let answer = read_response(&mut stalled, started + Duration::from_secs(5));
    let after = started.elapsed();
    match &answer {
        RawOutcome::Answered { status: 408, .. } => {
            assert_eq!(answer.json()["error"]["code"], "BLUM-408-001", "{answer:?}");
        }
        other => panic!("expected a 408 within 5 s, got {other:?} after {after:?}"),
    }
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(3),
        "answered after {after:?}, expected about the 1 s request timeout"
    );
    assert!(
        closed_by(&mut stalled, Instant::now() + Duration::from_secs(3)).is_some(),
        "the connection is closed after the 408"
    );
    // Nothing was created.
    let (status, list) = emulator.call("GET", "/webhooks", None);
    assert_eq!(
        (status, list["data"].as_array().map(Vec::len)),
        (200, Some(0))
    );
}

#[test]
fn connections_past_the_cap_wait_until_one_closes() {
    let store = TempDir::new("hard-cap");
    let emulator = Emulator::start(store.path(), &["--max-connections", "2"]);
    let first = TcpStream::connect(emulator.addr()).unwrap();
    let second = TcpStream::connect(emulator.addr()).unwrap();
    // Both slots are taken (the emulator accepted them): a third waits.
    std::thread::sleep(Duration::from_millis(200));
    let mut third = connect_and_send(
        emulator.addr(),
        head(emulator.addr(), "GET", "/v1/webhooks", "").as_bytes(),
    );
    let waiting = read_response(&mut third, Instant::now() + Duration::from_millis(700));
    assert!(
        matches!(waiting, RawOutcome::TimedOut(ref bytes) if bytes.is_empty()),
        "a connection past the cap is not served yet: {waiting:?}"
    );
    drop(first);
    let served = read_response(&mut third, Instant::now() + Duration::from_secs(5));
    assert_eq!(
        served.status(),
        Some(200),
        "served once a slot is free: {served:?}"
    );
    drop(second);
}

#[test]
fn an_answer_left_unread_closes_the_connection_after_the_request_timeout() {
    let store = TempDir::new("hard-unread");
    let emulator = Emulator::start(
        store.path(),
        &["--header-timeout", "60s", "--request-timeout", "1s"],
    );
    // Pipelined requests whose answers (the event catalog, 3 KiB each, over
    // 30 MB in all) overflow both socket buffers while the client reads nothing.
    let one = head(emulator.addr(), "GET", "/v1/webhooks/event-types", "");
    let request = one.repeat(10_000).into_bytes();
    let mut stream = TcpStream::connect(emulator.addr()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let sending = std::thread::spawn(move || {
        let _ = writer.write_all(&request);
    });
    std::thread::sleep(Duration::from_secs(3));
    // Generous: on a loaded machine the answers take a while to fill the
    // buffers; a server that never lets go still fails.
    let closed = closed_by(&mut stream, Instant::now() + Duration::from_secs(30));
    assert!(
        closed.is_some(),
        "a client that stopped reading is let go after the request timeout"
    );
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sending.join();
    let (status, _) = emulator.call("GET", "/webhooks", None);
    assert_eq!(status, 200, "the emulator still serves");
}

// ---------------------------------------------------------------------------
// The credential before the body

#[test]
fn uploads_without_a_valid_credential_are_refused_before_their_body_is_read() {
    let store = TempDir::new("hard-unauth");
    let emulator = Emulator::start(store.path(), &[]);
    let near_limit = (1 << 20) - 1;
    // Headers only: the answer comes without the body ever being sent.
    for (what, authorization) in [
        ("no credential", String::new()),
        (
            "a wrong secret",
            format!("Authorization: {}\r\n", basic(TENANT_KEY, "wrong")),
        ),
        (
            "a malformed header",
            "Authorization: Bearer x\r\n".to_owned(),
        ),
    ] {
        let request = format!(
            "POST /v1/webhooks HTTP/1.1\r\nHost: {}\r\n{authorization}\
             Content-Type: application/json\r\nContent-Length: {near_limit}\r\n\r\n",
            emulator.addr()
        );
        let started = Instant::now();
        let outcome = raw_exchange(
            emulator.addr(),
            request.into_bytes(),
            Duration::from_secs(3),
        );
        assert_eq!(
            outcome.status(),
            Some(401),
            "{what}: refused without waiting for the body: {outcome:?} after {:?}",
            started.elapsed()
        );
    }

    // 100 unauthenticated uploads of 1 MiB - 1 at once: the emulator's peak
    // memory does not grow by what they send.
    let pid = emulator.pid();
    let before = proc_kb(pid, "VmHWM");
    let body = vec![b'x'; near_limit];
    let uploads: Vec<_> = (0..100)
        .map(|_| {
            let addr = emulator.addr().to_owned();
            let body = body.clone();
            std::thread::spawn(move || {
                let mut request = format!(
                    "POST /v1/webhooks HTTP/1.1\r\nHost: {addr}\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                request.extend_from_slice(&body);
                raw_exchange(&addr, request, Duration::from_secs(10))
            })
        })
        .collect();
    for upload in uploads {
        let outcome = upload.join().unwrap();
        assert!(
            matches!(outcome.status(), Some(401)) || matches!(outcome, RawOutcome::Closed(..)),
            "an unauthenticated upload is refused: {outcome:?}"
        );
    }
    let grown_mb = proc_kb(pid, "VmHWM").saturating_sub(before) / 1024;
    eprintln!("peak memory grew by {grown_mb} MB over 100 refused uploads of 1 MiB - 1");
    assert!(
        grown_mb < 40,
        "peak memory grew by {grown_mb} MB for 100 MB of refused uploads"
    );
    let (status, _) = emulator.call("GET", "/webhooks", None);
    assert_eq!(status, 200);
}

// ---------------------------------------------------------------------------
// Private store files

/// Every directory under `dir` (itself included) is 0700 and every file 0600.
fn assert_private(dir: &Path) {
    let mut files = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(
                mode,
                0o700,
                "{} is a directory of mode {mode:o}",
                path.display()
            );
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode, 0o600, "{} is a file of mode {mode:o}", path.display());
            files += 1;
        }
    }
    assert!(files > 2, "the store holds files: {files}");
}

/// Runs `emulate` on `store` under `umask`, creates a webhook (so the
/// registry holds a secret) and stops it with SIGTERM.
fn run_under_umask(store: &Path, umask: &str) {
    let tenant = format!("{TENANT_KEY}:{TENANT_SECRET}");
    let mut child = Command::new("sh")
        .args(["-c", &format!("umask {umask} && exec \"$@\""), "sh"])
        .arg(common::emulator::binary())
        .args(["emulate", "--listen", "127.0.0.1:0", "--store"])
        .arg(store)
        .args(["--tenant-key", &tenant])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line {line:?}"))
        .to_owned();
    let body = serde_json::to_vec(&json!({
        "name": "Secret holder", "url": "http://127.0.0.1:9/", "eventTypeNames": ["order.filled"]
    }))
    .unwrap();
    let (status, answer) = common::emulator::request(
        &common::emulator::agent(),
        Auth::Tenant,
        "POST",
        &format!("{base}/v1/webhooks"),
        Some(&body),
    );
    assert_eq!(status, 201, "{answer}");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "clean stop: {status:?}");
}

#[test]
fn the_store_is_private_whatever_the_umask_and_an_open_one_is_tightened() {
    let store = TempDir::new("hard-modes");
    run_under_umask(store.path(), "000");
    assert_private(store.path());

    // A store left readable (by an earlier version, or by hand) is made
    // private again at the next start.
    let mut stack = vec![store.path().to_path_buf()];
    while let Some(path) = stack.pop() {
        let dir = path.is_dir();
        let mode = if dir { 0o777 } else { 0o666 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        if dir {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    run_under_umask(store.path(), "022");
    assert_private(store.path());
}

// ---------------------------------------------------------------------------
// Delivery targets (SSRF)

fn create(emulator: &Emulator, url: &str) -> (u16, Value) {
    emulator.call(
        "POST",
        "/webhooks",
        Some(json!({"name": "Target", "url": url, "eventTypeNames": ["order.filled"]})),
    )
}

fn assert_url_refused(what: &str, (status, answer): &(u16, Value)) {
    assert_eq!(*status, 400, "{what}: {answer}");
    assert_eq!(answer["error"]["param"], "url", "{what}: {answer}");
}

const LINK_LOCAL_AND_METADATA: &[&str] = &[
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://169.254.0.1:8080/",
    "http://[fe80::1]/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://METADATA.google.internal./computeMetadata/v1/",
    "http://[::ffff:169.254.169.254]/",
    // getaddrinfo reads this as 169.254.169.254.
    "http://0251.0376.0251.0376/",
];

const PRIVATE: &[&str] = &[
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1:8443/",
    "http://100.64.0.1/",
    "https://[fc00::1]/",
    "http://[fd12:3456::1]/",
];

#[test]
fn link_local_metadata_and_private_targets_are_refused_at_registration() {
    let store = TempDir::new("hard-ssrf");
    let emulator = Emulator::start(store.path(), &[]);
    for url in LINK_LOCAL_AND_METADATA.iter().chain(PRIVATE) {
        assert_url_refused(url, &create(&emulator, url));
    }
    // Loopback stays allowed: that is what the emulator is for.
    for url in [
        "http://127.0.0.1:9/hook",
        "http://[::1]:9/hook",
        "http://localhost:9/",
    ] {
        let (status, answer) = create(&emulator, url);
        assert_eq!(status, 201, "{url}: {answer}");
    }
    // PATCH checks the same way.
    let (_, first) = create(&emulator, "http://127.0.0.1:9/other");
    let item = format!("/webhooks/{}", str_of(&first, "id"));
    for url in ["http://169.254.169.254/", "http://10.1.2.3/"] {
        let patched = emulator.call("PATCH", &item, Some(json!({"url": url})));
        assert_url_refused(&format!("PATCH {url}"), &patched);
    }
    let (status, list) = emulator.call("GET", "/webhooks", None);
    assert_eq!(status, 200);
    let urls: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| str_of(w, "url"))
        .collect();
    assert!(
        urls.iter()
            .all(|u| u.contains("127.0.0.1") || u.contains("[::1]") || u.contains("localhost")),
        "nothing refused was stored: {urls:?}"
    );
}

#[test]
fn private_targets_need_the_flag_and_link_local_ones_are_refused_even_with_it() {
    let store = TempDir::new("hard-ssrf-flag");
    let emulator = Emulator::start(store.path(), &["--allow-private-targets"]);
    for url in PRIVATE {
        let (status, answer) = create(&emulator, url);
        assert_eq!(status, 201, "{url} with --allow-private-targets: {answer}");
    }
    for url in LINK_LOCAL_AND_METADATA {
        assert_url_refused(url, &create(&emulator, url));
    }
}

#[test]
fn a_private_target_is_refused_again_at_delivery_and_parked_without_a_connection() {
    let store = TempDir::new("hard-ssrf-delivery");
    // Registered while allowed; the integer form is resolved (to 10.0.0.1)
    // by the system's resolver, not read by an address parser.
    let emulator = Emulator::start(store.path(), &["--allow-private-targets"]);
    let literal = create(&emulator, "http://10.255.255.1:81/hook");
    assert_eq!(literal.0, 201, "{}", literal.1);
    let name = create(&emulator, "http://167772161:81/hook");
    assert_eq!(name.0, 201, "{}", name.1);
    drop(emulator);

    // Started again without the flag: delivery refuses both, at once.
    let emulator = Emulator::start(store.path(), &["--timeout", "20s"]);
    let started = Instant::now();
    let event = emulator.trigger("order.filled", json!({"id": "ord_ssrf"}));
    let deliveries = event["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2, "{event}");
    for delivery in deliveries {
        let id = str_of(delivery, "id");
        let parked = emulator.wait_state(id, "parked", ARRIVE);
        let attempts = parked["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "parked at the first refusal: {parked}");
        let error = str_of(&attempts[0], "error");
        assert!(
            error.contains("refused") && error.contains("10."),
            "the attempt says why: {parked}"
        );
        assert_eq!(attempts[0]["status"], Value::Null, "no answer: {parked}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused without trying to connect (an unroutable address would wait for the timeout): {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// Retention and paging

fn listed(emulator: &Emulator, query: &str) -> Vec<Value> {
    let (status, list) = emulator.call("GET", &format!("/_emulator/deliveries{query}"), None);
    assert_eq!(status, 200, "{query}: {list}");
    list["data"].as_array().unwrap().clone()
}

#[test]
fn delivered_deliveries_are_pruned_after_the_retention_and_retrying_ones_stay() {
    let store = TempDir::new("hard-prune");
    // Waits of 60 ms, 300 ms, 1.8 s, 7.2 s: a failing delivery is retrying,
    // its latest attempt older than the retention, for seven seconds.
    let emulator = Emulator::start(
        store.path(),
        &["--time-scale", "0.001", "--delivery-retention", "1s"],
    );
    let ok = Receiver::start(Policy::Ok);
    let down = Receiver::start(Policy::Status(503));
    emulator.create_webhook("Up", ok.url(), &["order.filled"]);
    emulator.create_webhook("Down", down.url(), &["order.filled"]);
    let event = emulator.trigger("order.filled", json!({"id": "ord_old"}));
    let ids: Vec<String> = event["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| str_of(d, "id").to_owned())
        .collect();
    let delivered_id = ids
        .iter()
        .find(|id| {
            emulator.wait_delivery(id, ARRIVE, |d| d["state"] != "pending")["state"] == "delivered"
        })
        .expect("one is delivered")
        .clone();
    let failing_id = ids.iter().find(|id| **id != delivered_id).unwrap().clone();
    // The fourth attempt comes about 2.2 s in; the fifth not before 9 s.
    down.wait_for(4, ARRIVE);
    std::thread::sleep(Duration::from_millis(1500));

    let (status, gone) = poll(
        "the delivered one is pruned",
        Duration::from_secs(5),
        || {
            let answer = emulator.call(
                "GET",
                &format!("/_emulator/deliveries/{delivered_id}"),
                None,
            );
            if answer.0 == 404 {
                Ok(answer)
            } else {
                Err(Some(answer.1.to_string()))
            }
        },
    );
    assert_eq!(status, 404, "{gone}");
    // The retrying one, whose latest attempt is also older than the
    // retention, is not finished: kept.
    let kept = emulator.delivery(&failing_id);
    assert_eq!(kept["state"], "retrying", "{kept}");
    let all = listed(&emulator, "");
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["id"], failing_id.as_str());
}

#[test]
fn parked_deliveries_are_pruned_after_the_retention() {
    let store = TempDir::new("hard-prune-parked");
    let emulator = Emulator::start(
        store.path(),
        &["--time-scale", "0.0001", "--delivery-retention", "1s"],
    );
    let down = Receiver::start(Policy::Status(500));
    emulator.create_webhook("Down", down.url(), &["order.filled"]);
    let event = emulator.trigger("order.filled", json!({"id": "ord_parked"}));
    let id = str_of(&event["deliveries"][0], "id").to_owned();
    // The ladder takes about 3.8 s; then a second of retention.
    poll(
        "the parked delivery is pruned",
        Duration::from_secs(15),
        || {
            let (status, answer) =
                emulator.call("GET", &format!("/_emulator/deliveries/{id}"), None);
            if status == 404 {
                Ok(())
            } else {
                Err(Some(answer.to_string()))
            }
        },
    );
    assert_eq!(down.count(), 6, "it was attempted six times first");
    assert!(listed(&emulator, "").is_empty());
}

#[test]
fn a_page_of_deliveries_decodes_only_what_it_shows() {
    let store = TempDir::new("hard-paging");
    let emulator = Emulator::start(store.path(), &[]);
    let ok = Receiver::start(Policy::Ok);
    let a = emulator.create_webhook("A", ok.url(), &["order.filled"]);
    let b = emulator.create_webhook("B", ok.url(), &["order.canceled"]);
    let mut ids = Vec::new();
    for n in 0..3 {
        for event_type in ["order.filled", "order.canceled"] {
            let event = emulator.trigger(event_type, json!({"n": n}));
            ids.push(str_of(&event["deliveries"][0], "id").to_owned());
        }
    }
    ok.wait_for(6, ARRIVE);
    for id in &ids {
        emulator.wait_state(id, "delivered", ARRIVE);
    }
    drop(emulator);

    // The oldest delivery's record is damaged (the emulator is stopped).
    {
        let db = sled::open(store.path().join("registry")).unwrap();
        let tree = db.open_tree("deliveries").unwrap();
        tree.insert(ids[0].as_bytes(), &b"not json"[..]).unwrap();
        db.flush().unwrap();
    }
    let emulator = Emulator::start(store.path(), &[]);
    // Pages past it never decode it.
    let page = listed(&emulator, "?offset=1&limit=2");
    let got: Vec<&str> = page.iter().map(|d| str_of(d, "id")).collect();
    assert_eq!(got, [ids[1].as_str(), ids[2].as_str()]);
    let (status, list) = emulator.call("GET", "/_emulator/deliveries?offset=1&limit=2", None);
    assert_eq!((status, list["has_more"].clone()), (200, json!(true)));
    let last = listed(&emulator, "?offset=4&limit=5");
    assert_eq!(last.len(), 2, "{last:?}");
    // Nor does a filter on another webhook.
    let of_b = listed(&emulator, &format!("?webhook_id={}", str_of(&b, "id")));
    let got: Vec<&str> = of_b.iter().map(|d| str_of(d, "id")).collect();
    assert_eq!(got, [ids[1].as_str(), ids[3].as_str(), ids[5].as_str()]);
    let of_a = listed(
        &emulator,
        &format!("?webhook_id={}&offset=1", str_of(&a, "id")),
    );
    let got: Vec<&str> = of_a.iter().map(|d| str_of(d, "id")).collect();
    assert_eq!(got, [ids[2].as_str(), ids[4].as_str()]);
    // The damaged one itself is an error, not a crash.
    let (status, _) = emulator.call("GET", "/_emulator/deliveries?limit=1", None);
    assert_eq!(status, 500);
}

// ---------------------------------------------------------------------------
// Logs

#[test]
fn webhook_urls_are_logged_without_their_query() {
    let store = TempDir::new("hard-log-url");
    let emulator = Emulator::start(store.path(), &["--time-scale", "0.0001"]);
    let ok = Receiver::start(Policy::Ok);
    let token = "tok_live_5ecret_Q7x9";
    let up = format!("{}?token={token}&x=1", ok.url());
    let down = format!("http://127.0.0.1:9/hooks/down?access_token={token}#frag-{token}");
    emulator.create_webhook("Up", &up, &["order.filled"]);
    emulator.create_webhook("Down", &down, &["order.filled"]);
    let event = emulator.trigger("order.filled", json!({"id": "ord_log"}));
    for delivery in event["deliveries"].as_array().unwrap() {
        emulator.wait_delivery(str_of(delivery, "id"), Duration::from_secs(15), |d| {
            d["state"] == "delivered" || d["state"] == "parked"
        });
    }
    let received = ok.wait_for(1, ARRIVE);
    assert!(
        received[0].path.contains(token),
        "the receiver got its token: {}",
        received[0].path
    );
    // Let the parked line reach the log.
    std::thread::sleep(Duration::from_millis(300));
    let stderr = emulator.stderr();
    let stdout = emulator.stdout().join("\n");
    assert!(
        stderr.contains("/webhooks/bluum") && stderr.contains("/hooks/down"),
        "the logs name the targets by host and path: {stderr}"
    );
    assert!(
        !stderr.contains(token) && !stdout.contains(token),
        "the token stays out of the logs: {stderr}\n{stdout}"
    );
}
