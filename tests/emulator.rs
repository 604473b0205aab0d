//! The Bluum emulator (`webhook-inbox emulate`), run as a real process and
//! spoken to over real HTTP, against its contract in docs/BLUUM_API.md: Basic
//! auth with tenant and investor-scoped keys, validation, the webhook
//! resource, fan-out of signed deliveries that the library's own `Ingestor`
//! accepts, Bluum's retry ladder (scaled with `--time-scale`), timeouts,
//! parking and replay, and durability across SIGKILL.
//!
//! Every wait is a poll with a deadline; `--time-scale` keeps the ladder to
//! milliseconds.
#![cfg(feature = "cli")]

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TempDir;
use common::emulator::{
    Auth, Emulator, INVESTOR_KEY, INVESTOR_SECRET, Policy, RawOutcome, Receiver, TENANT_KEY,
    TENANT_SECRET, ingest_with, raw_exchange,
};
use serde_json::{Value, json};
use webhook_inbox::{IngestError, Ingested, bluum};

/// How long a delivery may take to arrive when nothing delays it.
const ARRIVE: Duration = Duration::from_secs(10);
/// How long to watch for a delivery that must not come.
const QUIET: Duration = Duration::from_millis(300);

/// Asserts `answer` is Bluum's error shape with this status, code and type;
/// returns the error object.
fn assert_error(what: &str, (status, answer): &(u16, Value), expected: (u16, &str, &str)) -> Value {
    let (want_status, code, kind) = expected;
    assert_eq!(*status, want_status, "{what}: status; answer {answer}");
    let error = &answer["error"];
    assert_eq!(error["code"], code, "{what}: code; answer {answer}");
    assert_eq!(error["type"], kind, "{what}: type; answer {answer}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: a message; answer {answer}"
    );
    error.clone()
}

fn webhook_body(name: &str, url: &str, event_types: &[&str]) -> Value {
    json!({"name": name, "url": url, "eventTypeNames": event_types})
}

fn list_webhooks(emulator: &Emulator) -> Vec<Value> {
    let (status, list) = emulator.call("GET", "/webhooks", None);
    assert_eq!(status, 200, "list webhooks: {list}");
    list["data"].as_array().expect("a data array").clone()
}

fn str_of<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is a string in {value}"))
}

/// `YYYY-MM-DDTHH:MM:SS…` followed by `Z` or an offset.
fn is_rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && matches!(b[10], b'T' | b't')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && (text.ends_with('Z') || text[19..].contains(['+', '-']))
}

fn unix_now() -> i64 {
    common::now()
}

/// Milliseconds since the Unix epoch of a UTC RFC 3339 time
/// (`YYYY-MM-DDTHH:MM:SS[.fff]Z`).
fn unix_millis(text: &str) -> i64 {
    assert!(
        is_rfc3339(text) && text.ends_with('Z'),
        "a UTC time: {text}"
    );
    let num = |range: std::ops::Range<usize>| -> i64 { text[range].parse().unwrap() };
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + num(11..13) * 3600 + num(14..16) * 60 + num(17..19);
    let fraction = &text[19..text.len() - 1];
    let millis = match fraction.strip_prefix('.') {
        Some(digits) => format!("{digits:0<3}")[..3].parse::<i64>().unwrap(),
        None => 0,
    };
    secs * 1000 + millis
}

/// Asserts `delivery` (one failed attempt so far, at `--time-scale 1`) has its
/// next attempt scheduled one minute after the first: Bluum's first rung.
fn assert_first_retry_in_a_minute(delivery: &Value) {
    let attempts = delivery["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "one attempt so far: {delivery}");
    let at = unix_millis(str_of(&attempts[0], "at"));
    let next = unix_millis(str_of(delivery, "next_attempt_at"));
    assert!(
        (60_000..70_000).contains(&(next - at)),
        "the 2nd attempt is due 1 min after the 1st (its end, so a little more): \
         {} ms; {delivery}",
        next - at
    );
    assert_eq!(delivery["delivered_at"], Value::Null, "{delivery}");
}

// ---------------------------------------------------------------------------
// Authentication

#[test]
fn tenant_keys_manage_webhooks_investor_keys_are_refused_on_every_route() {
    let store = TempDir::new("emu-auth");
    let config = TempDir::new("emu-auth-config");
    std::fs::create_dir_all(config.path()).unwrap();
    let config_file = config.path().join("keys.json");
    std::fs::write(
        &config_file,
        json!({
            "tenant_keys": [{"key": "bk_from_file_tenant", "secret": "file-tenant-secret"}],
            "investor_keys": [{"key": "bk_from_file_investor", "secret": "file-investor-secret"}]
        })
        .to_string(),
    )
    .unwrap();
    let emulator = Emulator::start(store.path(), &["--config", config_file.to_str().unwrap()]);
    let receiver = Receiver::start(Policy::Ok);

    let (status, list) = emulator.send(Auth::Tenant, "GET", "/webhooks", None);
    assert_eq!(status, 200, "the tenant key from --tenant-key: {list}");
    assert_eq!(list["object"], "list");
    let (status, list) = emulator.send(
        Auth::Basic("bk_from_file_tenant", "file-tenant-secret"),
        "GET",
        "/webhooks",
        None,
    );
    assert_eq!(status, 200, "the tenant key from --config: {list}");

    let webhook = emulator.create_webhook("Orders", receiver.url(), &["order.filled"]);
    let id = str_of(&webhook, "id");
    let item = format!("/webhooks/{id}");
    let create = serde_json::to_vec(&webhook_body("Nope", receiver.url(), &["order.*"])).unwrap();
    let patch = br#"{"name": "Renamed"}"#.to_vec();
    let trigger = br#"{"type": "order.filled", "data": {"id": "ord_1"}}"#.to_vec();
    let routes: [(&str, &str, Option<&[u8]>); 10] = [
        ("GET", "/webhooks", None),
        ("POST", "/webhooks", Some(&create)),
        ("GET", "/webhooks/event-types", None),
        ("GET", &item, None),
        ("PATCH", &item, Some(&patch)),
        ("DELETE", &item, None),
        ("POST", "/_emulator/events", Some(&trigger)),
        ("GET", "/_emulator/deliveries", None),
        ("GET", "/_emulator/deliveries/dlv_0000000000000000", None),
        (
            "POST",
            "/_emulator/deliveries/dlv_0000000000000000/replay",
            None,
        ),
    ];
    let investors = [
        (INVESTOR_KEY, INVESTOR_SECRET),
        ("bk_from_file_investor", "file-investor-secret"),
    ];
    for (method, path, body) in routes {
        for (key, secret) in investors {
            let what = format!("{method} {path} with investor key {key}");
            let answer = emulator.send(Auth::Basic(key, secret), method, path, body);
            let error = assert_error(&what, &answer, (403, "BLUM-403-001", "permission_error"));
            let message = error["message"].as_str().unwrap().to_lowercase();
            assert!(
                message.contains("tenant"),
                "{what}: the message points at a tenant-wide key: {message}"
            );
        }
    }
    // The refused PATCH, DELETE, POST changed nothing.
    let webhooks = list_webhooks(&emulator);
    assert_eq!(
        webhooks.len(),
        1,
        "the refused POST created nothing: {webhooks:?}"
    );
    assert_eq!(
        webhooks[0]["name"], "Orders",
        "the refused PATCH renamed nothing"
    );
    assert_eq!(receiver.count(), 0, "the refused trigger sent nothing");

    let unauthenticated = [
        ("no Authorization header", Auth::None, "BLUM-401-001"),
        ("a Bearer token", Auth::Header("Bearer abc"), "BLUM-401-002"),
        (
            "Basic, not base64",
            Auth::Header("Basic !!!not-base64!!!"),
            "BLUM-401-002",
        ),
        (
            "Basic without a colon",
            Auth::Header("Basic bm9jb2xvbg=="),
            "BLUM-401-002",
        ),
        ("garbage", Auth::Header("garbage"), "BLUM-401-002"),
        (
            "the wrong secret",
            Auth::Basic(TENANT_KEY, "wrong"),
            "BLUM-401-003",
        ),
        (
            "an unknown key",
            Auth::Basic("bk_unknown", TENANT_SECRET),
            "BLUM-401-003",
        ),
        (
            "the investor's secret with the tenant's key",
            Auth::Basic(TENANT_KEY, INVESTOR_SECRET),
            "BLUM-401-003",
        ),
    ];
    for (what, auth, code) in unauthenticated {
        for (method, path, body) in [
            ("GET", "/webhooks", None),
            ("POST", "/webhooks", Some(create.as_slice())),
            ("DELETE", item.as_str(), None),
        ] {
            let answer = emulator.send(auth, method, path, body);
            let what = format!("{method} {path} with {what}");
            assert_error(&what, &answer, (401, code, "authentication_error"));
        }
    }
    assert_eq!(list_webhooks(&emulator).len(), 1, "nothing changed");
}

// ---------------------------------------------------------------------------
// Validation

#[test]
fn invalid_webhooks_are_refused_with_the_offending_param_and_nothing_is_stored() {
    let store = TempDir::new("emu-validation");
    let emulator = Emulator::start(store.path(), &[]);
    let url = "http://127.0.0.1:9/webhooks/bluum";
    let existing = emulator.create_webhook("Existing", url, &["order.filled"]);
    let existing_id = str_of(&existing, "id").to_owned();
    let before = list_webhooks(&emulator);

    let post = |body: &[u8]| emulator.send(Auth::Tenant, "POST", "/webhooks", Some(body));
    let post_json = |body: Value| post(&serde_json::to_vec(&body).unwrap());
    let invalid = "invalid_request_error";

    // `events` is not Bluum's field name: refused, pointing at `eventTypeNames`.
    let answer = post_json(json!({"name": "Orders", "url": url, "events": ["order.filled"]}));
    let error = assert_error("events", &answer, (400, "BLUM-400-001", invalid));
    assert_eq!(error["param"], "events", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("eventTypeNames"),
        "the message points at eventTypeNames: {error}"
    );
    // Also when eventTypeNames is there too: an unknown field is refused.
    let answer = post_json(json!({"name": "Orders", "url": url,
        "eventTypeNames": ["order.filled"], "events": ["order.filled"]}));
    let error = assert_error(
        "events beside eventTypeNames",
        &answer,
        (400, "BLUM-400-001", invalid),
    );
    assert_eq!(error["param"], "events", "{error}");
    let answer = post_json(json!({"name": "Orders", "url": url,
        "eventTypeNames": ["order.filled"], "colour": "blue"}));
    let error = assert_error("an unknown field", &answer, (400, "BLUM-400-001", invalid));
    assert_eq!(error["param"], "colour", "{error}");

    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "missing eventTypeNames",
            json!({"name": "Orders", "url": url}),
            "BLUM-400-002",
            "eventTypeNames",
        ),
        (
            "empty eventTypeNames",
            json!({"name": "Orders", "url": url, "eventTypeNames": []}),
            "BLUM-400-003",
            "eventTypeNames",
        ),
        (
            "eventTypeNames not an array",
            json!({"name": "Orders", "url": url, "eventTypeNames": "order.filled"}),
            "BLUM-400-003",
            "eventTypeNames",
        ),
        (
            "an unknown event name",
            json!({"name": "Orders", "url": url, "eventTypeNames": ["order.exploded"]}),
            "BLUM-400-004",
            "eventTypeNames",
        ),
        (
            "one unknown name among known ones",
            json!({"name": "Orders", "url": url, "eventTypeNames": ["order.filled", "nope"]}),
            "BLUM-400-004",
            "eventTypeNames",
        ),
        (
            "a wildcard matching nothing",
            json!({"name": "Orders", "url": url, "eventTypeNames": ["nope.*"]}),
            "BLUM-400-004",
            "eventTypeNames",
        ),
        (
            "a bare *",
            json!({"name": "Orders", "url": url, "eventTypeNames": ["*"]}),
            "BLUM-400-004",
            "eventTypeNames",
        ),
        (
            "missing url",
            json!({"name": "Orders", "eventTypeNames": ["order.filled"]}),
            "BLUM-400-002",
            "url",
        ),
        (
            "a url that is not http(s)",
            json!({"name": "Orders", "url": "ftp://example.com/hook", "eventTypeNames": ["order.filled"]}),
            "BLUM-400-003",
            "url",
        ),
        (
            "a url that is not a url",
            json!({"name": "Orders", "url": "not a url", "eventTypeNames": ["order.filled"]}),
            "BLUM-400-003",
            "url",
        ),
        (
            "an empty name",
            json!({"name": "", "url": url, "eventTypeNames": ["order.filled"]}),
            "BLUM-400-003",
            "name",
        ),
    ];
    for (what, body, code, param) in cases {
        let answer = post_json(body);
        let error = assert_error(what, &answer, (400, code, invalid));
        assert_eq!(error["param"], param, "{what}: {error}");
    }

    for (what, body) in [
        ("not JSON", &b"name=Orders"[..]),
        ("truncated JSON", &br#"{"name": "Orders""#[..]),
        ("a JSON array", &br#"[{"name": "Orders"}]"#[..]),
        ("a JSON string", &br#""Orders""#[..]),
    ] {
        assert_error(what, &post(body), (400, "BLUM-400-001", invalid));
    }
    let mut huge = br#"{"name": "Orders", "url": "http://127.0.0.1:9/", "eventTypeNames": ["order.filled"], "description": ""#.to_vec();
    huge.extend(std::iter::repeat_n(b'x', 1 << 20));
    huge.extend(br#""}"#);
    assert_error(
        "a body over 1 MiB",
        &post(&huge),
        (400, "BLUM-400-008", invalid),
    );

    // PATCH validates the same way and needs at least one field.
    let item = format!("/webhooks/{existing_id}");
    let patch = |body: Value| {
        emulator.send(
            Auth::Tenant,
            "PATCH",
            &item,
            Some(&serde_json::to_vec(&body).unwrap()),
        )
    };
    let patches: Vec<(&str, Value, &str, &str)> = vec![
        (
            "PATCH status PAUSED",
            json!({"status": "PAUSED"}),
            "BLUM-400-004",
            "status",
        ),
        (
            "PATCH an empty eventTypeNames",
            json!({"eventTypeNames": []}),
            "BLUM-400-003",
            "eventTypeNames",
        ),
        (
            "PATCH an unknown name",
            json!({"eventTypeNames": ["nope.*"]}),
            "BLUM-400-004",
            "eventTypeNames",
        ),
        (
            "PATCH a bad url",
            json!({"url": "mailto:ops@example.com"}),
            "BLUM-400-003",
            "url",
        ),
        (
            "PATCH events",
            json!({"events": ["order.filled"]}),
            "BLUM-400-001",
            "events",
        ),
    ];
    for (what, body, code, param) in patches {
        let error = assert_error(what, &patch(body), (400, code, invalid));
        assert_eq!(error["param"], param, "{what}: {error}");
    }
    let (status, answer) = patch(json!({}));
    assert_eq!(status, 400, "PATCH with no field: {answer}");
    let (status, answer) = patch(json!({"name": "Renamed", "status": "PAUSED"}));
    assert_eq!(status, 400, "a PATCH with one bad field: {answer}");

    assert_eq!(
        list_webhooks(&emulator),
        before,
        "no refused request stored or changed anything"
    );

    // The wildcards that match catalog names are accepted, as written.
    for pattern in ["order.*", "transfer.*", "transfer.deposit.*"] {
        let webhook = emulator.create_webhook(pattern, url, &[pattern]);
        assert_eq!(webhook["event_type_names"], json!([pattern]));
    }
    let webhook =
        emulator.create_webhook("Mixed", url, &["order.filled", "kyc.*", "account.created"]);
    assert_eq!(
        webhook["event_type_names"],
        json!(["order.filled", "kyc.*", "account.created"])
    );
    assert_eq!(list_webhooks(&emulator).len(), before.len() + 4);
}

// ---------------------------------------------------------------------------
// The webhook resource

#[test]
fn webhooks_are_created_read_listed_updated_and_deleted() {
    let store = TempDir::new("emu-crud");
    let emulator = Emulator::start(store.path(), &[]);
    let url = "http://127.0.0.1:9/webhooks/bluum";

    let (status, created) = emulator.call(
        "POST",
        "/webhooks",
        Some(
            json!({"name": "Orders", "url": url, "eventTypeNames": ["order.filled"],
                    "description": "fills for the ledger"}),
        ),
    );
    assert_eq!(status, 201, "{created}");
    let id = str_of(&created, "id").to_owned();
    assert!(id.starts_with("wh_") && id.len() > 3, "a prefixed id: {id}");
    assert_eq!(created["object"], "webhook");
    assert_eq!(created["name"], "Orders");
    assert_eq!(created["url"], url);
    assert_eq!(created["description"], "fills for the ledger");
    assert_eq!(created["event_type_names"], json!(["order.filled"]));
    assert!(
        created.get("eventTypeNames").is_none(),
        "snake_case in responses: {created}"
    );
    assert_eq!(created["status"], "active");
    assert_eq!(created["livemode"], false);
    assert!(is_rfc3339(str_of(&created, "created_at")), "{created}");
    assert!(is_rfc3339(str_of(&created, "updated_at")), "{created}");
    let secret = str_of(&created, "secret");
    assert!(secret.starts_with("whsec_") && secret.len() > 6, "{secret}");

    let without_secret = {
        let mut w = created.clone();
        w.as_object_mut().unwrap().remove("secret");
        w
    };
    let (status, fetched) = emulator.call("GET", &format!("/webhooks/{id}"), None);
    assert_eq!(status, 200, "{fetched}");
    assert!(
        fetched.get("secret").is_none(),
        "GET never shows the secret: {fetched}"
    );
    assert_eq!(
        fetched, without_secret,
        "GET shows what POST returned, minus the secret"
    );

    let second = emulator.create_webhook("Transfers", url, &["transfer.*"]);
    assert_eq!(
        second["description"],
        Value::Null,
        "description defaults to null"
    );
    assert_ne!(second["id"], created["id"]);
    assert_ne!(
        second["secret"], created["secret"],
        "each webhook its own secret"
    );
    let (status, list) = emulator.call("GET", "/webhooks", None);
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["object"], "list");
    assert_eq!(list["url"], "/v1/webhooks");
    assert_eq!(list["has_more"], false);
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0], without_secret, "creation order, no secret");
    assert_eq!(data[1]["id"], second["id"]);
    assert!(
        data.iter().all(|w| w.get("secret").is_none()),
        "the list never shows secrets: {list}"
    );
    let (status, page) = emulator.call("GET", "/webhooks?limit=1", None);
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["has_more"], true, "{page}");
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["id"], created["id"]);
    let (status, page) = emulator.call("GET", "/webhooks?limit=1&offset=1", None);
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["has_more"], false, "{page}");
    assert_eq!(page["data"][0]["id"], second["id"]);
    for n in 2..=51 {
        emulator.create_webhook(&format!("Bulk {n}"), url, &["account.*"]);
    }
    let (status, page) = emulator.call("GET", "/webhooks", None);
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page["data"].as_array().unwrap().len(),
        50,
        "limit defaults to 50"
    );
    assert_eq!(page["has_more"], true);
    let (status, page) = emulator.call("GET", "/webhooks?limit=200&offset=50", None);
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page["data"].as_array().unwrap().len(),
        2,
        "52 webhooks: {page}"
    );
    assert_eq!(page["data"][1]["name"], "Bulk 51", "creation order");
    assert_eq!(page["has_more"], false);
    for bad in ["limit=0", "limit=201", "offset=-1", "limit=abc"] {
        let (status, answer) = emulator.call("GET", &format!("/webhooks?{bad}"), None);
        assert_eq!(status, 400, "GET /webhooks?{bad}: {answer}");
    }

    let item = format!("/webhooks/{id}");
    let patch = |body: Value| {
        let (status, webhook) = emulator.call("PATCH", &item, Some(body.clone()));
        assert_eq!(status, 200, "PATCH {body}: {webhook}");
        assert!(
            webhook.get("secret").is_none(),
            "PATCH never shows the secret: {webhook}"
        );
        webhook
    };
    let renamed = patch(json!({"name": "Fills"}));
    assert_eq!(renamed["name"], "Fills");
    assert_eq!(renamed["url"], url, "other fields unchanged");
    assert_eq!(renamed["created_at"], created["created_at"]);
    let moved = patch(json!({"url": "https://example.com/hooks/bluum"}));
    assert_eq!(moved["url"], "https://example.com/hooks/bluum");
    assert_eq!(moved["name"], "Fills");
    let widened = patch(json!({"eventTypeNames": ["order.*", "transfer.deposit.*"]}));
    assert_eq!(
        widened["event_type_names"],
        json!(["order.*", "transfer.deposit.*"])
    );
    let paused = patch(json!({"status": "INACTIVE"}));
    assert_eq!(paused["status"], "inactive");
    let resumed = patch(json!({"status": "active"}));
    assert_eq!(resumed["status"], "active", "either case is accepted");
    let paused = patch(json!({"status": "INACTIVE", "description": null}));
    assert_eq!(paused["status"], "inactive");
    assert_eq!(paused["description"], Value::Null);
    let (_, fetched) = emulator.call("GET", &item, None);
    assert_eq!(fetched, paused, "GET shows the PATCHed webhook");

    let (status, deleted) = emulator.call("DELETE", &item, None);
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        deleted,
        json!({"id": id, "object": "webhook", "deleted": true})
    );
    let not_found = (404, "BLUM-404-001", "not_found_error");
    assert_error(
        "GET after DELETE",
        &emulator.call("GET", &item, None),
        not_found,
    );
    assert_error(
        "DELETE twice",
        &emulator.call("DELETE", &item, None),
        not_found,
    );
    assert_error(
        "PATCH after DELETE",
        &emulator.call("PATCH", &item, Some(json!({"name": "x"}))),
        not_found,
    );
    assert_error(
        "an id that never existed",
        &emulator.call("GET", "/webhooks/wh_0000000000000000", None),
        not_found,
    );
    let (_, remaining) = emulator.call("GET", "/webhooks?limit=200", None);
    let remaining = remaining["data"].as_array().unwrap();
    assert_eq!(remaining.len(), 51, "52 created, 1 deleted");
    assert_eq!(remaining[0]["id"], second["id"], "the deleted one is gone");

    let no_route = (404, "BLUM-404-002", "not_found_error");
    assert_error(
        "GET /v1/nope",
        &emulator.call("GET", "/nope", None),
        no_route,
    );
    assert_error(
        "GET /v1/webhooks/{id}/nope",
        &emulator.call(
            "GET",
            &format!("/webhooks/{}/nope", second["id"].as_str().unwrap()),
            None,
        ),
        no_route,
    );
    let answer = request_outside_v1(&emulator, "/nope");
    assert_error("GET /nope", &answer, no_route);

    let (status, types) = emulator.call("GET", "/webhooks/event-types", None);
    assert_eq!(status, 200, "{types}");
    assert_eq!(types["object"], "list");
    assert_eq!(types["url"], "/v1/webhooks/event-types");
    assert_eq!(types["has_more"], false);
    let entries = types["data"].as_array().unwrap();
    assert_eq!(entries.len(), 16, "{types}");
    for (entry, expected) in entries.iter().zip(bluum::CATALOG) {
        assert_eq!(
            entry,
            &json!({"object": "event_type", "name": expected.name,
                    "category": expected.category(), "display_name": expected.display_name,
                    "description": expected.description}),
            "in the catalog's order"
        );
    }
}

fn request_outside_v1(emulator: &Emulator, path: &str) -> (u16, Value) {
    let url = format!("{}{path}", emulator.base());
    common::emulator::request(&common::emulator::agent(), Auth::Tenant, "GET", &url, None)
}

// ---------------------------------------------------------------------------
// Delivery

#[test]
fn an_event_goes_once_to_each_active_matching_webhook_signed_with_its_secret() {
    let store = TempDir::new("emu-fanout");
    let emulator = Emulator::start(store.path(), &[]);
    let receivers: Vec<Receiver> = (0..4).map(|_| Receiver::start(Policy::Ok)).collect();
    let [a, b, c, d] = [&receivers[0], &receivers[1], &receivers[2], &receivers[3]];
    let wa = emulator.create_webhook("A exact", a.url(), &["order.filled"]);
    let wb = emulator.create_webhook("B order.*", b.url(), &["order.*"]);
    let wc = emulator.create_webhook("C transfer.*", c.url(), &["transfer.*"]);
    let wd = emulator.create_webhook("D inactive", d.url(), &["order.*"]);
    let (status, paused) = emulator.call(
        "PATCH",
        &format!("/webhooks/{}", str_of(&wd, "id")),
        Some(json!({"status": "INACTIVE"})),
    );
    assert_eq!(
        (status, &paused["status"]),
        (200, &json!("inactive")),
        "{paused}"
    );
    for (receiver, webhook) in receivers.iter().zip([&wa, &wb, &wc, &wd]) {
        receiver.set_secret(str_of(webhook, "secret"));
    }

    let data = json!({"id": "ord_1", "investor_id": "inv_42", "symbol": "AAPL", "side": "buy",
                      "status": "filled", "filled_quantity": "10", "average_price": "189.4200",
                      "nested": {"list": [1, 2.5, null, true], "unicode": "é→✓"}});
    let sent = unix_now();
    let event = emulator.trigger("order.filled", data.clone());
    assert_eq!(event["object"], "event");
    assert_eq!(event["type"], "order.filled");
    let event_id = str_of(&event, "id").to_owned();
    assert!(
        event_id.starts_with("evt_") && event_id.len() > 4,
        "{event}"
    );
    let deliveries = event["deliveries"].as_array().unwrap();
    let mut targets: Vec<&str> = deliveries.iter().map(|d| str_of(d, "webhook_id")).collect();
    targets.sort_unstable();
    let mut expected = vec![str_of(&wa, "id"), str_of(&wb, "id")];
    expected.sort_unstable();
    assert_eq!(targets, expected, "A and B only: {event}");
    assert!(
        deliveries
            .iter()
            .all(|d| str_of(d, "id").starts_with("dlv_")),
        "{event}"
    );

    let got_a = a.wait_for(1, ARRIVE);
    let got_b = b.wait_for(1, ARRIVE);
    std::thread::sleep(QUIET);
    assert_eq!(a.count(), 1, "A got the event once");
    assert_eq!(b.count(), 1, "B got the event once");
    assert_eq!(c.count(), 0, "C is not subscribed to order.filled");
    assert_eq!(d.count(), 0, "D is inactive");

    for (name, got, own, other) in [("A", &got_a[0], &wa, &wb), ("B", &got_b[0], &wb, &wa)] {
        assert_eq!(
            (got.method.as_str(), got.path.as_str()),
            ("POST", "/webhooks/bluum")
        );
        assert_eq!(
            got.header("content-type"),
            Some("application/json"),
            "{name}"
        );
        let agent = got.header("user-agent").unwrap_or_default();
        assert!(
            agent.starts_with("webhook-inbox-emulator/"),
            "{name}: user-agent {agent:?}"
        );
        assert_eq!(got.header("webhook-id"), Some(event_id.as_str()), "{name}");
        let timestamp: i64 = got.header("webhook-timestamp").unwrap().parse().unwrap();
        assert!(
            (sent - 5..=unix_now() + 5).contains(&timestamp),
            "{name}: webhook-timestamp {timestamp} is the time of the attempt"
        );
        assert!(
            got.header("webhook-signature").unwrap().starts_with("v1,"),
            "{name}"
        );
        let body = got.json();
        assert_eq!(body["event"], "order.filled", "{name}: {body}");
        assert_eq!(body["data"], data, "{name}: the data as sent");
        assert!(is_rfc3339(str_of(&body, "timestamp")), "{name}: {body}");
        assert_eq!(
            body.as_object().unwrap().len(),
            3,
            "{name}: event, timestamp, data: {body}"
        );
        match got.assert_ingested() {
            Ingested::Accepted { id, .. } => assert_eq!(id, &event_id, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        let forged = ingest_with(str_of(other, "secret"), got);
        assert!(
            matches!(&forged, Err(IngestError::Rejected(e)) if e.status() == 401),
            "{name}'s delivery must fail with another webhook's secret: {forged:?}"
        );
        assert!(
            matches!(
                ingest_with(str_of(own, "secret"), got),
                Ok(Ingested::Accepted { .. })
            ),
            "{name}: a fresh ingestor with its own secret accepts it"
        );
    }
    assert_eq!(
        got_a[0].body, got_b[0].body,
        "the same event, the same bytes to every webhook"
    );

    for delivery in deliveries {
        let id = str_of(delivery, "id");
        let done = emulator.wait_state(id, "delivered", ARRIVE);
        assert_eq!(done["object"], "delivery");
        assert_eq!(done["event_id"], event_id.as_str());
        assert_eq!(done["event_type"], "order.filled");
        assert_eq!(done["webhook_id"], delivery["webhook_id"]);
        assert_eq!(done["next_attempt_at"], Value::Null, "{done}");
        let attempts = done["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{done}");
        assert_eq!(attempts[0]["attempt"], 1);
        assert_eq!(attempts[0]["status"], 200);
        assert_eq!(attempts[0]["error"], Value::Null);
    }
    let (status, list) = emulator.call(
        "GET",
        &format!("/_emulator/deliveries?webhook_id={}", str_of(&wa, "id")),
        None,
    );
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["object"], "list");
    let listed = list["data"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "one delivery to A: {list}");
    assert_eq!(listed[0]["webhook_id"], wa["id"]);
    let (status, list) = emulator.call("GET", "/_emulator/deliveries?state=delivered", None);
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["data"].as_array().unwrap().len(), 2, "{list}");

    // C does get transfer events (so its silence above meant something), and
    // an unknown type is refused with nothing sent.
    let transfer = emulator.trigger("transfer.deposit.completed", json!({"deposit_id": "dep_1"}));
    assert_eq!(
        transfer["deliveries"].as_array().unwrap().len(),
        1,
        "{transfer}"
    );
    let got_c = c.wait_for(1, ARRIVE);
    got_c[0].assert_ingested();
    assert_eq!(got_c[0].json()["event"], "transfer.deposit.completed");
    let (status, answer) = emulator.call(
        "POST",
        "/_emulator/events",
        Some(json!({"type": "order.exploded", "data": {}})),
    );
    assert_eq!(status, 400, "an unknown event type: {answer}");
    std::thread::sleep(QUIET);
    assert_eq!(
        [a.count(), b.count(), c.count(), d.count()],
        [1, 1, 1, 0],
        "nothing more"
    );
}

#[test]
fn failed_attempts_are_retried_on_the_scaled_ladder_with_the_same_bytes() {
    let store = TempDir::new("emu-retry");
    let emulator = Emulator::start(store.path(), &["--time-scale", "0.001"]);
    let receiver = Receiver::start(Policy::FailFirst(2));
    let webhook = emulator.create_webhook("Flaky", receiver.url(), &["order.*"]);
    receiver.set_secret(str_of(&webhook, "secret"));

    let event = emulator.trigger("order.canceled", json!({"id": "ord_7"}));
    let delivery_id = str_of(&event["deliveries"][0], "id").to_owned();
    let got = receiver.wait_for(3, ARRIVE);
    assert_eq!(got.len(), 3);
    assert_eq!(
        got.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    for attempt in &got {
        assert_eq!(attempt.body, got[0].body, "the same bytes on every attempt");
        assert_eq!(attempt.header("webhook-id"), Some(str_of(&event, "id")));
        attempt.assert_ingested();
    }
    let (first, second) = (got[1].at - got[0].at, got[2].at - got[1].at);
    assert!(
        first >= Duration::from_millis(60),
        "1 min × 0.001 = 60 ms before the 2nd attempt; waited {first:?}"
    );
    assert!(
        second >= Duration::from_millis(300),
        "5 min × 0.001 = 300 ms before the 3rd attempt; waited {second:?}"
    );
    eprintln!("waits between attempts: {first:?}, {second:?}");
    assert!(
        first < Duration::from_millis(60 + 1500) && second < Duration::from_millis(300 + 1500),
        "the waits follow the scaled ladder: {first:?}, {second:?}"
    );

    let done = emulator.wait_state(&delivery_id, "delivered", ARRIVE);
    let attempts = done["attempts"].as_array().unwrap();
    let statuses: Vec<&Value> = attempts.iter().map(|a| &a["status"]).collect();
    assert_eq!(statuses, [&json!(500), &json!(500), &json!(200)], "{done}");
    for (n, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt["attempt"], n + 1, "{done}");
        assert!(is_rfc3339(str_of(attempt, "at")), "{done}");
        assert!(attempt["duration_ms"].is_u64(), "{done}");
    }
    assert_eq!(attempts[0]["error"], "HTTP 500", "{done}");
    assert_eq!(attempts[1]["error"], "HTTP 500", "{done}");
    assert_eq!(attempts[2]["error"], Value::Null, "{done}");
    assert_eq!(done["next_attempt_at"], Value::Null, "{done}");
    receiver.assert_stays_at(3, QUIET);
}

#[test]
fn a_receiver_slower_than_the_timeout_is_a_failed_attempt() {
    let store = TempDir::new("emu-timeout");
    let emulator = Emulator::start(store.path(), &["--timeout", "200ms"]);
    let receiver = Receiver::start(Policy::Sleep(Duration::from_secs(1)));
    let webhook = emulator.create_webhook("Slow", receiver.url(), &["order.filled"]);
    let event = emulator.trigger("order.filled", json!({"id": "ord_slow"}));
    let delivery_id = str_of(&event["deliveries"][0], "id").to_owned();
    receiver.wait_for(1, ARRIVE);

    let failed = emulator.wait_delivery(&delivery_id, ARRIVE, |d| {
        d["state"] == "retrying" && d["next_attempt_at"].is_string()
    });
    let attempt = &failed["attempts"][0];
    assert_eq!(
        attempt["status"],
        Value::Null,
        "no answer in time: {failed}"
    );
    let error = attempt["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        error.contains("timed out") || error.contains("timeout"),
        "the error says it timed out: {failed}"
    );
    let took = attempt["duration_ms"].as_u64().unwrap();
    assert!(
        (200..1000).contains(&took),
        "the attempt ended at the 200 ms timeout, not the receiver's 1 s: {took} ms"
    );
    assert_first_retry_in_a_minute(&failed);
    assert_eq!(failed["webhook_id"], webhook["id"]);
    // Only a parked delivery can be replayed.
    let answer = emulator.call(
        "POST",
        &format!("/_emulator/deliveries/{delivery_id}/replay"),
        None,
    );
    assert_error(
        "replay while retrying",
        &answer,
        (409, "BLUM-409-001", "invalid_request_error"),
    );
}

#[test]
fn six_failed_attempts_park_a_delivery_and_replay_starts_it_again() {
    let store = TempDir::new("emu-park");
    let emulator = Emulator::start(store.path(), &["--time-scale", "0.0001"]);
    let receiver = Receiver::start(Policy::Status(500));
    let webhook = emulator.create_webhook("Down", receiver.url(), &["transfer.deposit.*"]);
    receiver.set_secret(str_of(&webhook, "secret"));
    let event = emulator.trigger("transfer.deposit.failed", json!({"deposit_id": "dep_9"}));
    let delivery_id = str_of(&event["deliveries"][0], "id").to_owned();

    // 6 ms + 30 ms + 180 ms + 720 ms + 2.88 s ≈ 3.8 s of waits.
    let started = Instant::now();
    let parked = emulator.wait_state(&delivery_id, "parked", Duration::from_secs(15));
    assert!(
        started.elapsed() >= Duration::from_millis(3000),
        "the scaled ladder takes about 3.8 s, parked after {:?}",
        started.elapsed()
    );
    let attempts = parked["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 6, "six attempts in all: {parked}");
    assert!(attempts.iter().all(|a| a["status"] == 500), "{parked}");
    assert_eq!(parked["next_attempt_at"], Value::Null, "{parked}");
    assert_eq!(receiver.count(), 6);
    receiver.assert_stays_at(6, QUIET);

    // A replay that keeps failing gets a fresh ladder: six more attempts.
    let replay = format!("/_emulator/deliveries/{delivery_id}/replay");
    let (status, answer) = emulator.call("POST", &replay, None);
    assert_eq!(status, 202, "replay a parked delivery: {answer}");
    let parked = emulator.wait_delivery(&delivery_id, Duration::from_secs(15), |d| {
        d["state"] == "parked" && d["attempts"].as_array().is_some_and(|a| a.len() == 12)
    });
    let numbers: Vec<&Value> = parked["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["attempt"])
        .collect();
    assert_eq!(
        numbers,
        (1..=12)
            .map(Value::from)
            .collect::<Vec<_>>()
            .iter()
            .collect::<Vec<_>>()
    );
    receiver.assert_stays_at(12, QUIET);

    receiver.set_policy(Policy::Ok);
    let (status, answer) = emulator.call("POST", &replay, None);
    assert_eq!(status, 202, "replay a parked delivery again: {answer}");
    let got = receiver.wait_for(13, ARRIVE);
    assert_eq!(got[12].body, got[0].body, "a replay sends the same bytes");
    assert_eq!(got[12].header("webhook-id"), got[0].header("webhook-id"));
    assert_eq!(got[12].answered, 200);
    got[12].assert_ingested();
    let delivered = emulator.wait_state(&delivery_id, "delivered", ARRIVE);
    let attempts = delivered["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 13, "the attempt log continues: {delivered}");
    assert_eq!(attempts[12]["attempt"], 13, "{delivered}");
    assert_eq!(attempts[12]["status"], 200, "{delivered}");

    let conflict = (409, "BLUM-409-001", "invalid_request_error");
    assert_error(
        "replay a delivered one",
        &emulator.call("POST", &replay, None),
        conflict,
    );
    assert_error(
        "replay an unknown delivery",
        &emulator.call(
            "POST",
            "/_emulator/deliveries/dlv_0000000000000000/replay",
            None,
        ),
        (404, "BLUM-404-001", "not_found_error"),
    );
    receiver.assert_stays_at(13, QUIET);
}

#[test]
fn an_unreachable_receiver_is_a_failed_attempt() {
    let store = TempDir::new("emu-refused");
    let emulator = Emulator::start(store.path(), &[]);
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{closed}/webhooks/bluum");
    emulator.create_webhook("Nobody home", &url, &["account.created"]);
    let event = emulator.trigger("account.created", json!({"account_id": "acc_1"}));
    let delivery_id = str_of(&event["deliveries"][0], "id");
    let failed = emulator.wait_delivery(delivery_id, ARRIVE, |d| {
        d["state"] == "retrying" && d["next_attempt_at"].is_string()
    });
    let attempt = &failed["attempts"][0];
    assert_eq!(attempt["status"], Value::Null, "{failed}");
    let error = attempt["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(error.contains("refused"), "connection refused: {failed}");
    assert_first_retry_in_a_minute(&failed);
}

#[test]
fn deleting_or_deactivating_a_webhook_parks_its_pending_deliveries() {
    let store = TempDir::new("emu-park-on-delete");
    // Retries 600 ms, then 3 s, after each failure: the change below lands
    // well before the 3rd attempt could.
    let emulator = Emulator::start(store.path(), &["--time-scale", "0.01"]);
    let deleted = Receiver::start(Policy::Status(500));
    let paused = Receiver::start(Policy::Status(500));
    let wd = emulator.create_webhook("To delete", deleted.url(), &["order.rejected"]);
    let wp = emulator.create_webhook("To pause", paused.url(), &["order.rejected"]);
    let event = emulator.trigger("order.rejected", json!({"id": "ord_r"}));
    let delivery_of = |webhook: &Value| {
        event["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["webhook_id"] == webhook["id"])
            .map(|d| str_of(d, "id").to_owned())
            .unwrap_or_else(|| panic!("a delivery to {}: {event}", webhook["id"]))
    };
    let (to_deleted, to_paused) = (delivery_of(&wd), delivery_of(&wp));
    deleted.wait_for(1, ARRIVE);
    paused.wait_for(1, ARRIVE);

    let (status, answer) =
        emulator.call("DELETE", &format!("/webhooks/{}", str_of(&wd, "id")), None);
    assert_eq!(status, 200, "{answer}");
    // Requests that reached the receiver by the time the change was answered;
    // one more may have been on its way then, none may start after it.
    let deleted_by_then = deleted.count();
    let (status, answer) = emulator.call(
        "PATCH",
        &format!("/webhooks/{}", str_of(&wp, "id")),
        Some(json!({"status": "INACTIVE"})),
    );
    assert_eq!(status, 200, "{answer}");
    let paused_by_then = paused.count();
    let parked = Duration::from_secs(10);
    let a = emulator.wait_state(&to_deleted, "parked", parked);
    let b = emulator.wait_state(&to_paused, "parked", parked);
    let (n_deleted, n_paused) = (deleted.count(), paused.count());
    assert!(
        n_deleted <= deleted_by_then + 1 && n_paused <= paused_by_then + 1,
        "no attempt starts after the change, one may be in flight: \
         deleted {deleted_by_then} → {n_deleted}, paused {paused_by_then} → {n_paused}"
    );
    for (delivery, sent) in [(&a, n_deleted), (&b, n_paused)] {
        assert_eq!(delivery["next_attempt_at"], Value::Null, "{delivery}");
        let attempts = delivery["attempts"].as_array().unwrap();
        let answered = attempts.iter().filter(|a| a["status"] == 500).count();
        assert_eq!(
            answered, sent,
            "every request the receiver got is in the log: {delivery}"
        );
        let last = attempts.last().unwrap();
        assert_eq!(
            last["status"],
            Value::Null,
            "the attempt that parked it sent nothing: {delivery}"
        );
        assert!(last["error"].is_string(), "and says why: {delivery}");
    }
    deleted.assert_stays_at(n_deleted, QUIET);
    paused.assert_stays_at(n_paused, Duration::ZERO);
    let fresh = emulator.trigger("order.rejected", json!({"id": "ord_r2"}));
    assert_eq!(
        fresh["deliveries"],
        json!([]),
        "nothing for either any more: {fresh}"
    );
}

// ---------------------------------------------------------------------------
// Durability

#[test]
fn webhooks_and_pending_deliveries_survive_sigkill_and_restart() {
    let store = TempDir::new("emu-restart");
    let down = Receiver::start(Policy::Status(503));
    let later = Receiver::start(Policy::Status(503));
    let mut emulator = Emulator::start(store.path(), &["--time-scale", "0.01"]);
    let webhook = emulator.create_webhook("Down for now", down.url(), &["order.filled"]);
    down.set_secret(str_of(&webhook, "secret"));
    let event = emulator.trigger("order.filled", json!({"id": "ord_restart"}));
    let delivery_id = str_of(&event["deliveries"][0], "id").to_owned();
    let retrying = emulator.wait_delivery(&delivery_id, ARRIVE, |d| {
        d["state"] == "retrying" && d["next_attempt_at"].is_string()
    });
    assert_eq!(retrying["attempts"][0]["status"], 503, "{retrying}");
    let before_kill = down.received();

    // Acknowledged just before the kill: must not be lost either.
    let last_webhook = emulator.create_webhook("Acknowledged", later.url(), &["kyc.*"]);
    later.set_secret(str_of(&last_webhook, "secret"));
    let last_event = emulator.trigger("kyc.verification.approved", json!({"investor_id": "inv_1"}));
    emulator.kill();
    let webhooks_before = {
        let mut ids = vec![webhook["id"].clone(), last_webhook["id"].clone()];
        ids.sort_by_key(ToString::to_string);
        ids
    };

    down.set_policy(Policy::Ok);
    later.set_policy(Policy::Ok);
    let emulator = Emulator::start(store.path(), &["--time-scale", "0.01"]);
    let mut listed: Vec<Value> = list_webhooks(&emulator)
        .iter()
        .map(|w| w["id"].clone())
        .collect();
    listed.sort_by_key(ToString::to_string);
    assert_eq!(
        listed, webhooks_before,
        "every created webhook is still there"
    );

    let got = down.wait_answered(200, Duration::from_secs(15));
    let arrived = got.iter().find(|r| r.answered == 200).unwrap();
    assert_eq!(
        arrived.body, before_kill[0].body,
        "the same bytes after the restart"
    );
    assert_eq!(
        arrived.header("webhook-id"),
        before_kill[0].header("webhook-id")
    );
    match arrived.assert_ingested() {
        Ingested::Duplicate { id } | Ingested::Accepted { id, .. } => {
            assert_eq!(id, str_of(&event, "id"));
        }
    }
    let delivered = emulator.wait_state(&delivery_id, "delivered", ARRIVE);
    let attempts = delivered["attempts"].as_array().unwrap();
    assert_eq!(attempts.last().unwrap()["status"], 200, "{delivered}");
    assert_eq!(
        attempts[0]["status"], 503,
        "the log from before the kill: {delivered}"
    );

    let got_later = later.wait_answered(200, Duration::from_secs(15));
    let arrived = got_later.iter().find(|r| r.answered == 200).unwrap();
    assert_eq!(
        arrived.header("webhook-id"),
        Some(str_of(&last_event, "id")),
        "the event acknowledged just before the kill"
    );
    arrived.assert_ingested();
    let last_delivery = str_of(&last_event["deliveries"][0], "id");
    emulator.wait_state(last_delivery, "delivered", ARRIVE);
}

#[test]
fn a_delivery_in_the_registry_but_lost_from_the_outbox_is_queued_again_at_start() {
    let store = TempDir::new("emu-requeue");
    let down = Receiver::start(Policy::Status(503));
    let done = Receiver::start(Policy::Ok);
    // Retries 600 ms, then 3 s, after each failure.
    let mut emulator = Emulator::start(store.path(), &["--time-scale", "0.01"]);
    let webhook = emulator.create_webhook("Down for now", down.url(), &["order.filled"]);
    down.set_secret(str_of(&webhook, "secret"));
    let finished = emulator.create_webhook("Already done", done.url(), &["account.created"]);
    done.set_secret(str_of(&finished, "secret"));
    // A delivery that completed before the crash must not be sent again.
    let earlier = emulator.trigger("account.created", json!({"account_id": "acc_done"}));
    emulator.wait_state(str_of(&earlier["deliveries"][0], "id"), "delivered", ARRIVE);
    assert_eq!(done.count(), 1);

    let event = emulator.trigger("order.filled", json!({"id": "ord_lost"}));
    let delivery_id = str_of(&event["deliveries"][0], "id").to_owned();
    let retrying = emulator.wait_state(&delivery_id, "retrying", ARRIVE);
    let logged_before: Vec<Value> = retrying["attempts"].as_array().unwrap().clone();
    assert!(
        !logged_before.is_empty() && logged_before.iter().all(|a| a["status"] == 503),
        "{retrying}"
    );
    emulator.kill();
    let first = down.received()[0].clone();

    // A crash after the registry write and before the outbox write: the
    // registry knows the delivery, the outbox holds nothing at all.
    let outbox = store.path().join("outbox");
    assert!(
        outbox.is_dir(),
        "the store holds outbox/: {:?}",
        std::fs::read_dir(store.path()).map(|d| d.count())
    );
    std::fs::remove_dir_all(&outbox).unwrap();
    assert!(store.path().join("registry").is_dir(), "registry/ is kept");

    down.set_policy(Policy::Ok);
    let emulator = Emulator::start(store.path(), &["--time-scale", "0.01"]);
    let got = down.wait_answered(200, Duration::from_secs(15));
    let arrived = got.iter().find(|r| r.answered == 200).unwrap();
    assert_eq!(arrived.body, first.body, "the same bytes after the restart");
    assert_eq!(
        arrived.header("webhook-id"),
        Some(str_of(&event, "id")),
        "webhook-id is the event id"
    );
    match arrived.assert_ingested() {
        Ingested::Duplicate { id } | Ingested::Accepted { id, .. } => {
            assert_eq!(id, str_of(&event, "id"));
        }
    }

    let delivered = emulator.wait_state(&delivery_id, "delivered", ARRIVE);
    assert!(delivered["delivered_at"].is_string(), "{delivered}");
    assert_eq!(delivered["next_attempt_at"], Value::Null, "{delivered}");
    let attempts = delivered["attempts"].as_array().unwrap();
    assert_eq!(
        attempts[..logged_before.len()],
        logged_before[..],
        "the attempts made before the kill are still logged: {delivered}"
    );
    let last = attempts.last().unwrap();
    assert_eq!(last["status"], 200, "{delivered}");
    assert_eq!(last["attempt"], attempts.len(), "{delivered}");
    assert!(
        attempts[..attempts.len() - 1]
            .iter()
            .all(|a| a["status"] == 503),
        "one success, after the failures: {delivered}"
    );

    let (status, list) = emulator.call("GET", "/_emulator/deliveries", None);
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        2,
        "re-queueing made no new delivery: {list}"
    );
    let n = down.count();
    down.assert_stays_at(n, QUIET);
    assert_eq!(
        got.iter().filter(|r| r.answered == 200).count(),
        1,
        "delivered once"
    );
    assert_eq!(done.count(), 1, "the delivered one is not sent again");
}

#[test]
fn sigterm_stops_the_emulator_even_with_a_request_body_that_never_comes() {
    let store = TempDir::new("emu-stalled-stop");
    let url = "http://127.0.0.1:9/webhooks/bluum";
    let mut emulator = Emulator::start(store.path(), &[]);
    let mut created: Vec<Value> = (0..2)
        .map(|n| emulator.create_webhook(&format!("Kept {n}"), url, &["order.*"])["id"].clone())
        .collect();

    // Headers promising 500 000 bytes, then 3 bytes, and the connection kept open.
    let mut stalled = std::net::TcpStream::connect(emulator.addr()).unwrap();
    stalled
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let head = format!(
        "POST /v1/webhooks HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nContent-Length: 500000\r\n\r\n{{\"n",
        emulator.addr(),
        common::emulator::basic(TENANT_KEY, TENANT_SECRET)
    );
    stalled.write_all(head.as_bytes()).unwrap();
    // And one that connected and sent nothing.
    let idle = std::net::TcpStream::connect(emulator.addr()).unwrap();
    // Let the emulator start reading the stalled request.
    std::thread::sleep(Duration::from_millis(300));

    let started = Instant::now();
    let status = emulator.signal("TERM", Duration::from_secs(10));
    assert!(
        status.success(),
        "SIGTERM is a clean shutdown: {status:?} after {:?}; stderr {}",
        started.elapsed(),
        emulator.stderr()
    );
    let answer =
        common::emulator::read_response(&mut stalled, Instant::now() + Duration::from_secs(2));
    assert!(
        !matches!(answer.status(), Some(200..=299)),
        "the truncated request created nothing: {answer:?}"
    );
    drop((stalled, idle));

    let emulator = Emulator::start(store.path(), &[]);
    let mut listed: Vec<Value> = list_webhooks(&emulator)
        .iter()
        .map(|w| w["id"].clone())
        .collect();
    listed.sort_by_key(ToString::to_string);
    created.sort_by_key(ToString::to_string);
    assert_eq!(listed, created, "the webhooks from before, and only those");
}

#[test]
fn sigterm_and_sigint_shut_down_cleanly_and_the_store_reopens() {
    let store = TempDir::new("emu-sigterm");
    let receiver = Receiver::start(Policy::Ok);
    let mut emulator = Emulator::start(store.path(), &[]);
    let webhook = emulator.create_webhook("Kept", receiver.url(), &["order.filled"]);
    receiver.set_secret(str_of(&webhook, "secret"));
    for (signal, n) in [("TERM", 1), ("INT", 2)] {
        let status = emulator.signal(signal, Duration::from_secs(10));
        assert!(
            status.success(),
            "SIG{signal} is a clean shutdown: {status:?}; stderr {}",
            emulator.stderr()
        );
        emulator = Emulator::start(store.path(), &[]);
        let webhooks = list_webhooks(&emulator);
        assert_eq!(webhooks.len(), 1, "after SIG{signal}");
        assert_eq!(webhooks[0]["id"], webhook["id"], "after SIG{signal}");
        emulator.trigger("order.filled", json!({"id": format!("ord_after_{signal}")}));
        receiver.wait_for(n, ARRIVE)[n - 1].assert_ingested();
    }
}

// ---------------------------------------------------------------------------
// Hostile clients, over raw TCP

/// How long a raw exchange may take.
const RAW: Duration = Duration::from_secs(5);

/// Request head (through the blank line) for `method target` with the tenant
/// key and `extra` header lines (each ending in CRLF).
fn raw_head(emulator: &Emulator, method: &str, target: &str, extra: &str) -> Vec<u8> {
    format!(
        "{method} {target} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n{extra}\r\n",
        emulator.addr(),
        common::emulator::basic(TENANT_KEY, TENANT_SECRET)
    )
    .into_bytes()
}

/// Asserts `outcome` is an answer with a status `allowed` accepts, or a
/// closed connection; never no answer at all.
fn assert_refused(what: &str, outcome: &RawOutcome, allowed: impl Fn(u16) -> bool) {
    match outcome {
        RawOutcome::Answered { status, .. } if allowed(*status) => {}
        RawOutcome::Closed(..) => {}
        other => panic!("{what}: expected a refusal or a closed connection, got {other:?}"),
    }
}

/// Stops `emulator` with SIGTERM and asserts a clean exit: a request that
/// brought it down after its answer (an abort still printing its backtrace
/// while the checks above ran) shows here.
fn assert_clean_exit(what: &str, mut emulator: Emulator) {
    let status = emulator.signal("TERM", Duration::from_secs(10));
    assert!(
        status.success(),
        "{what}: the emulator did not survive to a clean stop: {status:?}; stderr {}",
        emulator.stderr()
    );
}

/// Asserts the emulator process is alive and still answers the API.
fn assert_still_serving(what: &str, emulator: &mut Emulator, webhooks: usize) {
    assert!(
        emulator.is_running(),
        "{what}: the emulator died; stderr {}",
        emulator.stderr()
    );
    let (status, list) = emulator.call("GET", "/webhooks", None);
    assert_eq!(status, 200, "{what}: then GET /v1/webhooks: {list}");
    assert_eq!(
        list["data"].as_array().map(Vec::len),
        Some(webhooks),
        "{what}: nothing was created: {list}"
    );
}

#[test]
fn a_huge_content_length_is_refused_and_the_emulator_keeps_serving() {
    let store = TempDir::new("emu-huge-length");
    let mut emulator = Emulator::start(store.path(), &[]);
    emulator.create_webhook("Existing", "http://127.0.0.1:9/", &["order.filled"]);
    let request = raw_head(
        &emulator,
        "POST",
        "/v1/webhooks",
        "Content-Type: application/json\r\nContent-Length: 99999999999\r\n",
    );
    let outcome = raw_exchange(emulator.addr(), request, RAW);
    assert_refused("Content-Length: 99999999999, no body", &outcome, |s| {
        s == 400
    });
    if outcome.status().is_some() {
        let answer = (outcome.status().unwrap(), outcome.json());
        assert_error(
            "Content-Length: 99999999999",
            &answer,
            (400, "BLUM-400-008", "invalid_request_error"),
        );
    }
    assert_still_serving("after Content-Length: 99999999999", &mut emulator, 1);
    assert_clean_exit("after Content-Length: 99999999999", emulator);
}

#[test]
fn a_body_one_byte_over_1_mib_is_refused_and_the_emulator_keeps_serving() {
    let store = TempDir::new("emu-big-body");
    let mut emulator = Emulator::start(store.path(), &[]);
    let limit = 1 << 20;
    let mut body = br#"{"name": "Big", "url": "http://127.0.0.1:9/", "eventTypeNames": ["order.filled"], "description": ""#.to_vec();
    let pad = limit + 1 - body.len() - 2;
    body.extend(std::iter::repeat_n(b'x', pad));
    body.extend(br#""}"#);
    assert_eq!(body.len(), limit + 1);
    let mut request = raw_head(
        &emulator,
        "POST",
        "/v1/webhooks",
        &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ),
    );
    request.extend(&body);
    let outcome = raw_exchange(emulator.addr(), request, RAW);
    let answer = (outcome.status().unwrap_or(0), outcome.json());
    assert_error(
        &format!("a body of 1 MiB + 1 byte: {outcome:?}"),
        &answer,
        (400, "BLUM-400-008", "invalid_request_error"),
    );
    assert_still_serving("after 1 MiB + 1 byte", &mut emulator, 0);
    assert_clean_exit("after 1 MiB + 1 byte", emulator);
}

#[test]
fn a_64_kib_path_or_10000_headers_are_refused_and_the_emulator_keeps_serving() {
    let store = TempDir::new("emu-huge-head");
    let mut emulator = Emulator::start(store.path(), &[]);

    let path = format!("/v1/webhooks/wh_{}", "a".repeat(64 * 1024));
    let outcome = raw_exchange(emulator.addr(), raw_head(&emulator, "GET", &path, ""), RAW);
    assert_refused("a 64 KiB path", &outcome, |s| (400..500).contains(&s));
    assert_still_serving("after a 64 KiB path", &mut emulator, 0);

    let headers: String = (0..10_000).map(|n| format!("X-Pad-{n}: {n}\r\n")).collect();
    let outcome = raw_exchange(
        emulator.addr(),
        raw_head(&emulator, "GET", "/v1/webhooks", &headers),
        RAW,
    );
    assert_refused("10 000 headers", &outcome, |s| (400..500).contains(&s));
    assert_still_serving("after 10 000 headers", &mut emulator, 0);
    assert_clean_exit("after a 64 KiB path and 10 000 headers", emulator);
}

// ---------------------------------------------------------------------------
// `webhook-inbox trigger`

#[test]
fn the_trigger_command_makes_the_emulator_deliver() {
    let store = TempDir::new("emu-trigger-cli");
    let emulator = Emulator::start(store.path(), &[]);
    let receiver = Receiver::start(Policy::Ok);
    let webhook = emulator.create_webhook("CLI", receiver.url(), &["order.filled"]);
    receiver.set_secret(str_of(&webhook, "secret"));

    let trigger = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_webhook-inbox"));
        command
            .arg("trigger")
            .args(args)
            .env_remove("BLUUM_API_KEY")
            .env_remove("BLUUM_API_SECRET")
            .env_remove("BLUUM_BASE_URL")
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        command.output().expect("run webhook-inbox trigger")
    };
    let keys = [
        ("BLUUM_API_KEY", TENANT_KEY),
        ("BLUUM_API_SECRET", TENANT_SECRET),
    ];

    let url = emulator.url();
    let out = trigger(
        &[
            "order.filled",
            "--data",
            r#"{"id": "ord_cli", "qty": 3}"#,
            "--url",
            &url,
        ],
        &keys,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("evt_"), "prints the event id: {stdout}");
    let got = receiver.wait_for(1, ARRIVE);
    got[0].assert_ingested();
    assert_eq!(got[0].json()["data"], json!({"id": "ord_cli", "qty": 3}));
    assert!(
        stdout.contains(got[0].header("webhook-id").unwrap()),
        "{stdout}"
    );

    let with_env = [keys[0], keys[1], ("BLUUM_BASE_URL", url.as_str())];
    let out = trigger(
        &["order.filled", "--data", r#"{"id": "ord_env"}"#],
        &with_env,
    );
    assert!(out.status.success(), "BLUUM_BASE_URL: {out:?}");
    assert_eq!(
        receiver.wait_for(2, ARRIVE)[1].json()["data"]["id"],
        "ord_env"
    );

    let out = trigger(&["order.filled", "--url", &url], &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no key in the environment: {out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("BLUUM_API_KEY"),
        "{out:?}"
    );
    let wrong = [("BLUUM_API_KEY", TENANT_KEY), ("BLUUM_API_SECRET", "wrong")];
    let out = trigger(&["order.filled", "--url", &url], &wrong);
    assert!(!out.status.success(), "a wrong secret: {out:?}");
    let out = trigger(&["order.filled", "--url", &url, "--data", "[1]"], &keys);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--data must be an object: {out:?}"
    );
    receiver.assert_stays_at(2, QUIET);
}
