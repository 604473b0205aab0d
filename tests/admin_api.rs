//! The admin API over real HTTP (feature `admin`): authentication, read-only
//! mode, same-origin and CSRF checks, security headers, filters and paging,
//! replay and purge with their bounds, and redaction.
#![cfg(feature = "admin")]

mod admin_support;
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use admin_support::{
    Served, bluum, call, dead_count, deliver, envelope, state_of, wait_for, worker,
};
use base64::Engine as _;
use common::TempDir;
use webhook_inbox::admin::{Admin, Auth, CONTENT_SECURITY_POLICY};
use webhook_inbox::{EventState, Inbox};

const TOKEN: &str = "test-admin-token-0123456789";

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// The CSRF token, as the CLI fetches it.
fn csrf(s: &Served) -> String {
    let a = call(
        "GET",
        &format!("{}/api/csrf", s.base),
        &[("authorization", &bearer())],
        None,
    );
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()["csrf"].as_str().unwrap().to_owned()
}

fn post_json(
    s: &Served,
    path: &str,
    token: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> admin_support::Answer {
    let auth = bearer();
    let mut headers = vec![("authorization", auth.as_str()), ("x-csrf-token", token)];
    headers.extend_from_slice(extra);
    call(
        "POST",
        &format!("{}{path}", s.base),
        &headers,
        Some(("application/json", body.as_bytes())),
    )
}

#[test]
fn every_route_needs_the_credentials_and_says_how_to_give_them() {
    let dir = TempDir::new("admin-auth");
    let inbox = Inbox::open(dir.path()).unwrap();
    let s = Served::start(&inbox, Admin::new(Auth::token(TOKEN).unwrap()));
    for path in [
        "",
        "/events",
        "/event?id=x",
        "/metrics",
        "/api/stats",
        "/api/events",
        "/api/csrf",
        "/assets/admin.css",
    ] {
        let url = format!("{}{path}", s.base);
        let none = call("GET", &url, &[], None);
        assert_eq!(none.status, 401, "{path} without credentials");
        assert!(
            none.header("www-authenticate")
                .unwrap()
                .starts_with("Basic realm="),
            "{path}"
        );
        assert!(
            !none.body.contains("pending"),
            "{path} leaked: {}",
            none.body
        );
        for wrong in [
            "Bearer test-admin-token-012345678".to_owned(), // a prefix of the token
            format!("Bearer {TOKEN}x"),
            "Bearer ".to_owned(),
            basic("ops", "nope"),
            "Basic !!!not-base64".to_owned(),
            TOKEN.to_owned(),
        ] {
            assert_eq!(
                call("GET", &url, &[("authorization", &wrong)], None).status,
                401,
                "{path} with {wrong}"
            );
        }
        assert_eq!(
            call("GET", &url, &[("authorization", &bearer())], None).status,
            if path.starts_with("/event?") {
                404
            } else {
                200
            },
            "{path}"
        );
        // A browser's Basic prompt: any user name, the token as password.
        assert_ne!(
            call(
                "GET",
                &url,
                &[("authorization", &basic("anyone", TOKEN))],
                None
            )
            .status,
            401,
            "{path}"
        );
    }
    drop(s);

    let s = Served::start(
        &inbox,
        Admin::new(Auth::basic("ops", "correct horse battery").unwrap()),
    );
    let url = format!("{}/api/stats", s.base);
    assert_eq!(
        call(
            "GET",
            &url,
            &[("authorization", &basic("ops", "correct horse battery"))],
            None
        )
        .status,
        200
    );
    assert_eq!(
        call(
            "GET",
            &url,
            &[("authorization", &basic("root", "correct horse battery"))],
            None
        )
        .status,
        401
    );
    assert_eq!(
        call(
            "GET",
            &url,
            &[("authorization", &basic("ops", "correct horse batter"))],
            None
        )
        .status,
        401
    );
    drop(s);

    // The host application's own check.
    let s = Served::start(
        &inbox,
        Admin::new(Auth::callback(|req| {
            req.headers.get("x-role").is_some_and(|r| r == "ops")
        })),
    );
    let url = format!("{}/api/stats", s.base);
    assert_eq!(call("GET", &url, &[("x-role", "ops")], None).status, 200);
    assert_eq!(call("GET", &url, &[("x-role", "guest")], None).status, 401);
    drop(s);

    // No credentials: loopback peers only, and refused when the peer is unknown.
    let s = Served::start(&inbox, Admin::new(Auth::loopback_only()));
    assert_eq!(
        call("GET", &format!("{}/api/stats", s.base), &[], None).status,
        200
    );
    drop(s);
    let s = Served::start_with(&inbox, Admin::new(Auth::loopback_only()), false);
    assert_eq!(
        call("GET", &format!("{}/api/stats", s.base), &[], None).status,
        403
    );
    drop(s);
    assert!(Auth::token("short").is_err() && Auth::basic("ops", "short").is_err());
    assert!(
        webhook_inbox::admin::check_bind(&Auth::loopback_only(), "0.0.0.0:8080".parse().unwrap())
            .is_err()
    );
    assert!(
        webhook_inbox::admin::check_bind(&Auth::loopback_only(), "[::1]:8080".parse().unwrap())
            .is_ok()
    );
    assert!(
        webhook_inbox::admin::check_bind(
            &Auth::token(TOKEN).unwrap(),
            "0.0.0.0:8080".parse().unwrap()
        )
        .is_ok()
    );
}

#[test]
fn responses_carry_the_security_headers_even_refusals() {
    let dir = TempDir::new("admin-headers");
    let inbox = Inbox::open(dir.path()).unwrap();
    let s = Served::start(&inbox, Admin::new(Auth::token(TOKEN).unwrap()));
    for (path, auth) in [
        ("", true),
        ("/api/stats", true),
        ("/event?id=none", true),
        ("/nowhere", true),
        ("", false),
        ("/nowhere", false),
    ] {
        let b = bearer();
        let mut h: Vec<(&str, &str)> = Vec::new();
        if auth {
            h.push(("authorization", &b));
        }
        let a = call("GET", &format!("{}{path}", s.base), &h, None);
        assert_eq!(
            a.header("content-security-policy"),
            Some(CONTENT_SECURITY_POLICY),
            "{path}"
        );
        assert_eq!(a.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(a.header("cache-control"), Some("no-store"), "{path}");
        assert_eq!(
            a.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
    }
    assert!(
        !CONTENT_SECURITY_POLICY.contains("script-src")
            && CONTENT_SECURITY_POLICY.contains("default-src 'none'")
    );
}

#[test]
fn mutations_need_post_the_same_origin_and_the_csrf_token() {
    let dir = TempDir::new("admin-csrf");
    let inbox = Inbox::open(dir.path()).unwrap();
    let failing = Arc::new(AtomicBool::new(true));
    let w = worker(&inbox, Arc::clone(&failing));
    let ingest = bluum(&inbox);
    deliver(&ingest, "evt_csrf", &envelope("order.filled", 1));
    wait_for("a dead letter", || dead_count(&inbox) == 1);
    let s = Served::start(&inbox, Admin::new(Auth::token(TOKEN).unwrap()));
    let token = csrf(&s);
    let body = r#"{"id":"evt_csrf"}"#;
    let host = s.host();
    let same = format!("http://{host}");

    let refused = [
        post_json(&s, "/api/replay", "", &[], body),
        post_json(&s, "/api/replay", "0000", &[], body),
        post_json(
            &s,
            "/api/replay",
            &token,
            &[("sec-fetch-site", "cross-site")],
            body,
        ),
        post_json(
            &s,
            "/api/replay",
            &token,
            &[("sec-fetch-site", "same-site")],
            body,
        ),
        post_json(
            &s,
            "/api/replay",
            &token,
            &[("origin", "http://evil.example")],
            body,
        ),
        post_json(&s, "/api/replay", &token, &[("origin", "null")], body),
        post_json(
            &s,
            "/api/replay",
            &token,
            &[("origin", &format!("http://{host}.evil.example"))],
            body,
        ),
    ];
    for (i, a) in refused.iter().enumerate() {
        assert_eq!(a.status, 403, "case {i}: {}", a.body);
        assert!(a.json()["error"].is_string());
    }
    // The form route checks the same.
    let form = "csrf=wrong&id=evt_csrf";
    let a = call(
        "POST",
        &format!("{}/actions/replay", s.base),
        &[("authorization", &bearer())],
        Some(("application/x-www-form-urlencoded", form.as_bytes())),
    );
    assert_eq!(a.status, 403);
    let a = call(
        "POST",
        &format!("{}/actions/replay", s.base),
        &[
            ("authorization", &bearer()),
            ("origin", "http://evil.example"),
        ],
        Some((
            "application/x-www-form-urlencoded",
            format!("csrf={token}&id=evt_csrf").as_bytes(),
        )),
    );
    assert_eq!(a.status, 403);
    // GET never changes anything.
    assert_eq!(
        call(
            "GET",
            &format!("{}/api/replay", s.base),
            &[("authorization", &bearer())],
            None
        )
        .status,
        405
    );
    assert_eq!(
        call(
            "GET",
            &format!("{}/actions/replay?csrf={token}&id=evt_csrf", s.base),
            &[("authorization", &bearer())],
            None
        )
        .status,
        405
    );
    assert_eq!(
        state_of(&inbox, "evt_csrf"),
        Some(EventState::Dead),
        "nothing refused was done"
    );

    // Same origin, with the token: done.
    failing.store(false, Ordering::SeqCst);
    let a = post_json(
        &s,
        "/api/replay",
        &token,
        &[("origin", &same), ("sec-fetch-site", "same-origin")],
        body,
    );
    assert_eq!(
        (a.status, a.json()["replayed"].as_u64()),
        (200, Some(1)),
        "{}",
        a.body
    );
    wait_for("the replayed event to be handled", || {
        state_of(&inbox, "evt_csrf").is_none()
    });
    drop(w);
}

#[test]
fn read_only_refuses_every_mutation_and_hides_the_buttons() {
    let dir = TempDir::new("admin-ro");
    let inbox = Inbox::open(dir.path()).unwrap();
    let w = worker(&inbox, Arc::new(AtomicBool::new(true)));
    let ingest = bluum(&inbox);
    deliver(&ingest, "evt_ro", &envelope("order.filled", 1));
    wait_for("a dead letter", || dead_count(&inbox) == 1);
    let s = Served::start(
        &inbox,
        Admin::new(Auth::token(TOKEN).unwrap()).read_only(true),
    );
    let token = csrf(&s);
    for (path, body) in [
        ("/api/replay", r#"{"id":"evt_ro"}"#),
        ("/api/purge", r#"{"all_dead":true}"#),
    ] {
        let a = post_json(&s, path, &token, &[], body);
        assert_eq!(a.status, 403, "{path}: {}", a.body);
        assert!(a.body.contains("read-only"));
    }
    let form = format!("csrf={token}&id=evt_ro");
    let a = call(
        "POST",
        &format!("{}/actions/purge", s.base),
        &[("authorization", &bearer())],
        Some(("application/x-www-form-urlencoded", form.as_bytes())),
    );
    assert_eq!(a.status, 403);
    let page = call(
        "GET",
        &format!("{}/event?id=evt_ro", s.base),
        &[("authorization", &bearer())],
        None,
    );
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("read-only")
            && !page.body.contains("<form")
            && !page.body.contains("Replay"),
        "{}",
        page.body
    );
    let list = call(
        "GET",
        &format!("{}/events?state=dead", s.base),
        &[("authorization", &bearer())],
        None,
    );
    assert!(!list.body.contains("method=\"post\""));
    assert_eq!(state_of(&inbox, "evt_ro"), Some(EventState::Dead));
    drop(w);
}

#[test]
fn lists_filter_and_page_like_the_cli() {
    let dir = TempDir::new("admin-list");
    let inbox = Inbox::open(dir.path()).unwrap();
    let ingest = bluum(&inbox);
    let other = inbox
        .ingestor(
            webhook_inbox::Verifier::new(webhook_inbox::Scheme::bluum(), [common::SECRET]).unwrap(),
        )
        .source("bluum-eu")
        .build()
        .unwrap();
    for n in 0..5 {
        deliver(&ingest, &format!("evt_o{n}"), &envelope("order.filled", n));
    }
    deliver(
        &ingest,
        "evt_t0",
        &envelope("transfer.deposit.completed", 9),
    );
    deliver(&other, "evt_eu", &envelope("order.filled", 10));
    let s = Served::start(&inbox, Admin::new(Auth::token(TOKEN).unwrap()));
    let get = |q: &str| {
        call(
            "GET",
            &format!("{}/api/events?{q}", s.base),
            &[("authorization", &bearer())],
            None,
        )
    };

    // Paging: 3 + 3 + 1, in acceptance order, each page saying where the next starts.
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let a = get(&format!("limit=3{after}"));
        assert_eq!(a.status, 200, "{}", a.body);
        let v = a.json();
        for e in v["events"].as_array().unwrap() {
            seen.push(e["id"].as_str().unwrap().to_owned());
            assert!(e.get("body").is_none(), "lists carry no bodies");
        }
        match v["next"].as_u64() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "evt_o0", "evt_o1", "evt_o2", "evt_o3", "evt_o4", "evt_t0", "evt_eu"
        ]
    );

    let ids = |q: &str| -> Vec<String> {
        let a = get(q);
        assert_eq!(a.status, 200, "{q}: {}", a.body);
        a.json()["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids("type=transfer.*"), ["evt_t0"]);
    assert_eq!(ids("source=bluum-eu"), ["evt_eu"]);
    assert_eq!(ids("id=evt_o3"), ["evt_o3"]);
    assert_eq!(ids("id=evt_o3&state=dead"), Vec::<String>::new());
    assert_eq!(ids("state=pending&type=order.filled&source=bluum").len(), 5);
    assert_eq!(
        ids("since=2000-01-01T00:00Z&until=2999-01-01T00:00").len(),
        7
    );
    assert_eq!(ids("until=2000-01-01T00:00:00Z").len(), 0);
    assert_eq!(ids("state=dead").len(), 0);
    for bad in [
        "state=done",
        "limit=0",
        "limit=501",
        "since=yesterday",
        "after=-1",
    ] {
        let a = get(bad);
        assert_eq!(a.status, 400, "{bad}");
        assert!(a.json()["error"].is_string());
    }
    // One event, in full; the stats.
    let one = call(
        "GET",
        &format!("{}/api/event?id=evt_t0", s.base),
        &[("authorization", &bearer())],
        None,
    )
    .json();
    assert_eq!(one["type"], "transfer.deposit.completed");
    assert_eq!(one["body_encoding"], "utf-8");
    assert!(one["body"].as_str().unwrap().contains("ord_9"));
    let stats = call(
        "GET",
        &format!("{}/api/stats", s.base),
        &[("authorization", &bearer())],
        None,
    )
    .json();
    assert_eq!(
        (
            stats["pending"].as_u64(),
            stats["accepted"].as_u64(),
            stats["dead"].as_u64()
        ),
        (Some(7), Some(7), Some(0))
    );
    assert!(stats["oldest_pending_age_secs"].as_f64().is_some());
}

#[test]
fn replay_and_purge_by_id_list_and_filter_within_their_bounds() {
    let dir = TempDir::new("admin-bulk");
    let inbox = Inbox::open(dir.path()).unwrap();
    let failing = Arc::new(AtomicBool::new(true));
    let w = worker(&inbox, Arc::clone(&failing));
    let ingest = bluum(&inbox);
    for n in 0..6 {
        deliver(&ingest, &format!("evt_a{n}"), &envelope("order.filled", n));
    }
    for n in 0..3 {
        deliver(&ingest, &format!("evt_b{n}"), &envelope("always.fails", n));
    }
    wait_for("nine dead letters", || dead_count(&inbox) == 9);
    let s = Served::start(
        &inbox,
        Admin::new(Auth::token(TOKEN).unwrap()).bulk_limit(4),
    );
    let token = csrf(&s);
    let post = |path: &str, body: &str| post_json(&s, path, &token, &[], body);

    // Malformed selections are refused and change nothing.
    for bad in [
        r#"{}"#,
        r#"{"id":"evt_a0","all_dead":true}"#,
        r#"{"ids":[]}"#,
        r#"{"bogus":1}"#,
        "not json",
        r#"{"older_than_secs":5,"id":"evt_a0"}"#,
    ] {
        let a = post("/api/replay", bad);
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
    }
    let too_many: Vec<String> = (0..101).map(|n| format!("\"x{n}\"")).collect();
    assert_eq!(
        post(
            "/api/replay",
            &format!(r#"{{"ids":[{}]}}"#, too_many.join(","))
        )
        .status,
        400
    );
    let a = call(
        "POST",
        &format!("{}/api/replay", s.base),
        &[("authorization", &bearer()), ("x-csrf-token", &token)],
        Some(("text/plain", br#"{"id":"evt_a0"}"#)),
    );
    assert_eq!(a.status, 415);
    assert_eq!(dead_count(&inbox), 9);

    failing.store(false, Ordering::SeqCst);
    // One id; an unknown id touches nothing.
    assert_eq!(
        post("/api/replay", r#"{"id":"evt_a0"}"#).json()["replayed"],
        1
    );
    assert_eq!(
        post("/api/replay", r#"{"id":"evt_nope"}"#).json()["replayed"],
        0
    );
    // A list.
    assert_eq!(
        post("/api/replay", r#"{"ids":["evt_a1","evt_a2","evt_nope"]}"#).json()["replayed"],
        2
    );
    wait_for("three handled", || dead_count(&inbox) == 6);
    // A filter: bounded by the limit (4), saying there may be more.
    let first = post(
        "/api/replay",
        r#"{"filter":{"type":"order.*","source":"bluum"}}"#,
    )
    .json();
    assert_eq!(
        (first["replayed"].as_u64(), first["more"].as_bool()),
        (Some(3), Some(false)),
        "{first}"
    );
    wait_for("the order events handled", || dead_count(&inbox) == 3);
    // The `always.*` ones fail again; bulk purge of all, 4 at most per call.
    for n in 3..6 {
        deliver(&ingest, &format!("evt_b{n}"), &envelope("always.fails", n));
    }
    wait_for("six dead letters", || dead_count(&inbox) == 6);
    let a = post("/api/purge", r#"{"all_dead":true,"older_than_secs":3600}"#).json();
    assert_eq!(a["purged"], 0, "none is an hour old");
    let a = post("/api/purge", r#"{"all_dead":true}"#).json();
    assert_eq!(
        (a["purged"].as_u64(), a["more"].as_bool()),
        (Some(4), Some(true)),
        "{a}"
    );
    let a = post("/api/purge", r#"{"type":"always.*"}"#).json();
    assert_eq!(
        (a["purged"].as_u64(), a["more"].as_bool()),
        (Some(2), Some(false)),
        "{a}"
    );
    assert_eq!(dead_count(&inbox), 0);
    // Purging by id.
    deliver(&ingest, "evt_b9", &envelope("always.fails", 9));
    wait_for("a dead letter", || dead_count(&inbox) == 1);
    assert_eq!(post("/api/purge", r#"{"id":"evt_b9"}"#).json()["purged"], 1);
    assert_eq!(state_of(&inbox, "evt_b9"), None);
    drop(w);
}

#[test]
fn credential_headers_are_redacted_in_the_api_and_the_page() {
    let dir = TempDir::new("admin-redact");
    let inbox = Inbox::open(dir.path()).unwrap();
    let ingest = bluum(&inbox);
    let body = envelope("order.filled", 1);
    let headers = common::bluum_headers("evt_r", &body);
    let signature = headers
        .iter()
        .find(|(n, _)| n == "webhook-signature")
        .unwrap()
        .1
        .clone();
    assert!(matches!(
        ingest.ingest(&headers, &body),
        Ok(webhook_inbox::Ingested::Accepted { .. })
    ));
    let s = Served::start(
        &inbox,
        Admin::new(Auth::token(TOKEN).unwrap()).redact_header("Webhook-Signature"),
    );
    let json = call(
        "GET",
        &format!("{}/api/event?id=evt_r", s.base),
        &[("authorization", &bearer())],
        None,
    );
    let page = call(
        "GET",
        &format!("{}/event?id=evt_r", s.base),
        &[("authorization", &bearer())],
        None,
    );
    for a in [&json, &page] {
        assert_eq!(a.status, 200);
        assert!(!a.body.contains(&signature), "{}", a.body);
        assert!(a.body.contains("[redacted]"));
        assert!(a.body.contains("webhook-id"), "other headers are shown");
    }
}
