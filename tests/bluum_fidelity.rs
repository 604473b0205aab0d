//! Fidelity to Bluum's own pages: the webhooks guide's exact request and
//! answer (tests/data/bluum_guide_create_*.json, copied verbatim from
//! https://docs.bluumfinance.com/get-started/journey/webhooks) work against
//! the emulator and the typed client; both error shapes Bluum's pages show,
//! and a 429 with `Retry-After`, reach the client as typed errors; and every
//! error code the emulator sends carries its HTTP status and is listed in
//! docs/BLUUM_API.md.
#![cfg(feature = "cli")]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use common::TempDir;
use common::emulator::{self, Auth, Emulator, TENANT_KEY, TENANT_SECRET};
use serde_json::{Value, json};
use webhook_inbox::bluum::client::{Client, ClientError, NewWebhook, WebhookStatus};

const GUIDE_REQUEST: &[u8] = include_bytes!("data/bluum_guide_create_request.json");
const GUIDE_RESPONSE: &[u8] = include_bytes!("data/bluum_guide_create_response.json");
const DOCS: &str = include_str!("../docs/BLUUM_API.md");
const RAW_UUID: &str = "3c90c3cc-0d44-4b50-8888-8dd25736052a";

fn guide_request() -> Value {
    serde_json::from_slice(GUIDE_REQUEST).expect("the fixture is JSON")
}

fn guide_response() -> Value {
    serde_json::from_slice(GUIDE_RESPONSE).expect("the fixture is JSON")
}

/// `2026-07-01T15:10:00Z`: the guide's `created_at` format.
fn is_rfc3339_utc_seconds(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

fn same_json_type(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// Asserts `answer` has every field of the guide's answer, of the same JSON
/// type, with the guide's values where they do not depend on the server
/// (`object`, `url`, `event_type_names`, `status`), and ids and times in the
/// guide's formats.
fn assert_guide_shape(what: &str, answer: &Value) {
    let guide = guide_response();
    for (field, expected) in guide.as_object().unwrap() {
        let got = answer
            .get(field)
            .unwrap_or_else(|| panic!("{what}: no `{field}` in {answer}"));
        assert!(
            same_json_type(got, expected),
            "{what}: `{field}` is {got}, the guide has {expected}"
        );
    }
    for field in ["object", "url", "event_type_names", "status"] {
        assert_eq!(answer[field], guide[field], "{what}: `{field}`");
    }
    let id = answer["id"].as_str().unwrap();
    assert!(
        id.starts_with("wh_")
            && id.len() > 3
            && id[3..]
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "{what}: id {id} is not like the guide's wh_5e6f7g8h9i0j1k2l"
    );
    let created = answer["created_at"].as_str().unwrap();
    assert!(
        is_rfc3339_utc_seconds(created),
        "{what}: created_at {created} is not like the guide's 2026-07-01T15:10:00Z"
    );
}

fn start(name: &str) -> (Emulator, TempDir) {
    let store = TempDir::new(name);
    let emulator = Emulator::start(store.path(), &[]);
    (emulator, store)
}

#[test]
fn the_guides_request_is_accepted_and_answered_in_the_guides_shape() {
    let (emulator, _store) = start("fidelity-guide-request");
    // The fixture's bytes as they are: no name, the guide's spacing.
    let (status, created) = emulator.send(Auth::Tenant, "POST", "/webhooks", Some(GUIDE_REQUEST));
    assert_eq!(status, 201, "{created}");
    assert_guide_shape("the create answer", &created);
    assert_eq!(created["name"], Value::Null, "no name given, none invented");
    assert!(
        created["secret"].as_str().unwrap().starts_with("whsec_"),
        "{created}"
    );

    let id = created["id"].as_str().unwrap();
    let (status, read) = emulator.call("GET", &format!("/webhooks/{id}"), None);
    assert_eq!(status, 200, "{read}");
    assert_guide_shape("GET /webhooks/{id}", &read);
    assert_eq!(read["created_at"], created["created_at"]);
    assert!(read.get("secret").is_none(), "{read}");
    let (status, list) = emulator.call("GET", "/webhooks", None);
    assert_eq!(status, 200);
    assert_guide_shape("the list", &list["data"][0]);

    // The typed client reads it, name and all absent.
    let client = Client::new(emulator.url(), TENANT_KEY, TENANT_SECRET);
    let hook = client.get_webhook(id).unwrap();
    assert_eq!(hook.name, None);
    assert_eq!(hook.url, "https://your-app.com/webhooks/bluum");
    assert_eq!(hook.status, WebhookStatus::Active);
}

#[test]
fn the_client_and_the_cli_create_a_webhook_without_a_name() {
    let (emulator, _store) = start("fidelity-no-name");
    let request = guide_request();
    let types: Vec<&str> = request["eventTypeNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let client = Client::new(emulator.url(), TENANT_KEY, TENANT_SECRET);
    let hook = client
        .create_webhook(&NewWebhook::without_name(
            request["url"].as_str().unwrap(),
            types.iter().copied(),
        ))
        .unwrap();
    assert_eq!(hook.name, None);
    assert_eq!(hook.event_type_names, types);
    assert!(hook.secret.is_some());

    let out = Command::new(emulator::binary())
        .args(["bluum", "webhooks", "create", "--json", "--url"])
        .arg("http://127.0.0.1:9/webhooks/bluum")
        .args(["--event-type", "order.filled"])
        .env("BLUUM_API_KEY", TENANT_KEY)
        .env("BLUUM_API_SECRET", TENANT_SECRET)
        .env("BLUUM_BASE_URL", emulator.url())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{:?}: {stdout} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(created["name"], Value::Null);
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(client.list_webhooks().unwrap().len(), 2);
}

// --- a plain local server answering canned responses -----------------------

/// One canned answer.
struct Canned {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Canned {
    fn json(status: u16, body: &[u8]) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_vec(),
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// A request as the plain server read it: the head and the body.
struct Seen {
    head: String,
    body: Vec<u8>,
}

/// Serves `answers` in order on 127.0.0.1, one connection each (closed after
/// the answer); returns the base URL (`/v1` included) and the requests seen.
fn plain_server(answers: Vec<Canned>) -> (String, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let (seen, requests) = mpsc::channel();
    std::thread::spawn(move || {
        for answer in answers {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                assert!(buf.len() < 64 * 1024, "request head too long");
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            while buf.len() < head_end + length {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let body = buf[head_end..head_end + length].to_vec();
            let mut response = format!(
                "HTTP/1.1 {} Canned\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                answer.status,
                answer.body.len()
            );
            for (name, value) in &answer.headers {
                response.push_str(&format!("{name}: {value}\r\n"));
            }
            response.push_str("\r\n");
            let _ = stream.write_all(response.as_bytes());
            let _ = stream.write_all(&answer.body);
            let _ = stream.flush();
            let _ = seen.send(Seen { head, body });
        }
    });
    (url, requests)
}

fn plain_client(url: &str) -> Client {
    Client::new(url, TENANT_KEY, TENANT_SECRET).timeout(Duration::from_secs(10))
}

#[test]
fn the_client_decodes_the_guides_answer_verbatim() {
    let (url, seen) = plain_server(vec![
        Canned::json(201, GUIDE_RESPONSE),
        Canned::json(200, GUIDE_RESPONSE),
    ]);
    let client = plain_client(&url);
    let request = guide_request();
    let types: Vec<String> = serde_json::from_value(request["eventTypeNames"].clone()).unwrap();
    let hook = client
        .create_webhook(&NewWebhook::without_name(
            request["url"].as_str().unwrap(),
            types.clone(),
        ))
        .expect("the guide's own answer is a webhook");
    assert_eq!(hook.id, "wh_5e6f7g8h9i0j1k2l");
    assert_eq!(hook.url, "https://your-app.com/webhooks/bluum");
    assert_eq!(hook.event_type_names, types);
    assert_eq!(hook.status, WebhookStatus::Active);
    assert_eq!(hook.created_at, "2026-07-01T15:10:00Z");
    assert_eq!(
        (hook.name, hook.description, hook.updated_at),
        (None, None, None)
    );
    assert_eq!((hook.livemode, hook.secret), (None, None));

    // What the client sent is the guide's request.
    let sent = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        sent.head.starts_with("POST /v1/webhooks HTTP/1.1\r\n"),
        "{}",
        sent.head
    );
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body, request);

    let read = client.get_webhook("wh_5e6f7g8h9i0j1k2l").unwrap();
    assert_eq!(read.id, "wh_5e6f7g8h9i0j1k2l");
}

#[test]
fn a_created_webhook_whose_answer_is_unreadable_says_not_to_retry_and_hides_the_secret() {
    let answer = br#"{"id": "wh_5e6f7g8h9i0j1k2l", "object": "webhook", "status": "active",
                      "secret": "whsec_do_not_print_me"}"#;
    let (url, _seen) = plain_server(vec![Canned::json(201, answer)]);
    let err = plain_client(&url)
        .create_webhook(&NewWebhook::without_name(
            "https://x.test/h",
            ["order.filled"],
        ))
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ClientError::Decode(_)), "{err:?}");
    assert!(
        text.contains("probably created as wh_5e6f7g8h9i0j1k2l"),
        "{text}"
    );
    assert!(text.contains("do not retry"), "{text}");
    assert!(!text.contains("whsec_do_not_print_me"), "{text}");
}

#[test]
fn flat_and_nested_errors_keep_their_typed_error() {
    let nested = |code: &str| {
        serde_json::to_vec(&json!({"error": {"type": "x", "code": code, "message": "m"}})).unwrap()
    };
    let flat = |code: &str| serde_json::to_vec(&json!({"code": code, "message": "m"})).unwrap();
    let cases: Vec<(u16, &str)> = vec![
        (401, "BLUM-401-003"),
        (403, "BLUM-403-001"),
        (404, "BLUM-404-001"),
        (400, "BLUM-400-003"),
    ];
    let mut answers = Vec::new();
    for (status, code) in &cases {
        answers.push(Canned::json(*status, &nested(code)));
        answers.push(Canned::json(*status, &flat(code)));
    }
    let (url, _seen) = plain_server(answers);
    let client = plain_client(&url);
    for (status, code) in &cases {
        for shape in ["nested", "flat"] {
            let err = client.get_webhook("wh_1").unwrap_err();
            let kept = match (status, &err) {
                (401, ClientError::Unauthorized { code: c, .. })
                | (403, ClientError::InvestorScopedKey { code: c, .. })
                | (404, ClientError::NotFound { code: c, .. })
                | (400, ClientError::Invalid { code: c, .. }) => c == code,
                _ => false,
            };
            assert!(kept, "{status} {shape}: {err:?}");
        }
    }
}

#[test]
fn a_429_surfaces_as_rate_limited_carrying_the_wait() {
    let flat = br#"{"code": "BLUM-429-001", "message": "Rate limit exceeded"}"#;
    let (url, _seen) = plain_server(vec![
        Canned::json(429, flat).header("Retry-After", "7"),
        // An HTTP date already past: no wait.
        Canned::json(429, flat).header("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT"),
        // Far away, in either form: bounded at an hour.
        Canned::json(429, flat).header("Retry-After", "Fri, 01 Jan 9999 00:00:00 GMT"),
        Canned::json(429, flat).header("Retry-After", "99999999999999999999"),
        Canned::json(429, b"Too Many Requests"),
        Canned::json(429, flat).header("Retry-After", "soon"),
    ]);
    let client = plain_client(&url);
    let expected = [
        Some(Duration::from_secs(7)),
        Some(Duration::ZERO),
        Some(Duration::from_secs(3600)),
        Some(Duration::from_secs(3600)),
        None,
        None,
    ];
    for (n, wait) in expected.into_iter().enumerate() {
        let err = client.list_webhooks().unwrap_err();
        match &err {
            ClientError::RateLimited { retry_after, .. } => {
                assert_eq!(*retry_after, wait, "answer {n}: {err:?}");
            }
            other => panic!("answer {n}: {other:?}"),
        }
        assert_eq!(err.retry_after(), wait);
    }

    // The CLI says when to try again and exits 2 (try later), not 1.
    let (url, _seen) = plain_server(vec![Canned::json(429, flat).header("Retry-After", "7")]);
    let out = Command::new(emulator::binary())
        .args(["bluum", "webhooks", "list", "--base-url", &url])
        .env("BLUUM_API_KEY", TENANT_KEY)
        .env("BLUUM_API_SECRET", TENANT_SECRET)
        .env_remove("BLUUM_BASE_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("BLUM-429-001") && stderr.contains("retry after 7s"),
        "{stderr}"
    );
}

// --- the emulator's own errors ---------------------------------------------

#[test]
fn raw_uuid_ids_are_refused_with_400_as_bluums_conventions_say() {
    let (emulator, _store) = start("fidelity-raw-uuid");
    let patch = br#"{"status": "INACTIVE"}"#;
    for (method, path, body) in [
        ("GET", format!("/webhooks/{RAW_UUID}"), None),
        ("PATCH", format!("/webhooks/{RAW_UUID}"), Some(&patch[..])),
        ("DELETE", format!("/webhooks/{RAW_UUID}"), None),
        ("GET", format!("/_emulator/deliveries/{RAW_UUID}"), None),
        (
            "POST",
            format!("/_emulator/deliveries/{RAW_UUID}/replay"),
            None,
        ),
    ] {
        let (status, answer) = emulator.send(Auth::Tenant, method, &path, body);
        assert_eq!(status, 400, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], "BLUM-400-003", "{method} {path}");
        assert_eq!(answer["error"]["param"], "id", "{method} {path}");
    }
    // A prefixed id that matches nothing is still "not found".
    let (status, answer) = emulator.call("GET", "/webhooks/wh_0000000000000000", None);
    assert_eq!(
        (status, &answer["error"]["code"]),
        (404, &json!("BLUM-404-001"))
    );

    let err = Client::new(emulator.url(), TENANT_KEY, TENANT_SECRET)
        .get_webhook(RAW_UUID)
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Invalid { param: Some(p), code, .. } if p == "id" && code == "BLUM-400-003"),
        "{err:?}"
    );
}

/// What is wrong, who asks, the method, the path under `/v1`, the body.
type Probe<'a> = (&'a str, Auth<'a>, &'a str, String, Option<&'a [u8]>);

/// Every error the emulator can be made to send from outside (all but the
/// 500 of a failing disk): its code is `BLUM-{status}-NNN` with the status it
/// was sent with, and docs/BLUUM_API.md lists it.
#[test]
fn every_error_code_carries_its_status_and_is_documented() {
    let (emulator, _store) = start("fidelity-codes");
    let webhook = emulator.create_webhook("Orders", "http://127.0.0.1:9/", &["order.filled"]);
    let id = webhook["id"].as_str().unwrap().to_owned();
    let event = emulator.trigger("order.filled", json!({"id": "ord_1"}));
    let delivery = event["deliveries"][0]["id"].as_str().unwrap().to_owned();
    let huge = vec![b' '; (1 << 20) + 1];

    let tenant = Auth::Tenant;
    let investor = Auth::Investor;
    let requests: Vec<Probe<'_>> = vec![
        (
            "no Authorization",
            Auth::None,
            "GET",
            "/webhooks".into(),
            None,
        ),
        (
            "not Basic",
            Auth::Header("Bearer x"),
            "GET",
            "/webhooks".into(),
            None,
        ),
        (
            "wrong secret",
            Auth::Basic(TENANT_KEY, "nope"),
            "GET",
            "/webhooks".into(),
            None,
        ),
        ("investor key", investor, "GET", "/webhooks".into(), None),
        ("not JSON", tenant, "POST", "/webhooks".into(), Some(b"{")),
        (
            "no url",
            tenant,
            "POST",
            "/webhooks".into(),
            Some(br#"{"eventTypeNames":["order.filled"]}"#),
        ),
        (
            "bad url",
            tenant,
            "POST",
            "/webhooks".into(),
            Some(br#"{"url":"ftp://x","eventTypeNames":["order.filled"]}"#),
        ),
        (
            "unknown type",
            tenant,
            "POST",
            "/webhooks".into(),
            Some(br#"{"url":"https://x.test","eventTypeNames":["order.nope"]}"#),
        ),
        ("too large", tenant, "POST", "/webhooks".into(), Some(&huge)),
        (
            "no such webhook",
            tenant,
            "GET",
            "/webhooks/wh_0000000000000000".into(),
            None,
        ),
        (
            "raw UUID",
            tenant,
            "GET",
            format!("/webhooks/{RAW_UUID}"),
            None,
        ),
        ("no such route", tenant, "GET", "/nope".into(), None),
        (
            "wrong method",
            tenant,
            "PUT",
            format!("/webhooks/{id}"),
            Some(b"{}"),
        ),
        (
            "wrong method on a list",
            tenant,
            "DELETE",
            "/webhooks".into(),
            None,
        ),
        (
            "replay, not parked",
            tenant,
            "POST",
            format!("/_emulator/deliveries/{delivery}/replay"),
            None,
        ),
    ];
    let documented: Vec<&str> = DOCS
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("BLUM-"))
        .collect();
    for (what, auth, method, path, body) in requests {
        let (status, answer) = emulator.send(auth, method, &path, body);
        let code = answer["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: {status} {answer}"));
        assert!(
            code.len() == 12
                && code.starts_with(&format!("BLUM-{status}-"))
                && code[9..].bytes().all(|b| b.is_ascii_digit()),
            "{what}: {code} sent with HTTP {status}"
        );
        assert!(
            documented.contains(&code),
            "{what}: {code} is not listed in docs/BLUUM_API.md"
        );
        assert!(status < 500, "{what}: {status} {answer}");
    }
    // The codes the two fixes concern, explicitly.
    let (status, answer) = emulator.send(tenant, "POST", "/webhooks", Some(&huge));
    assert_eq!(
        (status, &answer["error"]["code"]),
        (400, &json!("BLUM-400-008"))
    );
    let (status, answer) = emulator.send(tenant, "PUT", "/webhooks", Some(b"{}"));
    assert_eq!(
        (status, &answer["error"]["code"]),
        (404, &json!("BLUM-404-002"))
    );
}
